// Optimizer and learning-rate schedule (see optimization.h).
#include "experiments/optimization.h"

#include <algorithm>
#include <cmath>

namespace angiotrain {

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const TrainConfig& c, std::vector<torch::Tensor> params) {
  const auto& t = c.train;
  switch (OptimizerChoice(c)) {
    case OptimizerKind::kAdam:
      return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(t.lr).weight_decay(t.weight_decay));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamW>(params,
                                                   torch::optim::AdamWOptions(t.lr).weight_decay(t.weight_decay));
    case OptimizerKind::kSgd:
      break;
  }
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(t.lr).momentum(0.9).weight_decay(t.weight_decay));
}

double LearningRateAt(const TrainConfig& config, int64_t global_step, int64_t steps_per_epoch) {
  const double lr = config.train.lr;
  const int64_t total = config.train.epochs * steps_per_epoch;
  const int64_t warmup = static_cast<int64_t>(std::llround(config.train.warmup_epochs * steps_per_epoch));
  if (global_step < warmup) return lr * static_cast<double>(global_step + 1) / static_cast<double>(warmup);
  if (ScheduleChoice(config) == ScheduleKind::kConstant) return lr;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, static_cast<double>(global_step - warmup) / static_cast<double>(span));
  return 0.5 * lr * (1.0 + std::cos(M_PI * progress));
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace angiotrain
