// Validation: sharded forward, gather, scoring (see validation.h).
#include "experiments/training/validation.h"

#include <algorithm>
#include <numeric>

#include "datasets/batch_prefetcher.h"
#include "datasets/kium_schema.h"
#include "distributed/distributed_sampler.h"
#include "experiments/evaluation/metrics.h"
#include "experiments/training/task_model.h"

namespace angiotrain {

GatheredLogits ForwardShards(EfficientNet& model, VolumeReader& reader, const std::vector<int64_t>& rows,
                             Communicator& comm, int64_t batch_size, int outputs, torch::Device device,
                             std::optional<torch::ScalarType> precision) {
  DistributedSampler sampler(static_cast<int64_t>(rows.size()), comm.size(), comm.rank(), batch_size, 0,
                             {false, DistributedSampler::Tail::kUneven});
  sampler.SetEpoch(0);
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> b;
  while (sampler.Next(b)) {
    for (auto& r : b) r = rows[r];
    batches.push_back(b);
  }
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> logits;
  std::vector<int64_t> local_rows;
  {
    BatchPrefetcher prefetcher(&reader, batches, 2);
    VolumeBatch batch;
    while (prefetcher.Next(&batch)) {
      logits.push_back(TaskForward(model, batch.images.to(device), precision).to(torch::kCPU));
      local_rows.insert(local_rows.end(), batch.rows.begin(), batch.rows.end());
    }
  }
  auto local = logits.empty() ? torch::zeros({0, outputs}) : torch::cat(logits, 0);
  auto row_tensor = local_rows.empty() ? torch::zeros({0}, torch::kLong) : torch::tensor(local_rows, torch::kLong);
  auto parts = comm.Gather(local.contiguous());
  auto row_parts = comm.Gather(row_tensor);
  GatheredLogits out;
  if (comm.rank() != 0) return out;
  out.logits = torch::cat(parts, 0);
  auto all_rows = torch::cat(row_parts, 0);
  out.rows.assign(all_rows.data_ptr<int64_t>(), all_rows.data_ptr<int64_t>() + all_rows.numel());
  return out;
}

ValidationRecord ScoreValidation(const GatheredLogits& g, const VolumeReader& reader, Task task,
                                 const torch::Tensor& pos_weight, const ThresholdRule& rule,
                                 const std::string& rule_name) {
  ValidationRecord v;
  v.threshold_rule = rule_name;
  const auto n = static_cast<int64_t>(g.rows.size());
  auto targets = TaskTargets(reader.aneurysm(), reader.locations(), g.rows, task);
  v.loss = BceWithLogitsLoss(g.logits, targets, pos_weight).item<double>();
  const std::vector<PatientPrediction> preds = TaskPredictions(g.logits, task);

  std::vector<double> scores(n);
  std::vector<uint8_t> labels(n);
  long correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    scores[i] = preds[i].aneurysm;
    labels[i] = reader.aneurysm()[g.rows[i]];
    correct += (scores[i] > 0.5) == (labels[i] != 0);
  }
  v.aneurysm_auroc = Auroc(scores, labels);
  v.aneurysm_accuracy = n ? static_cast<double>(correct) / n : 0;

  if (HasLocations(task)) {
    std::vector<LocationProbabilities> probs(n);
    std::vector<LocationFlags> truth(n);
    for (int64_t i = 0; i < n; ++i) {
      probs[i] = preds[i].locations;
      for (int k = 0; k < kNumLocations; ++k) truth[i][k] = reader.locations()[g.rows[i] * kNumLocations + k];
    }
    // A rule that learns (f1, youden) is fitted on these predictions and graded on them.
    ThresholdInputs inputs{scores, probs};
    ThresholdLabels labelled{labels, truth};
    v.locations = ScoreLocations(rule.Fit(inputs, labelled).Apply(inputs), truth, probs);
  }

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return g.rows[a] < g.rows[b]; });
  for (size_t i : order) {
    v.indices.push_back(reader.index()[g.rows[i]]);
    v.predictions.push_back(preds[i]);
  }
  return v;
}

}  // namespace angiotrain
