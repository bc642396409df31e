// `angiotrain explain`: Grad-CAM of one patient's chosen output over its 8 views, as one PNG
// (experiments/reports/report_grad_cam.h).
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/path_checks.h"
#include "experiments/reports/report_grad_cam.h"
#include "launcher/commands.h"

namespace angiotrain {

void AddExplainCommand(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "explain", "Grad-CAM of one patient: where a convolutional stage of the model (the last, unless --layer) "
                 "found the chosen output, overlaid on the 8 views as one 2x4 PNG with the predicted probability");
  cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint written by train (e.g. out/run/last.pt)")->required();
  cmd->add_option("--input", o->input, "Volume file, or K-ium image folder (ingested at the model's resolution)")
      ->required();
  cmd->add_option("--patient", o->patient, "The patient's K-ium Index")->required();
  cmd->add_option("--target", o->target, "Output to explain: presence, or a location name (e.g. L_MCA)")
      ->capture_default_str();
  cmd->add_option("--layer", o->layer,
                  "features block whose output the map is taken over: features.8 (the last stage, 1/32 of the "
                  "input side) down to features.0; features.4 is 1/16, features.3 1/8")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "PNG to write")->required();
  cmd->callback([o] {
    RequireFile(o->checkpoint, "a checkpoint written by train (last.pt)");
    RefuseOutputOverInput(o->out, {o->checkpoint, o->input});
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;  // a single-process command
    const PatientGradCam cam = Explain(*o);
    std::printf("explain: patient %d, %s p = %.6f, Grad-CAM over features.%d, a %dx%d map; wrote %s\n", cam.index,
                cam.target.c_str(), cam.probability, cam.layer, cam.map_side, cam.map_side, o->out.c_str());
  });
}

}  // namespace angiotrain
