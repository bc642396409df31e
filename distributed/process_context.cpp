// ProcessContext: rank, world, node-local rank and device of a data-parallel worker.
#include "distributed/process_context.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace angiotrain {
namespace {

// Parses a whole decimal integer from environment variable `name`; throws Error otherwise.
int ParseEnvInt(const char* name, const char* text) {
  errno = 0;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0 || value > 1 << 24) {
    throw Error(std::string("environment variable ") + name + "='" + text +
                "': expected a non-negative integer");
  }
  return static_cast<int>(value);
}

std::optional<LocalRank> FromPair(const std::function<const char*(const char*)>& getenv,
                                  const char* rank_name, const char* size_name) {
  const char* rank_text = getenv(rank_name);
  const char* size_text = getenv(size_name);
  if (!rank_text || !size_text) return std::nullopt;
  LocalRank local{ParseEnvInt(rank_name, rank_text), ParseEnvInt(size_name, size_text)};
  if (local.size < 1 || local.rank >= local.size) {
    throw Error(std::string("environment: ") + rank_name + "=" + rank_text + " is not below " +
                size_name + "=" + size_text);
  }
  return local;
}

}  // namespace

const ChoiceTable<DeviceRequest>& DeviceChoices() {
  static const ChoiceTable<DeviceRequest> table = {
      {"auto", DeviceRequest::kAuto}, {"cpu", DeviceRequest::kCpu}, {"cuda", DeviceRequest::kCuda}};
  return table;
}

DeviceRequest ParseDeviceRequest(const std::string& text) {
  if (auto device = FindChoice(DeviceChoices(), text)) return *device;
  throw Error("device " + NotAChoice(text, ChoiceNames(DeviceChoices())));
}

std::optional<LocalRank> LocalRankFromEnvironment() {
  return LocalRankFromEnvironment([](const char* name) -> const char* { return std::getenv(name); });
}

std::optional<LocalRank> LocalRankFromEnvironment(
    const std::function<const char*(const char*)>& getenv) {
  if (auto local = FromPair(getenv, "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE")) {
    return local;
  }
  return FromPair(getenv, "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE");
}

LocalRank LocalRankFromMpi(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  LocalRank local;
  MPI_Comm_rank(node, &local.rank);
  MPI_Comm_size(node, &local.size);
  MPI_Comm_free(&node);
  return local;
}

ProcessContext ProcessContext::Create(MPI_Comm comm, DeviceRequest device) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw Error("ProcessContext: MPI is not initialised (call MPI_Init_thread first)");

  ProcessContext context;
  context.comm = comm;
  MPI_Comm_rank(comm, &context.rank);
  MPI_Comm_size(comm, &context.world_size);
  MPI_Query_thread(&context.mpi_thread_level);

  int is_world = 0;
  MPI_Comm_compare(comm, MPI_COMM_WORLD, &is_world);
  std::optional<LocalRank> local;
  if (is_world == MPI_IDENT) local = LocalRankFromEnvironment();
  context.local = local ? *local : LocalRankFromMpi(comm);

  bool cuda = torch::cuda::is_available();
  if (device == DeviceRequest::kCuda && !cuda) {
    throw Error("device 'cuda' requested on rank " + std::to_string(context.rank) +
                " but LibTorch sees no CUDA device (CPU-only build or no GPU visible)");
  }
  if (cuda && device != DeviceRequest::kCpu) {
    int count = static_cast<int>(torch::cuda::device_count());
    context.device = torch::Device(torch::kCUDA, context.local.rank % count);
  }
  return context;
}

std::string ProcessContext::Describe() const {
  return "rank " + std::to_string(rank) + "/" + std::to_string(world_size) + " (local " +
         std::to_string(local.rank) + "/" + std::to_string(local.size) + ") on " + device.str();
}

}  // namespace angiotrain
