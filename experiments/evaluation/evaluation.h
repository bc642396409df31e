// Scoring a K-ium submission against the ground truth (`angiotrain evaluate`): the K-ium figures
// next to the no-location baseline they hide, per-location precision/recall/F1, and with the
// probability sidecar per-location AUROC and the RSNA 2025 weighted AUC; as a table and as JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "experiments/evaluation/metrics.h"

namespace angiotrain {

struct EvaluationReport {
  std::string pred_path, truth_path;
  std::string probabilities_path;  // empty without a sidecar
  long patients = 0;
  long aneurysm_positives = 0;
  std::optional<double> aneurysm_auroc;  // undefined when the truth holds one class
  LocationReport locations;              // per_location[k].auroc only with a sidecar
  std::optional<double> rsna_weighted_auc;  // only with a sidecar
};

// Reads the submission (ReadSubmission), the truth (ReadLabelTable) and, when
// `probabilities_path` is not empty, the sidecar (ReadProbabilities), and scores them by Index.
// Throws Error when the files do not hold the same set of indices (naming both files and the
// missing and extra indices), or when the sidecar's Aneurysm disagrees with the submission's.
EvaluationReport EvaluateSubmission(const std::string& pred_path, const std::string& truth_path,
                                    const std::string& probabilities_path = "");

// Human-readable table; undefined figures read "undefined".
std::string FormatEvaluationTable(const EvaluationReport& report);
// The same figures as a JSON document; undefined figures are null.
std::string FormatEvaluationJson(const EvaluationReport& report);

// The per-location part of a report as JSON, one object per location name: support, predicted,
// tp, fp, fn, tn, precision, recall, f1 and (null without probabilities) auroc. The one writer
// of this shape: `evaluate --json` and metrics.jsonl both use it.
nlohmann::ordered_json PerLocationJson(const LocationReport& report, bool with_auroc);

}  // namespace angiotrain
