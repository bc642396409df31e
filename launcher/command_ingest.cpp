// `angiotrain ingest`: a K-ium folder, or any layout through a manifest, into one HDF5 volume
// file (parallel under mpirun).
#include <mpi.h>

#include <cstdio>

#include "datasets/ingest.h"
#include "launcher/commands.h"

namespace angiotrain {

void AddIngestCommand(CLI::App& app) {
  auto options = std::make_shared<IngestOptions>();
  CLI::App* cmd = app.add_subcommand(
      "ingest", "Decode a K-ium folder ({Index}{View}.jpg + label CSV), or JPEG/PNG/DICOM files in any layout "
                "listed in a manifest, into one HDF5 volume file; under mpirun each rank decodes its share and "
                "writes its rows (parallel HDF5)");
  CLI::Option* input = cmd->add_option("--input", options->input_dir, "Folder of view images, e.g. DIR/train_set");
  CLI::Option* manifest = cmd->add_option(
      "--manifest", options->manifest,
      "Manifest CSV instead of --input: columns Index, View (LI-A ... RV-B), Path (relative to the manifest's "
      "folder), optionally Aneurysm and the 21 locations");
  input->excludes(manifest);
  manifest->excludes(input);
  cmd->add_flag("--allow-outside", options->allow_outside,
                "Let manifest paths leave the manifest's folder (through '..' or a symbolic link)");
  cmd->add_option("--frame", options->frame,
                  "Multi-frame DICOM: peak (the frame of greatest contrast filling), minip (minimum-intensity "
                  "projection over the frames) or N (frame N, from 1)")
      ->default_val("peak");
  cmd->add_option("--labels", options->labels_csv,
                  "Label CSV (train.csv); without it the file has no labels, as for a test set (its test.csv is a "
                  "template whose labels are all 0)");
  cmd->add_option("--out", options->out_path, "Volume file to write (written atomically)")->required();
  cmd->add_option("--resolution", options->resolution, "Stored size R of each view (R x R)")
      ->default_val(256);
  cmd->add_flag("--skip-bad", options->skip_bad,
                "Leave out patients with bad or missing images and report them instead of failing");
  cmd->add_option("--skip-report", options->skip_report, "Report of skipped patients (default OUT.skipped.csv)");
  cmd->add_option("--patients-per-round", options->patients_per_round,
                  "Patients each rank decodes between collective writes (memory: R*R*8 bytes each)")
      ->default_val(16)
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--quiet", [options](int64_t) { options->progress = false; }, "No progress line");
  cmd->callback([options, input, manifest] {
    if (input->count() == 0 && manifest->count() == 0) throw CLI::RequiredError("--input or --manifest");
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    IngestSummary s = IngestKiumFolder(*options, MPI_COMM_WORLD);
    if (rank == 0) {
      std::printf("ingested %lld patients (%lld views) into %s at %dx%d in %.1f s with %d rank(s): %.0f images/s\n",
                  static_cast<long long>(s.patients), static_cast<long long>(s.patients * 8),
                  options->out_path.c_str(), options->resolution, options->resolution, s.seconds, size,
                  s.seconds > 0 ? s.patients * 8 / s.seconds : 0.0);
      if (s.skipped > 0) {
        std::printf("skipped %lld patient(s); reasons in %s\n", static_cast<long long>(s.skipped),
                    s.skip_report.c_str());
      }
      if (s.every_label_zero) {
        std::fflush(stdout);
        std::fprintf(stderr,
                     "angiotrain: warning: %s: every label is 0 (Aneurysm and all 21 locations), as in a submission "
                     "template such as K-ium's test.csv; %s holds them as labels. Ingest a test set without --labels\n",
                     options->labels_csv.c_str(), options->out_path.c_str());
      }
    }
  });
}

}  // namespace angiotrain
