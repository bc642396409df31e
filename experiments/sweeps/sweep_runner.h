// Running a sweep's trials inside one MPI job: every rank walks the same trial sequence and each
// trial is one collective Trainer run (experiments/training/trainer.h) in its folder of the trial store
// (experiments/sweeps/sweep_store.h), with the per-epoch evidence observer (epoch_evidence.h) and, for
// successive halving, a pruner that stops the trial at a rung through Trainer::RequestStop.
//
// Rerunning a sweep resumes it: completed, pruned and failed trials are skipped, a trial left
// "running" by a killed sweep resumes from its last.pt (bit-exact on the CPU), and the results
// are recomputed from the store, so they end up identical to an uninterrupted sweep's.
// A trial that throws (a config error, a NaN loss, an injected fault) is recorded as failed with
// the message, and the sweep goes on; RunSweep returns the failed trials for the exit status. A stop request from outside (SIGUSR1, Slurm's warning)
// ends the current trial with a checkpoint and the sweep, leaving that trial "running".
//
// A cross-validated trial (sweep.cross_validation = K) is K training runs, one per fold, each
// with its own status: a rerun skips the finished folds and resumes the interrupted one.
//
// Test-only fault points (core/fault_injection.h): "sweep-trial" at the start of each training
// run (each fold's) with step = the trial's number, and "sweep-trial-N" at every training step
// of trial N ("sweep-trial-N-fold-K" for its fold K) with step = the global step.
#pragma once

#include <string>
#include <vector>

#include "distributed/process_context.h"
#include "experiments/sweeps/sweep_spec.h"

namespace angiotrain {

struct SweepRunOptions {
  int only_trial = -1;   // >= 0: run just this trial (one Slurm array task), no results written
  size_t table_rows = 20;  // rows of the ranked table printed at the end (0: all)
};

// What a `sweep run` ended with, the same on every rank.
struct SweepRunSummary {
  // The trials it ran (every trial, or only_trial) that are recorded as failed at the end, those
  // of an earlier invocation included (a rerun skips them): "NAME (SETTINGS): REASON", in plan order.
  std::vector<std::string> failed;
  size_t trials = 0;         // how many trials it ran or skipped (the plan's, or 1 with only_trial)
  bool interrupted = false;  // a stop request ended it (the current trial stays "running")
};

// Runs (or resumes) the sweep. Collective over context.comm. Prints the ranked table (rank 0)
// and writes results.csv/results.json. Throws Error when the store holds a different plan.
// A failed trial does not stop the sweep: the caller decides from the summary (`sweep run`
// exits non-zero unless --allow-failures).
//
// A trial recorded as "running" is resumed unless its process still runs on this host (another
// `sweep run` or array task has it: skipped, and listed as such); a stale one (its process is gone)
// and one recorded on another host (which cannot be checked: a requeued array task) are resumed.
SweepRunSummary RunSweep(const SweepSpec& spec, const ProcessContext& context, const SweepRunOptions& options = {});

// Creates the store (or checks that it holds this plan): plan.json and sweep.toml. Collective.
void PrepareSweepStore(const SweepSpec& spec, const SweepPlan& plan, const ProcessContext& context);
// The same in one process (`sweep run --slurm`, before it submits): throws Error naming plan.json
// when the store holds another plan.
void WriteSweepStore(const SweepSpec& spec, const SweepPlan& plan);
// The message saying that spec.dir holds another sweep's plan; "" when it holds none or this one.
std::string StoredPlanConflict(const SweepSpec& spec, const SweepPlan& plan);

}  // namespace angiotrain
