// BatchNorm2d whose training statistics can span the replicas of a data-parallel job (as
// torch.nn.SyncBatchNorm does), so that R ranks with batches of b normalise as one process with
// a batch of R*b would. models/ knows no communicator: the sum over replicas is an interface
// (ReplicaSum) that the trainer implements with distributed/differentiable_all_reduce.h.
//
// Without a ReplicaSum, or in eval mode, it is torch::nn::BatchNorm2d: same parameter and buffer
// names (weight, bias, running_mean, running_var, num_batches_tracked), same forward.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace angiotrain {

// Sums a tensor over the replicas of a data-parallel job, differentiably: the gradient of the
// sum with respect to each replica's input is the sum of every replica's gradient of the
// result (each replica's loss depends on every replica's contribution). Every replica calls
// Sum, in the same order, with tensors of the same shape.
class ReplicaSum {
 public:
  virtual ~ReplicaSum() = default;
  virtual torch::Tensor Sum(const torch::Tensor& local) = 0;
};

// torch::nn::BatchNorm2d's parameters and buffers under its names, registered in its order
// (weight, bias, running_mean, running_var, num_batches_tracked) and its forward; written out
// rather than derived from BatchNorm2dImpl, whose base LibTorch does not export.
class SyncableBatchNorm2dImpl : public torch::nn::Cloneable<SyncableBatchNorm2dImpl> {
 public:
  explicit SyncableBatchNorm2dImpl(const torch::nn::BatchNormOptions& options);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  // Training with replicas: the mean and biased variance are those of the rows of every replica
  // (one collective in forward and one in backward); the running statistics are updated from
  // them (unbiased variance, as torch), and so stay equal on every replica. Otherwise
  // torch::nn::BatchNorm2d's forward, bit for bit.
  torch::Tensor forward(const torch::Tensor& input);

  void set_replicas(std::shared_ptr<ReplicaSum> replicas) { replicas_ = std::move(replicas); }

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  std::shared_ptr<ReplicaSum> replicas_;
};
TORCH_MODULE(SyncableBatchNorm2d);

// Installs `replicas` in every SyncableBatchNorm2d of `module` (nullptr: per-replica statistics
// again). Returns how many layers it reached.
int ShareBatchStatistics(torch::nn::Module& module, const std::shared_ptr<ReplicaSum>& replicas);

}  // namespace angiotrain
