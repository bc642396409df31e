// `angiotrain train`: data-parallel training from a TOML config (experiments/trainer.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "experiments/train_config.h"
#include "experiments/trainer.h"
#include "launcher/commands.h"

namespace angiotrain {

namespace {

struct TrainOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool resume = false;
};

void RunTrain(const TrainOptions& o) {
  TrainConfig config = LoadTrainConfig(o.config_path);
  for (const auto& assignment : o.overrides) ApplyOverride(config, assignment);
  if (o.resume) config.train.resume = true;
  ValidateTrainConfig(config);
  const TrainSummary s = Train(config);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0)
    std::printf("train: %lld steps in %.1f s of training (%.1f samples/s), checkpoint %s\n",
                static_cast<long long>(s.steps_run), s.train_seconds, s.samples_per_second, s.checkpoint.c_str());
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
