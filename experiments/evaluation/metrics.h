// Classification metrics for aneurysm presence and the 21 locations: exact AUROC, binary counts
// with precision/recall/F1, the K-ium 2023 figures and the RSNA 2025 weighted AUC.
// Plain C++ over std::vector so the trainer, `evaluate` and the reports share one definition.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "datasets/kium_schema.h"

namespace angiotrain {

// Area under the ROC curve of `scores` against 0/1 `labels`, computed exactly as the
// Mann-Whitney U statistic with tied scores given their average rank (equal to sklearn's
// roc_auc_score, which merges tied thresholds). Returns nullopt ("undefined") when the labels
// hold only one class, where sklearn raises: a number there would be a guess, not a measurement.
// Throws Error when the sizes differ, a label is not 0/1 or a score is not finite.
std::optional<double> Auroc(const std::vector<double>& scores, const std::vector<uint8_t>& labels);

// Confusion counts of 0/1 predictions against 0/1 truth.
struct BinaryCounts {
  long tp = 0, fp = 0, tn = 0, fn = 0;
  long support() const { return tp + fn; }    // positives in the truth
  long predicted() const { return tp + fp; }  // positives in the prediction
  long total() const { return tp + fp + tn + fn; }
};

BinaryCounts CountBinary(const std::vector<uint8_t>& predicted, const std::vector<uint8_t>& truth);

// Each ratio is nullopt when its denominator is zero: precision with no predicted positive,
// recall with no true positive in the truth, F1 = 2tp/(2tp+fp+fn) when both are empty.
std::optional<double> Accuracy(const BinaryCounts& c);
std::optional<double> Precision(const BinaryCounts& c);
std::optional<double> Recall(const BinaryCounts& c);
std::optional<double> F1(const BinaryCounts& c);

// Per patient, in the canonical location order of kium_schema.h.
using LocationFlags = std::array<uint8_t, kNumLocations>;
using LocationProbabilities = std::array<double, kNumLocations>;

struct LocationScore {
  BinaryCounts counts;
  std::optional<double> precision, recall, f1;
  std::optional<double> auroc;  // only when probabilities were given
};

// The location figures of a set of patients.
//
// K-ium "location accuracy" is the figure the K-ium 2023 evaluation reports as "Accuracy for
// locations": the share of correct 0/1 cells over all patients x 21 locations (equivalently the
// mean over the 21 columns of per-column accuracy), every patient included. Checked against a
// published figure: "Accuracy for locations 0.9711412515316685" (README of the participant
// repository "Prediction-of-cerebral-aneurysm-and-location", scored on the 1127-patient training
// set) is exactly 22984 / (1127 x 21), and no ratio of whole patients over 1127.
// Most cells are 0, so predicting no location at all already scores close to 1:
// `no_location_accuracy` is that trivial baseline on the same truth, to print next to it.
struct LocationReport {
  long patients = 0;
  double kium_accuracy = 0;         // correct cells / (patients x 21)
  double no_location_accuracy = 0;  // the same for an all-zero prediction
  double exact_match = 0;           // patients with all 21 cells right / patients
  double no_location_exact_match = 0;  // patients with no location in the truth / patients
  std::array<LocationScore, kNumLocations> per_location;
  // Macro averages over the locations present in the truth (support > 0); a present location
  // with no predicted positive counts as precision 0 (sklearn's zero_division=0), since the
  // prediction missed it. nullopt when no location is present.
  int locations_present = 0;
  std::optional<double> macro_precision, macro_recall, macro_f1;
  // With probabilities: mean of the per-location AUROCs that are defined (both classes in the
  // truth), and how many there were.
  int locations_with_auroc = 0;
  std::optional<double> macro_auroc;
};

// `probabilities` may be empty; otherwise one entry per patient, as `predicted` and `truth`.
LocationReport ScoreLocations(const std::vector<LocationFlags>& predicted, const std::vector<LocationFlags>& truth,
                              const std::vector<LocationProbabilities>& probabilities = {});

// RSNA 2025 Intracranial Aneurysm Detection challenge score: a weighted mean of column AUROCs,
// "Aneurysm Present" with weight 13 and each location with weight 1 (Kaggle competition
// rsna-intracranial-aneurysm-detection, Evaluation page; with its 13 locations that gives presence
// half the score). Here the columns are K-ium's 21 locations, each still weight 1, so presence
// carries 13/34 of the score. Locations whose AUROC is undefined (one class in the truth) are left
// out of the sum and of the total weight; the score is undefined when the presence AUROC is.
constexpr double kRsnaPresenceWeight = 13.0;
constexpr double kRsnaLocationWeight = 1.0;
std::optional<double> RsnaWeightedAuc(std::optional<double> presence_auroc,
                                      const std::array<std::optional<double>, kNumLocations>& location_aurocs);

}  // namespace angiotrain
