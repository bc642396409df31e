// The MPI backend of Communicator: CPU tensors, non-blocking MPI_Iallreduce for overlap.
#pragma once

#include <mpi.h>

#include <memory>

#include "distributed/collective_watchdog.h"
#include "distributed/communicator.h"

namespace angiotrain {

class MpiCommunicator final : public Communicator {
 public:
  // Works on a duplicate of `comm`, so its collectives never match ones the program issues on
  // `comm` itself (the volume reader, a barrier in the trainer). Collective over `comm`.
  // `watchdog`, when given, watches every collective (it may be shared between communicators).
  explicit MpiCommunicator(MPI_Comm comm, std::shared_ptr<CollectiveWatchdog> watchdog = nullptr);
  // Frees the duplicate, unless MPI is already finalised.
  ~MpiCommunicator() override;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  std::unique_ptr<Work> AllReduceAsync(torch::Tensor tensor, ReduceOp op) override;
  void Broadcast(torch::Tensor tensor, int root = 0) override;
  void Barrier() override;
  std::vector<torch::Tensor> Gather(const torch::Tensor& tensor, int root = 0) override;
  std::vector<torch::Tensor> AllGather(const torch::Tensor& tensor) override;

 private:
  std::vector<torch::Tensor> GatherRows(const torch::Tensor& tensor, int root, bool everyone);
  uint64_t Watch(const std::string& what);
  void Unwatch(uint64_t token);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::shared_ptr<CollectiveWatchdog> watchdog_;
};

}  // namespace angiotrain
