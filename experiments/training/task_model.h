// The task model of a training configuration: the network it builds, the targets and loss
// weights of a batch, and how a row of logits becomes a patient's probabilities. The one place
// that knows the column layout of a task (models/heads.h: [presence | 21 locations]).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "experiments/evaluation/submission.h"
#include "experiments/training/train_config.h"
#include "models/efficientnet.h"
#include "models/heads.h"

namespace angiotrain {

// The network the config describes, for images of the 8 views at `resolution`.
EfficientNet BuildModel(const TrainConfig& config, int resolution);
// BuildModel, then (when `import_weights`) model.init's weights, moved to `device`
// (channels_last on CUDA).
EfficientNet PrepareModel(const TrainConfig& config, int resolution, torch::Device device, bool import_weights);

// The autocast dtype of train.precision on `device` (nullopt: fp32).
std::optional<torch::ScalarType> TaskPrecision(const TrainConfig& config, torch::Device device);
// The model's logits for `images` (already on the model's device) as float32, the forward pass
// under autocast at `precision`.
torch::Tensor TaskForward(EfficientNet& model, const torch::Tensor& images, std::optional<torch::ScalarType> precision);

// Targets [N, TaskOutputs(task)] in the logits' column order, from the Aneurysm labels [N] and
// the location labels [N, 21] (float 0/1).
torch::Tensor TaskTargets(const torch::Tensor& aneurysm, const torch::Tensor& locations, Task task);
// The same, for rows of a volume's label arrays (aneurysm [rows], locations [rows * 21]).
torch::Tensor TaskTargets(const std::vector<uint8_t>& aneurysm, const std::vector<uint8_t>& locations,
                          const std::vector<int64_t>& rows, Task task);

// The per-column positive weight of the loss: train.location_pos_weight on the location columns,
// 1 on presence; undefined (no weighting) when location_pos_weight is 1.
torch::Tensor TaskPosWeight(const TrainConfig& config, Task task);

// Per-patient probabilities from logits [N, TaskOutputs(task)]: the sigmoid of each column. A
// location model's presence is its most probable location; a presence model's locations are 0.
std::vector<PatientPrediction> TaskPredictions(const torch::Tensor& logits, Task task);

}  // namespace angiotrain
