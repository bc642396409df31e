// The curves of a report: the ROC and precision-recall curves of scores against 0/1 labels, and
// a bootstrap over patients for the AUROC's confidence interval and the ROC curve's band.
// Plain C++ (no LibTorch), beside metrics.h whose Auroc the bootstrap uses.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace angiotrain {

// One operating point: every score >= threshold is called positive.
struct CurvePoint {
  double threshold = 0;
  double fpr = 0, tpr = 0;        // ROC: false and true positive rates (tpr is the recall)
  double precision = 1;           // of the positive calls (1 where there are none yet)
};

// The operating points from "nothing positive" (threshold +inf, fpr = tpr = 0) to "everything
// positive", one per distinct score, tied scores merged (sklearn's roc_curve and
// precision_recall_curve without dropping intermediate points). Empty when the labels hold
// only one class. Throws Error when the sizes differ.
std::vector<CurvePoint> OperatingPoints(const std::vector<double>& scores, const std::vector<uint8_t>& labels);

// Average precision: sum over the points of (recall step) x precision (sklearn's
// average_precision_score). nullopt when there is no positive.
std::optional<double> AveragePrecision(const std::vector<CurvePoint>& points);

struct RocBootstrap {
  int resamples = 0;             // resamples with both classes (those without are skipped)
  double auroc_low = 0, auroc_high = 0;  // percentile interval of the AUROC
  std::vector<double> fpr;       // grid 0, 0.01, ..., 1
  std::vector<double> tpr_low, tpr_high;  // percentile band of the ROC curve's TPR on the grid
};

// Resamples the patients with replacement `resamples` times (std::mt19937_64 seeded with
// `seed`: the same band every time), and takes the (1-level)/2 and (1+level)/2 percentiles.
// nullopt when the labels hold only one class.
std::optional<RocBootstrap> BootstrapRoc(const std::vector<double>& scores, const std::vector<uint8_t>& labels,
                                         int resamples = 1000, double level = 0.95, uint64_t seed = 1);

}  // namespace angiotrain
