// Ingest: a K-ium folder of JPEG views (+ label CSV), or any layout of JPEG, PNG and DICOM files
// through a manifest (datasets/manifest.h), into one HDF5 volume file. Every MPI rank
// of `comm` decodes its share of the patients and writes its rows through parallel HDF5; the
// result is identical for any number of ranks.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>

namespace angiotrain {

struct IngestOptions {
  std::string input_dir;    // e.g. DIR/train_set: {Index}{View}.jpg files (or:)
  std::string manifest;     // CSV of Index,View,Path[,labels]: any folder layout (datasets/manifest.h)
  bool allow_outside = false;  // manifest paths may leave the manifest's folder (`..`, links)
  std::string frame = "peak";  // DICOM multi-frame rule: peak, minip or N (datasets/dicom_view.h)
  std::string labels_csv;   // train.csv; empty: no labels, patients from file names (a test set)
  std::string out_path;     // volume.h5
  int resolution = 256;     // R: images are stored R x R
  bool skip_bad = false;    // leave bad patients out (with a report) instead of failing
  std::string skip_report;  // where --skip-bad writes its report; default OUT.skipped.csv
  bool progress = true;     // progress line on rank 0
  int patients_per_round = 16;  // per rank, between collective writes
};

struct IngestSummary {
  int64_t patients = 0;  // written
  int64_t skipped = 0;
  double seconds = 0;
  std::string skip_report;  // path, when written
  // Labels were given and every one is 0 (Aneurysm and all locations): a submission template
  // such as K-ium's test.csv, not labels. The command warns; the volume still claims labels.
  bool every_label_zero = false;
};

// Throws CollectiveError (the same on every rank) naming the file and the problem; a failed
// ingest leaves no output file and never replaces an existing one. An output (the volume or the
// skip report) that is an input or lies inside the input folder is refused before anything is read.
// Either mode: `manifest` when set, else `input_dir`.
IngestSummary IngestKiumFolder(const IngestOptions& options, MPI_Comm comm);

// Decodes one view (JPEG, PNG or DICOM, told apart by content) to 8-bit grayscale R x R into
// `out` (R*R bytes). Returns "" on success or the problem ("is empty", "truncated JPEG ...",
// "is not a decodable image"). `frame` picks from a multi-frame DICOM, as IngestOptions::frame.
std::string DecodeView(const std::string& path, int resolution, uint8_t* out, const std::string& frame = "peak");

}  // namespace angiotrain
