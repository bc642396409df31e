// The training job's batch script: a template with {{NAME}} slots filled by checked, quoted values.
#include "slurm/batch_script.h"

#include <map>

#include "core/error.h"

namespace angiotrain {
namespace {

// Why the script is shaped so:
// - Slurm sends the warning signal to the batch shell only (--signal=B:USR1@N), and bash runs a
//   trap only between commands, so srun runs in the background and the shell waits for it: the
//   trap interrupts `wait`, forwards SIGUSR1 to srun (which forwards it to every rank, where the
//   trainer checkpoints at the next step boundary and exits 0), and the shell waits again.
// - After a warned step the job requeues itself (scontrol requeue; --requeue allows it) and the
//   requeued job, SLURM_RESTART_COUNT > 0, resumes from output.dir/last.pt. A job restarted more
//   than slurm.max_requeues times (warnings, node failures) stops instead of looping.
// - Cancellation (scancel: SIGTERM to every process) kills the ranks; checkpoints are written
//   under a temporary name and renamed, so last.pt stays the last complete one.
// - The log is opened in append mode so that a requeued job adds to it.
// - sbatch exports the submitter's environment; an Open MPI launcher's variables in it would
//   make the srun-started ranks believe they belong to another job, so they are unset.
constexpr const char* kTrainTemplate = R"SH(#!/bin/bash
# angiotrain training job, written by `angiotrain slurm submit` (slurm/batch_script.cpp).
# Every value here was checked and quoted when it was written: change the config and resubmit
# rather than editing this file.
{{SBATCH}}
set -u

angiotrain={{ANGIOTRAIN}}
config={{CONFIG}}
checkpoint={{CHECKPOINT}}
resume_first={{RESUME}}
max_requeues={{MAX_REQUEUES}}
restarts=${SLURM_RESTART_COUNT:-0}
cd {{WORKDIR}} || exit 1

for name in $(compgen -e); do
  case "$name" in OMPI_MCA_*) ;; OMPI_*|PMIX_*|OPAL_*|PRTE_*) unset "$name" ;; esac
done
{{EXPORTS}}
log() { echo "angiotrain-slurm: $*"; }
log "job ${SLURM_JOB_ID:-?} (restart ${restarts}) on ${SLURM_JOB_NUM_NODES:-?} node(s) ${SLURM_JOB_NODELIST:-?}, ${SLURM_NTASKS:-?} rank(s)"
if [ "$restarts" -gt "$max_requeues" ]; then
  log "started ${restarts} times, more than slurm.max_requeues=${max_requeues}: not training again; ${checkpoint} holds the last checkpoint" >&2
  exit 3
fi
resume=()
if [ -f "$checkpoint" ] && { [ "$restarts" -gt 0 ] || [ "$resume_first" = 1 ]; }; then
  resume=(--resume)
  log "resuming from ${checkpoint}"
fi

warned=0
interrupted=0
step=""
on_warning() {
  warned=1
  interrupted=1
  log "warning signal: every rank checkpoints at its next step and stops, then the job requeues"
  if [ -n "$step" ]; then kill -USR1 "$step" 2>/dev/null || true; fi
}
trap on_warning USR1

rc=0
if [ "$warned" = 0 ]; then
  srun --mpi={{MPI}} --kill-on-bad-exit=1 "$angiotrain" train --config "$config" ${resume[@]+"${resume[@]}"} &
  step=$!
  # `wait` returns early when the trap runs; wait again until srun itself has ended.
  while :; do
    interrupted=0
    wait "$step"
    rc=$?
    if [ "$interrupted" = 1 ] && [ "$rc" -gt 128 ] && kill -0 "$step" 2>/dev/null; then continue; fi
    break
  done
fi

if [ "$warned" = 1 ]; then
  if [ "$restarts" -ge "$max_requeues" ]; then
    log "not requeued: requeued ${restarts} times already (slurm.max_requeues=${max_requeues}); ${checkpoint} holds the last checkpoint" >&2
    exit 3
  fi
  log "training step ended with status ${rc}; requeueing job ${SLURM_JOB_ID} (restart $((restarts + 1)) of at most ${max_requeues})"
  scontrol requeue "$SLURM_JOB_ID" || { log "scontrol requeue ${SLURM_JOB_ID} failed" >&2; exit 1; }
  exit 0
fi
if [ "$rc" -ne 0 ]; then log "training step failed with status ${rc}" >&2; fi
exit "$rc"
)SH";

// One pass over the template: each {{NAME}} is replaced by its value (values are not scanned
// again, so a value holding braces stays as it is); a slot without a value is a bug in this file.
std::string Fill(const std::string& text, const std::map<std::string, std::string>& values) {
  std::string out;
  size_t at = 0;
  for (size_t open; (open = text.find("{{", at)) != std::string::npos;) {
    const size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) break;
    const auto value = values.find(text.substr(open + 2, close - open - 2));
    if (value == values.end()) throw Error("batch script: no value for " + text.substr(open, close - open + 2));
    out += text.substr(at, open - at) + value->second;
    at = close + 2;
  }
  return out + text.substr(at);
}

std::string SbatchLine(const std::string& option, const std::string& value) {
  if (!IsSbatchWord(value))
    throw Error("batch script: the value of #SBATCH --" + option + " '" + value +
                "' may hold only letters, digits and ._-/%+:@,=");
  return "#SBATCH --" + option + "=" + value + "\n";
}

}  // namespace

std::string ShellQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw Error("batch script: '" + value.substr(0, 60) + "' holds a control character, which cannot be quoted");
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string TrainBatchScript(const TrainJob& job) {
  const SlurmConfig& s = job.slurm;
  std::string sbatch;
  sbatch += SbatchLine("job-name", s.job_name);
  if (!s.partition.empty()) sbatch += SbatchLine("partition", s.partition);
  if (!s.account.empty()) sbatch += SbatchLine("account", s.account);
  if (!s.qos.empty()) sbatch += SbatchLine("qos", s.qos);
  sbatch += SbatchLine("nodes", std::to_string(s.nodes));
  sbatch += SbatchLine("ntasks-per-node", std::to_string(RanksPerNode(s)));
  // One GPU per rank, bound to it (Slurm sets each task's CUDA_VISIBLE_DEVICES; where a cluster
  // shows every GPU to every task, angiotrain takes GPU local_rank).
  if (s.gpus_per_node > 0) sbatch += SbatchLine("gpus-per-task", "1");
  sbatch += SbatchLine("cpus-per-task", std::to_string(s.cpus_per_task));
  if (!s.mem.empty()) sbatch += SbatchLine("mem", s.mem);
  if (!s.time.empty()) sbatch += SbatchLine("time", s.time);
  sbatch += SbatchLine("output", job.log);
  sbatch += "#SBATCH --open-mode=append\n";
  sbatch += "#SBATCH --requeue\n";
  sbatch += SbatchLine("signal", "B:USR1@" + std::to_string(s.signal_seconds));
  for (const auto& option : s.extra) {
    const auto eq = option.find('=');
    const std::string name = option.substr(2, eq == std::string::npos ? eq : eq - 2);
    if (eq == std::string::npos) {
      if (!IsSbatchWord(name)) throw Error("batch script: #SBATCH option '" + option + "' is not a plain word");
      sbatch += "#SBATCH --" + name + "\n";
    } else {
      sbatch += SbatchLine(name, option.substr(eq + 1));
    }
  }
  sbatch.pop_back();  // the template's line ends it

  std::string exports;
  if (!s.network_interface.empty()) {
    // Across nodes: NCCL's bootstrap and socket transport and Open MPI's TCP messages use this
    // interface (NCCL still prefers InfiniBand verbs where it finds them).
    exports += "export NCCL_SOCKET_IFNAME=" + ShellQuote(s.network_interface) + "\n";
    exports += "export OMPI_MCA_btl_tcp_if_include=" + ShellQuote(s.network_interface) + "\n";
  }
  for (const auto& entry : s.env) {
    const auto eq = entry.find('=');
    exports += "export " + entry.substr(0, eq) + "=" + ShellQuote(entry.substr(eq + 1)) + "\n";
  }
  return Fill(kTrainTemplate, {{"SBATCH", sbatch},
                               {"ANGIOTRAIN", ShellQuote(job.angiotrain)},
                               {"CONFIG", ShellQuote(job.config)},
                               {"CHECKPOINT", ShellQuote(job.checkpoint)},
                               {"RESUME", job.resume ? "1" : "0"},
                               {"MAX_REQUEUES", std::to_string(s.max_requeues)},
                               {"WORKDIR", ShellQuote(job.workdir)},
                               {"EXPORTS", exports},
                               {"MPI", s.mpi}});
}

}  // namespace angiotrain
