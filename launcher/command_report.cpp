// `angiotrain report`: the HTML page of a training run (experiments/reports/report_run.h) or of a
// sweep's trial store (experiments/reports/report_sweep.h).
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/path_checks.h"
#include "experiments/reports/report_grad_cam.h"
#include "experiments/reports/report_run.h"
#include "experiments/reports/report_sweep.h"
#include "launcher/commands.h"

namespace angiotrain {

void AddReportCommand(CLI::App& app) {
  auto o = std::make_shared<RunReportOptions>();
  auto sweep = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Write one self-contained HTML page about a training run (ROC with a bootstrap band, "
                "precision-recall, curves per epoch, per-location scores, confusion counts, Grad-CAM examples, "
                "config) or about a sweep (ranked trials linked to their pages, the objective against each axis)");
  auto* run = cmd->add_option("--run", o->run_dir,
                              "The run's output.dir (config.toml, metrics.jsonl, validation_predictions.csv)");
  auto* store = cmd->add_option("--sweep", *sweep, "A sweep's trial store (sweep.dir): its page and every trial's");
  run->excludes(store);
  cmd->add_option("--out", o->out, "Page to write (default RUN/report.html or DIR/report.html)");
  cmd->add_option("--volume", o->volume, "Volume with the validation labels (default data.volume of RUN/config.toml)");
  cmd->add_option("--examples", o->examples, "Grad-CAM figures per kind: true/false positives, false negatives")
      ->capture_default_str()
      ->check(CLI::Range(0, 50));
  cmd->add_option("--layer", o->layer,
                  "Grad-CAM stage of the figures, features.0 to features.8 (default features." +
                      std::to_string(kReportGradCamLayer) + ", the one that localises on the phantom)");
  cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples of the patients for the ROC band")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000));
  cmd->callback([o, sweep] {
    if (o->run_dir.empty() && sweep->empty()) throw CollectiveError("report: give --run DIR or --sweep DIR");
    try {
      ReportGradCamLayer(o->layer);  // before any page; the same answer on every rank
    } catch (const Error& e) {
      throw CollectiveError(e.what());
    }
    RequireFolder(sweep->empty() ? o->run_dir : *sweep, sweep->empty() ? "a training run's output.dir" : "a trial store");
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;  // a single-process command
    if (!sweep->empty()) {
      const SweepReportSummary s = WriteSweepReport(*sweep, o->out, o->examples, o->layer);
      std::printf("report: wrote %s (%d evaluations) and %d trial pages\n", s.path.c_str(), s.evaluations,
                  s.trial_pages);
      return;
    }
    const RunReportSummary s = WriteRunReport(*o);
    std::printf("report: wrote %s (%ld validation patients, %d Grad-CAM figures; figures of epoch %lld, %s)\n",
                s.path.c_str(), s.patients, s.figures, static_cast<long long>(s.epoch),
                std::filesystem::path(s.checkpoint).filename().c_str());
  });
}

}  // namespace angiotrain
