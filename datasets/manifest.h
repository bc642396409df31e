// Which file is which view of which patient: an ingest manifest (a CSV of Index, View, Path and
// optionally the labels) or a K-ium folder, whose manifest is derived from the file names. Both
// become one IngestPlan, which ingest decodes and writes the same way.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/kium_schema.h"
#include "datasets/label_table.h"

namespace angiotrain {

// One patient to ingest: its views' paths (in ViewNames() order) and labels.
struct IngestPatient {
  PatientLabels labels;
  std::array<std::string, kNumViews> views;
};

// A problem that leaves one patient out under --skip-bad (and fails the ingest without it).
struct IngestProblem {
  int64_t index;  // patient index, or -1 when the problem is a file with no usable index
  std::string message;
};

struct IngestPlan {
  // In the label CSV's order when there is one, else in the manifest's order of first
  // appearance (a K-ium folder: index order).
  std::vector<IngestPatient> patients;
  std::vector<IngestProblem> problems;
  bool has_labels = false;
  std::string labels_file;  // where the labels came from: the label CSV, the manifest, or ""
  // Labels were given and every one is 0 (a submission template such as K-ium's test.csv).
  bool every_label_zero = false;
};

// Manifest CSV (core/csv.h rules): columns Index, View (a ViewNames() name) and Path (relative to
// the manifest's folder); optionally Aneurysm and the 21 locations, all of them, each patient's
// rows agreeing. With `labels_csv` as well, the label CSV orders the patients and every label the
// manifest also gives must agree with it. Throws Error naming the file and line for a malformed
// manifest, a path that leaves the manifest's folder through `..` or a symbolic link (unless
// `allow_outside`), and a label disagreement; a missing file, a view named twice and a view with
// no row are per-patient problems.
IngestPlan PlanFromManifest(const std::string& manifest, const std::string& labels_csv, bool allow_outside);

// A K-ium folder: {Index}{View}.jpg|.jpeg|.png files, labels from `labels_csv` (or none).
IngestPlan PlanFromKiumFolder(const std::string& dir, const std::string& labels_csv);

}  // namespace angiotrain
