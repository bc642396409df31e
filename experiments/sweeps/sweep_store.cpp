// The trial store: status, log, plan read-back and the ranked results (see sweep_store.h).
#include "experiments/sweeps/sweep_store.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "experiments/training/epoch_evidence.h"
#include "experiments/evaluation/threshold_rule.h"

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
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string TrialDir(const std::string& store_dir, const std::string& trial_name) {
  return store_dir + "/trials/" + trial_name;
}

std::string FoldDir(const std::string& trial_dir, int64_t fold) { return trial_dir + "/fold_" + std::to_string(fold); }

std::vector<std::string> RunDirs(const std::string& trial_dir, int64_t folds) {
  if (folds < 2) return {trial_dir};
  std::vector<std::string> dirs;
  for (int64_t k = 0; k < folds; ++k) dirs.push_back(FoldDir(trial_dir, k));
  return dirs;
}

FoldMean MeanOverFolds(const std::vector<std::optional<double>>& values) {
  FoldMean m;
  if (values.empty()) return m;
  double sum = 0;
  for (const auto& v : values) {
    if (!v) return m;
    sum += *v;
  }
  const double mean = sum / static_cast<double>(values.size());
  double squares = 0;
  for (const auto& v : values) squares += (*v - mean) * (*v - mean);
  m.mean = mean;
  m.sd = std::sqrt(squares / static_cast<double>(values.size()));
  return m;
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
    s.process.host = j.value("host", "");
    s.process.pid = j.value("pid", int64_t{0});
    s.process.start = j.value("process_start", "");
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
  if (s.state == "running" && !s.process.host.empty()) {
    j["host"] = s.process.host;
    j["pid"] = s.process.pid;
    j["process_start"] = s.process.start;
  }
  WriteFileAtomically(trial_dir + "/status.json", j.dump() + "\n");
}

ProcessState RunningProcessState(const TrialStatus& s) { return CheckProcess(s.process); }

std::string RunningProcessNote(const TrialStatus& s) {
  const std::string process = "process " + std::to_string(s.process.pid) + " on " + s.process.host;
  if (s.process.host.empty()) return "no process recorded (cannot check)";
  switch (RunningProcessState(s)) {
    case ProcessState::kRunning: return process;
    case ProcessState::kGone: return "stale: its " + process + " is gone; sweep run resumes it";
    case ProcessState::kCannotCheck: break;
  }
  return "running on " + s.process.host + " (cannot check)";
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
    plan.cross_validation = j.value("cross_validation", int64_t{0});
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

namespace {

// The figures of each fold averaged (an undefined figure in any fold: undefined).
EvidenceScore MeanScore(const std::vector<EvidenceScore>& folds) {
  auto mean = [&](auto field) {
    std::vector<std::optional<double>> values;
    for (const auto& f : folds) values.push_back(field(f));
    return MeanOverFolds(values).mean;
  };
  EvidenceScore m;
  m.presence_auroc = mean([](const EvidenceScore& f) { return f.presence_auroc; });
  m.location_auroc = mean([](const EvidenceScore& f) { return f.location_auroc; });
  m.rsna = mean([](const EvidenceScore& f) { return f.rsna; });
  m.kium = mean([](const EvidenceScore& f) { return f.kium; });
  m.kium_accuracy = *mean([](const EvidenceScore& f) { return std::optional<double>(f.kium_accuracy); });
  m.no_location_accuracy = *mean([](const EvidenceScore& f) { return std::optional<double>(f.no_location_accuracy); });
  return m;
}

}  // namespace

std::vector<ResultRow> TrialResults(const std::string& store_dir, const StoredPlan& plan, const StoredTrial& t) {
  std::vector<ResultRow> rows;
  const std::string dir = TrialDir(store_dir, t.name);
  const TrialStatus status = ReadTrialStatus(dir);
  ResultRow base;
  base.trial = t.name;
  base.settings = t.settings;
  base.state = status.state;
  base.reason = status.reason;
  // Each run (the trial, or each fold) with its status: an epoch is scored only when every run
  // has finished it.
  const auto run_dirs = RunDirs(dir, plan.cross_validation);
  std::vector<int64_t> done;
  for (const auto& run : run_dirs) done.push_back(plan.cross_validation >= 2 ? ReadTrialStatus(run).epochs_done
                                                                             : status.epochs_done);
  for (int64_t e : t.epochs) {
    bool ready = true;
    for (size_t r = 0; r < run_dirs.size(); ++r)
      ready = ready && e <= done[r] && fs::exists(EpochPredictionsPath(run_dirs[r], e));
    if (!ready) continue;
    std::vector<ThresholdInputs> inputs(run_dirs.size());
    std::vector<ThresholdLabels> labels(run_dirs.size());
    for (size_t r = 0; r < run_dirs.size(); ++r) ReadEpochEvidence(run_dirs[r], e, &inputs[r], &labels[r]);
    for (const auto& rule_text : plan.thresholds) {
      const ThresholdRule rule = ThresholdRule::Parse(rule_text);
      ResultRow row = base;
      row.epochs = e;
      row.threshold = rule_text;
      if (plan.cross_validation < 2) {
        row.score = ScoreEvidence(inputs[0], labels[0], rule);
        row.objective = row.score->Value(plan.objective);
      } else {
        std::vector<EvidenceScore> scores;
        for (size_t r = 0; r < run_dirs.size(); ++r) {
          scores.push_back(ScoreEvidence(inputs[r], labels[r], rule));
          row.fold_objectives.push_back(scores.back().Value(plan.objective));
        }
        row.score = MeanScore(scores);
        const FoldMean m = MeanOverFolds(row.fold_objectives);
        row.objective = m.mean;
        row.objective_sd = m.sd;
      }
      rows.push_back(std::move(row));
    }
  }
  if (rows.empty()) rows.push_back(base);
  return rows;
}

std::vector<ResultRow> CollectResults(const std::string& store_dir) {
  const StoredPlan plan = ReadStoredPlan(store_dir);
  std::vector<ResultRow> rows;
  for (const StoredTrial& t : plan.trials) {
    auto trial_rows = TrialResults(store_dir, plan, t);
    rows.insert(rows.end(), std::make_move_iterator(trial_rows.begin()), std::make_move_iterator(trial_rows.end()));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const ResultRow& a, const ResultRow& b) {
    const bool a_failed = a.state == "failed", b_failed = b.state == "failed";
    if (a_failed != b_failed) return b_failed;
    return Better(a.objective, b.objective);
  });
  return rows;
}

std::string ResultsCsv(const std::vector<ResultRow>& rows, int64_t folds) {
  std::vector<std::string> keys;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.settings)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::string out = "rank,trial";
  for (const auto& k : keys) out += "," + CsvField(k);
  out += ",epochs,threshold,state,objective";
  if (folds >= 2) {
    out += ",objective_sd";
    for (int64_t k = 0; k < folds; ++k) out += ",objective_fold_" + std::to_string(k);
  }
  out += ",presence_auroc,location_auroc,kium_accuracy,no_location_accuracy,rsna,reason\n";
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
    if (folds >= 2) {
      out += "," + Exact(r.objective_sd);
      for (int64_t k = 0; k < folds; ++k)
        out += "," + (k < static_cast<int64_t>(r.fold_objectives.size()) ? Exact(r.fold_objectives[k]) : std::string());
    }
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

std::string ResultsJson(const std::vector<ResultRow>& rows, Objective objective, int64_t folds) {
  nlohmann::ordered_json j;
  j["objective"] = ChoiceName(ObjectiveChoices(), objective);
  if (folds >= 2) j["cross_validation"] = folds;
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
    if (folds >= 2) {
      row["objective_sd"] = OptionalJson(r.objective_sd);
      row["fold_objectives"] = nlohmann::ordered_json::array();
      for (const auto& v : r.fold_objectives) row["fold_objectives"].push_back(OptionalJson(v));
    }
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

std::string ResultsTable(const std::vector<ResultRow>& rows, Objective objective, size_t limit, int64_t folds) {
  const bool cv = folds >= 2;
  std::string out = "rank  trial  settings                        epochs  threshold      state      " +
                    ChoiceName(ObjectiveChoices(), objective) + (cv ? "  fold_sd" : "") +
                    "  pres_auroc  loc_auroc  loc_acc (none)\n";
  char line[512];
  for (size_t i = 0; i < rows.size() && (limit == 0 || i < limit); ++i) {
    const ResultRow& r = rows[i];
    std::string settings;
    for (const auto& [k, v] : r.settings) settings += (settings.empty() ? "" : " ") + k + "=" + v;
    // Cross-validated: the objective is the mean over the folds, the next column their sd.
    char objective_cell[64];
    const int width = static_cast<int>(ChoiceName(ObjectiveChoices(), objective).size());
    if (cv)
      std::snprintf(objective_cell, sizeof objective_cell, "%*s  %7s", width, Short(r.objective).c_str(),
                    r.score ? Short(r.objective_sd).c_str() : "");
    else
      std::snprintf(objective_cell, sizeof objective_cell, "%*s", width, Short(r.objective).c_str());
    std::snprintf(line, sizeof line, "%4zu  %s  %-30s  %6s  %-13s  %-9s  %s  %10s  %9s  %s\n", i + 1, r.trial.c_str(),
                  settings.c_str(), r.epochs ? std::to_string(r.epochs).c_str() : "-", r.threshold.c_str(),
                  r.state.c_str(), objective_cell, r.score ? Short(r.score->presence_auroc).c_str() : "",
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
  WriteFileAtomically(store_dir + "/results.csv", ResultsCsv(rows, plan.cross_validation));
  WriteFileAtomically(store_dir + "/results.json", ResultsJson(rows, plan.objective, plan.cross_validation));
  return ResultsTable(rows, plan.objective, limit, plan.cross_validation);
}

std::string TrialsTable(const std::string& store_dir) {
  const StoredPlan plan = ReadStoredPlan(store_dir);
  const bool cv = plan.cross_validation >= 2;
  std::string out = std::string("trial  state        ") + (cv ? "folds  " : "") + "epochs  seconds  settings / reason\n";
  char line[1024];
  for (const auto& t : plan.trials) {
    const std::string dir = TrialDir(store_dir, t.name);
    const TrialStatus s = ReadTrialStatus(dir);
    std::string settings;
    for (const auto& [k, v] : t.settings) settings += (settings.empty() ? "" : " ") + k + "=" + v;
    // Cross-validated: folds completed, and the epochs of the fold in progress (or of the last).
    int64_t epochs_done = s.epochs_done, folds_done = 0;
    std::string folds;
    if (cv) {
      for (const auto& run : RunDirs(dir, plan.cross_validation)) {
        const TrialStatus f = ReadTrialStatus(run);
        if (f.state == "pending") break;
        epochs_done = f.epochs_done;
        if (f.state != "completed") break;
        ++folds_done;
      }
      folds = std::to_string(folds_done) + "/" + std::to_string(plan.cross_validation);
      folds.resize(std::max<size_t>(folds.size(), 5), ' ');
      folds += "  ";
    }
    // A running trial: whether its process still runs (stale: killed outright, resumable).
    std::string note = s.reason;
    if (s.state == "running") note = RunningProcessNote(s) + (s.reason.empty() ? "" : "; " + s.reason);
    std::snprintf(line, sizeof line, "%s  %-11s  %s%2lld/%-3lld  %7.1f  %s%s\n", t.name.c_str(), s.state.c_str(),
                  folds.c_str(), static_cast<long long>(epochs_done), static_cast<long long>(t.train_epochs), s.seconds,
                  settings.c_str(), note.empty() ? "" : ("  (" + note + ")").c_str());
    out += line;
  }
  return out;
}

}  // namespace angiotrain
