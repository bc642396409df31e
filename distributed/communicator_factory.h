// Choosing and making a Communicator: the backend names (auto, mpi, nccl) and the factory that
// picks MPI or NCCL for a process context. The one place that knows every implementation.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/choice.h"

#include "distributed/communicator.h"
#include "distributed/process_context.h"

namespace angiotrain {

enum class Backend { kAuto, kMpi, kNccl };

// Parses "auto", "mpi" or "nccl" (the trainer's --backend); throws Error naming the value.
// The names of the backends: "auto", "mpi", "nccl".
const ChoiceTable<Backend>& BackendChoices();
Backend ParseBackend(const std::string& text);
std::string BackendName(Backend backend);
// True when this build contains the NCCL backend (CUDA toolkit and nccl.h found by CMake).
bool NcclBackendCompiled();

struct CommunicatorOptions {
  // kAuto: NCCL when the context's device is CUDA and the NCCL backend is compiled, else MPI.
  Backend backend = Backend::kAuto;
  // A collective that has not completed after this long aborts the job (collective_watchdog.h).
  // Zero disables the watchdog. The trainer sets it well above the slowest step.
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
};

// Makes the communicator for `context` (its comm and device). Throws Error for kNccl when the
// backend is not compiled or the device is not CUDA. Collective over context.comm.
std::unique_ptr<Communicator> MakeCommunicator(const ProcessContext& context,
                                               const CommunicatorOptions& options = {});

}  // namespace angiotrain
