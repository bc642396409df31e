// The [slurm] section of a training config: what `angiotrain slurm submit` asks of the cluster.
// It lives in the same TOML file as the training keys but is its own schema (the trainer skips
// the table): nothing here changes a run's result, and `angiotrain train` never needs it.
//
// Every value that ends up in a batch script is checked here, once, before anything is written:
// values that go into #SBATCH lines must be plain words (letters, digits and ._-/%+:@,=), values
// that go into the shell body are quoted by the writer and may not hold control characters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace angiotrain {

struct SlurmConfig {
  std::string partition;      // "" : the cluster's default partition
  std::string account;        // "" : the user's default account
  std::string qos;            // "" : the default QoS
  std::string job_name = "angiotrain";
  int64_t nodes = 1;
  int64_t gpus_per_node = 0;   // one MPI rank per GPU; 0: a CPU job
  int64_t tasks_per_node = 0;  // ranks per node; 0: gpus_per_node (or 1 for a CPU job)
  int64_t cpus_per_task = 1;
  std::string mem;            // per node, e.g. "64G"; "" : the cluster's default
  std::string time;           // Slurm's forms: "MM", "HH:MM:SS", "D-HH", "D-HH:MM"...; "" : default
  std::string output;         // the job log (stdout and stderr); "": OUTPUT_DIR/slurm/train-%j.out
  // Seconds before the time limit at which Slurm sends the warning signal (SIGUSR1 to the batch
  // shell, which forwards it to the training step: checkpoint at the next step, then requeue).
  int64_t signal_seconds = 300;
  int64_t max_requeues = 3;   // requeues per job (SLURM_RESTART_COUNT) before it gives up
  // Sweeps only (`sweep run --slurm`): array tasks (trials) running at once, the array's %K.
  int64_t array_parallel = 4;
  std::string mpi = "pmix";   // srun --mpi=...
  // Network interface(s) for NCCL and Open MPI's TCP traffic across nodes (NCCL_SOCKET_IFNAME,
  // OMPI_MCA_btl_tcp_if_include), e.g. "ib0" or "eth0"; "" : let them choose.
  std::string network_interface;
  // Extra #SBATCH options from an allow-list (AllowedExtraOptions()), e.g. "--constraint=a100".
  std::vector<std::string> extra;
  // NAME=VALUE pairs exported in the batch script (quoted; any value without control characters).
  std::vector<std::string> env;
};

// The #SBATCH options `slurm.extra` may hold (without "--").
const std::vector<std::string>& AllowedExtraOptions();

// Reads the [slurm] table of the TOML file `path` (defaults when there is none). Throws Error
// "PATH: ..." naming the key for an unknown key or a wrongly typed value.
SlurmConfig LoadSlurmConfig(const std::string& path);
SlurmConfig ParseSlurmConfig(const std::string& toml_text, const std::string& origin);

// True for "slurm.KEY=VALUE" assignments (the ones ApplySlurmOverride takes).
bool IsSlurmOverride(const std::string& assignment);
// Applies "slurm.key=value"; list keys (extra, env) take one item per --set, appended.
void ApplySlurmOverride(SlurmConfig& config, const std::string& assignment);

// Checks every value (ranges, Slurm's formats, the allow-list, characters); throws Error
// "config key 'slurm.KEY': problem".
void ValidateSlurmConfig(const SlurmConfig& config);

// Ranks per node: tasks_per_node, else gpus_per_node, else 1.
int64_t RanksPerNode(const SlurmConfig& config);

// The time limit in seconds (0 when none); throws Error for a value not in Slurm's forms.
int64_t TimeLimitSeconds(const std::string& time);

// Whether `value` may stand unquoted in an #SBATCH line: non-empty, letters, digits and ._-/%+:@,=
bool IsSbatchWord(const std::string& value);

}  // namespace angiotrain
