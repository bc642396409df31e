// Running a sweep's trials in this MPI job (see sweep_runner.h).
#include "experiments/sweep_runner.h"

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "experiments/epoch_evidence.h"
#include "experiments/metrics_export.h"
#include "experiments/sweep_store.h"
#include "experiments/trainer.h"
#include "experiments/training_observers.h"

namespace angiotrain {

namespace fs = std::filesystem;

namespace {

int BroadcastInt(int value, MPI_Comm comm) {
  MPI_Bcast(&value, 1, MPI_INT, 0, comm);
  return value;
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
  TrialProgress(std::string dir, int trial, const EpochEvidenceWriter* evidence)
      : dir_(std::move(dir)), point_("sweep-trial-" + std::to_string(trial)), evidence_(evidence) {}
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

void PrepareSweepStore(const SweepSpec& spec, const SweepPlan& plan, const ProcessContext& context) {
  const std::string plan_path = spec.dir + "/plan.json";
  const std::string text = PlanJson(spec, plan);
  int problem = 0;
  if (context.is_root()) {
    if (fs::exists(plan_path) && ReadFile(plan_path) != text) {
      problem = 1;
    } else {
      fs::create_directories(spec.dir + "/trials");
      WriteFileAtomically(plan_path, text);
      WriteFileAtomically(spec.dir + "/sweep.toml", ReadFile(spec.path));
    }
  }
  if (BroadcastInt(problem, context.comm))
    throw CollectiveError(plan_path + ": the store holds another sweep's plan (different axes, values, base config "
                          "or method); give this sweep another sweep.dir, or remove " + spec.dir);
}

// Rank 0: trials by status and the best objective so far, from the store, on the sweep's
// metrics endpoint ([metrics] of the base config; nothing when it asks for none).
void ReportSweepProgress(SweepMetrics* metrics, const SweepPlan& plan) {
  if (!metrics) return;
  std::map<std::string, int64_t> counts;
  std::optional<double> best;
  for (const PlannedTrial& t : plan.trials) {
    const std::string state = ReadTrialStatus(t.config.output.dir).state;
    ++counts[state == "running" ? "stopped" : state];
    const std::string best_json = t.config.output.dir + "/best.json";
    if (!fs::exists(best_json)) continue;
    const auto value = nlohmann::json::parse(ReadFile(best_json)).value("value", nlohmann::json());
    if (value.is_number() && (!best || value.get<double>() > *best)) best = value.get<double>();
  }
  metrics->SetTrialCounts(counts);
  if (best) metrics->SetBestObjective(*best);
}

void RunSweep(const SweepSpec& spec, const ProcessContext& context, const SweepRunOptions& options) {
  const SweepPlan plan = PlanSweep(spec);
  PrepareSweepStore(spec, plan, context);
  std::map<std::string, LabelsByIndex> labels;  // by volume path, rank 0
  bool interrupted = false;
  // One metrics endpoint for the whole sweep (one exposer, one discovery entry); every trial's
  // figures carry its name in the label trial.
  std::shared_ptr<MetricsEndpoint> endpoint;
  std::unique_ptr<SweepMetrics> sweep_metrics;
  if (!plan.trials.empty()) {
    TrainConfig base = plan.trials.front().config;
    base.output.dir = spec.dir;
    endpoint = MetricsEndpoint::Open(base, context.rank, context.local.rank,
                                     context.device.is_cuda() ? context.device.index() : -1);
    if (endpoint && context.is_root())
      sweep_metrics = std::make_unique<SweepMetrics>(endpoint, ChoiceName(ObjectiveChoices(), spec.objective));
  }
  if (context.is_root()) ReportSweepProgress(sweep_metrics.get(), plan);
  for (const PlannedTrial& trial : plan.trials) {
    if (options.only_trial >= 0 && trial.id != options.only_trial) continue;
    const std::string& dir = trial.config.output.dir;
    int action = kFresh;
    if (context.is_root()) {
      const TrialStatus s = ReadTrialStatus(dir);
      if (s.state == "completed" || s.state == "pruned" || s.state == "failed")
        action = kSkip;
      else if (s.state == "running" && fs::exists(dir + "/last.pt"))
        action = kResume;
    }
    action = BroadcastInt(action, context.comm);
    if (action == kSkip) continue;

    const auto t0 = std::chrono::steady_clock::now();
    TrialStatus status;
    status.state = "running";
    if (context.is_root()) {
      fs::create_directories(dir);
      if (action == kResume) status.epochs_done = ReadTrialStatus(dir).epochs_done;
      WriteTrialStatus(dir, status);
      std::string settings;
      for (const auto& [k, v] : trial.settings) settings += " " + k + "=" + v;
      AppendTrialLog(dir, std::string(action == kResume ? "resume" : "start") + settings);
      std::printf("sweep: trial %s (%d of %zu)%s: %s\n", trial.name.c_str(), trial.id + 1, plan.trials.size(),
                  settings.c_str(), action == kResume ? "resuming from its checkpoint" : "starting");
      std::fflush(stdout);
    }
    int64_t pruned_at = 0;
    bool stopped = false;
    std::unique_ptr<TrainingMetrics> trial_metrics;
    try {
      MaybeInjectFault("sweep-trial", context.rank, trial.id);
      TrainConfig config = trial.config;
      config.train.resume = action == kResume;
      if (context.is_root() && !labels.count(config.data.volume))
        labels[config.data.volume] = LoadLabelsByIndex(config.data.volume);
      Trainer trainer(config, context);
      auto observers = StandardObservers(config, context.rank);
      EpochEvidenceWriter evidence(dir, context.is_root() ? labels[config.data.volume] : LabelsByIndex{},
                                   spec.objective, ThresholdRule::Parse(config.evaluation.threshold));
      TrialProgress progress(dir, trial.id, &evidence);
      HalvingPruner pruner(spec, plan, trial.id, &trainer);
      for (auto& o : observers) trainer.AddObserver(o.get());
      trainer.AddObserver(&evidence);
      trainer.AddObserver(&progress);
      if (spec.method == SweepMethod::kHalving) trainer.AddObserver(&pruner);
      if (endpoint) {
        trial_metrics = std::make_unique<TrainingMetrics>(endpoint, config, trial.name);
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
      std::fprintf(stderr, "sweep: trial %s failed: %s\n", trial.name.c_str(), e.what());
    }
    if (context.is_root()) {
      status.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      WriteTrialStatus(dir, status);
      AppendTrialLog(dir, "end " + status.state + (status.reason.empty() ? "" : ": " + status.reason));
      ReportSweepProgress(sweep_metrics.get(), plan);
    }
    if (stopped) {
      interrupted = true;
      break;
    }
  }
  MPI_Barrier(context.comm);
  if (!context.is_root() || options.only_trial >= 0) return;
  const std::string table = WriteResults(spec.dir, options.table_rows);
  std::printf("%s\nsweep: %s; results in %s/results.csv and results.json\n", table.c_str(),
              interrupted ? "stopped on request (run it again to resume)" : "done", spec.dir.c_str());
}

}  // namespace angiotrain
