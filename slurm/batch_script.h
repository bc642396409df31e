// The batch script of a training job: #SBATCH lines from the [slurm] section, one MPI rank per
// GPU started by `srun --mpi=pmix`, and the warning-signal -> checkpoint -> requeue -> resume
// cycle (the template and why it is shaped so are in batch_script.cpp). A sweep on Slurm is two
// scripts: a job array whose task N runs trial N through the same cycle, and a results job that
// ranks the trial store once every task has ended.
//
// Nothing reaches the script unchecked: #SBATCH values are plain words (IsSbatchWord), and every
// value in the shell body is single-quoted by ShellQuote; control characters are refused.
#pragma once

#include <string>

#include "slurm/slurm_config.h"

namespace angiotrain {

struct TrainJob {
  SlurmConfig slurm;       // validated (ValidateSlurmConfig)
  std::string workdir;     // the folder the job runs in (relative paths of the config resolve here)
  std::string angiotrain;  // the binary every rank runs (absolute)
  std::string config;      // the job's training config (absolute)
  std::string checkpoint;  // output.dir/last.pt: resumed from after a requeue
  std::string log;         // the job's stdout and stderr (#SBATCH --output; a plain word)
  bool resume = false;     // resume from `checkpoint` on the first start too (train.resume)
};

// The whole script. Throws Error naming the value when one cannot be written safely.
std::string TrainBatchScript(const TrainJob& job);

// `angiotrain sweep run --slurm`: the [slurm] section of the sweep file, for every trial.
struct SweepArrayJob {
  SlurmConfig slurm;        // validated (ValidateSlurmConfig)
  std::string workdir;      // the folder the jobs run in (relative paths of the sweep resolve here)
  std::string angiotrain;   // the binary (absolute)
  std::string sweep_file;   // the sweep file (absolute)
  std::string store;        // the trial store, sweep.dir (absolute)
  int64_t trials = 0;       // the plan's trials: array tasks 0..trials-1
  std::string array_log;    // an array task's log (#SBATCH --output; %A array id, %a task id)
  std::string results_log;  // the results job's log
  bool allow_failures = false;  // each task runs its trial with --allow-failures (exits 0 when it fails)
};

// The job array: --array=0-(trials-1)%K (K = slurm.array_parallel, at most trials); task N runs
// `srun --mpi=... angiotrain sweep run --config SWEEP --dir STORE --trial N`, with the training
// job's resources, warning signal and bounded requeue (a requeued task resumes its trial).
std::string SweepArrayScript(const SweepArrayJob& job);
// The results job: one task after every task of `array_job_id` has ended (afterany), running
// `sweep status STORE --write` (results.csv, results.json) and `report --sweep STORE`.
std::string SweepResultsScript(const SweepArrayJob& job, const std::string& array_job_id);

// `value` as one shell word between single quotes ('it'\''s'). Throws Error for a control
// character, which no quoting keeps on one line.
std::string ShellQuote(const std::string& value);

}  // namespace angiotrain
