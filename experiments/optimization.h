// How the weights move: the optimizer the config names and the learning-rate schedule.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "experiments/train_config.h"

namespace angiotrain {

// train.optimizer: adam, adamw, or sgd (momentum 0.9), with train.lr and train.weight_decay.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const TrainConfig& config, std::vector<torch::Tensor> params);

// The learning rate at `global_step` (0-based) of a run of epochs * steps_per_epoch steps: linear
// warm-up over warmup_epochs from lr/warmup_steps to lr, then constant or cosine decay to 0.
double LearningRateAt(const TrainConfig& config, int64_t global_step, int64_t steps_per_epoch);

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace angiotrain
