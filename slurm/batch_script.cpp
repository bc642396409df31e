// The batch scripts of a training job and of a sweep's job array and results job: templates with
// {{NAME}} slots filled by checked, quoted values.
#include "slurm/batch_script.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace angiotrain {
namespace {

// Why the script is shaped so (one template for a training job and for a task of a sweep's job
// array; the slots say what the step runs and how it resumes):
// - Slurm sends the warning signal to the batch shell only (--signal=B:USR1@N), and bash runs a
//   trap only between commands, so srun runs in the background and the shell waits for it: the
//   trap interrupts `wait`, forwards SIGUSR1 to srun (which forwards it to every rank, where the
//   trainer checkpoints at the next step boundary and exits 0), and the shell waits again.
// - After a warned step the job requeues itself (scontrol requeue; --requeue allows it) and the
//   requeued job, SLURM_RESTART_COUNT > 0, resumes from output.dir/last.pt (an array task: the
//   trial store resumes its trial from the trial's last.pt). A job restarted more
//   than slurm.max_requeues times (warnings, node failures) stops instead of looping.
// - Cancellation (scancel: SIGTERM to every process) kills the ranks; checkpoints are written
//   under a temporary name and renamed, so last.pt stays the last complete one.
// - The log is opened in append mode so that a requeued job adds to it.
// - The environment of the job (kJobEnvironment, shared with the sweep's results job).
// The environment of every job's shell, and its log function. sbatch exports the submitter's
// environment; an Open MPI launcher's variables in it would make the srun-started ranks believe
// they belong to another job, so they are unset; then the network interface and slurm.env.
constexpr const char* kJobEnvironment = R"SH(for name in $(compgen -e); do
  case "$name" in OMPI_MCA_*) ;; OMPI_*|PMIX_*|OPAL_*|PRTE_*) unset "$name" ;; esac
done
{{EXPORTS}}
log() { echo "angiotrain-slurm: $*"; })SH";

constexpr const char* kStepTemplate = R"SH(#!/bin/bash
# {{TITLE}}, written by `{{WRITER}}` (slurm/batch_script.cpp).
# Every value here was checked and quoted when it was written: change the config and resubmit
# rather than editing this file.
{{SBATCH}}
set -u

angiotrain={{ANGIOTRAIN}}
{{VARIABLES}}
max_requeues={{MAX_REQUEUES}}
restarts=${SLURM_RESTART_COUNT:-0}
cd {{WORKDIR}} || exit 1

{{ENVIRONMENT}}
log "job ${SLURM_JOB_ID:-?} (restart ${restarts}) on ${SLURM_JOB_NUM_NODES:-?} node(s) ${SLURM_JOB_NODELIST:-?}, ${SLURM_NTASKS:-?} rank(s)"
if [ "$restarts" -gt "$max_requeues" ]; then
  log "started ${restarts} times, more than slurm.max_requeues=${max_requeues}: not training again; ${kept}" >&2
  exit 3
fi
{{RESUME}}
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
  srun --mpi={{MPI}} --kill-on-bad-exit=1 {{STEP}} &
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
    log "not requeued: requeued ${restarts} times already (slurm.max_requeues=${max_requeues}); ${kept}" >&2
    exit 3
  fi
  log "training step ended with status ${rc}; requeueing job ${SLURM_JOB_ID} (restart $((restarts + 1)) of at most ${max_requeues})"
  scontrol requeue "$SLURM_JOB_ID" || { log "scontrol requeue ${SLURM_JOB_ID} failed" >&2; exit 1; }
  exit 0
fi
if [ "$rc" -ne 0 ]; then log "training step failed with status ${rc}" >&2; fi
exit "$rc"
)SH";

// The slots of kStepTemplate for `angiotrain slurm submit`: one training run, which resumes from
// output.dir/last.pt after a requeue (or from the first start with train.resume).
constexpr const char* kTrainVariables = R"SH(config={{CONFIG}}
checkpoint={{CHECKPOINT}}
resume_first={{RESUME_FIRST}}
kept="${checkpoint} holds the last checkpoint")SH";
constexpr const char* kTrainResume = R"SH(resume=()
if [ -f "$checkpoint" ] && { [ "$restarts" -gt 0 ] || [ "$resume_first" = 1 ]; }; then
  resume=(--resume)
  log "resuming from ${checkpoint}"
fi)SH";
constexpr const char* kTrainStep = R"SH("$angiotrain" train --config "$config" ${resume[@]+"${resume[@]}"})SH";

// The slots for one array task of `angiotrain sweep run --slurm`: trial SLURM_ARRAY_TASK_ID of the
// sweep. The trial store resumes a trial it finds "running" with a last.pt by itself, so a
// requeued task needs no flag; a finished trial (completed or failed) is skipped.
constexpr const char* kSweepVariables = R"SH(sweep_file={{SWEEP_FILE}}
store={{STORE}}
trial=${SLURM_ARRAY_TASK_ID:?this script runs as a task of a Slurm job array (sbatch --array)}
kept="the trial store ${store} keeps trial ${trial} where it stopped (a sweep run resumes it from its last.pt)")SH";
constexpr const char* kSweepResume = R"SH(log "sweep trial ${trial} of ${store}")SH";
constexpr const char* kSweepStep = R"SH("$angiotrain" sweep run --config "$sweep_file" --dir "$store" --trial "$trial")SH";

// The results job of a sweep array: one task, after every array task has ended (afterany: also
// failed or cancelled ones, whose trials the table lists as such). `sweep status --write` ranks
// the store into results.csv/json; the report is what `sweep run` writes at its end, and its
// failure only warns (as there).
constexpr const char* kSweepResultsTemplate = R"SH(#!/bin/bash
# angiotrain sweep results job, written by `angiotrain sweep run --slurm` (slurm/batch_script.cpp):
# runs when every task of array job {{ARRAY_ID}} has ended and ranks the trial store.
# Every value here was checked and quoted when it was written.
{{SBATCH}}
set -u

angiotrain={{ANGIOTRAIN}}
store={{STORE}}
cd {{WORKDIR}} || exit 1

{{ENVIRONMENT}}
log "job ${SLURM_JOB_ID:-?}: results of the sweep in ${store} (array job {{ARRAY_ID}} has ended)"
srun --mpi={{MPI}} --ntasks=1 "$angiotrain" sweep status "$store" --write --rows 0
rc=$?
if [ "$rc" -ne 0 ]; then log "sweep status failed with status ${rc}" >&2; exit "$rc"; fi
srun --mpi={{MPI}} --ntasks=1 "$angiotrain" report --sweep "$store" --examples 1 || log "no report (status $?)" >&2
exit 0
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

// Where the job may run: partition, account, QoS (shared by every job of a submission).
std::string PlacementLines(const SlurmConfig& s) {
  std::string sbatch;
  if (!s.partition.empty()) sbatch += SbatchLine("partition", s.partition);
  if (!s.account.empty()) sbatch += SbatchLine("account", s.account);
  if (!s.qos.empty()) sbatch += SbatchLine("qos", s.qos);
  return sbatch;
}

// The #SBATCH lines of a training step (a training job, or one task of a sweep array): the
// resources of the [slurm] section, the log, requeue and the warning signal, the extra options.
std::string StepSbatchLines(const SlurmConfig& s, const std::string& log) {
  std::string sbatch;
  sbatch += SbatchLine("job-name", s.job_name);
  sbatch += PlacementLines(s);
  sbatch += SbatchLine("nodes", std::to_string(s.nodes));
  sbatch += SbatchLine("ntasks-per-node", std::to_string(RanksPerNode(s)));
  // One GPU per rank, bound to it (Slurm sets each task's CUDA_VISIBLE_DEVICES; where a cluster
  // shows every GPU to every task, angiotrain takes GPU local_rank).
  if (s.gpus_per_node > 0) sbatch += SbatchLine("gpus-per-task", "1");
  sbatch += SbatchLine("cpus-per-task", std::to_string(s.cpus_per_task));
  if (!s.mem.empty()) sbatch += SbatchLine("mem", s.mem);
  if (!s.time.empty()) sbatch += SbatchLine("time", s.time);
  sbatch += SbatchLine("output", log);
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
  return sbatch;
}

// The environment the script exports: the network interface and slurm.env, values quoted.
std::string Exports(const SlurmConfig& s) {
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
  return exports;
}

std::string JobEnvironment(const SlurmConfig& s) { return Fill(kJobEnvironment, {{"EXPORTS", Exports(s)}}); }

std::string StepScript(const SlurmConfig& s, const std::string& title, const std::string& writer,
                       const std::string& sbatch, const std::string& variables, const std::string& resume,
                       const std::string& step, const std::string& workdir, const std::string& angiotrain) {
  std::string lines = sbatch;
  lines.pop_back();  // the template's line ends it
  return Fill(kStepTemplate, {{"TITLE", title},
                              {"WRITER", writer},
                              {"SBATCH", lines},
                              {"ANGIOTRAIN", ShellQuote(angiotrain)},
                              {"VARIABLES", variables},
                              {"MAX_REQUEUES", std::to_string(s.max_requeues)},
                              {"WORKDIR", ShellQuote(workdir)},
                              {"ENVIRONMENT", JobEnvironment(s)},
                              {"RESUME", resume},
                              {"MPI", s.mpi},
                              {"STEP", step}});
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
  const std::string variables = Fill(kTrainVariables, {{"CONFIG", ShellQuote(job.config)},
                                                       {"CHECKPOINT", ShellQuote(job.checkpoint)},
                                                       {"RESUME_FIRST", job.resume ? "1" : "0"}});
  return StepScript(job.slurm, "angiotrain training job", "angiotrain slurm submit", StepSbatchLines(job.slurm, job.log),
                    variables, kTrainResume, kTrainStep, job.workdir, job.angiotrain);
}

std::string SweepArrayScript(const SweepArrayJob& job) {
  if (job.trials < 1) throw Error("batch script: a sweep array needs at least one trial");
  const int64_t parallel = std::min<int64_t>(job.slurm.array_parallel, job.trials);
  const std::string array = "0-" + std::to_string(job.trials - 1) + "%" + std::to_string(parallel);
  const std::string sbatch = StepSbatchLines(job.slurm, job.array_log) + SbatchLine("array", array);
  const std::string variables =
      Fill(kSweepVariables, {{"SWEEP_FILE", ShellQuote(job.sweep_file)}, {"STORE", ShellQuote(job.store)}});
  return StepScript(job.slurm, "angiotrain sweep trial (one task of a job array)", "angiotrain sweep run --slurm",
                    sbatch, variables, kSweepResume,
                    std::string(kSweepStep) + (job.allow_failures ? " --allow-failures" : ""), job.workdir,
                    job.angiotrain);
}

std::string SweepResultsScript(const SweepArrayJob& job, const std::string& array_job_id) {
  const SlurmConfig& s = job.slurm;
  std::string sbatch;
  sbatch += SbatchLine("job-name", s.job_name + "-results");
  sbatch += PlacementLines(s);
  sbatch += "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n";
  sbatch += SbatchLine("cpus-per-task", std::to_string(s.cpus_per_task));
  if (!s.time.empty()) sbatch += SbatchLine("time", s.time);
  sbatch += SbatchLine("output", job.results_log);
  sbatch += "#SBATCH --open-mode=append\n";
  sbatch += SbatchLine("dependency", "afterany:" + array_job_id);
  sbatch.pop_back();
  return Fill(kSweepResultsTemplate, {{"SBATCH", sbatch},
                                      {"ARRAY_ID", array_job_id},
                                      {"ANGIOTRAIN", ShellQuote(job.angiotrain)},
                                      {"STORE", ShellQuote(job.store)},
                                      {"WORKDIR", ShellQuote(job.workdir)},
                                      {"ENVIRONMENT", JobEnvironment(s)},
                                      {"MPI", s.mpi}});
}

}  // namespace angiotrain
