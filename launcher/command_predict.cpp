// `angiotrain predict`: a K-ium submission from a checkpoint (experiments/training/trainer.h Predict).
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/path_checks.h"
#include "experiments/evaluation/submission.h"
#include "experiments/inference/prediction.h"
#include "launcher/commands.h"

namespace angiotrain {

void AddPredictCommand(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* cmd = app.add_subcommand(
      "predict", "Run a trained checkpoint over a volume file or a K-ium folder and write the submission "
                 "(the template's rows and columns) plus a sidecar of location probabilities");
  cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint written by train (e.g. out/run/last.pt)")->required();
  cmd->add_option("--input", o->input, "Volume file, or K-ium image folder (ingested at the model's resolution)")
      ->required();
  cmd->add_option("--template", o->template_path, "test.csv: the patients and column order to write")->required();
  cmd->add_option("--out", o->out, "Submission CSV to write")->required();
  cmd->add_option("--threshold", o->threshold,
                  "Location rule: mean+1std (the seed's), mean+Kstd, fixed:T, f1, youden, top:K, gate:RULE")
      ->capture_default_str();
  cmd->add_option("--thresholds", o->thresholds,
                  "For f1/youden (and gates over them): the thresholds learnt on validation (default: beside the "
                  "checkpoint, e.g. out/run/best.thresholds.json for best.pt)");
  cmd->add_option("--batch-size", o->batch_size, "Patients per forward pass")->capture_default_str();
  cmd->callback([o] {
    RequireFile(o->checkpoint, "a checkpoint written by train (last.pt)");
    RequireFile(o->template_path, "a submission template CSV (test.csv)");
    for (const std::string& output : {o->out, ProbabilitiesPathFor(o->out)})
      RefuseOutputOverInput(output, {o->checkpoint, o->input, o->template_path});
    const int64_t n = Predict(*o, MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
      std::printf("predict: wrote %s (%lld patients) and %s\n", o->out.c_str(), static_cast<long long>(n),
                  ProbabilitiesPathFor(o->out).c_str());
  });
}

}  // namespace angiotrain
