// Classification metrics. See metrics.h.
#include "experiments/evaluation/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"

namespace angiotrain {

std::optional<double> Auroc(const std::vector<double>& scores, const std::vector<uint8_t>& labels) {
  if (scores.size() != labels.size()) {
    throw Error("AUROC: " + std::to_string(scores.size()) + " scores but " + std::to_string(labels.size()) +
                " labels");
  }
  const size_t n = scores.size();
  double positives = 0;
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] > 1) throw Error("AUROC: label " + std::to_string(labels[i]) + " at " + std::to_string(i) + " is not 0 or 1");
    if (!std::isfinite(scores[i])) throw Error("AUROC: score at " + std::to_string(i) + " is not finite");
    positives += labels[i];
  }
  const double negatives = static_cast<double>(n) - positives;
  if (positives == 0 || negatives == 0) return std::nullopt;

  // Mann-Whitney: AUROC = (sum of the positives' ranks - P(P+1)/2) / (P N), ranks 1-based in
  // ascending score order, each run of tied scores sharing the mean of its ranks (a tie between
  // a positive and a negative then counts one half, as a merged ROC threshold does).
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positive_rank_sum = 0;
  for (size_t start = 0; start < n;) {
    size_t end = start + 1;
    while (end < n && scores[order[end]] == scores[order[start]]) ++end;
    const double mean_rank = 0.5 * static_cast<double>(start + 1 + end);  // mean of start+1 .. end
    for (size_t k = start; k < end; ++k)
      if (labels[order[k]]) positive_rank_sum += mean_rank;
    start = end;
  }
  return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

BinaryCounts CountBinary(const std::vector<uint8_t>& predicted, const std::vector<uint8_t>& truth) {
  if (predicted.size() != truth.size()) {
    throw Error("binary counts: " + std::to_string(predicted.size()) + " predictions but " +
                std::to_string(truth.size()) + " labels");
  }
  BinaryCounts c;
  for (size_t i = 0; i < truth.size(); ++i) {
    if (predicted[i] > 1 || truth[i] > 1) throw Error("binary counts: value at " + std::to_string(i) + " is not 0 or 1");
    if (truth[i]) {
      ++(predicted[i] ? c.tp : c.fn);
    } else {
      ++(predicted[i] ? c.fp : c.tn);
    }
  }
  return c;
}

static std::optional<double> Ratio(long numerator, long denominator) {
  if (denominator == 0) return std::nullopt;
  return static_cast<double>(numerator) / static_cast<double>(denominator);
}

std::optional<double> Accuracy(const BinaryCounts& c) { return Ratio(c.tp + c.tn, c.total()); }
std::optional<double> Precision(const BinaryCounts& c) { return Ratio(c.tp, c.tp + c.fp); }
std::optional<double> Recall(const BinaryCounts& c) { return Ratio(c.tp, c.tp + c.fn); }
std::optional<double> F1(const BinaryCounts& c) { return Ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn); }

LocationReport ScoreLocations(const std::vector<LocationFlags>& predicted, const std::vector<LocationFlags>& truth,
                              const std::vector<LocationProbabilities>& probabilities) {
  const size_t n = truth.size();
  if (predicted.size() != n || (!probabilities.empty() && probabilities.size() != n)) {
    throw Error("location scores: " + std::to_string(predicted.size()) + " predictions, " +
                std::to_string(probabilities.size()) + " probabilities and " + std::to_string(n) +
                " truths (expected as many of each)");
  }
  LocationReport r;
  r.patients = static_cast<long>(n);
  long correct_cells = 0, zero_cells = 0, exact = 0, no_location = 0;
  for (size_t i = 0; i < n; ++i) {
    bool all_right = true, any_true = false;
    for (int k = 0; k < kNumLocations; ++k) {
      const bool right = predicted[i][k] == truth[i][k];
      correct_cells += right;
      all_right = all_right && right;
      zero_cells += truth[i][k] == 0;
      any_true = any_true || truth[i][k] != 0;
    }
    exact += all_right;
    no_location += !any_true;
  }
  if (n > 0) {
    const double cells = static_cast<double>(n) * kNumLocations;
    r.kium_accuracy = static_cast<double>(correct_cells) / cells;
    r.no_location_accuracy = static_cast<double>(zero_cells) / cells;
    r.exact_match = static_cast<double>(exact) / static_cast<double>(n);
    r.no_location_exact_match = static_cast<double>(no_location) / static_cast<double>(n);
  }

  double sum_precision = 0, sum_recall = 0, sum_f1 = 0, sum_auroc = 0;
  std::vector<uint8_t> column_pred(n), column_truth(n);
  std::vector<double> column_prob(n);
  for (int k = 0; k < kNumLocations; ++k) {
    for (size_t i = 0; i < n; ++i) {
      column_pred[i] = predicted[i][k];
      column_truth[i] = truth[i][k];
      if (!probabilities.empty()) column_prob[i] = probabilities[i][k];
    }
    LocationScore& s = r.per_location[k];
    s.counts = CountBinary(column_pred, column_truth);
    s.precision = Precision(s.counts);
    s.recall = Recall(s.counts);
    s.f1 = F1(s.counts);
    if (!probabilities.empty()) {
      s.auroc = Auroc(column_prob, column_truth);
      if (s.auroc) {
        ++r.locations_with_auroc;
        sum_auroc += *s.auroc;
      }
    }
    if (s.counts.support() > 0) {
      ++r.locations_present;
      sum_precision += s.precision.value_or(0.0);
      sum_recall += *s.recall;
      sum_f1 += *s.f1;
    }
  }
  if (r.locations_present > 0) {
    r.macro_precision = sum_precision / r.locations_present;
    r.macro_recall = sum_recall / r.locations_present;
    r.macro_f1 = sum_f1 / r.locations_present;
  }
  if (r.locations_with_auroc > 0) r.macro_auroc = sum_auroc / r.locations_with_auroc;
  return r;
}

std::optional<double> RsnaWeightedAuc(std::optional<double> presence_auroc,
                                      const std::array<std::optional<double>, kNumLocations>& location_aurocs) {
  if (!presence_auroc) return std::nullopt;
  double weighted_sum = kRsnaPresenceWeight * *presence_auroc;
  double total_weight = kRsnaPresenceWeight;
  for (const auto& a : location_aurocs) {
    if (!a) continue;
    weighted_sum += kRsnaLocationWeight * *a;
    total_weight += kRsnaLocationWeight;
  }
  return weighted_sum / total_weight;
}

}  // namespace angiotrain
