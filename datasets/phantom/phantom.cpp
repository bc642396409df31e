// Writing a phantom dataset in the K-ium 2023 layout (images, label CSVs, annotations), over
// worker threads, reproducibly for any thread count. See phantom.h.
#include "datasets/phantom/phantom.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"

namespace angiotrain {
namespace {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

double Round3(double v) { return std::round(v * 1000.0) / 1000.0; }

struct Split {
  std::string name;     // train_set / test_set
  int32_t first_index;  // patients first_index .. first_index + count - 1
  int count;
  bool is_test;
  std::string staging;  // hidden folder the split is built in
};

// Everything one patient contributes besides its images.
struct PatientRecord {
  PatientLabels labels;
  Json aneurysms = Json::array();
};

PatientRecord WritePatient(const PhantomOptions& options, int32_t index, const std::string& folder) {
  PhantomPatient patient = MakePhantomPatient(options, index);
  std::array<cv::Mat, kNumViews> views = RenderPhantomViews(options, patient);
  std::vector<uchar> jpeg;
  const std::vector<int> params{cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  for (int v = 0; v < kNumViews; ++v) {
    std::string path = folder + "/" + std::to_string(index) + ViewNames()[v] + ".jpg";
    if (!cv::imencode(".jpg", views[v], jpeg, params)) throw FileError(path, "JPEG encoding failed");
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    f.close();
    if (!f) throw FileError(path, "cannot write the image");
  }
  PatientRecord record;
  record.labels = PhantomLabels(patient);
  for (size_t a = 0; a < patient.aneurysms.size(); ++a) {
    const PhantomAneurysm& sac = patient.aneurysms[a];
    Json seen = Json::array();
    for (const AneurysmInView& in : AneurysmViews(options, patient, static_cast<int>(a))) {
      seen.push_back({{"view", ViewNames()[in.view]},
                      {"x", Round3(in.x)},
                      {"y", Round3(in.y)},
                      {"radius_px", Round3(in.radius_px)},
                      {"opacity", Round3(in.opacity)}});
    }
    record.aneurysms.push_back({{"index", index},
                                {"location", LocationNames()[sac.location]},
                                {"center_mm", {Round3(sac.center.x), Round3(sac.center.y), Round3(sac.center.z)}},
                                {"radius_mm", Round3(sac.radius_mm)},
                                {"views", seen}});
  }
  return record;
}

Json OptionsJson(const PhantomOptions& o) {
  return {{"seed", o.seed},
          {"resolution", o.resolution},
          {"prevalence", o.prevalence},
          {"aneurysm_radius_mm", {o.aneurysm_radius_min_mm, o.aneurysm_radius_max_mm}},
          {"max_aneurysms", o.max_aneurysms},
          {"aneurysm_contrast", o.aneurysm_contrast},
          {"noise", o.noise},
          {"jitter", o.jitter},
          {"distractors", o.distractors},
          {"uniform_locations", o.uniform_locations},
          {"jpeg_quality", o.jpeg_quality}};
}

void WriteSplitFiles(const PhantomOptions& options, const Split& split, const std::vector<PatientRecord>& records) {
  std::vector<PatientLabels> labels;
  Json aneurysms = Json::array();
  for (const PatientRecord& r : records) {
    labels.push_back(r.labels);
    for (const Json& a : r.aneurysms) aneurysms.push_back(a);
  }
  if (split.is_test) {
    // As in K-ium: the test CSV carries the indices only (every label 0); the truth is separate.
    std::vector<PatientLabels> blank = labels;
    for (PatientLabels& p : blank) p = PatientLabels{p.index, 0, {}};
    WriteLabelTable(split.staging + "/test.csv", blank);
    WriteLabelTable(split.staging + "/groundtruth.csv", labels);
  } else {
    WriteLabelTable(split.staging + "/train.csv", labels);
  }
  Json doc = {{"format", "angiotrain phantom annotations 1"},
              {"coordinates",
               "x, y: source pixels, x right, y down, pixel centres at integers; center_mm: head coordinates "
               "before the pose (x patient's left, y anterior, z superior)"},
              {"generator", OptionsJson(options)},
              {"views", ViewNames()},
              {"patients", records.size()},
              {"aneurysms", aneurysms}};
  WriteFileAtomically(split.staging + "/annotations.json", doc.dump(1) + "\n");
}

// Removes the staging folders unless the run published them.
class StagingCleanup {
 public:
  explicit StagingCleanup(const std::vector<Split>& splits) : splits_(splits) {}
  ~StagingCleanup() {
    std::error_code ec;
    for (const Split& s : splits_) fs::remove_all(s.staging, ec);
  }

 private:
  const std::vector<Split>& splits_;
};

}  // namespace

PhantomSummary GeneratePhantomDataset(const PhantomOptions& options, const std::string& out_dir) {
  ValidatePhantomOptions(options);
  std::error_code ec;
  if (out_dir.empty()) throw Error("phantom: the output folder (--out) is empty");
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) throw FileError(out_dir, "exists and is not a folder");
  fs::create_directories(out_dir, ec);
  if (ec) throw FileError(out_dir, "cannot create the output folder: " + ec.message());

  std::vector<Split> splits = {{"train_set", options.first_index, options.patients, false, ""},
                               {"test_set", options.first_index + options.patients, options.test_patients, true, ""}};
  for (Split& s : splits) {
    std::string final_path = out_dir + "/" + s.name;
    if (fs::exists(final_path, ec)) {
      if (!fs::is_directory(final_path, ec)) throw FileError(final_path, "exists and is not a folder");
      if (!fs::is_empty(final_path, ec) && !options.force)
        throw FileError(final_path, "exists and is not empty; refusing to overwrite it (use --force to replace it)");
    }
    s.staging = out_dir + "/." + s.name + ".partial-" + std::to_string(getpid());
  }
  StagingCleanup cleanup(splits);
  for (const Split& s : splits) {
    fs::remove_all(s.staging, ec);
    if (!fs::create_directory(s.staging, ec) || ec) throw FileError(s.staging, "cannot create folder: " + ec.message());
  }

  // One job per patient; results land by position, so the output does not depend on which
  // thread did what.
  struct Job {
    int split;
    int32_t index;
  };
  std::vector<Job> jobs;
  for (int s = 0; s < static_cast<int>(splits.size()); ++s)
    for (int i = 0; i < splits[s].count; ++i) jobs.push_back({s, splits[s].first_index + i});
  std::vector<PatientRecord> records(jobs.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;  // guards done, progress, error
  long done = 0;
  std::exception_ptr error;
  ProgressLine progress("synth", static_cast<long>(jobs.size()), "patients", options.show_progress);
  auto work = [&] {
    for (size_t j; !failed && (j = next++) < jobs.size();) {
      try {
        records[j] = WritePatient(options, jobs[j].index, splits[jobs[j].split].staging);
        std::lock_guard<std::mutex> lock(mutex);
        progress.Update(++done);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  unsigned threads = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<size_t>(threads, std::max<size_t>(1, jobs.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  progress.Finish();

  PhantomSummary summary;
  size_t offset = 0;
  for (const Split& s : splits) {
    std::vector<PatientRecord> mine(records.begin() + offset, records.begin() + offset + s.count);
    offset += s.count;
    WriteSplitFiles(options, s, mine);
    for (const PatientRecord& r : mine) {
      (s.is_test ? summary.test_positive : summary.train_positive) += r.labels.aneurysm;
      summary.aneurysms += static_cast<int>(r.aneurysms.size());
    }
  }
  summary.train_patients = splits[0].count;
  summary.test_patients = splits[1].count;
  // Publish: replace each split folder by its complete staging folder.
  for (const Split& s : splits) {
    std::string final_path = out_dir + "/" + s.name;
    fs::remove_all(final_path, ec);
    if (ec) throw FileError(final_path, "cannot remove the old folder: " + ec.message());
    fs::rename(s.staging, final_path, ec);
    if (ec) throw FileError(final_path, "cannot move the finished folder into place: " + ec.message());
  }
  return summary;
}

}  // namespace angiotrain
