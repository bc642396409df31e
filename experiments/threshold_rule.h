// ThresholdRule: how the 21 location probabilities of a set of patients become the 0/1 cells of a
// K-ium submission. Parsed from a short string so the CLI and config sweeps name rules the same way.
#pragma once

#include <string>
#include <vector>

#include "experiments/metrics.h"

namespace angiotrain {

class ThresholdRule {
 public:
  enum class Kind { kMeanPlusStd, kFixed };

  // The seed's rule: per location, threshold = mean + k x std of that location's predicted
  // probabilities over the set being predicted (all patients passed to Apply). The std is the
  // population one (divide by N, numpy's np.std default, as the seed computed it).
  static ThresholdRule MeanPlusStd(double k = 1.0);
  // One threshold for every location, in [0, 1].
  static ThresholdRule Fixed(double threshold = 0.5);
  // "mean+1std", "mean+0.5std", "mean+std" (k = 1), "mean" (k = 0), "mean-0.5std",
  // "fixed:0.5". Throws Error quoting the text and the accepted forms.
  static ThresholdRule Parse(const std::string& text);

  // The canonical text form, accepted back by Parse ("mean+1std", "fixed:0.5").
  std::string ToString() const;
  Kind kind() const { return kind_; }
  double parameter() const { return parameter_; }  // k or the fixed threshold

  // Per-location thresholds for this set of patients (an empty set gets the rule's value for
  // mean+k std of nothing: 0 mean, 0 std).
  LocationProbabilities Thresholds(const std::vector<LocationProbabilities>& probabilities) const;
  // A cell is 1 when its probability is strictly above its location's threshold, so a location
  // whose probabilities are all equal (std 0) predicts no 1 under mean+k std rather than all 1s.
  std::vector<LocationFlags> Apply(const std::vector<LocationProbabilities>& probabilities) const;

 private:
  ThresholdRule(Kind kind, double parameter) : kind_(kind), parameter_(parameter) {}
  Kind kind_;
  double parameter_;
};

}  // namespace angiotrain
