// The NCCL backend of Communicator: CUDA tensors, one GPU per rank, collectives on a dedicated
// CUDA stream ordered against the compute stream with events.
//
// Built only when CMake finds the CUDA toolkit and NCCL (ANGIOTRAIN_HAVE_NCCL); it uses the CUDA
// runtime and the NCCL C API directly, never LibTorch's CUDA API, so it compiles and links even
// against a CPU-only LibTorch. This header includes neither CUDA nor NCCL.
//
// Streams: LibTorch queues the model's kernels on the CUDA default (legacy) stream unless a
// stream guard says otherwise; the trainer sets none. Each collective records an event on that
// compute stream, makes the communication stream wait for it (the tensor's producer kernels are
// done), runs the NCCL kernel on the communication stream, and records a second event. Work::Wait
// makes the compute stream wait for that event; the host never blocks, so backward keeps queuing
// kernels while NCCL runs. The watchdog polls the second event.
#pragma once

#include <mpi.h>

#include <memory>

#include "distributed/collective_watchdog.h"
#include "distributed/communicator.h"

namespace angiotrain {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `comm`: rank 0 makes the ncclUniqueId and broadcasts it over MPI, then every
  // rank joins with ncclCommInitRank on CUDA device `device` (ProcessContext picks it from the
  // node-local rank). Throws Error with the CUDA or NCCL message on failure.
  NcclCommunicator(MPI_Comm comm, int device, std::shared_ptr<CollectiveWatchdog> watchdog = nullptr);
  ~NcclCommunicator() override;

  std::string backend() const override { return "nccl"; }
  int rank() const override;
  int size() const override;

  // CUDA tensors on this rank's device, or CPU tensors (staged through the device and copied back
  // on Wait); float32/64, float16, bfloat16, int8, uint8, int32, int64.
  std::unique_ptr<Work> AllReduceAsync(torch::Tensor tensor, ReduceOp op) override;
  void Broadcast(torch::Tensor tensor, int root = 0) override;
  // MPI barrier on the host (CUDA work already queued may still be running).
  void Barrier() override;
  // Over MPI on host copies (see Communicator::Gather).
  std::vector<torch::Tensor> Gather(const torch::Tensor& tensor, int root = 0) override;
  std::vector<torch::Tensor> AllGather(const torch::Tensor& tensor) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace angiotrain
