// K-ium submissions: writing output.csv exactly as the competition expects (the template's rows
// and column order, Aneurysm a probability, each location 0/1) with a sidecar of the 21 location
// probabilities, and reading both back for `angiotrain evaluate`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "experiments/evaluation/metrics.h"
#include "experiments/evaluation/threshold_rule.h"

namespace angiotrain {

// What a model says about one patient.
struct PatientPrediction {
  double aneurysm = 0;              // probability in [0, 1]
  LocationProbabilities locations{};  // canonical location order
};

// The sidecar next to a submission: "out/output.csv" -> "out/output.probabilities.csv"
// (a path without ".csv" gets ".probabilities.csv" appended).
std::string ProbabilitiesPathFor(const std::string& submission_path);

// The K-ium columns in canonical order: Index, Aneurysm, the 21 locations.
std::vector<std::string> CanonicalHeader();

// A probabilities CSV (the one writer of that format: the submission sidecar and the run's
// validation_predictions.csv): `header` is a permutation of CanonicalHeader(), then one row per
// patient, `indices[i]` with `predictions[i]`, every probability in the shortest decimal form
// that reads back to the same double.
std::string ProbabilitiesCsvText(const std::vector<std::string>& header, const std::vector<int32_t>& indices,
                                 const std::vector<PatientPrediction>& predictions);

// Writes the submission `out_path` and its sidecar ProbabilitiesPathFor(out_path), both atomically.
// The template (the competition's test.csv) fixes the rows (its order) and the columns (its
// order, which may differ from the canonical one; it must hold exactly Index, Aneurysm and the
// 21 locations). Aneurysm is written in the shortest form that reads back to the same double,
// locations as the integers 0/1 from `rule` applied over the template's patients (the rule's
// statistics are taken over exactly the rows written). The sidecar has the same columns and rows
// with every cell a probability. Predictions for indices not in the template are ignored.
// Throws Error naming the template and the first Index without a prediction, or an Index whose
// probabilities are not finite numbers in [0, 1].
void WriteSubmission(const std::string& template_path, const std::string& out_path,
                     const std::map<int32_t, PatientPrediction>& predictions, const ThresholdRule& rule);

// One row of a submission (output.csv) as read back.
struct SubmissionRow {
  int32_t index = 0;
  int line = 0;        // source line, for messages
  double aneurysm = 0;  // in [0, 1]
  LocationFlags locations{};
};

// Reads a submission: exactly the columns Index, Aneurysm and the 21 locations in any order,
// unique integer indices, Aneurysm a finite number in [0, 1], locations 0 or 1. Throws Error
// naming the file, line and column.
std::vector<SubmissionRow> ReadSubmission(const std::string& path);

struct ProbabilityRow {
  int32_t index = 0;
  int line = 0;
  PatientPrediction prediction;
};

// Reads a probability sidecar: the same columns, every cell a finite number in [0, 1].
std::vector<ProbabilityRow> ReadProbabilities(const std::string& path);

}  // namespace angiotrain
