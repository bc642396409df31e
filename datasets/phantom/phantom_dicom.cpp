// The phantom as multi-frame DICOM series with a manifest. See phantom_dicom.h.
#include "datasets/phantom/phantom_dicom.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "datasets/dicom_view.h"
#include "datasets/label_table.h"

namespace angiotrain {
namespace fs = std::filesystem;

PhantomSummary GeneratePhantomDicom(const PhantomOptions& options, const PhantomDicomOptions& dicom,
                                    const std::string& out_dir) {
  ValidatePhantomOptions(options);
  if (dicom.frames < 1 || dicom.frames > 256) throw Error("--frames " + std::to_string(dicom.frames) + " is out of range (1..256)");
  if (!DicomSupported()) throw Error("synth --format dicom: this angiotrain was built without DICOM support (libdcmtk-dev)");
  std::error_code ec;
  if (out_dir.empty()) throw Error("phantom: the output folder (--out) is empty");
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir)) throw FileError(out_dir, "cannot create the output folder");

  struct Split {
    std::string name;
    int first, count;
    bool test;
    std::string staging;
  };
  std::vector<Split> splits = {{"train_set", options.first_index, options.patients, false, ""},
                               {"test_set", options.first_index + options.patients, options.test_patients, true, ""}};
  for (Split& s : splits) {
    const std::string final_path = out_dir + "/" + s.name;
    if (fs::exists(final_path, ec) && (!fs::is_directory(final_path, ec) || !fs::is_empty(final_path, ec)) &&
        !options.force) {
      throw FileError(final_path, "exists and is not empty; refusing to overwrite it (use --force to replace it)");
    }
    s.staging = out_dir + "/." + s.name + ".partial-" + std::to_string(getpid());
    fs::remove_all(s.staging, ec);
    fs::create_directory(s.staging, ec);
    if (ec) throw FileError(s.staging, "cannot create folder: " + ec.message());
  }
  struct Cleanup {  // a failed run leaves no staging folder
    std::vector<Split>* splits;
    ~Cleanup() {
      std::error_code e;
      for (const Split& s : *splits) fs::remove_all(s.staging, e);
    }
  } cleanup{&splits};

  // Contrast over the frames: rising to 1 at the peak frame, washing out to 0.6.
  const int F = dicom.frames, peak = F / 2;
  std::vector<double> arrival(F);
  for (int f = 0; f < F; ++f) arrival[f] = f <= peak ? double(f + 1) / (peak + 1) : 1 - 0.4 * (f - peak) / (F - 1 - peak);

  PhantomSummary summary;
  ProgressLine progress("synth", options.patients + options.test_patients, "patients", options.show_progress);
  long done = 0;
  for (const Split& s : splits) {
    std::ostringstream manifest;
    manifest << "Index,View,Path\n";
    std::vector<PatientLabels> labels;
    for (int i = 0; i < s.count; ++i) {
      const int32_t index = s.first + i;
      PhantomPatient patient = MakePhantomPatient(options, index);
      labels.push_back(PhantomLabels(patient));
      (s.test ? summary.test_positive : summary.train_positive) += labels.back().aneurysm;
      summary.aneurysms += static_cast<int>(patient.aneurysms.size());
      std::array<cv::Mat, kNumViews> views = RenderPhantomViews(options, patient);
      const std::string study = "2.25." + std::to_string(options.seed % 1000000007ULL) + "." + std::to_string(index);
      for (int v = 0; v < kNumViews; ++v) {
        const cv::Mat& view = views[v];
        std::vector<uint8_t> sorted(view.datastart, view.dataend);
        std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
        const double background = sorted[sorted.size() / 2];
        DicomImageToWrite im;
        im.rows = view.rows;
        im.columns = view.cols;
        im.frames = F;
        im.bits_stored = 12;
        im.monochrome1 = v % 2 == 1;
        im.rescale_slope = 1.0 / 16;
        im.has_window = true;
        im.window_center = 128;
        im.window_width = 256;
        im.patient_id = std::to_string(index);
        im.series_description = ViewNames()[v];
        im.series_number = v + 1;
        im.study_uid = study;
        im.series_uid = study + "." + std::to_string(v + 1);
        im.instance_uid = im.series_uid + ".1";
        im.rle = dicom.rle;
        im.pixels.resize(size_t(F) * view.total());
        for (int f = 0; f < F; ++f) {
          for (size_t p = 0; p < view.total(); ++p) {
            const double grey = f == peak ? view.data[p] : background + arrival[f] * (view.data[p] - background);
            const long stored = std::lround(16 * std::clamp(grey, 0.0, 255.0));
            im.pixels[size_t(f) * view.total() + p] = static_cast<uint16_t>(im.monochrome1 ? 4080 - stored : stored);
          }
        }
        const std::string rel = "PAT" + std::to_string(index) + "/SER" + std::to_string(v + 1) + "/IM0001.dcm";
        fs::create_directories(fs::path(s.staging + "/" + rel).parent_path());
        WriteDicomImage(s.staging + "/" + rel, im);
        manifest << index << ',' << ViewNames()[v] << ',' << rel << '\n';
      }
      progress.Update(++done);
    }
    WriteFileAtomically(s.staging + "/manifest.csv", manifest.str());
    if (s.test) {
      WriteLabelTable(s.staging + "/groundtruth.csv", labels);
      std::vector<PatientLabels> zeros;
      for (const auto& l : labels) zeros.push_back(PatientLabels{l.index});
      WriteLabelTable(s.staging + "/test.csv", zeros);
    } else {
      WriteLabelTable(s.staging + "/train.csv", labels);
    }
  }
  progress.Finish();
  for (const Split& s : splits) {
    const std::string final_path = out_dir + "/" + s.name;
    fs::remove_all(final_path, ec);
    fs::rename(s.staging, final_path, ec);
    if (ec) throw FileError(final_path, "cannot move the finished folder into place: " + ec.message());
  }
  summary.train_patients = splits[0].count;
  summary.test_patients = splits[1].count;
  return summary;
}

}  // namespace angiotrain
