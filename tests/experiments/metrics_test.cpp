// Metrics: AUROC against sklearn's roc_auc_score (run at test time), hand-checked counts,
// the K-ium location figures and the RSNA weighted AUC.
#include "experiments/evaluation/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::RunCommand;
using testing::ScratchDir;

TEST(Auroc, MatchesSklearnOnRandomScoresWithTies) {
  ScratchDir dir;
  std::mt19937 rng(20231);
  struct Case {
    std::vector<double> scores;
    std::vector<uint8_t> labels;
    std::string path;
  };
  std::vector<Case> cases;
  // Sizes from tiny to moderate; scores on a coarse grid so many are tied, some sets with a rare
  // positive class, and one with a single class (undefined for both).
  const int sizes[] = {5, 12, 40, 200, 1000, 1000, 3};
  const double positive_rate[] = {0.5, 0.3, 0.5, 0.1, 0.5, 0.03, 0.0};
  const int grid[] = {4, 3, 10, 20, 10, 100, 5};
  for (int c = 0; c < 7; ++c) {
    Case k;
    std::bernoulli_distribution positive(positive_rate[c]);
    std::uniform_int_distribution<int> level(0, grid[c]);
    for (int i = 0; i < sizes[c]; ++i) {
      uint8_t y = positive(rng) ? 1 : 0;
      // Positives lean higher so the AUROC is not always near 0.5.
      double s = std::min(grid[c], level(rng) + (y ? grid[c] / 4 : 0)) / static_cast<double>(grid[c]);
      k.scores.push_back(s);
      k.labels.push_back(y);
    }
    k.path = dir / ("case" + std::to_string(c) + ".csv");
    std::ofstream f(k.path);
    char line[64];
    for (size_t i = 0; i < k.scores.size(); ++i) {
      std::snprintf(line, sizeof line, "%.17g,%d\n", k.scores[i], k.labels[i]);
      f << line;
    }
    cases.push_back(k);
  }
  std::vector<std::string> argv = {ANGIOTRAIN_PYTHON, "-c",
                                   "import sys, numpy as np\n"
                                   "from sklearn.metrics import roc_auc_score\n"
                                   "for path in sys.argv[1:]:\n"
                                   "    d = np.loadtxt(path, delimiter=',', ndmin=2)\n"
                                   "    try:\n"
                                   "        print(repr(float(roc_auc_score(d[:, 1].astype(int), d[:, 0]))))\n"
                                   "    except ValueError:\n"
                                   "        print('undefined')\n"};
  for (const auto& k : cases) argv.push_back(k.path);
  testing::CommandResult peer = RunCommand(argv, 120);
  ASSERT_EQ(peer.exit_code, 0) << peer.output;

  std::istringstream lines(peer.output);
  for (const auto& k : cases) {
    std::string expected;
    ASSERT_TRUE(std::getline(lines, expected)) << peer.output;
    std::optional<double> ours = Auroc(k.scores, k.labels);
    if (expected == "undefined") {
      EXPECT_FALSE(ours.has_value()) << k.path;
    } else {
      ASSERT_TRUE(ours.has_value()) << k.path;
      EXPECT_NEAR(*ours, std::stod(expected), 1e-12) << k.path;
    }
  }
}

TEST(Auroc, HandCheckedCases) {
  // The classic example: 3 of 4 positive-negative pairs ordered right.
  EXPECT_DOUBLE_EQ(*Auroc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75);
  // A positive tied with a negative counts one half: (0.5 + 1 + 1 + 1) / 4.
  EXPECT_DOUBLE_EQ(*Auroc({0.5, 0.5, 0.2, 0.9}, {1, 0, 0, 1}), 0.875);
  EXPECT_DOUBLE_EQ(*Auroc({0.1, 0.2, 0.8, 0.9}, {0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(*Auroc({0.1, 0.2, 0.8, 0.9}, {1, 1, 0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(*Auroc({0.3, 0.3, 0.3, 0.3}, {1, 0, 1, 0}), 0.5);
}

TEST(Auroc, IsUndefinedWithOneClass) {
  EXPECT_FALSE(Auroc({0.1, 0.9}, {0, 0}).has_value());
  EXPECT_FALSE(Auroc({0.1, 0.9}, {1, 1}).has_value());
  EXPECT_FALSE(Auroc({}, {}).has_value());
}

TEST(Auroc, RejectsMismatchedSizesNonFiniteScoresAndNonBinaryLabels) {
  EXPECT_THROW(Auroc({0.1, 0.2}, {0}), Error);
  EXPECT_THROW(Auroc({0.1, std::nan("")}, {0, 1}), Error);
  EXPECT_THROW(Auroc({0.1, 0.2}, {0, 2}), Error);
}

TEST(BinaryCounts, PrecisionRecallF1FromHandCountedCase) {
  //                 tp  fp  fn  tn  tp  tn
  BinaryCounts c = CountBinary({1, 1, 0, 0, 1, 0}, {1, 0, 1, 0, 1, 0});
  EXPECT_EQ(c.tp, 2);
  EXPECT_EQ(c.fp, 1);
  EXPECT_EQ(c.fn, 1);
  EXPECT_EQ(c.tn, 2);
  EXPECT_DOUBLE_EQ(*Accuracy(c), 4.0 / 6);
  EXPECT_DOUBLE_EQ(*Precision(c), 2.0 / 3);
  EXPECT_DOUBLE_EQ(*Recall(c), 2.0 / 3);
  EXPECT_DOUBLE_EQ(*F1(c), 2.0 / 3);
}

TEST(BinaryCounts, RatiosWithAnEmptyDenominatorAreUndefined) {
  BinaryCounts none_predicted = CountBinary({0, 0, 0}, {1, 0, 0});
  EXPECT_FALSE(Precision(none_predicted).has_value());
  EXPECT_DOUBLE_EQ(*Recall(none_predicted), 0.0);
  EXPECT_DOUBLE_EQ(*F1(none_predicted), 0.0);
  BinaryCounts nothing_anywhere = CountBinary({0, 0}, {0, 0});
  EXPECT_FALSE(Precision(nothing_anywhere).has_value());
  EXPECT_FALSE(Recall(nothing_anywhere).has_value());
  EXPECT_FALSE(F1(nothing_anywhere).has_value());
  EXPECT_DOUBLE_EQ(*Accuracy(nothing_anywhere), 1.0);
}

TEST(ScoreLocations, KiumAccuracyCountsCellsAndBaselinePredictsNoLocation) {
  const int ica = LocationIndex("L_ICA"), ba = LocationIndex("BA");
  std::vector<LocationFlags> truth(4), predicted(4);
  truth[0][ica] = 1;  // found
  predicted[0][ica] = 1;
  truth[1][ba] = 1;  // missed
  predicted[2][ba] = 1;  // false alarm; patient 3 all zero and right
  LocationReport r = ScoreLocations(predicted, truth);
  EXPECT_EQ(r.patients, 4);
  EXPECT_DOUBLE_EQ(r.kium_accuracy, (4.0 * 21 - 2) / (4 * 21));
  EXPECT_DOUBLE_EQ(r.no_location_accuracy, (4.0 * 21 - 2) / (4 * 21));
  EXPECT_DOUBLE_EQ(r.exact_match, 2.0 / 4);
  EXPECT_DOUBLE_EQ(r.no_location_exact_match, 2.0 / 4);
  EXPECT_EQ(r.locations_present, 2);
  EXPECT_DOUBLE_EQ(*r.per_location[ica].f1, 1.0);
  EXPECT_DOUBLE_EQ(*r.per_location[ba].precision, 0.0);
  EXPECT_DOUBLE_EQ(*r.per_location[ba].recall, 0.0);
  EXPECT_FALSE(r.per_location[LocationIndex("R_ICA")].recall.has_value());
  EXPECT_DOUBLE_EQ(*r.macro_recall, 0.5);
  EXPECT_FALSE(r.macro_auroc.has_value());  // no probabilities given
  EXPECT_FALSE(r.per_location[ica].auroc.has_value());
}

TEST(ScoreLocations, MacroPrecisionCountsAPresentLocationNeverPredictedAsZero) {
  const int ica = LocationIndex("L_ICA"), ba = LocationIndex("BA");
  std::vector<LocationFlags> truth(2), predicted(2);
  truth[0][ica] = predicted[0][ica] = 1;  // precision 1
  truth[1][ba] = 1;                       // never predicted: precision undefined, counted 0
  LocationReport r = ScoreLocations(predicted, truth);
  EXPECT_FALSE(r.per_location[ba].precision.has_value());
  EXPECT_DOUBLE_EQ(*r.macro_precision, 0.5);
}

TEST(ScoreLocations, MacroAurocAveragesLocationsWithBothClasses) {
  const int ica = LocationIndex("L_ICA"), ba = LocationIndex("BA");
  std::vector<LocationFlags> truth(4), predicted(4);
  std::vector<LocationProbabilities> p(4);
  truth[0][ica] = truth[1][ba] = 1;
  p[0][ica] = 0.9;  // L_ICA: the positive ranks above all three negatives (1.0)
  p[1][ba] = 0.2;
  p[2][ba] = 0.5;  // BA: the positive beats two of three negatives (2/3)
  LocationReport r = ScoreLocations(predicted, truth, p);
  EXPECT_EQ(r.locations_with_auroc, 2);
  EXPECT_DOUBLE_EQ(*r.per_location[ica].auroc, 1.0);
  EXPECT_DOUBLE_EQ(*r.per_location[ba].auroc, 2.0 / 3);
  EXPECT_FALSE(r.per_location[LocationIndex("R_PCA")].auroc.has_value());
  EXPECT_DOUBLE_EQ(*r.macro_auroc, (1.0 + 2.0 / 3) / 2);
}

TEST(RsnaWeightedAuc, WeighsPresence13AndEachDefinedLocation1) {
  std::array<std::optional<double>, kNumLocations> locations;
  locations[0] = 0.5;
  locations[5] = 1.0;
  EXPECT_DOUBLE_EQ(*RsnaWeightedAuc(0.9, locations), (13 * 0.9 + 0.5 + 1.0) / 15);
  for (auto& a : locations) a = 0.7;
  EXPECT_DOUBLE_EQ(*RsnaWeightedAuc(0.8, locations), (13 * 0.8 + 21 * 0.7) / 34);
  EXPECT_FALSE(RsnaWeightedAuc(std::nullopt, locations).has_value());
}

}  // namespace
}  // namespace angiotrain
