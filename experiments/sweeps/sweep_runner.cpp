// Running a sweep's trials in this MPI job (see sweep_runner.h).
#include "experiments/sweeps/sweep_runner.h"

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "core/process_identity.h"
#include "experiments/training/epoch_evidence.h"
#include "experiments/monitoring/metrics_export.h"
#include "experiments/sweeps/sweep_store.h"
#include "experiments/training/trainer.h"
#include "experiments/training/training_observers.h"

namespace angiotrain {

namespace fs = std::filesystem;

namespace {

int BroadcastInt(int value, MPI_Comm comm) {
  MPI_Bcast(&value, 1, MPI_INT, 0, comm);
  return value;
}

std::string BroadcastString(std::string text, MPI_Comm comm) {
  int n = BroadcastInt(static_cast<int>(text.size()), comm);
  text.resize(static_cast<size_t>(n));
  MPI_Bcast(text.data(), n, MPI_CHAR, 0, comm);
  return text;
}

std::string Fixed4(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", *v);
  return buf;
}

// Rank 0: one log line per epoch with the objective; every rank: the test-only fault point.
class TrialProgress : public TrainingObserver {
 public:
  TrialProgress(std::string dir, std::string fault_point, const EpochEvidenceWriter* evidence)
      : dir_(std::move(dir)), point_(std::move(fault_point)), evidence_(evidence) {}
  void OnStep(const StepRecord& r) override {
    MaybeInjectFault(point_, r.rank, r.global_step);
  }
  void OnEpochEnd(const EpochRecord& r) override {
    if (r.rank != 0) return;
    epochs_done_ = r.epoch;
    std::optional<double> objective;
    auto it = evidence_->objectives().find(r.epoch);
    if (it != evidence_->objectives().end()) objective = it->second;
    char line[256];
    std::snprintf(line, sizeof line, "epoch %lld/%lld train_loss %.6f objective %s", static_cast<long long>(r.epoch),
                  static_cast<long long>(r.epochs), r.train_loss, Fixed4(objective).c_str());
    AppendTrialLog(dir_, line);
    TrialStatus s = ReadTrialStatus(dir_);
    s.epochs_done = r.epoch;
    WriteTrialStatus(dir_, s);
  }

 private:
  std::string dir_, point_;
  const EpochEvidenceWriter* evidence_;
  int64_t epochs_done_ = 0;
};

// Successive halving (rank 0): at each rung but the last, the trial goes on only if its
// objective is within the best ceil(n / eta) of the n trials that reached the rung so far.
class HalvingPruner : public TrainingObserver {
 public:
  HalvingPruner(const SweepSpec& spec, const SweepPlan& plan, int trial, Trainer* trainer)
      : spec_(spec), plan_(plan), trial_(trial), trainer_(trainer) {}
  void OnRunStart(const RunStartRecord& r) override {
    // A resumed trial that had passed a rung where it should stop (the sweep was killed between
    // the decision and its record) stops now, as it did then.
    if (r.rank != 0) return;
    for (int64_t rung : Rungs())
      if (rung <= r.start_epoch && Prune(rung)) return Stop(rung);
  }
  void OnEpochEnd(const EpochRecord& r) override {
    if (r.rank != 0 || pruned_at_) return;
    for (int64_t rung : Rungs())
      if (rung == r.epoch && Prune(rung)) Stop(rung);
  }
  int64_t pruned_at() const { return pruned_at_; }

 private:
  std::vector<int64_t> Rungs() const {
    const auto& e = plan_.trials[trial_].epochs;
    return std::vector<int64_t>(e.begin(), e.end() - 1);
  }
  bool Prune(int64_t rung) const {
    const auto value = [&](int t) {
      return TrialObjectiveAt(plan_.trials[t].config.output.dir, rung, plan_.thresholds, spec_.objective);
    };
    const auto mine = value(trial_);
    int reached = 1, better = 0;
    for (int t = 0; t < trial_; ++t) {
      if (!fs::exists(EpochPredictionsPath(plan_.trials[t].config.output.dir, rung))) continue;
      ++reached;
      if (!Better(mine, value(t)) && (value(t) || !mine)) ++better;  // ties go to the earlier trial
    }
    const int keep = static_cast<int>((reached + spec_.eta - 1) / spec_.eta);
    return better >= keep;
  }
  void Stop(int64_t rung) {
    pruned_at_ = rung;
    trainer_->RequestStop();
  }

  const SweepSpec& spec_;
  const SweepPlan& plan_;
  int trial_;
  Trainer* trainer_;
  int64_t pruned_at_ = 0;
};

enum Action { kSkip = 0, kFresh = 1, kResume = 2 };

}  // namespace

namespace {
std::string AnotherPlanMessage(const SweepSpec& spec) {
  return spec.dir + "/plan.json: the store holds another sweep's plan (different axes, values, base config or "
                    "method); give this sweep another sweep.dir, or remove " + spec.dir;
}
}  // namespace

std::string StoredPlanConflict(const SweepSpec& spec, const SweepPlan& plan) {
  const std::string plan_path = spec.dir + "/plan.json";
  if (!fs::exists(plan_path) || ReadFile(plan_path) == PlanJson(spec, plan)) return "";
  return AnotherPlanMessage(spec);
}

void WriteSweepStore(const SweepSpec& spec, const SweepPlan& plan) {
  const std::string conflict = StoredPlanConflict(spec, plan);
  if (!conflict.empty()) throw Error(conflict);
  fs::create_directories(spec.dir + "/trials");
  // Written only when they change: the tasks of a Slurm array all find the store that
  // `sweep run --slurm` made, and none of them rewrites it.
  const auto write = [](const std::string& path, const std::string& text) {
    if (!fs::exists(path) || ReadFile(path) != text) WriteFileAtomically(path, text);
  };
  write(spec.dir + "/plan.json", PlanJson(spec, plan));
  write(spec.dir + "/sweep.toml", ReadFile(spec.path));
}

void PrepareSweepStore(const SweepSpec& spec, const SweepPlan& plan, const ProcessContext& context) {
  std::string conflict;
  if (context.is_root()) {
    conflict = StoredPlanConflict(spec, plan);
    if (conflict.empty()) WriteSweepStore(spec, plan);
  }
  if (BroadcastInt(conflict.empty() ? 0 : 1, context.comm))
    throw CollectiveError(AnotherPlanMessage(spec));
}

// Rank 0: trials by status and the best objective so far, from the store, on the sweep's
// metrics endpoint ([metrics] of the base config; nothing when it asks for none). A trial's best
// is its best.json (the best epoch under its rule), or for a cross-validated trial that has
// finished, the best of its cross-validated results.
void ReportSweepProgress(SweepMetrics* metrics, const SweepSpec& spec, const SweepPlan& plan) {
  if (!metrics) return;
  std::map<std::string, int64_t> counts;
  std::optional<double> best;
  const bool cv = spec.cross_validation >= 2;
  const StoredPlan stored = cv ? ReadStoredPlan(spec.dir) : StoredPlan{};
  for (size_t i = 0; i < plan.trials.size(); ++i) {
    const PlannedTrial& t = plan.trials[i];
    const std::string state = ReadTrialStatus(t.config.output.dir).state;
    ++counts[state == "running" ? "stopped" : state];
    std::optional<double> value;
    if (cv) {
      if (state == "completed" && i < stored.trials.size())
        for (const ResultRow& row : TrialResults(spec.dir, stored, stored.trials[i]))
          if (Better(row.objective, value)) value = row.objective;
    } else {
      const std::string best_json = t.config.output.dir + "/best.json";
      if (!fs::exists(best_json)) continue;
      const auto v = nlohmann::json::parse(ReadFile(best_json)).value("value", nlohmann::json());
      if (v.is_number()) value = v.get<double>();
    }
    if (Better(value, best)) best = value;
  }
  metrics->SetTrialCounts(counts);
  if (best) metrics->SetBestObjective(*best);
}

namespace {

// What the training runs of one `sweep run` share.
struct SweepJob {
  const SweepSpec& spec;
  const SweepPlan& plan;
  const ProcessContext& context;
  std::shared_ptr<MetricsEndpoint> endpoint;
  std::map<std::string, LabelsByIndex> labels;  // by volume path, rank 0
};

enum class RunOutcome { kSkipped, kCompleted, kPruned, kStopped, kFailed };

// One training run of `trial` in run.output.dir: the trial itself (fold < 0), or fold `fold` of a
// cross-validated trial. Skipped when its status.json says it finished (completed, pruned,
// failed); resumed from its last.pt when a killed sweep left it running. Writes the run's
// status.json and log.txt (rank 0); a failure's message goes to `reason`. Collective.
RunOutcome RunTraining(SweepJob& job, const PlannedTrial& trial, const TrainConfig& run, int64_t fold,
                       std::string* reason) {
  const ProcessContext& context = job.context;
  const std::string& dir = run.output.dir;
  std::string settings;
  for (const auto& [k, v] : trial.settings) settings += " " + k + "=" + v;
  const std::string what = "trial " + trial.name + " (" + std::to_string(trial.id + 1) + " of " +
                           std::to_string(job.plan.trials.size()) + ")" + settings +
                           (fold < 0 ? "" : " fold_" + std::to_string(fold) + " (" + std::to_string(fold + 1) +
                                                " of " + std::to_string(trial.folds) + ")");
  int action = kFresh;
  if (context.is_root()) {
    const TrialStatus s = ReadTrialStatus(dir);
    if (s.state == "completed" || s.state == "pruned" || s.state == "failed")
      action = kSkip;
    else if (s.state == "running" && RunningProcessState(s) == ProcessState::kRunning)
      action = kSkip;  // another sweep run (or array task) on this host has it now
    else if (s.state == "running" && fs::exists(dir + "/last.pt"))
      action = kResume;
    if (s.state == "running" && action == kSkip)
      std::printf("sweep: %s: running in %s, skipped\n", what.c_str(), RunningProcessNote(s).c_str());
    else if (s.state == "running")
      std::printf("sweep: %s: recorded as running (%s)\n", what.c_str(), RunningProcessNote(s).c_str());
    else if (action == kSkip && fold >= 0)
      std::printf("sweep: %s: %s, skipped\n", what.c_str(), s.state.c_str());
  }
  action = BroadcastInt(action, context.comm);
  if (action == kSkip) return RunOutcome::kSkipped;

  const auto t0 = std::chrono::steady_clock::now();
  TrialStatus status;
  status.state = "running";
  status.process = ThisProcess();
  if (context.is_root()) {
    fs::create_directories(dir);
    if (action == kResume) status.epochs_done = ReadTrialStatus(dir).epochs_done;
    WriteTrialStatus(dir, status);
    AppendTrialLog(dir, std::string(action == kResume ? "resume" : "start") + settings);
    std::printf("sweep: %s: %s\n", what.c_str(), action == kResume ? "resuming from its checkpoint" : "starting");
    std::fflush(stdout);
  }
  const std::string label = fold < 0 ? trial.name : trial.name + "/fold_" + std::to_string(fold);
  int64_t pruned_at = 0;
  bool stopped = false;
  std::unique_ptr<TrainingMetrics> trial_metrics;
  try {
    MaybeInjectFault("sweep-trial", context.rank, trial.id);
    TrainConfig config = run;
    config.train.resume = action == kResume;
    if (context.is_root() && !job.labels.count(config.data.volume))
      job.labels[config.data.volume] = LoadLabelsByIndex(config.data.volume);
    Trainer trainer(config, context);
    auto observers = StandardObservers(config, context.rank);
    EpochEvidenceWriter evidence(dir, context.is_root() ? job.labels[config.data.volume] : LabelsByIndex{},
                                 job.spec.objective, ThresholdRule::Parse(config.evaluation.threshold));
    TrialProgress progress(dir, "sweep-trial-" + std::to_string(trial.id) + (fold < 0 ? "" : "-fold-" + std::to_string(fold)),
                           &evidence);
    HalvingPruner pruner(job.spec, job.plan, trial.id, &trainer);
    for (auto& o : observers) trainer.AddObserver(o.get());
    trainer.AddObserver(&evidence);
    trainer.AddObserver(&progress);
    if (job.spec.method == SweepMethod::kHalving) trainer.AddObserver(&pruner);
    if (job.endpoint) {
      trial_metrics = std::make_unique<TrainingMetrics>(job.endpoint, config, label);
      trainer.AddObserver(trial_metrics.get());
    }
    const TrainSummary summary = trainer.Run();
    pruned_at = BroadcastInt(static_cast<int>(pruner.pruned_at()), context.comm);
    stopped = summary.end == RunEnd::kStopped && pruned_at == 0;
    if (context.is_root()) {
      status = ReadTrialStatus(dir);
      status.state = pruned_at ? "pruned" : stopped ? "running" : "completed";
      status.reason = pruned_at ? "pruned at epoch " + std::to_string(pruned_at) : stopped ? "stop requested" : "";
      if (pruned_at) status.epochs_done = pruned_at;
    }
  } catch (const std::exception& e) {
    if (trial_metrics) trial_metrics->OnFailure(e);
    status.state = "failed";
    status.reason = e.what();
    if (context.is_root()) status.epochs_done = ReadTrialStatus(dir).epochs_done;
    std::fprintf(stderr, "sweep: %s failed: %s\n", label.c_str(), e.what());
  }
  if (context.is_root()) {
    status.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WriteTrialStatus(dir, status);
    AppendTrialLog(dir, "end " + status.state + (status.reason.empty() ? "" : ": " + status.reason));
  }
  // Rank 0's record decides on every rank (a rank that did not throw still knows it failed).
  *reason = BroadcastString(status.reason, context.comm);
  if (BroadcastInt(status.state == "failed", context.comm)) return RunOutcome::kFailed;
  return pruned_at ? RunOutcome::kPruned : stopped ? RunOutcome::kStopped : RunOutcome::kCompleted;
}

// A cross-validated trial: its folds one after the other (finished ones skipped), then the
// trial's own status: completed when every fold is, failed at the first fold that fails (the
// others are not trained: the mean would be undefined), running when a stop request ended a
// fold. Collective.
RunOutcome RunCrossValidatedTrial(SweepJob& job, const PlannedTrial& trial) {
  const ProcessContext& context = job.context;
  const std::string& dir = trial.config.output.dir;
  int skip = 0;
  if (context.is_root()) {
    const TrialStatus s = ReadTrialStatus(dir);
    skip = s.state == "completed" || s.state == "failed";
    if (s.state == "running" && RunningProcessState(s) == ProcessState::kRunning) {
      skip = 1;  // another sweep run (or array task) on this host has it now
      std::printf("sweep: trial %s: running in %s, skipped\n", trial.name.c_str(), RunningProcessNote(s).c_str());
    }
  }
  if (BroadcastInt(skip, context.comm)) return RunOutcome::kSkipped;
  const auto t0 = std::chrono::steady_clock::now();
  if (context.is_root()) {
    TrialStatus status = ReadTrialStatus(dir);
    const bool resumed = status.state == "running";
    status.state = "running";
    status.process = ThisProcess();
    WriteTrialStatus(dir, status);
    std::string settings;
    for (const auto& [k, v] : trial.settings) settings += " " + k + "=" + v;
    AppendTrialLog(dir, std::string(resumed ? "resume" : "start") + settings + " (" + std::to_string(trial.folds) +
                            " folds)");
  }
  const std::vector<TrainConfig> runs = trial.Runs();
  RunOutcome outcome = RunOutcome::kCompleted;
  std::string reason;
  for (size_t k = 0; k < runs.size(); ++k) {
    const RunOutcome o = RunTraining(job, trial, runs[k], static_cast<int64_t>(k), &reason);
    if (context.is_root() && o != RunOutcome::kSkipped)
      AppendTrialLog(dir, "fold_" + std::to_string(k) + " " + ReadTrialStatus(runs[k].output.dir).state);
    if (o == RunOutcome::kFailed || o == RunOutcome::kStopped) {
      outcome = o;
      if (o == RunOutcome::kFailed) reason = "fold_" + std::to_string(k) + ": " + reason;
      break;
    }
  }
  if (context.is_root()) {
    TrialStatus status;
    // The folds' own records decide (a fold may have finished in an earlier invocation).
    bool all_completed = true;
    status.epochs_done = trial.config.train.epochs;
    for (const auto& run : runs) {
      const TrialStatus f = ReadTrialStatus(run.output.dir);
      all_completed = all_completed && f.state == "completed";
      status.epochs_done = std::min(status.epochs_done, f.epochs_done);
    }
    status.state = outcome == RunOutcome::kFailed ? "failed" : all_completed ? "completed" : "running";
    status.reason = outcome == RunOutcome::kFailed ? reason : outcome == RunOutcome::kStopped ? "stop requested" : "";
    status.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WriteTrialStatus(dir, status);
    AppendTrialLog(dir, "end " + status.state + (status.reason.empty() ? "" : ": " + status.reason));
  }
  return outcome;
}

}  // namespace

SweepRunSummary RunSweep(const SweepSpec& spec, const ProcessContext& context, const SweepRunOptions& options) {
  const SweepPlan plan = PlanSweep(spec);
  PrepareSweepStore(spec, plan, context);
  SweepJob job{spec, plan, context, nullptr, {}};
  bool interrupted = false;
  // One metrics endpoint for the whole sweep (one exposer, one discovery entry); every trial's
  // figures carry its name in the label trial (a fold's: TRIAL/fold_K).
  std::unique_ptr<SweepMetrics> sweep_metrics;
  if (!plan.trials.empty()) {
    job.endpoint = MetricsEndpoint::Open(spec.metrics, spec.dir, context.rank, context.local.rank,
                                         context.device.is_cuda() ? context.device.index() : -1);
    if (job.endpoint && context.is_root())
      sweep_metrics = std::make_unique<SweepMetrics>(job.endpoint, ChoiceName(ObjectiveChoices(), spec.objective));
  }
  if (context.is_root()) ReportSweepProgress(sweep_metrics.get(), spec, plan);
  for (const PlannedTrial& trial : plan.trials) {
    if (options.only_trial >= 0 && trial.id != options.only_trial) continue;
    std::string reason;
    const RunOutcome o = trial.folds >= 2 ? RunCrossValidatedTrial(job, trial)
                                          : RunTraining(job, trial, trial.config, -1, &reason);
    if (o == RunOutcome::kSkipped) continue;
    if (context.is_root()) ReportSweepProgress(sweep_metrics.get(), spec, plan);
    if (o == RunOutcome::kStopped) {
      interrupted = true;
      break;
    }
  }
  MPI_Barrier(context.comm);
  // The failed trials as the store records them (rank 0's view, given to every rank so that all
  // leave with the same exit status).
  SweepRunSummary summary;
  summary.interrupted = interrupted;
  std::string failed;
  for (const PlannedTrial& trial : plan.trials) {
    if (options.only_trial >= 0 && trial.id != options.only_trial) continue;
    ++summary.trials;
    if (!context.is_root()) continue;
    const TrialStatus s = ReadTrialStatus(trial.config.output.dir);
    if (s.state != "failed") continue;
    std::string settings;
    for (const auto& [k, v] : trial.settings) settings += (settings.empty() ? "" : ", ") + k + "=" + v;
    std::string reason = s.reason;
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    failed += trial.name + (settings.empty() ? "" : " (" + settings + ")") + ": " + reason + "\n";
  }
  std::istringstream lines(BroadcastString(failed, context.comm));
  for (std::string line; std::getline(lines, line);) summary.failed.push_back(line);
  if (!context.is_root() || options.only_trial >= 0) return summary;
  const std::string table = WriteResults(spec.dir, options.table_rows);
  std::printf("%s\nsweep: %s; results in %s/results.csv and results.json\n", table.c_str(),
              interrupted ? "stopped on request (run it again to resume)"
              : summary.failed.empty() ? "done"
                                       : "done, with failed trials",
              spec.dir.c_str());
  return summary;
}

}  // namespace angiotrain
