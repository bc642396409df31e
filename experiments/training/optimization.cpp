// Optimizer and learning-rate schedule (see optimization.h).
#include "experiments/training/optimization.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/error.h"

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

namespace {

std::vector<torch::Tensor> Parameters(torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> params;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) params.push_back(p);
  return params;
}

// LibTorch keys its state map by the parameter's TensorImpl: as a pointer (2.x) or as its text
// (1.13, written as an ostream writes a pointer).
template <class Map>
typename Map::key_type StateKey(const Map&, const torch::Tensor& param) {
  void* impl = param.unsafeGetTensorImpl();
  if constexpr (std::is_same_v<typename Map::key_type, std::string>) {
    std::ostringstream text;
    text << impl;
    return text.str();
  } else {
    return impl;
  }
}

torch::Tensor StepTensor(int64_t step) { return torch::tensor(step, torch::kLong); }

template <class State>
void SaveAdamLike(const State& s, const std::string& key, torch::serialize::OutputArchive& archive) {
  archive.write(key + ".step", StepTensor(s.step()));
  archive.write(key + ".exp_avg", s.exp_avg());
  archive.write(key + ".exp_avg_sq", s.exp_avg_sq());
  if (s.max_exp_avg_sq().defined()) archive.write(key + ".max_exp_avg_sq", s.max_exp_avg_sq());
}

template <class State>
std::unique_ptr<State> LoadAdamLike(const std::string& key, torch::serialize::InputArchive& archive,
                                    const torch::Tensor& param) {
  auto s = std::make_unique<State>();
  torch::Tensor step, exp_avg, exp_avg_sq, max_exp_avg_sq;
  archive.read(key + ".step", step);
  archive.read(key + ".exp_avg", exp_avg);
  archive.read(key + ".exp_avg_sq", exp_avg_sq);
  s->step(step.item<int64_t>());
  s->exp_avg(exp_avg.to(param.device()));
  s->exp_avg_sq(exp_avg_sq.to(param.device()));
  if (archive.try_read(key + ".max_exp_avg_sq", max_exp_avg_sq)) s->max_exp_avg_sq(max_exp_avg_sq.to(param.device()));
  return s;
}

}  // namespace

void SaveOptimizerState(torch::optim::Optimizer& optimizer, torch::serialize::OutputArchive& archive) {
  const auto params = Parameters(optimizer);
  archive.write("parameters", StepTensor(static_cast<int64_t>(params.size())));
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = optimizer.state().find(StateKey(optimizer.state(), params[i]));
    if (it == optimizer.state().end()) continue;  // no step taken for this parameter yet
    const std::string key = std::to_string(i);
    const auto* state = it->second.get();
    if (auto* adam = dynamic_cast<const torch::optim::AdamParamState*>(state)) {
      SaveAdamLike(*adam, key, archive);
    } else if (auto* adamw = dynamic_cast<const torch::optim::AdamWParamState*>(state)) {
      SaveAdamLike(*adamw, key, archive);
    } else if (auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(state)) {
      if (sgd->momentum_buffer().defined()) archive.write(key + ".momentum_buffer", sgd->momentum_buffer());
    }
  }
}

void LoadOptimizerState(torch::optim::Optimizer& optimizer, torch::serialize::InputArchive& archive,
                        const std::string& path) {
  const auto params = Parameters(optimizer);
  torch::Tensor count;
  archive.read("parameters", count);
  if (count.item<int64_t>() != static_cast<int64_t>(params.size()))
    throw Error(path + ": optimizer state for " + std::to_string(count.item<int64_t>()) + " parameters, but the model has " +
                std::to_string(params.size()));
  const bool adam = dynamic_cast<torch::optim::Adam*>(&optimizer) != nullptr;
  const bool adamw = dynamic_cast<torch::optim::AdamW*>(&optimizer) != nullptr;
  auto& states = optimizer.state();
  states.clear();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string key = std::to_string(i);
    torch::Tensor probe;
    const auto slot = StateKey(states, params[i]);
    if (adam || adamw) {
      if (!archive.try_read(key + ".step", probe)) continue;
      if (adam) states[slot] = LoadAdamLike<torch::optim::AdamParamState>(key, archive, params[i]);
      else states[slot] = LoadAdamLike<torch::optim::AdamWParamState>(key, archive, params[i]);
    } else if (archive.try_read(key + ".momentum_buffer", probe)) {
      auto s = std::make_unique<torch::optim::SGDParamState>();
      s->momentum_buffer(probe.to(params[i].device()));
      states[slot] = std::move(s);
    }
  }
}

}  // namespace angiotrain
