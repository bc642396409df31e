// Task heads and the BCE-with-logits loss. See heads.h.
#include "models/heads.h"

#include "core/error.h"

namespace angiotrain {

const ChoiceTable<Task>& TaskChoices() {
  static const ChoiceTable<Task> table = {
      {"presence", Task::kPresence}, {"location", Task::kLocation}, {"multitask", Task::kMultitask}};
  return table;
}

Task ParseTask(const std::string& name) {
  if (auto task = FindChoice(TaskChoices(), name)) return *task;
  throw Error("unknown task: " + NotAChoice(name, ChoiceNames(TaskChoices())));
}

std::string TaskName(Task task) { return ChoiceName(TaskChoices(), task); }

int TaskOutputs(Task task) {
  switch (task) {
    case Task::kPresence: return 1;
    case Task::kLocation: return kLocationLogits;
    case Task::kMultitask: return 1 + kLocationLogits;
  }
  return 0;
}

bool HasPresence(Task task) { return task != Task::kLocation; }
bool HasLocations(Task task) { return task != Task::kPresence; }

namespace {

void CheckWidth(const torch::Tensor& logits, Task task) {
  if (logits.dim() != 2 || logits.size(1) != TaskOutputs(task)) {
    throw Error("task " + TaskName(task) + ": expected a tensor [N, " +
                std::to_string(TaskOutputs(task)) + "], got " + c10::str(logits.sizes()));
  }
}

}  // namespace

torch::Tensor PresenceColumn(const torch::Tensor& logits, Task task) {
  if (!HasPresence(task)) throw Error("task location has no presence output");
  CheckWidth(logits, task);
  return logits.select(1, 0);
}

torch::Tensor LocationColumns(const torch::Tensor& logits, Task task) {
  if (!HasLocations(task)) throw Error("task presence has no location outputs");
  CheckWidth(logits, task);
  return task == Task::kMultitask ? logits.narrow(1, 1, kLocationLogits) : logits;
}

torch::Tensor BceWithLogitsLoss(const torch::Tensor& logits, const torch::Tensor& targets,
                                const torch::Tensor& pos_weight) {
  if (logits.sizes() != targets.sizes()) {
    throw Error("loss: logits " + c10::str(logits.sizes()) + " and targets " +
                c10::str(targets.sizes()) + " differ in shape");
  }
  namespace F = torch::nn::functional;
  auto options = F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kMean);
  if (pos_weight.defined()) {
    if (pos_weight.dim() != 1 || logits.dim() != 2 || pos_weight.size(0) != logits.size(1)) {
      throw Error("loss: pos_weight " + c10::str(pos_weight.sizes()) +
                  " must have one entry per logit column of " + c10::str(logits.sizes()));
    }
    options.pos_weight(pos_weight.to(logits.options()));
  }
  return F::binary_cross_entropy_with_logits(logits, targets.to(logits.options()), options);
}

}  // namespace angiotrain
