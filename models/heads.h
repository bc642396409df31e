// The three task heads on one EfficientNet backbone and their loss. A head is just the width of
// the final linear layer; its columns follow the label CSV (`Aneurysm`, then the 21 locations).
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/choice.h"

namespace angiotrain {

// presence: 1 logit (Aneurysm). location: 21 logits, one per artery location, in the order of
// LocationNames() (datasets/kium_schema.h). multitask: 22 logits = [presence | 21 locations].
enum class Task { kPresence, kLocation, kMultitask };

// The models layer may not include datasets/; a test checks this equals kNumLocations.
constexpr int kLocationLogits = 21;

// The names of the tasks: "presence", "location", "multitask".
const ChoiceTable<Task>& TaskChoices();
// A name of TaskChoices(); throws Error naming the choices otherwise.
Task ParseTask(const std::string& name);
std::string TaskName(Task task);
// Width of the task's logits: 1, 21 or 22.
int TaskOutputs(Task task);
bool HasPresence(Task task);
bool HasLocations(Task task);

// Column views of a logits (or probabilities, or targets) tensor [N, TaskOutputs(task)].
// PresenceColumn: [N]; LocationColumns: [N, 21]. Throw Error when the task has no such output
// or the width does not match the task.
torch::Tensor PresenceColumn(const torch::Tensor& logits, Task task);
torch::Tensor LocationColumns(const torch::Tensor& logits, Task task);

// Mean binary cross-entropy over every element of logits [N, K] against 0/1 targets of the same
// shape, computed from logits (stable; no sigmoid in the model). pos_weight, when defined, is a
// [K] tensor multiplying the positive term of each column (e.g. negatives/positives for rare
// locations). Throws Error on shape mismatches.
torch::Tensor BceWithLogitsLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                                const torch::Tensor& pos_weight = torch::Tensor());

}  // namespace angiotrain
