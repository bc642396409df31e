// The task model: network, targets, loss weights and predictions (see task_model.h).
#include "experiments/training/task_model.h"

#include <algorithm>
#include <cmath>

#include "datasets/kium_schema.h"
#include "models/autocast.h"
#include "models/weight_import.h"

namespace angiotrain {

EfficientNet BuildModel(const TrainConfig& config, int resolution) {
  auto mc = EfficientNetConfig::ForVariant(config.model.variant);
  if (config.model.width_mult > 0) mc.width_mult = config.model.width_mult;
  if (config.model.depth_mult > 0) mc.depth_mult = config.model.depth_mult;
  if (config.model.dropout >= 0) mc.dropout = config.model.dropout;
  if (config.model.stochastic_depth >= 0) mc.stochastic_depth_prob = config.model.stochastic_depth;
  mc.resolution = resolution;
  mc.in_channels = kNumViews;
  mc.num_outputs = TaskOutputs(ParseTask(config.model.task));
  return EfficientNet(mc);
}

EfficientNet PrepareModel(const TrainConfig& config, int resolution, torch::Device device, bool import_weights) {
  EfficientNet model = BuildModel(config, resolution);
  if (import_weights && !config.model.init.empty()) InitializeModel(model, config.model.init);
  model->to(device);
  if (device.is_cuda()) ToChannelsLast(*model);
  return model;
}

std::optional<torch::ScalarType> TaskPrecision(const TrainConfig& config, torch::Device device) {
  return ParsePrecision(config.train.precision, device);
}

torch::Tensor TaskForward(EfficientNet& model, const torch::Tensor& images, std::optional<torch::ScalarType> precision) {
  const auto x = images.is_cuda() ? images.contiguous(torch::MemoryFormat::ChannelsLast) : images;
  torch::Tensor logits;
  {
    AutocastScope amp(images.device().type(), precision);
    logits = model->forward(x);
  }
  return logits.to(torch::kFloat);
}

torch::Tensor TaskTargets(const torch::Tensor& aneurysm, const torch::Tensor& locations, Task task) {
  switch (task) {
    case Task::kPresence: return aneurysm.unsqueeze(1);
    case Task::kLocation: return locations;
    default: return torch::cat({aneurysm.unsqueeze(1), locations}, 1);
  }
}

torch::Tensor TaskTargets(const std::vector<uint8_t>& aneurysm, const std::vector<uint8_t>& locations,
                          const std::vector<int64_t>& rows, Task task) {
  const auto n = static_cast<int64_t>(rows.size());
  auto presence = torch::zeros({n});
  auto sites = torch::zeros({n, kNumLocations});
  auto p = presence.accessor<float, 1>();
  auto s = sites.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    p[i] = static_cast<float>(aneurysm[rows[i]]);
    for (int k = 0; k < kNumLocations; ++k) s[i][k] = static_cast<float>(locations[rows[i] * kNumLocations + k]);
  }
  return TaskTargets(presence, sites, task);
}

torch::Tensor TaskPosWeight(const TrainConfig& config, Task task) {
  if (config.train.location_pos_weight == 1) return torch::Tensor();
  auto w = torch::full({TaskOutputs(task)}, config.train.location_pos_weight, torch::kFloat);
  if (task == Task::kMultitask) w[0] = 1.0;
  if (task == Task::kPresence) w.fill_(1.0);
  return w;
}

std::vector<PatientPrediction> TaskPredictions(const torch::Tensor& logits, Task task) {
  auto sigmoid = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  const auto all = logits.to(torch::kFloat).contiguous();
  std::vector<PatientPrediction> out(static_cast<size_t>(all.size(0)));
  const auto presence = HasPresence(task) ? PresenceColumn(all, task).contiguous() : torch::Tensor();
  const auto sites = HasLocations(task) ? LocationColumns(all, task).contiguous() : torch::Tensor();
  for (int64_t i = 0; i < all.size(0); ++i) {
    PatientPrediction& p = out[static_cast<size_t>(i)];
    if (presence.defined()) p.aneurysm = sigmoid(presence[i].item<float>());
    if (!sites.defined()) continue;
    const auto row = sites[i];
    double most = 0;
    for (int k = 0; k < kNumLocations; ++k) {
      p.locations[k] = sigmoid(row[k].item<float>());
      most = std::max(most, p.locations[k]);
    }
    if (!presence.defined()) p.aneurysm = most;
  }
  return out;
}

}  // namespace angiotrain
