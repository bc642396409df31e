// AllReduceSumWithGradient (see differentiable_all_reduce.h).
#include "distributed/differentiable_all_reduce.h"

#include <cstdint>

namespace angiotrain {

namespace {

// y = sum over ranks of x. Each rank's loss L_r depends on y, so the gradient of the job's loss
// sum_r L_r with respect to this rank's x is sum_r dL_r/dy: the all-reduce of the incoming
// gradients. (The gradient reducer then averages the parameter gradients over the ranks, which
// turns the sum of the per-rank mean losses into the mean over the global batch.)
class AllReduceSum : public torch::autograd::Function<AllReduceSum> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local,
                               int64_t communicator) {
    // A custom Function keeps non-tensor state in IValues: the communicator as its address.
    ctx->saved_data["communicator"] = communicator;
    torch::Tensor total = local.detach().clone(torch::MemoryFormat::Contiguous);
    Of(communicator).AllReduce(total, ReduceOp::kSum);
    return total;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    torch::Tensor total = grads[0].clone(torch::MemoryFormat::Contiguous);
    Of(ctx->saved_data["communicator"].toInt()).AllReduce(total, ReduceOp::kSum);
    return {total, torch::Tensor()};
  }

 private:
  static Communicator& Of(int64_t address) { return *reinterpret_cast<Communicator*>(static_cast<intptr_t>(address)); }
};

}  // namespace

torch::Tensor AllReduceSumWithGradient(const torch::Tensor& local, Communicator& comm) {
  return AllReduceSum::apply(local, static_cast<int64_t>(reinterpret_cast<intptr_t>(&comm)));
}

}  // namespace angiotrain
