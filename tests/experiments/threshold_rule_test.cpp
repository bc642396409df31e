// ThresholdRule: the seed's mean + k std rule, fixed, f1, youden, top:K and gate:RULE on hand-computed
// cases (ties, a location with no positive, all-equal probabilities), fitting on one set and applying
// to another, the thresholds file, parsing.
#include "experiments/evaluation/threshold_rule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

std::vector<LocationProbabilities> Column(int location, const std::vector<double>& values) {
  std::vector<LocationProbabilities> p(values.size());
  for (size_t i = 0; i < values.size(); ++i) p[i][location] = values[i];
  return p;
}

TEST(ThresholdRule, MeanPlusOneStdUsesThePopulationStdOfEachLocation) {
  const int ica = LocationIndex("L_ICA");
  // mean 0.3; population variance (0.04 + 0.01 + 0 + 0.09) / 4 = 0.035.
  std::vector<LocationProbabilities> p = Column(ica, {0.1, 0.2, 0.3, 0.6});
  ThresholdRule rule = ThresholdRule::MeanPlusStd(1.0);
  EXPECT_NEAR(rule.Thresholds(p)[ica], 0.3 + std::sqrt(0.035), 1e-15);
  std::vector<LocationFlags> flags = rule.Apply(p);
  EXPECT_EQ(flags[0][ica], 0);
  EXPECT_EQ(flags[1][ica], 0);
  EXPECT_EQ(flags[2][ica], 0);
  EXPECT_EQ(flags[3][ica], 1);
  // k = 0.5 lowers the bar to 0.3 + 0.5 std.
  EXPECT_NEAR(ThresholdRule::MeanPlusStd(0.5).Thresholds(p)[ica], 0.3 + 0.5 * std::sqrt(0.035), 1e-15);
  // k = 0 is the mean itself: strictly above 0.3.
  std::vector<LocationFlags> at_mean = ThresholdRule::MeanPlusStd(0.0).Apply(p);
  EXPECT_EQ(at_mean[2][ica], 0);
  EXPECT_EQ(at_mean[3][ica], 1);
}

TEST(ThresholdRule, LocationsAreThresholdedIndependently) {
  const int a = LocationIndex("L_ICA"), b = LocationIndex("BA");
  std::vector<LocationProbabilities> p(3);
  p[0][a] = 0.9, p[1][a] = 0.1, p[2][a] = 0.1;    // threshold ~0.74: patient 0
  p[0][b] = 0.01, p[1][b] = 0.02, p[2][b] = 0.2;  // threshold ~0.16: patient 2
  std::vector<LocationFlags> f = ThresholdRule::MeanPlusStd(1.0).Apply(p);
  EXPECT_EQ(f[0][a], 1);
  EXPECT_EQ(f[1][a] + f[2][a], 0);
  EXPECT_EQ(f[2][b], 1);
  EXPECT_EQ(f[0][b] + f[1][b], 0);
}

TEST(ThresholdRule, ConstantProbabilitiesGiveNoPositiveUnderMeanPlusStd) {
  const int ica = LocationIndex("L_ICA");
  std::vector<LocationFlags> f = ThresholdRule::MeanPlusStd(1.0).Apply(Column(ica, {0.4, 0.4, 0.4}));
  for (const auto& row : f) EXPECT_EQ(row[ica], 0);
}

TEST(ThresholdRule, FixedThresholdIsStrict) {
  const int ica = LocationIndex("L_ICA");
  std::vector<LocationFlags> f = ThresholdRule::Fixed(0.5).Apply(Column(ica, {0.49, 0.5, 0.51}));
  EXPECT_EQ(f[0][ica], 0);
  EXPECT_EQ(f[1][ica], 0);
  EXPECT_EQ(f[2][ica], 1);
  EXPECT_EQ(f[2][LocationIndex("BA")], 0);  // the other locations are 0 < 0.5
}

TEST(ThresholdRule, ParsesTheCliForms) {
  struct Form {
    const char* text;
    ThresholdRule::Kind kind;
    double parameter;
    const char* canonical;
  };
  const Form forms[] = {
      {"mean+1std", ThresholdRule::Kind::kMeanPlusStd, 1.0, "mean+1std"},
      {"mean+0.5std", ThresholdRule::Kind::kMeanPlusStd, 0.5, "mean+0.5std"},
      {"mean+std", ThresholdRule::Kind::kMeanPlusStd, 1.0, "mean+1std"},
      {"mean", ThresholdRule::Kind::kMeanPlusStd, 0.0, "mean+0std"},
      {"mean-0.25std", ThresholdRule::Kind::kMeanPlusStd, -0.25, "mean-0.25std"},
      {"fixed:0.5", ThresholdRule::Kind::kFixed, 0.5, "fixed:0.5"},
      {"fixed:0", ThresholdRule::Kind::kFixed, 0.0, "fixed:0"},
      {"f1", ThresholdRule::Kind::kF1, 0.0, "f1"},
      {"youden", ThresholdRule::Kind::kYouden, 0.0, "youden"},
      {"top:3", ThresholdRule::Kind::kTop, 3.0, "top:3"},
      {"top:21", ThresholdRule::Kind::kTop, 21.0, "top:21"},
      {"gate:f1", ThresholdRule::Kind::kGate, 0.0, "gate:f1"},
      {"gate:fixed:0.25", ThresholdRule::Kind::kGate, 0.0, "gate:fixed:0.25"},
      {"gate:mean+std", ThresholdRule::Kind::kGate, 0.0, "gate:mean+1std"},
      {"gate:top:2", ThresholdRule::Kind::kGate, 0.0, "gate:top:2"},
  };
  for (const Form& f : forms) {
    ThresholdRule r = ThresholdRule::Parse(f.text);
    EXPECT_EQ(r.kind(), f.kind) << f.text;
    EXPECT_DOUBLE_EQ(r.parameter(), f.parameter) << f.text;
    EXPECT_EQ(r.ToString(), f.canonical) << f.text;
    EXPECT_EQ(ThresholdRule::Parse(r.ToString()).ToString(), r.ToString()) << f.text;
  }
}

TEST(ThresholdRule, RejectsMalformedTextQuotingIt) {
  for (const char* text : {"", "median", "mean+", "mean+1", "mean+xstd", "mean+1.5.2std", "mean*1std", "mean++1std",
                           "fixed:", "fixed:abc", "fixed:1.5", "fixed:-0.1", "fixed:0.5x", "F1", "f1x", "youden:1", "top:",
                           "top:0", "top:22", "top:1.5", "gate:", "gate:gate:f1", "gate:median"}) {
    try {
      ThresholdRule::Parse(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + text + "'"), std::string::npos) << e.what();
    }
  }
}

// Hand case for one location: probabilities 0.1 0.35 0.4 0.8 with truth 0 1 0 1. Cuts from the
// top: 1 (F1 0), 0.6 ({0.8}: 2/3), 0.375 ({0.4, 0.8}: 1/2), 0.225 ({0.35, 0.4, 0.8}: 4/5),
// 0 (all: 2/3). Youden: 0.6 -> 1/2 - 0 = 0.5, 0.375 -> 0.5 - 0.5 = 0, 0.225 -> 1 - 0.5 = 0.5, 0 -> 0.
TEST(ThresholdRule, F1PicksTheCutWithTheBestF1HalfwayBetweenValues) {
  EXPECT_DOUBLE_EQ(BestF1Cut({0.1, 0.35, 0.4, 0.8}, {0, 1, 0, 1}), 0.225);
}

TEST(ThresholdRule, YoudenTiesGoToTheHighestCut) {
  // 0.6 and 0.225 both give J = 0.5: the higher one wins.
  EXPECT_DOUBLE_EQ(BestYoudenCut({0.1, 0.35, 0.4, 0.8}, {0, 1, 0, 1}), 0.6);
  // Tied probabilities move together: the positive 0.3 cannot be taken without the negative 0.3,
  // so the best cut is 0.25 (J = 1 - 1/3), not one that splits the tie.
  EXPECT_DOUBLE_EQ(BestYoudenCut({0.3, 0.3, 0.1, 0.2}, {1, 0, 0, 0}), 0.25);
}

TEST(ThresholdRule, LearntRulesPredictNothingForALocationWithoutPositivesOrWithEqualProbabilities) {
  EXPECT_DOUBLE_EQ(BestF1Cut({0.2, 0.9, 0.5}, {0, 0, 0}), 1.0);
  EXPECT_DOUBLE_EQ(BestYoudenCut({0.2, 0.9, 0.5}, {0, 0, 0}), 1.0);
  EXPECT_DOUBLE_EQ(BestYoudenCut({0.4, 0.4, 0.4}, {1, 0, 1}), 1.0);  // J = 0 everywhere
  // F1 of "all 1" is 4/5 > 0 there: all-equal probabilities with positives get cut 0.
  EXPECT_DOUBLE_EQ(BestF1Cut({0.4, 0.4, 0.4}, {1, 0, 1}), 0.0);
  EXPECT_DOUBLE_EQ(BestF1Cut({}, {}), 1.0);
}

std::vector<LocationFlags> Truth(int location, const std::vector<int>& values) {
  std::vector<LocationFlags> t(values.size());
  for (size_t i = 0; i < values.size(); ++i) t[i][location] = static_cast<uint8_t>(values[i]);
  return t;
}

TEST(ThresholdRule, F1AndYoudenAreFittedOnValidationAndAppliedUnchangedToTest) {
  const int ica = LocationIndex("L_ICA");
  ThresholdInputs validation{{}, Column(ica, {0.1, 0.35, 0.4, 0.8})};
  ThresholdLabels labels{{}, Truth(ica, {0, 1, 0, 1})};
  const ThresholdRule f1 = ThresholdRule::F1().Fit(validation, labels);
  const ThresholdRule youden = ThresholdRule::Youden().Fit(validation, labels);
  ASSERT_TRUE(f1.learnt());
  EXPECT_DOUBLE_EQ(f1.learnt()->locations[ica], 0.225);
  EXPECT_DOUBLE_EQ(youden.learnt()->locations[ica], 0.6);
  EXPECT_DOUBLE_EQ(f1.learnt()->locations[LocationIndex("BA")], 1.0);  // no positive there
  // The test set has other statistics; the cuts do not move with them.
  const auto test = Column(ica, {0.3, 0.22, 0.23, 0.59, 0.61});
  const auto f = f1.Apply(test);
  const auto y = youden.Apply(test);
  const std::vector<int> f_expected = {1, 0, 1, 1, 1}, y_expected = {0, 0, 0, 0, 1};
  for (size_t i = 0; i < test.size(); ++i) {
    EXPECT_EQ(f[i][ica], f_expected[i]) << i;
    EXPECT_EQ(y[i][ica], y_expected[i]) << i;
  }
  // Unfitted, a learning rule refuses to guess.
  EXPECT_THROW(ThresholdRule::F1().Apply(test), Error);
}

TEST(ThresholdRule, TopKTakesTheKMostLikelyLocationsWithTiesToTheEarlierColumn) {
  std::vector<LocationProbabilities> p(2);
  p[0].fill(0.1);
  p[0][LocationIndex("BA")] = 0.9;
  p[0][LocationIndex("R_MCA")] = 0.5;
  p[0][LocationIndex("L_MCA")] = 0.5;  // ties R_MCA; L_MCA comes first in the column order
  p[1].fill(0.3);                      // all equal: the first two columns
  const auto flags = ThresholdRule::Top(2).Apply(p);
  EXPECT_EQ(flags[0][LocationIndex("BA")], 1);
  EXPECT_EQ(flags[0][LocationIndex("L_MCA")], 1);
  EXPECT_EQ(flags[0][LocationIndex("R_MCA")], 0);
  EXPECT_EQ(flags[1][0], 1);
  EXPECT_EQ(flags[1][1], 1);
  for (const auto& row : flags) EXPECT_EQ(std::accumulate(row.begin(), row.end(), 0), 2);
}

TEST(ThresholdRule, GateKeepsLocationsOnlyWherePresenceIsAboveItsThreshold) {
  const int ica = LocationIndex("L_ICA");
  ThresholdInputs in{{0.2, 0.7, 0.9}, Column(ica, {0.8, 0.8, 0.1})};
  const auto fixed = ThresholdRule::Parse("gate:fixed:0.5").Apply(in);
  EXPECT_EQ(fixed[0][ica], 0);  // location 0.8 > 0.5, presence 0.2 is not
  EXPECT_EQ(fixed[1][ica], 1);
  EXPECT_EQ(fixed[2][ica], 0);
  // gate:top:1 gates at presence 0.5 and keeps each passing patient's most likely location.
  const auto top = ThresholdRule::Parse("gate:top:1").Apply(in);
  EXPECT_EQ(std::accumulate(top[0].begin(), top[0].end(), 0), 0);
  EXPECT_EQ(top[1][ica], 1);
  EXPECT_EQ(std::accumulate(top[2].begin(), top[2].end(), 0), 1);
  // gate:f1 learns the presence cut too: presence 0.2 0.7 0.9 against truth 0 0 1 -> 0.8.
  ThresholdLabels labels{{0, 0, 1}, Truth(ica, {0, 1, 0})};
  const ThresholdRule gate_f1 = ThresholdRule::Parse("gate:f1").Fit(in, labels);
  EXPECT_DOUBLE_EQ(gate_f1.learnt()->presence, 0.8);
  ThresholdInputs test{{0.85, 0.75}, Column(ica, {0.9, 0.9})};
  const auto gated = gate_f1.Apply(test);
  EXPECT_EQ(gated[0][ica], 1);  // ica cut 0.45 learnt on {0.8 (0), 0.8 (1), 0.1 (0)}
  EXPECT_EQ(gated[1][ica], 0);  // presence 0.75 < 0.8
  EXPECT_THROW(ThresholdRule::Parse("gate:fixed:0.5").Apply(Column(ica, {0.1})), Error);  // no presence
}

TEST(ThresholdRule, CrossFittingPredictsEachHalfWithTheOtherHalfsCuts) {
  const int ica = LocationIndex("L_ICA");
  // Even patients (0, 2) fit 0.2 | 0.6 -> F1 cut 0.4; odd ones (1, 3) 0.3 | 0.9 -> 0.6.
  ThresholdInputs in{{}, Column(ica, {0.2, 0.3, 0.6, 0.9})};
  ThresholdLabels labels{{}, Truth(ica, {0, 0, 1, 1})};
  const auto flags = CrossFittedFlags(ThresholdRule::F1(), in, labels);
  // Even ones with the odd cut 0.6: 0.2 -> 0, 0.6 -> 0 (strict); odd ones with 0.4: 0.3 -> 0, 0.9 -> 1.
  EXPECT_EQ(flags[0][ica], 0);
  EXPECT_EQ(flags[1][ica], 0);
  EXPECT_EQ(flags[2][ica], 0);
  EXPECT_EQ(flags[3][ica], 1);
}

TEST(ThresholdRule, ThresholdsFileCarriesTheLearntCutsToAnotherSet) {
  testing::ScratchDir dir;
  const int ica = LocationIndex("L_ICA");
  ThresholdInputs validation{{0.1, 0.6, 0.3, 0.9}, Column(ica, {0.1, 0.35, 0.4, 0.8})};
  ThresholdLabels labels{{0, 1, 0, 1}, Truth(ica, {0, 1, 0, 1})};
  WriteFileAtomically(dir / "t.json", LearntThresholdsJson(4, validation, labels));
  int64_t epoch = 0;
  const ThresholdRule f1 = WithLearntFromFile(ThresholdRule::F1(), dir / "t.json", &epoch);
  EXPECT_EQ(epoch, 4);
  EXPECT_DOUBLE_EQ(f1.learnt()->locations[ica], 0.225);
  EXPECT_DOUBLE_EQ(f1.learnt()->presence, 0.45);
  const ThresholdRule gate = WithLearntFromFile(ThresholdRule::Parse("gate:youden"), dir / "t.json");
  EXPECT_DOUBLE_EQ(gate.learnt()->locations[ica], 0.6);
  // Rules that learn nothing do not read the file at all.
  EXPECT_EQ(WithLearntFromFile(ThresholdRule::Fixed(0.5), dir / "missing.json").ToString(), "fixed:0.5");
  WriteFileAtomically(dir / "bad.json", "{\"epoch\": 1}");
  try {
    WithLearntFromFile(ThresholdRule::F1(), dir / "bad.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'f1'"), std::string::npos) << e.what();
  }
}

// Cuts that score exactly the same are a tie, whatever floating point makes of their scores:
// the highest wins, as for any tie. Youden: 3 positives and 3 negatives; the cut 0.85 takes
// {0.9} (J = 1/3 - 0), the cut 0.3 takes {0.9 .. 0.5} (J = 3/3 - 2/3 = 1/3), but in doubles
// 1 - 2/3 is 0.33333333333333337 and 1/3 is 0.33333333333333331. F1: the cut 0.825 takes
// {0.85} (2*1 / (2*1 + 2 + 2) = 1/3), the cut 0.25 takes {0.85, 0.5} with 7 negatives
// (2*2 / (2*2 + 7 + 1) = 1/3).
TEST(ThresholdRule, ExactlyTiedScoresGoToTheHighestCutWhateverTheRounding) {
  EXPECT_DOUBLE_EQ(BestYoudenCut({0.9, 0.8, 0.7, 0.6, 0.5, 0.1}, {1, 0, 1, 0, 1, 0}), 0.85);
  EXPECT_DOUBLE_EQ(BestF1Cut({0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.0}, {0, 0, 1, 0, 0, 0, 0, 0, 1, 1}),
                   0.825);
}

}  // namespace
}  // namespace angiotrain
