// The trial store: status, log, plan read-back and the ranked results (see sweep_store.h).
#include "experiments/sweep_store.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "experiments/epoch_evidence.h"
#include "experiments/threshold_rule.h"

namespace angiotrain {

namespace fs = std::filesystem;

namespace {

nlohmann::ordered_json OptionalJson(const std::optional<double>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json();
}

std::string Exact(const std::optional<double>& v) {
  if (!v) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", *v);
  return buf;
}

std::string Short(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string TrialDir(const std::string& store_dir, const std::string& trial_name) {
  return store_dir + "/trials/" + trial_name;
}

TrialStatus ReadTrialStatus(const std::string& trial_dir) {
  TrialStatus s;
  const std::string path = trial_dir + "/status.json";
  if (!fs::exists(path)) return s;
  try {
    const auto j = nlohmann::json::parse(ReadFile(path));
    s.state = j.at("state").get<std::string>();
    s.reason = j.value("reason", "");
    s.epochs_done = j.value("epochs_done", int64_t{0});
    s.seconds = j.value("seconds", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(path, std::string("not a trial status (") + e.what() + ")");
  }
  return s;
}

void WriteTrialStatus(const std::string& trial_dir, const TrialStatus& s) {
  fs::create_directories(trial_dir);
  nlohmann::ordered_json j;
  j["state"] = s.state;
  j["reason"] = s.reason;
  j["epochs_done"] = s.epochs_done;
  j["seconds"] = s.seconds;
  WriteFileAtomically(trial_dir + "/status.json", j.dump() + "\n");
}

void AppendTrialLog(const std::string& trial_dir, const std::string& line) {
  fs::create_directories(trial_dir);
  std::ofstream out(trial_dir + "/log.txt", std::ios::app);
  out << line << "\n";
}

StoredPlan ReadStoredPlan(const std::string& store_dir) {
  const std::string path = store_dir + "/plan.json";
  if (!fs::exists(path)) throw FileError(path, "missing: " + store_dir + " is not a sweep's trial store");
  StoredPlan plan;
  try {
    const auto j = nlohmann::ordered_json::parse(ReadFile(path));
    const std::string objective = j.at("objective").get<std::string>();
    auto o = FindChoice(ObjectiveChoices(), objective);
    if (!o) throw FileError(path, "objective " + NotAChoice(objective, ChoiceNames(ObjectiveChoices())));
    plan.objective = *o;
    plan.thresholds = j.at("thresholds").get<std::vector<std::string>>();
    for (const auto& t : j.at("trials")) {
      StoredTrial trial;
      trial.name = t.at("name").get<std::string>();
      for (const auto& [k, v] : t.at("settings").items()) trial.settings.emplace_back(k, v.get<std::string>());
      trial.train_epochs = t.at("train_epochs").get<int64_t>();
      trial.epochs = t.at("epochs").get<std::vector<int64_t>>();
      plan.trials.push_back(std::move(trial));
    }
  } catch (const nlohmann::json::exception& e) {
    throw FileError(path, std::string("not a sweep plan (") + e.what() + ")");
  }
  return plan;
}

std::optional<double> TrialObjectiveAt(const std::string& trial_dir, int64_t epoch,
                                       const std::vector<std::string>& thresholds, Objective objective) {
  if (!fs::exists(EpochPredictionsPath(trial_dir, epoch))) return std::nullopt;
  ThresholdInputs inputs;
  ThresholdLabels labels;
  ReadEpochEvidence(trial_dir, epoch, &inputs, &labels);
  std::optional<double> best;
  for (const auto& rule : thresholds) {
    const auto v = ScoreEvidence(inputs, labels, ThresholdRule::Parse(rule)).Value(objective);
    if (Better(v, best)) best = v;
  }
  return best;
}

std::vector<ResultRow> CollectResults(const std::string& store_dir) {
  const StoredPlan plan = ReadStoredPlan(store_dir);
  std::vector<ResultRow> rows;
  for (const StoredTrial& t : plan.trials) {
    const std::string dir = TrialDir(store_dir, t.name);
    const TrialStatus status = ReadTrialStatus(dir);
    ResultRow base;
    base.trial = t.name;
    base.settings = t.settings;
    base.state = status.state;
    base.reason = status.reason;
    bool any = false;
    for (int64_t e : t.epochs) {
      if (e > status.epochs_done || !fs::exists(EpochPredictionsPath(dir, e))) continue;
      ThresholdInputs inputs;
      ThresholdLabels labels;
      ReadEpochEvidence(dir, e, &inputs, &labels);
      for (const auto& rule : plan.thresholds) {
        ResultRow row = base;
        row.epochs = e;
        row.threshold = rule;
        row.score = ScoreEvidence(inputs, labels, ThresholdRule::Parse(rule));
        row.objective = row.score->Value(plan.objective);
        rows.push_back(std::move(row));
        any = true;
      }
    }
    if (!any) rows.push_back(base);
  }
  std::stable_sort(rows.begin(), rows.end(), [](const ResultRow& a, const ResultRow& b) {
    const bool a_failed = a.state == "failed", b_failed = b.state == "failed";
    if (a_failed != b_failed) return b_failed;
    return Better(a.objective, b.objective);
  });
  return rows;
}

std::string ResultsCsv(const std::vector<ResultRow>& rows) {
  std::vector<std::string> keys;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.settings)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::string out = "rank,trial";
  for (const auto& k : keys) out += "," + CsvField(k);
  out += ",epochs,threshold,state,objective,presence_auroc,location_auroc,kium_accuracy,no_location_accuracy,rsna,reason\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const ResultRow& r = rows[i];
    out += std::to_string(i + 1) + "," + r.trial;
    for (const auto& k : keys) {
      std::string value;
      for (const auto& [sk, sv] : r.settings)
        if (sk == k) value = sv;
      out += "," + CsvField(value);
    }
    out += "," + (r.epochs ? std::to_string(r.epochs) : std::string()) + "," + CsvField(r.threshold) + "," + r.state +
           "," + Exact(r.objective);
    if (r.score) {
      out += "," + Exact(r.score->presence_auroc) + "," + Exact(r.score->location_auroc) + "," +
             Exact(r.score->kium_accuracy) + "," + Exact(r.score->no_location_accuracy) + "," + Exact(r.score->rsna);
    } else {
      out += ",,,,,";
    }
    out += "," + CsvField(r.reason) + "\n";
  }
  return out;
}

std::string ResultsJson(const std::vector<ResultRow>& rows, Objective objective) {
  nlohmann::ordered_json j;
  j["objective"] = ChoiceName(ObjectiveChoices(), objective);
  j["results"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < rows.size(); ++i) {
    const ResultRow& r = rows[i];
    nlohmann::ordered_json row;
    row["rank"] = i + 1;
    row["trial"] = r.trial;
    row["settings"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : r.settings) row["settings"][k] = v;
    row["epochs"] = r.epochs ? nlohmann::ordered_json(r.epochs) : nlohmann::ordered_json();
    row["threshold"] = r.threshold;
    row["state"] = r.state;
    row["reason"] = r.reason;
    row["objective"] = OptionalJson(r.objective);
    if (r.score) {
      row["presence_auroc"] = OptionalJson(r.score->presence_auroc);
      row["location_auroc"] = OptionalJson(r.score->location_auroc);
      row["kium_accuracy"] = r.score->kium_accuracy;
      row["no_location_accuracy"] = r.score->no_location_accuracy;
      row["rsna"] = OptionalJson(r.score->rsna);
    }
    j["results"].push_back(row);
  }
  return j.dump(1) + "\n";
}

std::string ResultsTable(const std::vector<ResultRow>& rows, Objective objective, size_t limit) {
  std::string out = "rank  trial  settings                        epochs  threshold      state      " +
                    ChoiceName(ObjectiveChoices(), objective) + "  pres_auroc  loc_auroc  loc_acc (none)\n";
  char line[512];
  for (size_t i = 0; i < rows.size() && (limit == 0 || i < limit); ++i) {
    const ResultRow& r = rows[i];
    std::string settings;
    for (const auto& [k, v] : r.settings) settings += (settings.empty() ? "" : " ") + k + "=" + v;
    std::snprintf(line, sizeof line, "%4zu  %s  %-30s  %6s  %-13s  %-9s  %*s  %10s  %9s  %s\n", i + 1, r.trial.c_str(),
                  settings.c_str(), r.epochs ? std::to_string(r.epochs).c_str() : "-", r.threshold.c_str(),
                  r.state.c_str(), static_cast<int>(ChoiceName(ObjectiveChoices(), objective).size()),
                  Short(r.objective).c_str(), r.score ? Short(r.score->presence_auroc).c_str() : "",
                  r.score ? Short(r.score->location_auroc).c_str() : "",
                  r.score ? (Short(r.score->kium_accuracy) + " (" + Short(r.score->no_location_accuracy) + ")").c_str()
                          : r.reason.c_str());
    out += line;
  }
  if (limit && rows.size() > limit) out += "  ... " + std::to_string(rows.size() - limit) + " more rows in results.csv\n";
  return out;
}

std::string WriteResults(const std::string& store_dir, size_t limit) {
  const StoredPlan plan = ReadStoredPlan(store_dir);
  const auto rows = CollectResults(store_dir);
  WriteFileAtomically(store_dir + "/results.csv", ResultsCsv(rows));
  WriteFileAtomically(store_dir + "/results.json", ResultsJson(rows, plan.objective));
  return ResultsTable(rows, plan.objective, limit);
}

std::string TrialsTable(const std::string& store_dir) {
  const StoredPlan plan = ReadStoredPlan(store_dir);
  std::string out = "trial  state        epochs  seconds  settings / reason\n";
  char line[1024];
  for (const auto& t : plan.trials) {
    const TrialStatus s = ReadTrialStatus(TrialDir(store_dir, t.name));
    std::string settings;
    for (const auto& [k, v] : t.settings) settings += (settings.empty() ? "" : " ") + k + "=" + v;
    std::snprintf(line, sizeof line, "%s  %-11s  %2lld/%-3lld  %7.1f  %s%s\n", t.name.c_str(), s.state.c_str(),
                  static_cast<long long>(s.epochs_done), static_cast<long long>(t.train_epochs), s.seconds,
                  settings.c_str(), s.reason.empty() ? "" : ("  (" + s.reason + ")").c_str());
    out += line;
  }
  return out;
}

}  // namespace angiotrain
