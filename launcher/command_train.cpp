// `angiotrain train`: data-parallel training from a TOML config (experiments/training/trainer.h).
#include <mpi.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fault_injection.h"
#include "core/path_checks.h"
#include "experiments/training/epoch_evidence.h"
#include "experiments/monitoring/metrics_export.h"
#include "experiments/reports/report_run.h"
#include "experiments/training/train_config.h"
#include "experiments/training/trainer.h"
#include "launcher/commands.h"
#include "launcher/run_config.h"

namespace angiotrain {

namespace {

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool resume = false;
};

// The configuration of the run, with every check that can be made before anything is written:
// the config file, the values, the input files and the output folder. Every rank makes the same
// checks on the same files, so a failure is one CollectiveError (one message, a clean exit).
RunConfig CheckedConfig(const TrainOptions& o) {
  try {
    RequireFile(o.config_path, "a TOML file");
    RunConfig run = LoadRunConfig(o.config_path, o.overrides);
    if (o.resume) run.train.train.resume = true;
    ValidateRunConfig(run);
    const TrainConfig& config = run.train;
    RequireFile(config.data.volume, "a volume file made by angiotrain ingest (data.volume)");
    std::string init_file;
    if (config.model.init.rfind("torchvision:", 0) == 0) {
      init_file = config.model.init.substr(std::string("torchvision:").size());
      RequireFile(init_file, "a torchvision state_dict saved by torch.save (model.init)");
    }
    const std::string& dir = config.output.dir;
    if (std::filesystem::exists(dir) && !std::filesystem::is_directory(dir))
      throw Error(dir + ": is a file, expected a folder for the run's outputs (output.dir)");
    for (const char* name : {"last.pt", "config.toml", "metrics.jsonl", "validation_predictions.csv"})
      RefuseOutputOverInput(dir + "/" + name, {o.config_path, config.data.volume, init_file});
    return run;
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    throw CollectiveError(e.what());
  }
}

void RunTrain(const TrainOptions& o) {
  const RunConfig run = CheckedConfig(o);
  const TrainConfig& config = run.train;
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MaybeInjectFault("config", world_rank);  // test-only (core/fault_injection.h)
  const auto context = ProcessContext::Create(MPI_COMM_WORLD, ParseDeviceRequest(config.train.device));
  StopTrainingOnSignal(SIGUSR1);  // e.g. Slurm's warning signal: checkpoint at the next step and stop
  // Per-epoch validation evidence, thresholds learnt by f1/youden, best.pt (experiments/training/epoch_evidence.h).
  EpochEvidenceWriter evidence(config.output.dir,
                               context.is_root() ? LoadLabelsByIndex(config.data.volume) : LabelsByIndex{},
                               *FindChoice(ObjectiveChoices(), config.evaluation.objective),
                               ThresholdRule::Parse(config.evaluation.threshold));
  std::vector<TrainingObserver*> observers{&evidence};
  // [metrics]: this rank's exposer, discovery entry and pushes; a failure is pushed before it
  // leaves (experiments/monitoring/metrics_export.h).
  const auto endpoint = MetricsEndpoint::Open(run.metrics, config.output.dir, context.rank, context.local.rank,
                                              context.device.is_cuda() ? context.device.index() : -1);
  std::unique_ptr<TrainingMetrics> metrics;
  if (endpoint) observers.push_back((metrics = std::make_unique<TrainingMetrics>(endpoint, config)).get());
  TrainSummary s;
  try {
    s = Train(config, context, observers);
  } catch (const std::exception& e) {
    if (metrics) metrics->OnFailure(e);
    throw;
  }
  if (!context.is_root()) return;
  if (s.steps_run == 0 && s.end == RunEnd::kCompleted)
    std::printf("train: nothing to do: %s already holds the end of all %lld epochs\n", s.checkpoint.c_str(),
                static_cast<long long>(config.train.epochs));
  else
    std::printf("train: %s after %lld steps in %.1f s of training (%.1f samples/s), checkpoint %s\n",
                RunEndName(s.end).c_str(), static_cast<long long>(s.steps_run), s.train_seconds,
                s.samples_per_second, s.checkpoint.c_str());
  WriteRunReportAfterTraining(config.output.dir);  // output.dir/report.html (experiments/reports/report_run.h)
}

}  // namespace

void AddTrainCommand(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train an EfficientNet task model on a volume file, one data-parallel worker per MPI rank "
               "(run it under mpirun/srun); checkpoints and metrics go to output.dir");
  cmd->add_option("--config", o->config_path, "TOML configuration (see experiments/configs/quickstart.toml)")
      ->required();
  cmd->add_option("--set", o->overrides, "Override one key: section.key=value (repeatable)")->take_all();
  cmd->add_flag("--resume", o->resume, "Continue from output.dir/last.pt (same configuration required)");
  cmd->callback([o] { RunTrain(*o); });
}

}  // namespace angiotrain
