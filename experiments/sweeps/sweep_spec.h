// A sweep file and its plan. The file (TOML) names a base training config, axes over config
// keys, and how to search them; the plan turns it into trials (training runs), each evaluated
// at one or more epoch counts under every threshold rule of the thresholds axis.
//
//   [sweep]
//   method = "grid"              # grid | random | halving
//   objective = "presence_auroc" # presence_auroc | location_auroc | kium | rsna
//   dir = "out/sweep"            # the trial store (experiments/sweeps/sweep_store.h)
//   budget = 4                   # random (and halving, optionally): combinations drawn
//   seed = 0                     # random: the draw
//   eta = 2                      # halving: keep the best 1/eta at each rung
//   cross_validation = 5         # K >= 2: every trial trains K runs, one per fold (below)
//   base = "quickstart.toml"     # the base config, relative to this file; or a [base] table:
//   [base.data]                  #   the train config schema inline (experiments/training/train_config.h)
//   volume = "out/volume.h5"
//   [axes]
//   "train.lr" = [1e-3, 1e-4]    # any train config key (quoted or as a dotted key) but
//   "train.epochs" = [2, 4, 6]   #   output.dir and train.resume
//   thresholds = ["mean+1std", "fixed:0.5", "f1", "youden"]
//   [slurm]                      # `sweep run --slurm`: one array task per trial (slurm/slurm_config.h)
//
// Free axes. thresholds never needs training: every rule is evaluated on the stored validation
// predictions. train.epochs is free where the learning-rate schedule does not depend on the
// total epoch count (train.schedule = constant, with or without warm-up): one trial trains to the
// largest count and is evaluated at every listed count from its per-epoch evidence, which is
// exactly what separate runs would give. Under cosine each count is a trial of its own.
// Halving (sequential ASHA): trials run one after the other; the listed epoch counts are the
// rungs, and at each rung but the last a trial continues only if its objective is within the
// best ceil(n / eta) of the n trials (itself included) that have reached that rung, else it is
// stopped there (pruned). It needs an epochs axis and a constant schedule.
//
// Cross-validation. The base config's data.folds = K with an axis over data.fold makes each fold
// a trial of its own. sweep.cross_validation = K instead makes each trial K training runs, one per
// fold of the stratified K-fold partition (data.folds = K, data.fold = 0..K-1, in the trial's
// folders fold_0 .. fold_K-1), scored by the mean over the folds of each fold's objective (with
// its standard deviation), as scikit-learn's cross-validated searches do. The epochs and
// thresholds axes stay free within each fold. Not with halving (a rung would need every fold),
// nor with an axis over data.fold or data.folds.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "experiments/evaluation/objective.h"
#include "experiments/monitoring/metrics_config.h"
#include "experiments/training/train_config.h"

namespace angiotrain {

enum class SweepMethod { kGrid, kRandom, kHalving };

// The most combinations a sweep plans (each a trial; under cosine, one per epoch count): a grid
// with more is refused naming its axes and their count (method = "random" draws `budget` of
// them without enumerating the grid, and a budget above it is refused too).
constexpr int64_t kMaxSweepTrials = 1000000;
const ChoiceTable<SweepMethod>& SweepMethodChoices();

struct SweepAxis {
  std::string key;
  // TOML text of each value ("0.001", "\"b1\"", "true"); strings as TomlQuoted, so that they
  // reach the trial's config byte for byte. No two are the same value (as 1 and
  // 1.0 would be: a second, identical trial).
  std::vector<std::string> values;
};

struct SweepSpec {
  std::string path;  // the sweep file
  SweepMethod method = SweepMethod::kGrid;
  Objective objective = Objective::kPresenceAuroc;
  std::string dir;
  std::string base_path;  // the base config file; empty for an inline [base] table
  int64_t budget = 0, seed = 0, eta = 2;
  int64_t cross_validation = 0;  // K >= 2: K runs per trial, one per fold; 0: one run per trial
  TrainConfig base;
  MetricsConfig metrics;                 // the base config's [metrics]: one endpoint for the whole sweep
  std::vector<SweepAxis> axes;           // training axes, in key order (the last varies fastest)
  std::vector<int64_t> epochs;           // the epochs axis, ascending; empty: base's train.epochs
  std::vector<std::string> thresholds;   // canonical rules; empty: base's evaluation.threshold
};

// Reads and checks a sweep file, and checks the config of every trial it plans, and its k-fold
// partition on the volume when there is one (so a bad value stops the sweep before any
// training). Throws Error "PATH: key 'K': problem" (or "PATH: trial tNNNN: ...").
SweepSpec LoadSweepSpec(const std::string& path);
SweepSpec ParseSweepSpec(const std::string& text, const std::string& path);

struct PlannedTrial {
  int id = 0;
  std::string name;  // "t0003": its folder under the store's trials/
  // Training axis key -> value: a string as its bytes, other values as TOML text.
  std::vector<std::pair<std::string, std::string>> settings;
  TrainConfig config;           // resolved: output.dir in the store, train.epochs what it trains to
                                // (with cross-validation data.folds = K)
  std::vector<int64_t> epochs;  // the epoch counts it is evaluated at, ascending
  int64_t folds = 0;            // cross-validation: K runs; 0: one run
  // The trial's training runs: its config, or with cross-validation one per fold (data.fold = k,
  // output.dir = FoldDir(config.output.dir, k)).
  std::vector<TrainConfig> Runs() const;
};

struct SweepPlan {
  std::vector<PlannedTrial> trials;
  std::vector<std::string> thresholds;
  std::vector<std::string> notes;  // e.g. why epochs are not free
  std::string combinations;        // of the training axes (before a random draw), in decimal: it may exceed 64 bits
  int64_t drawn = 0;               // the combinations planned: all of them, or the random draw
  int64_t Evaluations() const;     // result rows: sum over trials of epochs x thresholds
  int64_t TrainingRuns() const;    // sum over trials of their runs (folds with cross-validation)
  int64_t TrainedEpochs() const;   // sum over the training runs of train.epochs (halving: at most)
  int64_t SeparateEpochs() const;  // what training every (combination, epochs, fold) apart would cost
};

// Throws Error "PATH: key 'axes': the grid has N combinations of KEY (n) x ..." over
// kMaxSweepTrials, or naming sweep.budget when the budget is over it.
SweepPlan PlanSweep(const SweepSpec& spec);

// The trial store against the inputs, before anything is written: spec.dir must be a folder or
// not exist, and none of the store's files may be an input (the sweep file, the base config, a
// volume or model.init file of a trial). Throws Error naming sweep.dir (or --dir when the command
// line gave it, from_command_line) and the path.
void CheckSweepDir(const SweepSpec& spec, bool from_command_line);

// With data.folds >= 2: throws Error "data.volume PATH: data.folds = K: ..." when a class of the
// volume's rows has fewer rows than folds. Nothing when the volume does not exist (yet).
void CheckFoldsOnVolume(const TrainConfig& config);
// What `sweep plan` prints: the trials, their settings, the evaluations and the cost.
std::string PlanText(const SweepSpec& spec, const SweepPlan& plan);
// The plan as stored in the trial store (plan.json); a rerun must find the same.
std::string PlanJson(const SweepSpec& spec, const SweepPlan& plan);

}  // namespace angiotrain
