// The sweep's objective (experiments/evaluation/objective.h) on a hand-computed case: a rule that
// learns its cuts (f1, youden) scores each half of the validation rows with the cuts learnt on the
// other half, never with cuts fitted on the rows being scored, which would see their labels.
#include "experiments/evaluation/objective.h"

#include <gtest/gtest.h>

#include "datasets/kium_schema.h"

namespace angiotrain {
namespace {

// Four patients, L_ICA only. The even half (0.1 no, 0.4 yes) is separated by any cut in
// [0.1, 0.4), the odd half (0.5 no, 0.9 yes) by any in [0.5, 0.9), which f1 and youden both
// find (F1 1, J 1). Cross-fitted: 0.4 with the odd half's cut -> 0 (wrong), 0.5 with the even
// half's -> 1 (wrong): 2 of the 84 cells wrong. Fitted on the scored half, every cell would be
// right (84/84); fitted on all four rows, the F1 cut lies in [0.1, 0.4) and only 0.5 is wrong
// (83/84).
TEST(SweepObjective, LearntCutsScoreEachHalfOfTheValidationRowsWithTheOtherHalfsCuts) {
  const int ica = LocationIndex("L_ICA");
  ThresholdInputs inputs;
  ThresholdLabels labels;
  inputs.presence = {0.1, 0.5, 0.4, 0.9};
  labels.presence = {0, 0, 1, 1};
  for (double p : {0.1, 0.5, 0.4, 0.9}) {
    LocationProbabilities row{};
    row[ica] = p;
    inputs.locations.push_back(row);
  }
  for (int y : {0, 0, 1, 1}) {
    LocationFlags row{};
    row[ica] = static_cast<uint8_t>(y);
    labels.locations.push_back(row);
  }
  for (const ThresholdRule& rule : {ThresholdRule::F1(), ThresholdRule::Youden()}) {
    const EvidenceScore s = ScoreEvidence(inputs, labels, rule);
    EXPECT_DOUBLE_EQ(s.kium_accuracy, 82.0 / 84) << rule.ToString();
    ASSERT_TRUE(s.presence_auroc) << rule.ToString();
    EXPECT_DOUBLE_EQ(*s.presence_auroc, 0.75) << rule.ToString();  // 3 of the 4 (positive, negative) pairs
    ASSERT_TRUE(s.kium) << rule.ToString();
    EXPECT_DOUBLE_EQ(*s.kium, (0.75 + 82.0 / 84) / 2) << rule.ToString();
  }
  // A rule that learns nothing scores every row with its one cut: at 0.3 only 0.5 is wrong.
  EXPECT_DOUBLE_EQ(ScoreEvidence(inputs, labels, ThresholdRule::Fixed(0.3)).kium_accuracy, 83.0 / 84);
}

}  // namespace
}  // namespace angiotrain
