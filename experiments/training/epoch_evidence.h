// The evidence a run keeps of every epoch, for sweeps, `predict --threshold f1` and reports: each
// epoch's validation probabilities, the validation labels, the thresholds the learning rules
// found, and a checkpoint of the best epoch by the chosen objective. Written by an observer on
// rank 0, in output.dir:
//   validation/epoch_NNN.csv   epoch NNN's validation probabilities (Index, Aneurysm, 21 locations)
//   validation/truth.csv       the validation patients' labels, same columns, 0/1
//   last.thresholds.json       f1 and youden fitted on the last epoch's validation (beside last.pt)
//   best.pt                    copy of last.pt after the epoch with the best objective so far
//   best.thresholds.json       the thresholds of that epoch (beside best.pt)
//   best.json                  {"epoch", "objective", "rule", "value"} of that epoch
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "experiments/evaluation/objective.h"
#include "experiments/evaluation/threshold_rule.h"
#include "experiments/training/training_records.h"

namespace angiotrain {

struct PatientLabels {
  uint8_t aneurysm = 0;
  LocationFlags locations{};
};
using LabelsByIndex = std::map<int32_t, PatientLabels>;

// The labels of every patient of a volume file, by Index (opened on this process alone).
LabelsByIndex LoadLabelsByIndex(const std::string& volume_path);

std::string EpochPredictionsPath(const std::string& dir, int64_t epoch);
std::string ValidationTruthPath(const std::string& dir);
// "DIR/last.pt" -> "DIR/last.thresholds.json".
std::string ThresholdsPathFor(const std::string& checkpoint_path);

// Epoch `epoch`'s stored validation predictions joined with the stored labels. Throws Error
// naming the file when one is missing or they do not hold the same patients.
void ReadEpochEvidence(const std::string& dir, int64_t epoch, ThresholdInputs* inputs, ThresholdLabels* labels);

// The epochs of `dir` whose validation predictions are stored, ascending.
std::vector<int64_t> StoredEpochs(const std::string& dir);

class EpochEvidenceWriter : public TrainingObserver {
 public:
  // `labels` is needed on rank 0 only (other ranks may pass an empty map). `rule` is the run's
  // evaluation rule, used by objectives that depend on 0/1 locations (kium).
  EpochEvidenceWriter(std::string dir, LabelsByIndex labels, Objective objective, ThresholdRule rule);
  void OnRunStart(const RunStartRecord& r) override;
  void OnEpochEnd(const EpochRecord& r) override;
  void OnCheckpoint(const CheckpointRecord& r) override;

  // The objective of each epoch seen so far (rank 0), 1-based epochs.
  const std::map<int64_t, std::optional<double>>& objectives() const { return objectives_; }

 private:
  void CommitBest(int64_t epoch, const std::optional<double>& value, const std::string& checkpoint);

  std::string dir_;
  LabelsByIndex labels_;
  Objective objective_;
  ThresholdRule rule_;
  std::map<int64_t, std::optional<double>> objectives_;
  int64_t best_epoch_ = 0;
  std::optional<double> best_value_;
  int64_t pending_epoch_ = 0;  // the epoch whose thresholds wait for its checkpoint
  std::string pending_thresholds_;
  bool pending_best_ = false;
};

}  // namespace angiotrain
