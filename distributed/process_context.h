// Who this process is in a data-parallel job: rank, world size, node-local rank, and the device
// it computes on (one GPU per rank, chosen by node-local rank, or the CPU).
#pragma once

#include <mpi.h>
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>

#include "core/choice.h"

namespace angiotrain {

// Which device a rank should use. kAuto: a CUDA device when LibTorch sees one, else the CPU.
enum class DeviceRequest { kAuto, kCpu, kCuda };

// The names of the requests: "auto", "cpu", "cuda".
const ChoiceTable<DeviceRequest>& DeviceChoices();
// A name of DeviceChoices(); throws Error naming the value otherwise.
DeviceRequest ParseDeviceRequest(const std::string& text);

// A rank's position on its node.
struct LocalRank {
  int rank = 0;  // 0 .. size-1 among the ranks of this node
  int size = 1;  // ranks on this node
};

// The node-local rank as the launcher states it, or nullopt when it states none:
// Open MPI's mpirun sets OMPI_COMM_WORLD_LOCAL_RANK/OMPI_COMM_WORLD_LOCAL_SIZE; Slurm's srun
// sets SLURM_LOCALID and, with --ntasks-per-node, SLURM_NTASKS_PER_NODE. Open MPI's variables win
// (mpirun inside an sbatch script inherits the batch step's SLURM_LOCALID=0). A variable that is
// present but not a valid integer, or a rank outside [0, size), throws Error naming the variable.
// The second form reads variables through `getenv`, so tests can supply an environment.
std::optional<LocalRank> LocalRankFromEnvironment();
std::optional<LocalRank> LocalRankFromEnvironment(
    const std::function<const char*(const char*)>& getenv);

// The node-local rank computed with MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): the ranks that
// share memory with this one. Collective over `comm`.
LocalRank LocalRankFromMpi(MPI_Comm comm);

// Rank, world and device of this process. Plain data: copy it freely. It does not own MPI:
// the program initialises MPI (launcher/main.cpp, MPI_THREAD_MULTIPLE) before making one.
struct ProcessContext {
  MPI_Comm comm = MPI_COMM_WORLD;  // the ranks of the job (not owned)
  int rank = 0;
  int world_size = 1;
  LocalRank local;
  torch::Device device = torch::kCPU;
  int mpi_thread_level = MPI_THREAD_SINGLE;  // as MPI_Query_thread reports

  bool is_root() const { return rank == 0; }

  // Builds the context of this process within `comm` (collective over `comm`). The node-local
  // rank comes from the launcher's variables when `comm` is MPI_COMM_WORLD, else from
  // LocalRankFromMpi. The CUDA device is local rank % device count, so each rank of a node
  // gets its own GPU when there are as many GPUs as ranks. kCuda without a visible CUDA device
  // throws Error. Throws Error if MPI is not initialised.
  static ProcessContext Create(MPI_Comm comm = MPI_COMM_WORLD,
                               DeviceRequest device = DeviceRequest::kAuto);

  // "rank 1/4 (local 1/2) on cuda:1"
  std::string Describe() const;
};

}  // namespace angiotrain
