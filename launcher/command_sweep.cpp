// `angiotrain sweep plan|run|status`: hyperparameter sweeps from a TOML file (experiments/sweep_spec.h),
// run as trials in this MPI job (experiments/sweep_runner.h) into a trial store (sweep_store.h).
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/path_checks.h"
#include "experiments/sweep_runner.h"
#include "experiments/sweep_spec.h"
#include "experiments/sweep_store.h"
#include "experiments/trainer.h"
#include "experiments/report_sweep.h"
#include "launcher/commands.h"

namespace angiotrain {

namespace {

struct SweepOptions {
  std::string config_path;
  std::string dir;       // overrides sweep.dir
  int trial = -1;
  size_t rows = 20;
  bool write = false;
};

// The same file on every rank gives the same error everywhere: one message, a clean exit.
SweepSpec CheckedSpec(const SweepOptions& o) {
  try {
    RequireFile(o.config_path, "a sweep file (TOML)");
    SweepSpec spec = LoadSweepSpec(o.config_path);
    if (!o.dir.empty()) spec.dir = o.dir;
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
  status->add_option("dir", o->dir, "The trial store (sweep.dir)")->required();
  status->add_option("--rows", o->rows, "Rows of the ranked table to print (0: all)");
  status->add_flag("--write", o->write, "Also (re)write results.csv and results.json from the store");

  plan->callback([o] {
    const SweepSpec spec = CheckedSpec(*o);
    if (WorldRank() == 0) std::printf("%s", PlanText(spec, PlanSweep(spec)).c_str());
  });
  run->callback([o] {
    const SweepSpec spec = CheckedSpec(*o);
    const auto context = ProcessContext::Create(MPI_COMM_WORLD, ParseDeviceRequest(spec.base.train.device));
    StopTrainingOnSignal(SIGUSR1);  // Slurm's warning: checkpoint the current trial and stop
    if (context.is_root()) std::printf("%s", PlanText(spec, PlanSweep(spec)).c_str());
    SweepRunOptions options;
    options.only_trial = o->trial;
    options.table_rows = o->rows;
    RunSweep(spec, context, options);
    if (context.is_root() && o->trial < 0) WriteSweepReportAfterSweep(spec.dir);  // experiments/report_sweep.h
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
