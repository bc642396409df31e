// How the weights move: the optimizer the config names and the learning-rate schedule.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "experiments/training/train_config.h"

namespace angiotrain {

// train.optimizer: adam, adamw, or sgd (momentum 0.9), with train.lr and train.weight_decay.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const TrainConfig& config, std::vector<torch::Tensor> params);

// The learning rate at `global_step` (0-based) of a run of epochs * steps_per_epoch steps: linear
// warm-up over warmup_epochs from lr/warmup_steps to lr, then constant or cosine decay to 0.
double LearningRateAt(const TrainConfig& config, int64_t global_step, int64_t steps_per_epoch);

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr);

// The optimizer's per-parameter state (Adam/AdamW moments and step, SGD momentum) keyed by the
// parameter's position in param_groups, not by its address as LibTorch's own save does, so that
// the same run writes the same bytes. Hyper-parameters are not stored: they come from the config.
void SaveOptimizerState(torch::optim::Optimizer& optimizer, torch::serialize::OutputArchive& archive);
// Restores what SaveOptimizerState wrote into an optimizer over the same parameters (on their
// devices). Throws Error naming `path` when the archive does not fit the optimizer.
void LoadOptimizerState(torch::optim::Optimizer& optimizer, torch::serialize::InputArchive& archive,
                        const std::string& path);

}  // namespace angiotrain
