// ThresholdRule: how the 21 location probabilities of a set of patients become the 0/1 cells of a
// K-ium submission. Parsed from a short string so the CLI, train configs and sweep files name
// rules the same way.
//
// Rules (the text forms Parse accepts, ToString writes):
//   mean+Kstd  per location, mean + K x std of the probabilities of the set being predicted (the
//              seed's rule; computed on that set, nothing is learnt)
//   fixed:T    one threshold T in [0, 1] for every location
//   f1         per location, the cut that maximises F1 on labelled (validation) predictions
//   youden     per location, the cut that maximises TPR - FPR on labelled predictions
//   top:K      the K most likely locations of each patient (K in 1..21)
//   gate:RULE  RULE, then a location stays 1 only when the patient's presence probability is
//              above the presence threshold that RULE gives the presence column (mean+Kstd: of
//              the set; fixed:T: T; f1/youden: learnt on the presence labels; top:K: 0.5)
//
// A cell is 1 when its probability is strictly above its threshold. f1 and youden (and a gate
// over them) learn: Fit() on labelled predictions returns the rule with its thresholds, which
// Apply() then uses unchanged on any other set (the test set). Learnt cuts lie halfway between
// consecutive distinct probabilities, 0 below all (every patient 1) or 1 above all (none); where
// several cuts score the same, the highest wins (fewer positives), so a location with no positive
// in the labels, or whose probabilities are all equal, predicts no 1.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "experiments/evaluation/metrics.h"

namespace angiotrain {

// What a rule that learns keeps: per-location cuts and the presence column's cut.
struct LearntThresholds {
  LocationProbabilities locations{};
  double presence = 0.5;
};

// Predictions of a set of patients (presence may be empty for rules that need none) and,
// for fitting, their labels.
struct ThresholdInputs {
  std::vector<double> presence;
  std::vector<LocationProbabilities> locations;
};
struct ThresholdLabels {
  std::vector<uint8_t> presence;
  std::vector<LocationFlags> locations;
};

class ThresholdRule {
 public:
  enum class Kind { kMeanPlusStd, kFixed, kF1, kYouden, kTop, kGate };

  // The seed's rule: per location, threshold = mean + k x std of that location's predicted
  // probabilities over the set being predicted (all patients passed to Apply). The std is the
  // population one (divide by N, numpy's np.std default, as the seed computed it).
  static ThresholdRule MeanPlusStd(double k = 1.0);
  // One threshold for every location, in [0, 1].
  static ThresholdRule Fixed(double threshold = 0.5);
  static ThresholdRule F1();
  static ThresholdRule Youden();
  static ThresholdRule Top(int k);
  // `inner` may not itself be a gate.
  static ThresholdRule Gate(const ThresholdRule& inner);
  // "mean+1std", "mean+0.5std", "mean+std" (k = 1), "mean" (k = 0), "mean-0.5std", "fixed:0.5",
  // "f1", "youden", "top:2", "gate:f1", "gate:fixed:0.5". Throws Error quoting the text and the
  // accepted forms.
  static ThresholdRule Parse(const std::string& text);

  // The canonical text form, accepted back by Parse ("mean+1std", "fixed:0.5", "gate:top:2").
  std::string ToString() const;
  Kind kind() const { return kind_; }
  double parameter() const { return parameter_; }  // k, the fixed threshold, or K of top:K
  const ThresholdRule* inner() const { return inner_.get(); }  // gate:RULE's RULE

  // True for f1, youden and a gate over them: Apply needs Fit (or WithLearnt) first.
  bool learns() const;
  const std::optional<LearntThresholds>& learnt() const { return learnt_; }
  // This rule with its cuts learnt from `inputs` and their `labels` (same sizes; presence is
  // needed for a gate). A rule that learns nothing is returned unchanged.
  ThresholdRule Fit(const ThresholdInputs& inputs, const ThresholdLabels& labels) const;
  ThresholdRule WithLearnt(const LearntThresholds& learnt) const;

  // Per-location thresholds for this set of patients (an empty set gets the rule's value for
  // mean+k std of nothing: 0 mean, 0 std). Throws Error for top:K and gate:RULE (no per-location
  // thresholds) and for a learning rule that was not fitted.
  LocationProbabilities Thresholds(const std::vector<LocationProbabilities>& probabilities) const;
  // The 0/1 cells of every patient. A gate needs inputs.presence (one per patient).
  std::vector<LocationFlags> Apply(const ThresholdInputs& inputs) const;
  // The same for rules that need no presence (all but gate).
  std::vector<LocationFlags> Apply(const std::vector<LocationProbabilities>& probabilities) const;

 private:
  ThresholdRule(Kind kind, double parameter) : kind_(kind), parameter_(parameter) {}
  // The threshold of one column (a location, or presence when `location` is -1).
  double ColumnThreshold(const std::vector<double>& values, int location) const;
  Kind kind_;
  double parameter_;
  std::shared_ptr<const ThresholdRule> inner_;
  std::optional<LearntThresholds> learnt_;
};

// The cut that maximises F1 (or Youden's J) of "value > cut" against `truth` (see the header
// comment for the candidates and ties).
double BestF1Cut(const std::vector<double>& values, const std::vector<uint8_t>& truth);
double BestYoudenCut(const std::vector<double>& values, const std::vector<uint8_t>& truth);

// The flags of `rule` on labelled predictions with the learning done out of sample: the patients
// (in the given order) alternate between two halves, each half is predicted with the cuts learnt
// on the other. Rules that learn nothing are applied to the whole set as Apply does. This is how
// a sweep scores f1 and youden on validation predictions without grading them on their own fit.
std::vector<LocationFlags> CrossFittedFlags(const ThresholdRule& rule, const ThresholdInputs& inputs,
                                            const ThresholdLabels& labels);

// A run's thresholds file (output.dir/last.thresholds.json, best.thresholds.json beside
// best.pt): what f1 and youden learnt on one epoch's validation predictions, so that predict
// applies them unchanged to another set:
//   {"epoch": E, "patients": N, "f1": {"presence": p, "locations": {"L_ICA": t, ...}},
//    "youden": {...}}
std::string LearntThresholdsJson(int64_t epoch, const ThresholdInputs& inputs, const ThresholdLabels& labels);
// `rule` with the cuts it learns read from such a file (a rule that learns nothing is returned
// unchanged and the file is not read). Throws Error naming the file and what is missing.
ThresholdRule WithLearntFromFile(const ThresholdRule& rule, const std::string& path, int64_t* epoch = nullptr);

}  // namespace angiotrain
