// ROC and precision-recall operating points and the bootstrap band (see curves.h).
#include "experiments/evaluation/curves.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "core/error.h"
#include "experiments/evaluation/metrics.h"

namespace angiotrain {
namespace {

// The TPR of the curve at false positive rate `fpr`: the best TPR among points with FPR <= fpr.
double TprAt(const std::vector<CurvePoint>& points, double fpr) {
  double tpr = 0;
  for (const CurvePoint& p : points)
    if (p.fpr <= fpr + 1e-12) tpr = std::max(tpr, p.tpr);
  return tpr;
}

double Percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(at)), hi = static_cast<size_t>(std::ceil(at));
  return values[lo] + (values[hi] - values[lo]) * (at - static_cast<double>(lo));
}

}  // namespace

std::vector<CurvePoint> OperatingPoints(const std::vector<double>& scores, const std::vector<uint8_t>& labels) {
  if (scores.size() != labels.size())
    throw Error("ROC curve: " + std::to_string(scores.size()) + " scores but " + std::to_string(labels.size()) +
                " labels");
  const double positives = static_cast<double>(std::count(labels.begin(), labels.end(), 1));
  const double negatives = static_cast<double>(labels.size()) - positives;
  if (positives == 0 || negatives == 0) return {};
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<CurvePoint> points;
  points.push_back({std::numeric_limits<double>::infinity(), 0, 0, 1});
  double tp = 0, fp = 0;
  for (size_t start = 0; start < order.size();) {
    size_t end = start;
    while (end < order.size() && scores[order[end]] == scores[order[start]]) {
      (labels[order[end]] ? tp : fp) += 1;
      ++end;
    }
    points.push_back({scores[order[start]], fp / negatives, tp / positives, tp / (tp + fp)});
    start = end;
  }
  return points;
}

std::optional<double> AveragePrecision(const std::vector<CurvePoint>& points) {
  if (points.size() < 2) return std::nullopt;
  double ap = 0;
  for (size_t k = 1; k < points.size(); ++k) ap += (points[k].tpr - points[k - 1].tpr) * points[k].precision;
  return ap;
}

std::optional<RocBootstrap> BootstrapRoc(const std::vector<double>& scores, const std::vector<uint8_t>& labels,
                                         int resamples, double level, uint64_t seed) {
  if (OperatingPoints(scores, labels).empty()) return std::nullopt;
  RocBootstrap out;
  for (int k = 0; k <= 100; ++k) out.fpr.push_back(k / 100.0);
  std::vector<std::vector<double>> tprs(out.fpr.size());
  std::vector<double> aurocs;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, scores.size() - 1);
  std::vector<double> s(scores.size());
  std::vector<uint8_t> l(scores.size());
  for (int r = 0; r < resamples; ++r) {
    for (size_t i = 0; i < scores.size(); ++i) {
      const size_t j = pick(rng);
      s[i] = scores[j];
      l[i] = labels[j];
    }
    const auto points = OperatingPoints(s, l);
    if (points.empty()) continue;  // one class only in this resample
    aurocs.push_back(*Auroc(s, l));
    for (size_t g = 0; g < out.fpr.size(); ++g) tprs[g].push_back(TprAt(points, out.fpr[g]));
  }
  if (aurocs.empty()) return std::nullopt;
  out.resamples = static_cast<int>(aurocs.size());
  const double lo = (1 - level) / 2, hi = (1 + level) / 2;
  out.auroc_low = Percentile(aurocs, lo);
  out.auroc_high = Percentile(aurocs, hi);
  for (const auto& t : tprs) {
    out.tpr_low.push_back(Percentile(t, lo));
    out.tpr_high.push_back(Percentile(t, hi));
  }
  return out;
}

}  // namespace angiotrain
