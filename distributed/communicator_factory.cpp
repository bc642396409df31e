// Choosing a Communicator backend and making it (communicator_factory.h).
#include "distributed/communicator_factory.h"

#include "core/error.h"
#include "distributed/mpi_communicator.h"
#if ANGIOTRAIN_HAVE_NCCL
#include "distributed/nccl_communicator.h"
#endif

namespace angiotrain {

const ChoiceTable<Backend>& BackendChoices() {
  static const ChoiceTable<Backend> table = {{"auto", Backend::kAuto}, {"mpi", Backend::kMpi}, {"nccl", Backend::kNccl}};
  return table;
}

Backend ParseBackend(const std::string& text) {
  if (auto backend = FindChoice(BackendChoices(), text)) return *backend;
  throw Error("backend " + NotAChoice(text, ChoiceNames(BackendChoices())));
}

std::string BackendName(Backend backend) { return ChoiceName(BackendChoices(), backend); }

bool NcclBackendCompiled() {
#if ANGIOTRAIN_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> MakeCommunicator(const ProcessContext& context,
                                               const CommunicatorOptions& options) {
  Backend backend = options.backend;
  if (backend == Backend::kAuto) {
    backend = context.device.is_cuda() && NcclBackendCompiled() ? Backend::kNccl : Backend::kMpi;
  }
  std::shared_ptr<CollectiveWatchdog> watchdog;
  if (options.timeout.count() > 0) watchdog = std::make_shared<CollectiveWatchdog>(options.timeout);

  if (backend == Backend::kMpi) return std::make_unique<MpiCommunicator>(context.comm, watchdog);

  if (!NcclBackendCompiled()) {
    throw Error("backend 'nccl': this build has no NCCL backend (CMake found no CUDA toolkit with nccl.h)");
  }
  if (!context.device.is_cuda()) {
    throw Error("backend 'nccl' needs a CUDA device, but rank " + std::to_string(context.rank) +
                " runs on " + context.device.str());
  }
#if ANGIOTRAIN_HAVE_NCCL
  return std::make_unique<NcclCommunicator>(context.comm, context.device.index(), watchdog);
#else
  return nullptr;  // unreachable: rejected above
#endif
}

}  // namespace angiotrain
