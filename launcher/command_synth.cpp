// `angiotrain synth`: writes a phantom K-ium dataset (synthetic angiograms with known aneurysms).
#include <mpi.h>

#include <chrono>
#include <cstdio>

#include "datasets/phantom/phantom.h"
#include "datasets/phantom/phantom_dicom.h"
#include "launcher/commands.h"

namespace angiotrain {

// Compiled only with OpenCV (see launcher/CMakeLists.txt).
void AddSynthCommand(CLI::App& app) {
  auto o = std::make_shared<PhantomOptions>();
  auto out = std::make_shared<std::string>();
  auto size = std::make_shared<std::vector<double>>();
  auto format = std::make_shared<std::string>("jpeg");
  auto dicom = std::make_shared<PhantomDicomOptions>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a phantom dataset in the K-ium 2023 layout: synthetic DSA views with known aneurysms, "
               "train_set/ (images, train.csv), test_set/ (images, test.csv, groundtruth.csv), annotations.json "
               "(see datasets/phantom/PHANTOM.md)");
  cmd->add_option("--out", *out, "Output folder (created if missing)")->required();
  cmd->add_option("--patients", o->patients, "Patients in train_set")->required();
  cmd->add_option("--seed", o->seed, "Random seed: same seed and options, same files")->required();
  cmd->add_option("--test-patients", o->test_patients, "Patients in test_set")->capture_default_str();
  cmd->add_option("--first-index", o->first_index, "Index of the first train patient (test indices follow)")
      ->capture_default_str();
  cmd->add_option("--resolution", o->resolution, "Image side in pixels (field of view fixed at 170 mm)")
      ->capture_default_str();
  cmd->add_option("--prevalence", o->prevalence, "Fraction of patients with at least one aneurysm")
      ->capture_default_str();
  cmd->add_option("--aneurysm-size", *size, "Sac radius range MIN,MAX in mm (default 1.5,3.5; 3 px/mm at 512)")
      ->delimiter(',')
      ->expected(2);
  cmd->add_option("--max-aneurysms", o->max_aneurysms, "Most aneurysms one patient can have")->capture_default_str();
  cmd->add_option("--contrast", o->aneurysm_contrast, "Sac filling relative to the vessels (1: like a vessel)")
      ->capture_default_str();
  cmd->add_option("--noise", o->noise, "Pixel noise standard deviation in grey levels (0-255)")->capture_default_str();
  cmd->add_option("--jitter", o->jitter, "Scale of anatomical and pose variation (0: template anatomy)")
      ->capture_default_str();
  cmd->add_option("--distractors", o->distractors, "Mean fusiform dilatations (not aneurysms) per patient")
      ->capture_default_str();
  cmd->add_flag("--uniform-locations", o->uniform_locations,
                "Every location equally likely (default: clinical frequencies within a factor 2)");
  cmd->add_option("--jpeg-quality", o->jpeg_quality, "JPEG quality 1-100")->capture_default_str();
  cmd->add_option("--format", *format,
                  "jpeg: the K-ium layout; dicom: one multi-frame XA series per view in PAT{Index}/SER{n}/ with "
                  "manifest.csv, for ingest --manifest (datasets/phantom/phantom_dicom.h)")
      ->check(CLI::IsMember({"jpeg", "dicom"}))
      ->capture_default_str();
  cmd->add_option("--frames", dicom->frames, "--format dicom: frames per series (contrast peaks at frame F/2 + 1)")
      ->capture_default_str();
  cmd->add_flag("--rle", dicom->rle, "--format dicom: RLE Lossless transfer syntax instead of uncompressed");
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores); the output does not depend on it")
      ->capture_default_str();
  cmd->add_flag("--force", o->force, "Replace a non-empty train_set/test_set");
  cmd->add_flag("--quiet", [o](int64_t) { o->show_progress = false; }, "No progress line");
  cmd->callback([o, out, size, format, dicom] {
    if (!size->empty()) {
      o->aneurysm_radius_min_mm = (*size)[0];
      o->aneurysm_radius_max_mm = (*size)[1];
    }
    // The generator uses threads, not ranks: under mpirun rank 0 writes and the others wait.
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
      auto start = std::chrono::steady_clock::now();
      PhantomSummary s = *format == "dicom" ? GeneratePhantomDicom(*o, *dicom, *out) : GeneratePhantomDataset(*o, *out);
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("synth: wrote %d train patients (%d with aneurysms) and %d test patients (%d with aneurysms), "
                  "%d aneurysms, %d views at %dx%d, to %s in %.1f s\n",
                  s.train_patients, s.train_positive, s.test_patients, s.test_positive, s.aneurysms,
                  (s.train_patients + s.test_patients) * kNumViews, o->resolution, o->resolution, out->c_str(),
                  seconds);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  });
}

}  // namespace angiotrain
