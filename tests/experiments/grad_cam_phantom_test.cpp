// Grad-CAM points at the aneurysm: a model trained on the phantom as in the quickstart (B0 at
// half width and depth, 2 ranks, Adam 2e-3 cosine, 128 px; a smaller and easier phantom so that it
// learns in about two minutes), explained on held-out patients with one aneurysm, peaks near that
// aneurysm's projected position (datasets/phantom annotations) in a view that shows it far more
// often than a peak drawn at random, and more often than at another patient's aneurysm.
//
// The settings and the bars were fixed from exploration runs on other phantom seeds (5, 7, 9;
// README "Reports" has the table) before this test's own run (seed 3) was looked at:
//   - the map is taken over features.3 (`explain --layer features.3`, 1/8 of the input: a 16x16
//     map of 8-pixel cells at 128 px; the report's default stage, kReportGradCamLayer). explain's
//     default layer, features.8, is 1/32 (4x4 at 128 px):
//     on the exploration models its peak was this near in 0-6% of the patients (printed here for
//     the record, not tested);
//   - "near": within 8 px (10.7 mm) of the sac's projected centre in any view that shows it (sac
//     radii are 3.75-6 px here);
//   - chance: the share of the map's cells whose centre is near the sac, averaged over the
//     patients (a peak drawn at random among the cells);
//   - elsewhere: each peak paired with another detected patient's aneurysm: where aneurysms
//     usually are, without looking at the patient (the prior a map could match without
//     localising anything).
// Bars: at least 40 detected patients; a one-sided binomial test of the hits against chance with
// p < 1e-6, and at least 3x chance; and at least 1.5x the elsewhere rate. With these settings the
// exploration models scored 31-37% against 2.3-2.4% chance and 11-13% elsewhere (ratios 2.7-2.8);
// with 6 epochs and 400 patients the ratio to elsewhere fell to 1.6, so 1.5 is below every
// exploration model while still saying the map follows this patient's sac.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/atomic_file.h"
#include "datasets/volume_file.h"
#include "experiments/training/checkpoint.h"
#include "experiments/reports/report_grad_cam.h"
#include "models/grad_cam.h"
#include "tests/experiments/phantom_run.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

constexpr int kSynthSide = 256, kSide = 128;  // phantom images, and the volume the model sees
constexpr int kLayer = kReportGradCamLayer;   // features.3: a 16x16 map of 8-pixel cells at 128 px
constexpr double kTolerance = 8;              // volume pixels (10.7 mm; sacs are 3.75-6 px in radius)

struct Position {
  double x, y;
};

// P(X >= k) for X ~ Binomial(n, p).
double BinomialTail(int n, int k, double p) {
  if (p <= 0) return k > 0 ? 0.0 : 1.0;
  double tail = 0;
  for (int i = k; i <= n; ++i)
    tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) + i * std::log(p) +
                     (n - i) * std::log1p(-p));
  return tail;
}

bool Near(double x, double y, const std::vector<Position>& positions) {
  for (const auto& p : positions)
    if (std::hypot(x - p.x, y - p.y) <= kTolerance) return true;
  return false;
}

// The peaks of one layer's maps over the detected patients, scored against their aneurysms.
struct LayerScore {
  int map_side = 0;
  std::vector<Position> peaks;  // one per detected patient, in the order of `positions`
  int hits = 0;
  double chance = 0;  // summed over the patients, then averaged

  // Bilinear up-sampling puts the map's maximum on a node of the coarse grid, the centre of its
  // largest cell: that centre (volume pixels) is the peak.
  void Add(const PatientGradCam& cam, const std::vector<Position>& where) {
    map_side = cam.map_side;
    const double cell = static_cast<double>(kSide) / map_side;
    const int64_t at = cam.coarse.argmax().item<int64_t>();
    const Position peak{(static_cast<double>(at % map_side) + 0.5) * cell - 0.5,
                        (static_cast<double>(at / map_side) + 0.5) * cell - 0.5};
    peaks.push_back(peak);
    hits += Near(peak.x, peak.y, where);
    int near = 0;
    for (int i = 0; i < map_side; ++i)
      for (int j = 0; j < map_side; ++j) near += Near((i + 0.5) * cell - 0.5, (j + 0.5) * cell - 0.5, where);
    chance += static_cast<double>(near) / (map_side * map_side);
  }
  double Rate() const { return static_cast<double>(hits) / peaks.size(); }
  double Chance() const { return chance / peaks.size(); }
  double PValue() const { return BinomialTail(static_cast<int>(peaks.size()), hits, Chance()); }
  // Each peak against every other detected patient's aneurysm.
  double Elsewhere(const std::vector<std::vector<Position>>& positions) const {
    const size_t n = peaks.size();
    double near = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j)
        if (i != j) near += Near(peaks[j].x, peaks[j].y, positions[i]);
    return near / (static_cast<double>(n) * (n - 1));
  }
  void Print(int layer, const std::vector<std::vector<Position>>& positions) const {
    std::printf("Grad-CAM over features.%d (%dx%d map) on %zu detected held-out aneurysms: peak within %.0f px in %d "
                "(%.3f); chance %.3f (binomial p = %.2g); at another patient's aneurysm %.3f\n",
                layer, map_side, map_side, peaks.size(), kTolerance, hits, Rate(), Chance(), PValue(),
                Elsewhere(positions));
  }
};

TEST(GradCamOnPhantom, PeaksNearTheAneurysmFarMoreOftenThanChance) {
  testing::ScratchDir dir;
  testing::PhantomRun run;
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  testing::PhantomRunOptions o;
  o.patients = 500;
  o.test_patients = 400;
  o.synth_resolution = kSynthSide;
  o.resolution = kSide;
  o.synth_options = "--aneurysm-size 5,8 --contrast 3 --distractors 0 --max-aneurysms 1";
  o.epochs = 10;
  o.model = "width_mult = 0.5\ndepth_mult = 0.5\n";
  o.train = "batch_size = 8\nlr = 2e-3\noptimizer = \"adam\"\nschedule = \"cosine\"\nwarmup_epochs = 1\n";
  o.ranks = 2;
  testing::MakePhantomRun(dir, o, &run);
  const std::string held_out = dir / "test.h5";
  testing::CommandResult r = testing::RunAngiotrain({"ingest", "--input", run.data + "/test_set", "--out", held_out,
                                                     "--resolution", std::to_string(kSide), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::printf("phantom, volumes and training: %.0f s\n", seconds());

  // Held-out patients with exactly one aneurysm, and where each view shows it (volume pixels).
  const auto annotations = nlohmann::json::parse(ReadFile(run.data + "/test_set/annotations.json"));
  std::map<int32_t, std::vector<Position>> one;
  std::map<int32_t, int> count;
  const double scale = static_cast<double>(kSide) / kSynthSide;
  for (const auto& a : annotations["aneurysms"]) {
    const int32_t index = a["index"];
    ++count[index];
    for (const auto& v : a["views"])  // pixel centres at integers in both images
      one[index].push_back({(v["x"].get<double>() + 0.5) * scale - 0.5, (v["y"].get<double>() + 0.5) * scale - 0.5});
  }

  const std::string checkpoint = run.run + "/last.pt";
  LoadedCheckpoint model = LoadCheckpoint(checkpoint);
  VolumeReader volume(held_out, MPI_COMM_NULL);
  std::vector<std::vector<Position>> positions;  // of the detected patients
  LayerScore chosen, last;                        // features.3, and the default features.8 for the record
  for (const auto& [index, where] : one) {
    if (count[index] != 1 || where.empty()) continue;
    const PatientGradCam cam = ExplainPatient(model, checkpoint, volume, index, "presence", kLayer);
    if (cam.probability < 0.5) continue;  // explain what the model found, not what it missed
    positions.push_back(where);
    chosen.Add(cam, where);
    last.Add(ExplainPatient(model, checkpoint, volume, index, "presence", kGradCamDefaultLayer), where);
  }
  const int n = static_cast<int>(positions.size());
  ASSERT_GE(n, 40) << "the model detected too few held-out aneurysms to judge its maps";
  std::printf("explained the %zu held-out patients with an aneurysm (and the detected ones at features.8 too): %.0f s in all\n", one.size(), seconds());
  last.Print(kGradCamDefaultLayer, positions);
  chosen.Print(kLayer, positions);
  EXPECT_LT(chosen.PValue(), 1e-6);
  EXPECT_GE(chosen.Rate(), 3 * chosen.Chance());
  EXPECT_GE(chosen.Rate(), 1.5 * chosen.Elsewhere(positions));
}

}  // namespace
}  // namespace angiotrain
