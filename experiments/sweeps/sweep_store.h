// The trial store: everything a sweep keeps on disk, one folder per trial, so that a killed sweep
// resumes, `sweep status` and reports read it without running anything, and a Slurm array can run
// one trial per task. Every file is written atomically (core/atomic_file.h) by rank 0, except
// log.txt, which is appended to.
//
//   DIR/sweep.toml          the sweep file as given (a copy)
//   DIR/plan.json           the plan (PlanJson): method, objective, thresholds, and per trial its
//                           name, settings, train_epochs, epochs evaluated and config hash; a rerun
//                           with a different plan is refused
//   DIR/results.csv         one row per evaluation (trial x epochs x threshold), ranked by the
//   DIR/results.json        objective (ResultsCsv / ResultsJson below)
//   DIR/trials/tNNNN/       one trial = one training run; its output.dir:
//       config.toml         the resolved train config (written by the Trainer)
//       status.json         {"state", "reason", "epochs_done", "seconds"}; state is pending,
//                           running (or interrupted: a killed sweep leaves it so), completed,
//                           pruned (halving stopped it at a rung) or failed (reason: the error);
//                           while running also "host", "pid", "process_start": the process that
//                           runs it (core/process_identity.h), so that one killed outright is
//                           told apart (stale) from one that still runs
//       log.txt             start/resume, one line per epoch, the end, appended
//       last.pt, best.pt    checkpoints (experiments/training/checkpoint.h; best by the objective)
//       metrics.jsonl       per-epoch metrics (README "Training")
//       validation/epoch_NNN.csv, validation/truth.csv, last.thresholds.json,
//       best.thresholds.json, best.json      per-epoch evidence (experiments/training/epoch_evidence.h)
//   DIR/trials/tNNNN/       with sweep.cross_validation = K, a trial is K training runs instead:
//       status.json, log.txt   the trial's: completed when every fold is, failed when one fails
//       fold_0 .. fold_K-1/    one training run per fold (data.fold = k), each laid out as above
//                              with its own status.json: a rerun skips finished folds and resumes
//                              an interrupted one from its last.pt
//
// Every evaluation is recomputed from the evidence files: a trial's figures at E epochs under
// rule R are ScoreEvidence(validation/epoch_E.csv joined with truth.csv, R); with
// cross-validation, the mean over the folds of each fold's figures (MeanOverFolds), the
// objective's standard deviation over the folds beside it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/process_identity.h"
#include "experiments/evaluation/objective.h"

namespace angiotrain {

struct TrialStatus {
  std::string state = "pending";
  std::string reason;
  int64_t epochs_done = 0;
  double seconds = 0;
  ProcessIdentity process;  // state "running": the process that runs it (or ran it, if stale)
};
TrialStatus ReadTrialStatus(const std::string& trial_dir);  // "pending" when there is none
void WriteTrialStatus(const std::string& trial_dir, const TrialStatus& status);
// For a status "running": whether its process still runs. kGone means stale: the process was
// killed outright (or its node lost) and `sweep run` resumes the trial.
ProcessState RunningProcessState(const TrialStatus& status);
// What `sweep status` and `sweep run` say about a running trial's process: "stale: its process
// PID on HOST is gone", "process PID on HOST", "running on HOST (cannot check)".
std::string RunningProcessNote(const TrialStatus& status);
void AppendTrialLog(const std::string& trial_dir, const std::string& line);

// The plan as read back from DIR/plan.json.
struct StoredTrial {
  std::string name;
  std::vector<std::pair<std::string, std::string>> settings;
  int64_t train_epochs = 0;
  std::vector<int64_t> epochs;
};
struct StoredPlan {
  Objective objective = Objective::kPresenceAuroc;
  int64_t cross_validation = 0;  // K >= 2: each trial is K runs in fold_0 .. fold_K-1
  std::vector<std::string> thresholds;
  std::vector<StoredTrial> trials;
};
StoredPlan ReadStoredPlan(const std::string& store_dir);
std::string TrialDir(const std::string& store_dir, const std::string& trial_name);
// The folder of fold `fold`'s training run in a cross-validated trial: TRIAL/fold_K.
std::string FoldDir(const std::string& trial_dir, int64_t fold);
// The output folders of a trial's training runs: the trial's own, or with folds >= 2 one per fold.
std::vector<std::string> RunDirs(const std::string& trial_dir, int64_t folds);

// The mean of the folds' values and their population standard deviation (numpy's std, as
// scikit-learn's std_test_score); both undefined when any fold's value is.
struct FoldMean {
  std::optional<double> mean, sd;
};
FoldMean MeanOverFolds(const std::vector<std::optional<double>>& values);

// A trial's objective at `epoch`: the best over `thresholds` (threshold-free objectives are the
// same under all), nullopt when undefined or when that epoch has no evidence.
std::optional<double> TrialObjectiveAt(const std::string& trial_dir, int64_t epoch,
                                       const std::vector<std::string>& thresholds, Objective objective);

struct ResultRow {
  std::string trial;
  std::vector<std::pair<std::string, std::string>> settings;
  int64_t epochs = 0;       // 0 for a trial without evidence (failed, pending)
  std::string threshold;
  std::string state;
  std::string reason;
  std::optional<EvidenceScore> score;  // cross-validated: each figure the mean over the folds
  std::optional<double> objective;     // cross-validated: the mean of the folds' objectives
  // Cross-validated trials only: the objective's standard deviation over the folds, and each
  // fold's objective (fold 0 first).
  std::optional<double> objective_sd;
  std::vector<std::optional<double>> fold_objectives;
};
// The evaluations of one trial of the store, in plan order (epochs, then thresholds); one row
// without a score when it has none (failed, pending, or not every fold done).
std::vector<ResultRow> TrialResults(const std::string& store_dir, const StoredPlan& plan, const StoredTrial& trial);
// Every evaluation of the store, ranked: best objective first, undefined and failed last, ties
// in plan order.
std::vector<ResultRow> CollectResults(const std::string& store_dir);
// With folds >= 2 (a cross-validated store) the CSV has the columns objective_sd and
// objective_fold_0 .. objective_fold_K-1 after objective, the JSON "objective_sd" and
// "fold_objectives", and the table an sd column.
std::string ResultsCsv(const std::vector<ResultRow>& rows, int64_t folds = 0);
std::string ResultsJson(const std::vector<ResultRow>& rows, Objective objective, int64_t folds = 0);
// The ranked table as printed (objective and figures with 4 decimals); at most `limit` rows (0: all).
std::string ResultsTable(const std::vector<ResultRow>& rows, Objective objective, size_t limit = 0,
                         int64_t folds = 0);
// Writes results.csv and results.json into the store and returns the printed table.
std::string WriteResults(const std::string& store_dir, size_t limit = 0);
// One line per trial: name, state, (folds completed,) epochs done, seconds, reason.
std::string TrialsTable(const std::string& store_dir);

}  // namespace angiotrain
