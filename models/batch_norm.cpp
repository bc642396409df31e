// SyncableBatchNorm2d: BatchNorm2d with statistics over every replica (see batch_norm.h).
#include "models/batch_norm.h"

namespace angiotrain {

SyncableBatchNorm2dImpl::SyncableBatchNorm2dImpl(const torch::nn::BatchNormOptions& options) : options(options) {
  reset();
}

void SyncableBatchNorm2dImpl::reset() {
  const int64_t c = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
  } else {
    weight = register_parameter("weight", torch::Tensor(), /*requires_grad=*/false);
    bias = register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({c}));
    running_var = register_buffer("running_var", torch::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::kLong));
  }
}

void SyncableBatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "angiotrain::SyncableBatchNorm2d(" << options.num_features() << ", eps=" << options.eps()
         << ", momentum=";
  if (options.momentum().has_value())
    stream << *options.momentum();
  else
    stream << "None";
  stream << ", affine=" << options.affine() << ", track_running_stats=" << options.track_running_stats()
         << (replicas_ ? ", synchronised" : "") << ")";
}

torch::Tensor SyncableBatchNorm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "SyncableBatchNorm2d: expected a 4-d input, got ", input.dim(), "-d");
  if (!replicas_ || !is_training()) {
    // torch::nn::BatchNorm2d's forward.
    double factor = 0;
    if (is_training() && options.track_running_stats()) {
      num_batches_tracked.add_(1);
      factor = options.momentum().has_value() ? *options.momentum()
                                              : 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
    }
    return torch::batch_norm(input, weight, bias, running_mean, running_var,
                             is_training() || !options.track_running_stats(), factor, options.eps(),
                             at::globalContext().userEnabledCuDNN());
  }
  // Statistics in float32 whatever autocast handed us, as cuDNN's batch norm keeps them.
  const torch::Tensor x = input.to(torch::kFloat);
  const int64_t channels = x.size(1);
  const std::vector<int64_t> dims = {0, 2, 3};
  // Each replica's count, sum and sum of squares, [count, sum, M2 + count * mean^2] (1 + 2C
  // values, one collective). Sums accumulate in float64 and the squares are taken about the
  // replica's own mean (M2), as torch's CPU kernel is accurate: in float32, M2 + count * mean^2
  // would lose M2 to the rounding of count * mean^2 wherever the mean is large against the spread.
  const double local_count = static_cast<double>(x.numel() / channels);
  const torch::Tensor local_mean64 = x.sum(dims, /*keepdim=*/false, torch::kDouble) / local_count;
  const torch::Tensor centred = x - local_mean64.to(torch::kFloat).view({1, -1, 1, 1});
  const torch::Tensor m2 = centred.square().sum(dims, /*keepdim=*/false, torch::kDouble);
  const torch::Tensor packed =
      torch::cat({torch::full({1}, local_count, local_mean64.options()), local_mean64 * local_count,
                  m2 + local_mean64.square() * local_count});
  const torch::Tensor total = replicas_->Sum(packed);
  const torch::Tensor count = total.narrow(0, 0, 1).detach();  // the same on every replica
  const torch::Tensor mean64 = total.narrow(0, 1, channels) / count;
  const torch::Tensor var64 = (total.narrow(0, 1 + channels, channels) - mean64.square() * count) / count;
  const torch::Tensor mean = mean64.to(torch::kFloat), var = var64.to(torch::kFloat);

  if (options.track_running_stats()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
    const double factor = options.momentum().has_value()
                              ? *options.momentum()
                              : 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
    running_mean.mul_(1 - factor).add_(mean.detach().to(running_mean.dtype()), factor);
    // torch keeps the unbiased variance: n / (n - 1) of the one it normalises with.
    const torch::Tensor unbiased = var64.detach() * count / (count - 1).clamp_min(1);
    running_var.mul_(1 - factor).add_(unbiased.to(running_var.dtype()), factor);
  }

  // (x - mean) first: x * scale - mean * scale would cancel where the mean is large.
  torch::Tensor y = (x - mean.view({1, -1, 1, 1})) * torch::rsqrt(var + options.eps()).view({1, -1, 1, 1});
  if (options.affine()) y = y * weight.view({1, -1, 1, 1}) + bias.view({1, -1, 1, 1});
  return y.to(input.scalar_type());
}

int ShareBatchStatistics(torch::nn::Module& module, const std::shared_ptr<ReplicaSum>& replicas) {
  int reached = 0;
  for (const auto& m : module.modules()) {
    if (auto* bn = dynamic_cast<SyncableBatchNorm2dImpl*>(m.get())) {
      bn->set_replicas(replicas);
      ++reached;
    }
  }
  return reached;
}

}  // namespace angiotrain
