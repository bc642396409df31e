// `angiotrain export`: a checkpoint as a torchvision state_dict plus its description
// (experiments/inference/model_export.h).
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/path_checks.h"
#include "experiments/inference/model_export.h"
#include "launcher/commands.h"

namespace angiotrain {

namespace {

struct ExportOptions {
  std::string checkpoint, out;
};

void RunExport(const ExportOptions& o) {
  RequireFile(o.checkpoint, "a checkpoint written by train (last.pt)");
  for (const std::string& output : {o.out, ExportDescriptionPath(o.out)})
    RefuseOutputOverInput(output, {o.checkpoint});
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return;  // a single-process command
  const ExportSummary s = ExportCheckpoint(o.checkpoint, o.out);
  std::printf("export: wrote %s (%lld tensors, %lld parameters) and %s\n", s.weights.c_str(),
              static_cast<long long>(s.tensors), static_cast<long long>(s.parameters), s.description.c_str());
}

}  // namespace

void AddExportCommand(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a checkpoint's weights as a PyTorch state_dict under torchvision's EfficientNet names "
                "(OUT), with the 8-channel stem, the task head and the input described in OUT.json");
  cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint written by train (e.g. out/run/last.pt)")->required();
  cmd->add_option("--out", o->out, "State_dict file to write (e.g. model.pt); OUT.json is written beside it")
      ->required();
  cmd->callback([o] { RunExport(*o); });
}

}  // namespace angiotrain
