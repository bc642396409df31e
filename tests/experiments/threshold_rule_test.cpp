// ThresholdRule: the seed's mean + k std rule on a hand case, fixed thresholds, parsing.
#include "experiments/threshold_rule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

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
                           "fixed:", "fixed:abc", "fixed:1.5", "fixed:-0.1", "fixed:0.5x"}) {
    try {
      ThresholdRule::Parse(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + text + "'"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace angiotrain
