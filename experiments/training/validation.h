// Scoring a model on held-out rows: every rank runs its shard of the rows, the logits are
// gathered on rank 0, and rank 0 turns them into a ValidationRecord (loss, presence accuracy
// and AUROC, the location report under the configured threshold rule, the predictions).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "datasets/volume_file.h"
#include "distributed/communicator.h"
#include "experiments/evaluation/threshold_rule.h"
#include "experiments/training/training_records.h"
#include "experiments/training/task_model.h"

namespace angiotrain {

// Logits of `rows` from every rank's shard, gathered on rank 0 (rows and logits in matching
// order); other ranks get empty results. Collective over `comm`.
struct GatheredLogits {
  std::vector<int64_t> rows;
  torch::Tensor logits;  // [n, K] float32 on the CPU (rank 0)
};
GatheredLogits ForwardShards(EfficientNet& model, VolumeReader& reader, const std::vector<int64_t>& rows,
                             Communicator& comm, int64_t batch_size, int outputs, torch::Device device,
                             std::optional<torch::ScalarType> precision);

// Scores gathered logits against the volume's labels (rank 0). `pos_weight` as in the training
// loss; `rule` turns location probabilities into flags.
ValidationRecord ScoreValidation(const GatheredLogits& gathered, const VolumeReader& reader, Task task,
                                 const torch::Tensor& pos_weight, const ThresholdRule& rule,
                                 const std::string& rule_name);

}  // namespace angiotrain
