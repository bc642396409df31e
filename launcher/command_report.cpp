// `angiotrain report`: the HTML page of a training run (experiments/report_run.h).
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/path_checks.h"
#include "experiments/report_run.h"
#include "launcher/commands.h"

namespace angiotrain {

void AddReportCommand(CLI::App& app) {
  auto o = std::make_shared<RunReportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Write one self-contained HTML page about a training run: ROC with a bootstrap band, "
                "precision-recall, curves per epoch, per-location scores, confusion counts, Grad-CAM examples, config");
  cmd->add_option("--run", o->run_dir, "The run's output.dir (config.toml, metrics.jsonl, validation_predictions.csv)")
      ->required();
  cmd->add_option("--out", o->out, "Page to write (default RUN/report.html)");
  cmd->add_option("--volume", o->volume, "Volume with the validation labels (default data.volume of RUN/config.toml)");
  cmd->add_option("--examples", o->examples, "Grad-CAM figures per kind: true/false positives, false negatives")
      ->capture_default_str()
      ->check(CLI::Range(0, 50));
  cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples of the patients for the ROC band")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000));
  cmd->callback([o] {
    RequireFolder(o->run_dir, "a training run's output.dir");
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;  // a single-process command
    const RunReportSummary s = WriteRunReport(*o);
    std::printf("report: wrote %s (%ld validation patients, %d Grad-CAM figures)\n", s.path.c_str(), s.patients,
                s.figures);
  });
}

}  // namespace angiotrain
