// Scoring a K-ium submission. See evaluation.h.
#include "experiments/evaluation/evaluation.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/error.h"
#include "datasets/label_table.h"
#include "experiments/evaluation/submission.h"

namespace angiotrain {

namespace {

// "3 (5, 7, 12)" with at most `limit` indices listed.
std::string ListIndices(const std::vector<int32_t>& indices, size_t limit = 10) {
  std::string s = std::to_string(indices.size()) + " (";
  for (size_t i = 0; i < indices.size() && i < limit; ++i) s += (i ? ", " : "") + std::to_string(indices[i]);
  if (indices.size() > limit) s += ", ...";
  return s + ")";
}

// Throws unless `a` (from file a_path) and `b` (from b_path) hold the same indices.
void RequireSameIndices(const std::set<int32_t>& a, const std::string& a_what, const std::string& a_path,
                        const std::set<int32_t>& b, const std::string& b_what, const std::string& b_path) {
  std::vector<int32_t> missing, extra;  // in b but not a; in a but not b
  for (int32_t i : b)
    if (!a.count(i)) missing.push_back(i);
  for (int32_t i : a)
    if (!b.count(i)) extra.push_back(i);
  if (missing.empty() && extra.empty()) return;
  std::string msg = a_what + " " + a_path + " and " + b_what + " " + b_path + " hold different patients:";
  if (!missing.empty()) msg += " Index missing from " + a_what + ": " + ListIndices(missing) + ";";
  if (!extra.empty()) msg += " Index in " + a_what + " but not in " + b_what + ": " + ListIndices(extra) + ";";
  msg.pop_back();
  throw Error(msg);
}

std::string Fixed4(std::optional<double> v) {
  if (!v) return "undefined";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

nlohmann::ordered_json Json(std::optional<double> v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

}  // namespace

EvaluationReport EvaluateSubmission(const std::string& pred_path, const std::string& truth_path,
                                    const std::string& probabilities_path) {
  const std::vector<SubmissionRow> pred = ReadSubmission(pred_path);
  const LabelTable truth = ReadLabelTable(truth_path);
  std::map<int32_t, const SubmissionRow*> pred_by_index;
  std::set<int32_t> pred_indices, truth_indices;
  for (const auto& row : pred) {
    pred_by_index[row.index] = &row;
    pred_indices.insert(row.index);
  }
  for (const auto& p : truth.patients) truth_indices.insert(p.index);
  RequireSameIndices(pred_indices, "pred", pred_path, truth_indices, "truth", truth_path);

  std::vector<ProbabilityRow> sidecar;
  std::map<int32_t, const ProbabilityRow*> sidecar_by_index;
  if (!probabilities_path.empty()) {
    sidecar = ReadProbabilities(probabilities_path);
    std::set<int32_t> sidecar_indices;
    for (const auto& row : sidecar) {
      sidecar_by_index[row.index] = &row;
      sidecar_indices.insert(row.index);
    }
    RequireSameIndices(sidecar_indices, "probabilities", probabilities_path, pred_indices, "pred", pred_path);
    for (const auto& row : sidecar) {
      const SubmissionRow& p = *pred_by_index.at(row.index);
      // Both are written from the same double; a difference means files from different runs.
      if (std::fabs(row.prediction.aneurysm - p.aneurysm) > 1e-9) {
        throw Error(probabilities_path + ":" + std::to_string(row.line) + ": Index " + std::to_string(row.index) +
                    ": Aneurysm " + std::to_string(row.prediction.aneurysm) + " differs from " +
                    std::to_string(p.aneurysm) + " in " + pred_path + ":" + std::to_string(p.line) +
                    " (are they from the same run?)");
      }
    }
  }

  // Patients in the truth file's order.
  std::vector<double> aneurysm_scores;
  std::vector<uint8_t> aneurysm_truth;
  std::vector<LocationFlags> predicted, truth_flags;
  std::vector<LocationProbabilities> probabilities;
  for (const auto& t : truth.patients) {
    const SubmissionRow& p = *pred_by_index.at(t.index);
    aneurysm_scores.push_back(p.aneurysm);
    aneurysm_truth.push_back(t.aneurysm);
    predicted.push_back(p.locations);
    truth_flags.push_back(t.locations);
    if (!sidecar.empty()) probabilities.push_back(sidecar_by_index.at(t.index)->prediction.locations);
  }

  EvaluationReport r;
  r.pred_path = pred_path;
  r.truth_path = truth_path;
  r.probabilities_path = probabilities_path;
  r.patients = static_cast<long>(truth.patients.size());
  for (uint8_t a : aneurysm_truth) r.aneurysm_positives += a;
  r.aneurysm_auroc = Auroc(aneurysm_scores, aneurysm_truth);
  r.locations = ScoreLocations(predicted, truth_flags, probabilities);
  if (!probabilities_path.empty()) {
    std::array<std::optional<double>, kNumLocations> aurocs;
    for (int k = 0; k < kNumLocations; ++k) aurocs[k] = r.locations.per_location[k].auroc;
    r.rsna_weighted_auc = RsnaWeightedAuc(r.aneurysm_auroc, aurocs);
  }
  return r;
}

std::string FormatEvaluationTable(const EvaluationReport& r) {
  const LocationReport& L = r.locations;
  const bool probs = !r.probabilities_path.empty();
  std::string s;
  char line[256];
  s += "evaluate: " + std::to_string(r.patients) + " patients, " + std::to_string(r.aneurysm_positives) +
       " with an aneurysm, " + std::to_string(L.locations_present) + " of " + std::to_string(kNumLocations) +
       " locations present\n";
  s += "  pred  " + r.pred_path + "\n  truth " + r.truth_path + "\n";
  if (probs) s += "  probabilities " + r.probabilities_path + "\n";
  s += "\n";
  std::snprintf(line, sizeof line, "%-40s %-10s %s\n", "K-ium figures", "value", "no-location baseline");
  s += line;
  std::snprintf(line, sizeof line, "%-40s %-10s\n", "  Aneurysm AUROC", Fixed4(r.aneurysm_auroc).c_str());
  s += line;
  std::snprintf(line, sizeof line, "%-40s %-10s %s\n", "  Location accuracy (cells, K-ium)",
                Fixed4(L.kium_accuracy).c_str(), Fixed4(L.no_location_accuracy).c_str());
  s += line;
  std::snprintf(line, sizeof line, "%-40s %-10s %s\n", "  Exact location match (patients)", Fixed4(L.exact_match).c_str(),
                Fixed4(L.no_location_exact_match).c_str());
  s += line;
  s += "\n";
  std::snprintf(line, sizeof line, "%-10s %7s %9s %9s %9s %9s %9s\n", "location", "support", "predicted", "precision",
                "recall", "f1", probs ? "auroc" : "");
  s += line;
  for (int k = 0; k < kNumLocations; ++k) {
    const LocationScore& ls = L.per_location[k];
    std::snprintf(line, sizeof line, "%-10s %7ld %9ld %9s %9s %9s %9s\n", LocationNames()[k].c_str(), ls.counts.support(),
                  ls.counts.predicted(), Fixed4(ls.precision).c_str(), Fixed4(ls.recall).c_str(), Fixed4(ls.f1).c_str(),
                  probs ? Fixed4(ls.auroc).c_str() : "");
    s += line;
  }
  std::snprintf(line, sizeof line, "%-28s %9s %9s %9s %9s\n", ("macro (" + std::to_string(L.locations_present) + " present)").c_str(),
                Fixed4(L.macro_precision).c_str(), Fixed4(L.macro_recall).c_str(), Fixed4(L.macro_f1).c_str(),
                probs ? Fixed4(L.macro_auroc).c_str() : "");
  s += line;
  if (probs) {
    s += "\n";
    s += "Mean location AUROC over " + std::to_string(L.locations_with_auroc) + " locations with both classes: " +
         Fixed4(L.macro_auroc) + "\n";
    s += "RSNA 2025 weighted AUC (Aneurysm weight 13, each location 1): " + Fixed4(r.rsna_weighted_auc) + "\n";
  }
  return s;
}

std::string FormatEvaluationJson(const EvaluationReport& r) {
  using nlohmann::ordered_json;
  const LocationReport& L = r.locations;
  const bool probs = !r.probabilities_path.empty();
  ordered_json j;
  j["pred"] = r.pred_path;
  j["truth"] = r.truth_path;
  j["probabilities"] = probs ? ordered_json(r.probabilities_path) : ordered_json(nullptr);
  j["patients"] = r.patients;
  j["aneurysm_positives"] = r.aneurysm_positives;
  j["aneurysm_auroc"] = Json(r.aneurysm_auroc);
  j["location_accuracy"] = L.kium_accuracy;
  j["no_location_accuracy"] = L.no_location_accuracy;
  j["exact_match"] = L.exact_match;
  j["no_location_exact_match"] = L.no_location_exact_match;
  j["locations_present"] = L.locations_present;
  j["macro_precision"] = Json(L.macro_precision);
  j["macro_recall"] = Json(L.macro_recall);
  j["macro_f1"] = Json(L.macro_f1);
  j["locations_with_auroc"] = probs ? ordered_json(L.locations_with_auroc) : ordered_json(nullptr);
  j["macro_auroc"] = Json(L.macro_auroc);
  j["rsna_weighted_auc"] = Json(r.rsna_weighted_auc);
  j["per_location"] = PerLocationJson(L, probs);
  return j.dump(2) + "\n";
}

nlohmann::ordered_json PerLocationJson(const LocationReport& report, bool with_auroc) {
  using nlohmann::ordered_json;
  ordered_json per = ordered_json::object();
  for (int k = 0; k < kNumLocations; ++k) {
    const LocationScore& ls = report.per_location[k];
    ordered_json e;
    e["support"] = ls.counts.support();
    e["predicted"] = ls.counts.predicted();
    e["tp"] = ls.counts.tp;
    e["fp"] = ls.counts.fp;
    e["fn"] = ls.counts.fn;
    e["tn"] = ls.counts.tn;
    e["precision"] = Json(ls.precision);
    e["recall"] = Json(ls.recall);
    e["f1"] = Json(ls.f1);
    e["auroc"] = with_auroc ? Json(ls.auroc) : ordered_json(nullptr);
    per[LocationNames()[k]] = e;
  }
  return per;
}

}  // namespace angiotrain
