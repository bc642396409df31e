// The phantom: synthetic cerebral DSA angiograms in the K-ium 2023 layout, with known
// aneurysms, so that every command, test and demo runs without the (non-public) real images.
//
// Each patient is a randomised 3-D vessel tree (both internal carotids with their PCOM,
// AntChor, ACA, ACOM and MCA; both vertebrals with PICA, the basilar, SCA and PCA; unnamed
// distal branches), a head pose, and 0..max_aneurysms saccular aneurysms attached to named
// segments. Each of the 8 views projects what its injection fills (LI/RI: one carotid tree,
// plus the ACOM and a little of the other ACA; LV/RV: the vertebro-basilar tree, the injected
// VA and PICA mostly) into the frontal (A, x-z) or lateral (B, y-z) plane, as dark vessels on
// a light subtracted background with blur, low-frequency residue and noise. Per-view nuisance
// (background level, contrast concentration, noise, residue) and the random tree size dwarf
// what an aneurysm adds to global image statistics, so only local shape gives the label away.
// See datasets/phantom/PHANTOM.md for the anatomy, the options and the annotation file.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "datasets/kium_schema.h"
#include "datasets/label_table.h"

namespace angiotrain {

// What to generate (the content) and how to write it (the last group).
struct PhantomOptions {
  int patients = 100;       // in train_set
  int test_patients = 0;    // in test_set (written, possibly empty, either way)
  uint64_t seed = 1;
  int first_index = 1000;   // train indices first_index.., test indices continue after them
  int resolution = 512;     // source image side, pixels; the field of view is fixed (170 mm)
  double prevalence = 0.5;  // fraction of patients with at least one aneurysm
  double aneurysm_radius_min_mm = 1.5;  // sac radius range, mm (3.0 px per mm at 512)
  double aneurysm_radius_max_mm = 3.5;
  int max_aneurysms = 3;    // per patient; the count is 1 + a truncated geometric draw
  // Contrast density of an aneurysm sac relative to the vessels (1 = fills like a vessel;
  // sacs are then about as dark as a vessel of their diameter).
  double aneurysm_contrast = 1.5;
  double noise = 3.0;       // pixel noise standard deviation, 8-bit grey levels (varies ±30% per view)
  double jitter = 1.0;      // scale of the anatomical variation (0: the template anatomy and pose)
  double distractors = 2.0; // mean number per patient of fusiform dilatations (not aneurysms)
  bool uniform_locations = false;  // every location equally likely (default: clinical frequencies)
  int jpeg_quality = 92;

  int threads = 0;          // 0: std::thread::hardware_concurrency(); output is the same for any
  bool force = false;       // replace a non-empty train_set/test_set
  bool show_progress = true;
};

// Throws Error naming the option when a value is out of range.
void ValidatePhantomOptions(const PhantomOptions& options);

struct Point3 {
  double x = 0, y = 0, z = 0;  // mm; x: patient's left, y: anterior, z: superior
};

// The four injections; view v belongs to injection v / 2 and is frontal (A) when v is even.
enum Injection { kLeftCarotid = 0, kRightCarotid = 1, kLeftVertebral = 2, kRightVertebral = 3 };
constexpr int kNumInjections = 4;

// How much of a vessel one injection fills: `opacity` (0: none, 1: full strength) between the
// arc-length fractions `from` and `to`.
struct VesselFill {
  double opacity = 0, from = 0, to = 1;
};

// One vessel: a dense 3-D centreline (about 1 mm steps) with a radius per point.
struct PhantomVessel {
  int location = -1;           // index into LocationNames(), -1 for unnamed branches
  int parent = -1;             // vessel it branches from, -1 for roots
  std::vector<Point3> points;
  std::vector<double> radius_mm;
  std::vector<double> arc_mm;  // cumulative length at each point
  // Not drawn: the first and last millimetres, which lie inside the vessel they branch from
  // or join (a second cylinder there would draw a dark spot at every junction).
  double hidden_start_mm = 0, hidden_end_mm = 0;
  // Vessels with the same group >= 0 are drawn as one solid (their union, not their sum):
  // trunks that continue one another, e.g. both vertebrals, the basilar and the two PCAs.
  int group = -1;
  std::array<VesselFill, kNumInjections> fill;

  double length() const { return arc_mm.empty() ? 0 : arc_mm.back(); }
  double OpacityAt(int injection, double t) const;  // t: arc-length fraction
};

struct PhantomAneurysm {
  int location = 0;  // index into LocationNames()
  int vessel = 0;    // parent vessel
  double t = 0;      // where on the parent (arc-length fraction)
  Point3 center;     // before the head pose
  double radius_mm = 0;
};

// Acquisition conditions of one view: nuisance that varies independently per view.
struct PhantomViewConditions {
  double background = 0.8;     // grey level of the subtracted background, 0..1
  double concentration = 1.0;  // contrast concentration: scales every vessel's darkness
  double noise = 3.0;          // 8-bit grey levels
  double blur_mm = 0.35;       // detector blur (Gaussian sigma)
  // Low-frequency subtraction residue: sum of amplitude * cos(kx*u + ky*v + phase), u,v in mm.
  std::array<double, 3> residue_amplitude{}, residue_kx{}, residue_ky{}, residue_phase{};
  uint64_t noise_seed = 0;
};

struct PhantomPatient {
  int32_t index = 0;
  std::array<double, 9> rotation{1, 0, 0, 0, 1, 0, 0, 0, 1};  // head pose, row-major
  Point3 translation;
  std::array<Point3, kNumInjections> injection_shift;  // patient motion between runs
  std::array<PhantomViewConditions, kNumViews> views;
  std::vector<PhantomVessel> vessels;
  std::vector<PhantomAneurysm> aneurysms;
};

// The patient with this index: a pure function of (options' content fields, index).
PhantomPatient MakePhantomPatient(const PhantomOptions& options, int32_t index);

PatientLabels PhantomLabels(const PhantomPatient& patient);

// Where a 3-D point lands in view `view` (source pixels, x right, y down) and how many pixels
// one millimetre at that depth spans.
struct ViewPosition {
  double x = 0, y = 0, pixels_per_mm = 0;
};
ViewPosition ProjectToView(const PhantomOptions& options, const PhantomPatient& patient, int view,
                           const Point3& point);

// One aneurysm as seen in one view: its projected centre and radius, and the opacity of the
// parent's filling there. Listed exactly for the views where the aneurysm is drawn.
struct AneurysmInView {
  int view = 0;
  double x = 0, y = 0, radius_px = 0, opacity = 0;
};
std::vector<AneurysmInView> AneurysmViews(const PhantomOptions& options, const PhantomPatient& patient,
                                          int aneurysm);

// The 8 grayscale views (CV_8UC1, resolution²) in ViewNames() order, before JPEG coding.
std::array<cv::Mat, kNumViews> RenderPhantomViews(const PhantomOptions& options, const PhantomPatient& patient);

// Writes OUT_DIR/train_set and OUT_DIR/test_set (images, train.csv / test.csv + groundtruth.csv,
// annotations.json). Each folder is built under a hidden temporary name and renamed into place
// when complete, so a failed run leaves no partial folder. Refuses (Error) to replace a non-empty
// train_set or test_set unless options.force.
struct PhantomSummary {
  int train_patients = 0, test_patients = 0, train_positive = 0, test_positive = 0, aneurysms = 0;
};
PhantomSummary GeneratePhantomDataset(const PhantomOptions& options, const std::string& out_dir);

}  // namespace angiotrain
