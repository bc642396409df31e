// `angiotrain sweep plan|run|status`: hyperparameter sweeps from a TOML file (experiments/sweeps/sweep_spec.h),
// run as trials in this MPI job (experiments/sweeps/sweep_runner.h) into a trial store (sweep_store.h),
// or with --slurm as a Slurm job array, one trial per task, and a results job (slurm/batch_script.h).
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/path_checks.h"
#include "experiments/sweeps/sweep_runner.h"
#include "experiments/sweeps/sweep_spec.h"
#include "experiments/sweeps/sweep_store.h"
#include "experiments/training/trainer.h"
#include "experiments/reports/report_sweep.h"
#include "launcher/commands.h"
#include "slurm/batch_script.h"
#include "slurm/sbatch.h"
#include "slurm/slurm_config.h"

namespace angiotrain {

namespace {

struct SweepOptions {
  std::string config_path;
  std::string dir;       // overrides sweep.dir
  int trial = -1;
  size_t rows = 20;
  bool write = false;
  bool slurm = false;
  bool dry_run = false;
  bool allow_failures = false;
};

// `sweep run` ends non-zero when a trial it ran is recorded as failed (after every other trial
// has run and the results are written), as Ray Tune's fit does, unless --allow-failures says that
// failures are expected. Every rank holds the same summary, so every rank throws alike.
void RequireNoFailedTrials(const SweepRunSummary& summary, const SweepSpec& spec, const SweepOptions& o) {
  if (summary.failed.empty() || o.allow_failures) return;
  std::string message = "sweep: " + std::to_string(summary.failed.size()) + " of " + std::to_string(summary.trials) +
                        " trial(s) failed (recorded in " + spec.dir + "; a rerun skips them; --allow-failures "
                        "exits 0 when failures are expected):";
  for (const std::string& line : summary.failed) message += "\n  " + line;
  throw CollectiveError(message);
}

// The same file on every rank gives the same error everywhere: one message, a clean exit.
SweepSpec CheckedSpec(const SweepOptions& o) {
  try {
    RequireFile(o.config_path, "a sweep file (TOML)");
    SweepSpec spec = LoadSweepSpec(o.config_path);
    if (!o.dir.empty()) spec.dir = o.dir;
    CheckSweepDir(spec, !o.dir.empty());
    return spec;
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    throw CollectiveError(e.what());
  }
}

int WorldRank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// `sweep run --slurm`: the store is made here (so that the array's tasks only read its plan),
// then the job array (one trial per task) and the results job that waits for it are submitted.
// Everything is checked before anything is written or submitted.
void SubmitSweep(const SweepOptions& o) {
  namespace fs = std::filesystem;
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > 1) throw CollectiveError("sweep run --slurm: run it once, not under mpirun (each array task's srun starts the ranks)");
  if (o.trial >= 0) throw Error("sweep run: --trial and --slurm do not go together (each array task runs its own trial)");
  SweepSpec spec = CheckedSpec(o);
  if (spec.method == SweepMethod::kHalving)
    throw Error(spec.path + ": sweep.method = \"halving\" cannot run as a Slurm job array: it decides at each rung "
                "from the trials that have reached it, so its trials run one after another; run `angiotrain sweep "
                "run` in one job (under srun or mpirun), or choose method grid or random for --slurm");
  SlurmConfig slurm = LoadSlurmConfig(spec.path);
  ValidateSlurmConfig(slurm);
  // The tasks run in this folder (sbatch's default), so the sweep's relative paths mean there
  // what they mean here; the sweep file and the store are named absolutely.
  spec.path = fs::absolute(spec.path).lexically_normal().string();
  spec.dir = fs::absolute(spec.dir).lexically_normal().string();
  const SweepPlan plan = PlanSweep(spec);
  if (plan.trials.empty()) throw Error(spec.path + ": the sweep plans no trials");
  const std::string conflict = StoredPlanConflict(spec, plan);
  if (!conflict.empty()) throw Error(conflict);

  const fs::path job_dir = fs::path(spec.dir) / "slurm";
  SweepArrayJob job;
  job.slurm = slurm;
  job.workdir = fs::current_path().string();
  job.angiotrain = fs::read_symlink("/proc/self/exe").string();
  job.sweep_file = spec.path;
  job.store = spec.dir;
  job.trials = static_cast<int64_t>(plan.trials.size());
  job.allow_failures = o.allow_failures;
  job.array_log = slurm.output.empty() ? (job_dir / "trial-%A_%a.out").string() : slurm.output;
  job.results_log = (job_dir / "results-%j.out").string();
  for (const std::string& log : {job.array_log, job.results_log})
    if (!IsSbatchWord(log))
      throw Error("sweep.dir " + spec.dir + ": the job log " + log + " would go into an #SBATCH line, which takes "
                  "only letters, digits and ._-/%+:@,=; choose such a sweep.dir (or --dir)");
  const std::string array_script = SweepArrayScript(job);
  const std::string array_path = (job_dir / "sweep-array.sbatch").string();
  const std::string results_path = (job_dir / "sweep-results.sbatch").string();
  if (o.dry_run) {
    std::printf("# ---- %s: %lld trials, at most %lld at once\n%s", array_path.c_str(),
                static_cast<long long>(job.trials),
                static_cast<long long>(std::min(slurm.array_parallel, job.trials)), array_script.c_str());
    std::printf("# ---- %s: submitted after the array, with its job id for ARRAY_JOB_ID\n%s", results_path.c_str(),
                SweepResultsScript(job, "ARRAY_JOB_ID").c_str());
    return;
  }
  SbatchProgram();  // Slurm missing: say so before writing anything

  WriteSweepStore(spec, plan);
  fs::create_directories(job_dir);
  WriteFileAtomically(array_path, array_script);
  const std::string array_id = SubmitBatchScript(array_path);
  std::printf("%s\n", array_id.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "sweep: array job %s: %lld trials, at most %lld at once (%s; logs %s)\n", array_id.c_str(),
               static_cast<long long>(job.trials), static_cast<long long>(std::min(slurm.array_parallel, job.trials)),
               array_path.c_str(), job.array_log.c_str());
  std::string results_id;
  try {
    WriteFileAtomically(results_path, SweepResultsScript(job, array_id));
    results_id = SubmitBatchScript(results_path);
  } catch (const Error& e) {
    throw Error("sweep: array job " + array_id + " is submitted, but not the results job: " + e.what() +
                "; once the array has ended, run `angiotrain sweep status " + spec.dir + " --write`");
  }
  std::printf("%s\n", results_id.c_str());
  std::fprintf(stderr, "sweep: results job %s runs when every task of %s has ended: %s/results.csv, results.json "
               "and report.html (`angiotrain sweep status %s` shows the trials at any time)\n",
               results_id.c_str(), array_id.c_str(), spec.dir.c_str(), spec.dir.c_str());
}

}  // namespace

void AddSweepCommand(CLI::App& app) {
  auto o = std::make_shared<SweepOptions>();
  CLI::App* cmd = app.add_subcommand("sweep", "Hyperparameter sweeps from a TOML file: plan, run (under mpirun "
                                              "like train), status; see README \"Sweeps\"");
  cmd->require_subcommand(1);
  CLI::App* plan = cmd->add_subcommand("plan", "Print the trials, the training runs they need and the cost");
  CLI::App* run = cmd->add_subcommand("run", "Run or resume the sweep's trials in this MPI job");
  CLI::App* status = cmd->add_subcommand("status", "Print the trials' states and the ranked results of a store");
  for (CLI::App* sub : {plan, run}) {
    sub->add_option("--config", o->config_path, "The sweep file (see experiments/configs/quickstart-sweep.toml)")
        ->required();
    sub->add_option("--dir", o->dir, "The trial store (overrides sweep.dir)");
  }
  run->add_option("--trial", o->trial, "Run only trial N (0-based; one Slurm array task), no results table");
  run->add_option("--rows", o->rows, "Rows of the ranked table to print (0: all)");
  run->add_flag("--slurm", o->slurm,
                "Submit the trials as a Slurm job array from the sweep file's [slurm] section (one trial per task, "
                "at most slurm.array_parallel at once) and a results job after it; print both job ids");
  run->add_flag("--dry-run", o->dry_run, "With --slurm: print both batch scripts; write and submit nothing");
  run->add_flag("--allow-failures", o->allow_failures,
                "Exit 0 even when trials failed (by default the sweep finishes the other trials, writes the "
                "results, lists the failed trials with their reasons and exits 1; with --slurm: each array task)");
  status->add_option("dir", o->dir, "The trial store (sweep.dir)")->required();
  status->add_option("--rows", o->rows, "Rows of the ranked table to print (0: all)");
  status->add_flag("--write", o->write, "Also (re)write results.csv and results.json from the store");

  plan->callback([o] {
    const SweepSpec spec = CheckedSpec(*o);
    if (WorldRank() == 0) std::printf("%s", PlanText(spec, PlanSweep(spec)).c_str());
  });
  run->callback([o] {
    if (o->slurm) return SubmitSweep(*o);
    if (o->dry_run) throw CollectiveError("sweep run: --dry-run goes with --slurm (sweep plan shows the trials)");
    const SweepSpec spec = CheckedSpec(*o);
    const auto context = ProcessContext::Create(MPI_COMM_WORLD, ParseDeviceRequest(spec.base.train.device));
    // Slurm's warning: checkpoint the current trial and stop (the array task then requeues).
    // SIGTERM (scancel) is left to kill: a rank waiting on a stop would hang in a collective whose
    // peer was already killed (srun --kill-on-bad-exit, mpirun), and last.pt is written
    // atomically, so the trial resumes from its last complete checkpoint either way.
    StopTrainingOnSignal(SIGUSR1);
    if (context.is_root()) std::printf("%s", PlanText(spec, PlanSweep(spec)).c_str());
    SweepRunOptions options;
    options.only_trial = o->trial;
    options.table_rows = o->rows;
    const SweepRunSummary summary = RunSweep(spec, context, options);
    if (context.is_root() && o->trial < 0) WriteSweepReportAfterSweep(spec.dir);  // experiments/reports/report_sweep.h
    RequireNoFailedTrials(summary, spec, *o);
  });
  status->callback([o] {
    if (WorldRank() != 0) return;
    RequireFile(o->dir + "/plan.json", "the plan of a sweep's trial store");
    std::printf("%s\n", TrialsTable(o->dir).c_str());
    if (o->write) {
      std::printf("%s", WriteResults(o->dir, o->rows).c_str());
    } else {
      const auto rows = CollectResults(o->dir);
      const StoredPlan plan = ReadStoredPlan(o->dir);
      std::printf("%s", ResultsTable(rows, plan.objective, o->rows, plan.cross_validation).c_str());
    }
  });
}

}  // namespace angiotrain
