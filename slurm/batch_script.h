// The batch script of a training job: #SBATCH lines from the [slurm] section, one MPI rank per
// GPU started by `srun --mpi=pmix`, and the warning-signal -> checkpoint -> requeue -> resume
// cycle (the template and why it is shaped so are in batch_script.cpp).
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

// `value` as one shell word between single quotes ('it'\''s'). Throws Error for a control
// character, which no quoting keeps on one line.
std::string ShellQuote(const std::string& value);

}  // namespace angiotrain
