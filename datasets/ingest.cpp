// K-ium folder -> HDF5 volume file, in parallel over MPI ranks. See ingest.h.
#include "datasets/ingest.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/path_checks.h"
#include "core/progress.h"
#include "datasets/kium_schema.h"
#include "datasets/label_table.h"
#include "datasets/volume_file.h"

namespace angiotrain {
namespace fs = std::filesystem;
namespace {

// One patient to ingest: its views' paths (in ViewNames() order) and labels.
struct PatientEntry {
  PatientLabels labels;
  std::array<std::string, kNumViews> views;
};

struct Problem {
  int64_t index;  // patient index, or -1 when the problem is a file with no usable index
  std::string message;
};

bool IsImageExtension(std::string ext) {
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// Splits "1008LI-A.jpg" into index 1008 and view 0. Returns false for files that are not views
// (no view suffix); sets `bad_index` for view files whose prefix is not an integer.
bool ParseViewFileName(const std::string& name, int64_t* index, int* view, bool* bad_index) {
  *bad_index = false;
  fs::path p(name);
  if (!IsImageExtension(p.extension().string())) return false;
  std::string stem = p.stem().string();
  for (int v = 0; v < kNumViews; ++v) {
    const std::string& vn = ViewNames()[v];
    if (stem.size() > vn.size() && stem.compare(stem.size() - vn.size(), vn.size(), vn) == 0) {
      std::string prefix = stem.substr(0, stem.size() - vn.size());
      if (prefix.empty() || prefix.size() > 9 || !std::all_of(prefix.begin(), prefix.end(), ::isdigit)) {
        *bad_index = true;
        return true;
      }
      *index = std::stoll(prefix);
      *view = v;
      return true;
    }
  }
  return false;
}

std::string NowIso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// All ranks' strings, in rank order, on every rank.
std::vector<std::string> AllGatherStrings(MPI_Comm comm, const std::vector<std::string>& mine) {
  std::string packed;
  for (const auto& s : mine) packed += std::to_string(s.size()) + ":" + s;
  int size = 1;
  MPI_Comm_size(comm, &size);
  int n = static_cast<int>(packed.size());
  std::vector<int> lengths(size), offsets(size, 0);
  MPI_Allgather(&n, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm);
  for (int r = 1; r < size; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
  std::string all(offsets[size - 1] + lengths[size - 1], '\0');
  MPI_Allgatherv(packed.data(), n, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, comm);
  std::vector<std::string> out;
  for (size_t pos = 0; pos < all.size();) {
    size_t colon = all.find(':', pos);
    size_t len = std::stoul(all.substr(pos, colon - pos));
    out.push_back(all.substr(colon + 1, len));
    pos = colon + 1 + len;
  }
  return out;
}

// Where a JPEG ends: the offset just past its end-of-image marker (FF D9), or 0 when the file
// ends before it (truncated), or npos when the marker structure is broken (left to the decoder,
// which calls it corrupt). Walks the marker segments and each scan's entropy-coded data, where
// FF is only ever followed by 00 (a stuffed byte) or a restart marker, so an FF D9 inside a
// segment (an embedded EXIF thumbnail) is not taken for the end, and bytes after the real end
// (padding some exporters append) do not hide it.
size_t JpegEnd(const std::vector<uint8_t>& bytes) {
  const size_t n = bytes.size();
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (bytes[i] != 0xFF) return std::string::npos;
    const uint8_t marker = bytes[i + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++i;
      continue;
    }
    if (marker == 0xD9) return i + 2;
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      i += 2;
      continue;
    }
    if (i + 3 >= n) return 0;
    const size_t length = (size_t(bytes[i + 2]) << 8) | bytes[i + 3];
    if (length < 2) return std::string::npos;
    i += 2 + length;
    if (marker != 0xDA) continue;
    // Start of scan: entropy-coded data up to the next marker that is not a restart marker.
    while (i + 1 < n && !(bytes[i] == 0xFF && bytes[i + 1] != 0x00 && (bytes[i + 1] < 0xD0 || bytes[i + 1] > 0xD7)))
      ++i;
  }
  return 0;
}

std::string DescribeProblems(const std::vector<Problem>& problems) {
  std::string m = problems.front().message;
  if (problems.size() > 1) m += " (and " + std::to_string(problems.size() - 1) + " more problem(s); --skip-bad ingests the good patients)";
  return m;
}

// Reads the labels and lists the view files; every problem found is a Problem (collected, not
// thrown, so --skip-bad can leave those patients out).
// Sets `every_label_zero` when the label file has rows and all their labels are 0.
std::vector<PatientEntry> ScanFolder(const IngestOptions& o, std::vector<Problem>* problems, bool* every_label_zero) {
  std::map<int64_t, std::array<std::string, kNumViews>> files;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(o.input_dir)) {
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    int64_t index = 0;
    int view = 0;
    bool bad_index = false;
    if (!ParseViewFileName(name, &index, &view, &bad_index)) continue;
    std::string path = (fs::path(o.input_dir) / name).string();
    if (bad_index) {
      problems->push_back({-1, path + ": file name does not start with an integer patient index ({Index}{View}.jpg)"});
      continue;
    }
    auto& slot = files[index][view];
    if (!slot.empty()) {
      problems->push_back({index, path + ": second file for view " + ViewNames()[view] + " of patient " +
                                      std::to_string(index) + " (also " + slot + ")"});
      continue;
    }
    slot = path;
  }

  std::vector<PatientEntry> patients;
  if (!o.labels_csv.empty()) {
    LabelTable table;
    try {
      table = ReadLabelTable(o.labels_csv);
    } catch (const Error& e) {
      throw CollectiveError(e.what());
    }
    auto any_label = [](const PatientLabels& p) {
      return p.aneurysm != 0 || std::any_of(p.locations.begin(), p.locations.end(), [](uint8_t l) { return l != 0; });
    };
    *every_label_zero =
        !table.patients.empty() && std::none_of(table.patients.begin(), table.patients.end(), any_label);
    for (const auto& labels : table.patients) {
      PatientEntry p;
      p.labels = labels;
      auto it = files.find(labels.index);
      if (it == files.end()) {
        problems->push_back({labels.index, o.labels_csv + ": patient " + std::to_string(labels.index) +
                                               " has a label row but no images in " + o.input_dir});
        continue;
      }
      p.views = it->second;
      files.erase(it);
      patients.push_back(p);
    }
    for (const auto& [index, views] : files) {
      for (const auto& path : views) {
        if (path.empty()) continue;
        problems->push_back({index, path + ": patient " + std::to_string(index) + " has images but no row in " +
                                        o.labels_csv});
        break;
      }
    }
  } else {
    for (const auto& [index, views] : files) {
      PatientEntry p;
      p.labels.index = static_cast<int32_t>(index);
      p.views = views;
      patients.push_back(p);
    }
  }
  // Missing views.
  std::vector<PatientEntry> complete;
  for (auto& p : patients) {
    bool ok = true;
    for (int v = 0; v < kNumViews; ++v) {
      if (p.views[v].empty()) {
        std::string expected = (fs::path(o.input_dir) / (std::to_string(p.labels.index) + ViewNames()[v] + ".jpg")).string();
        problems->push_back({p.labels.index, expected + ": missing view " + ViewNames()[v] + " of patient " +
                                                 std::to_string(p.labels.index)});
        ok = false;
        break;
      }
    }
    if (ok) complete.push_back(std::move(p));
  }
  return complete;
}

}  // namespace

std::string DecodeView(const std::string& path, int resolution, uint8_t* out) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return "cannot be opened";
  std::vector<uint8_t> bytes(static_cast<size_t>(f.tellg()));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()))) {
    return "cannot be read";
  }
  if (bytes.empty()) return "is empty (0 bytes)";
  int flag = cv::IMREAD_GRAYSCALE;
  const bool jpeg = bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8;
  if (jpeg) {
    // libjpeg decodes a truncated file with a grey fill and only a warning: require the
    // end-of-image marker. Bytes after it are ignored.
    const size_t end = JpegEnd(bytes);
    if (end == 0) return "truncated JPEG (no end-of-image marker)";
    if (end != std::string::npos) bytes.resize(end);
    // Find the frame size in the SOF header to decode directly at 1/d scale (DCT scaling skips
    // the full inverse DCT). Only when both sides are multiples of d*R: then every output pixel
    // is the mean of whole d x d blocks, and the result is the area resize of the full-size
    // decode (within 1 gray level, see README). Otherwise a block straddles a pixel boundary
    // and is weighted as if uniform, which is off by tens of gray levels at edges.
    for (size_t i = 2; i + 9 < bytes.size();) {
      if (bytes[i] != 0xFF) break;
      uint8_t marker = bytes[i + 1];
      size_t len = (size_t(bytes[i + 2]) << 8) | bytes[i + 3];
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
        int height = (bytes[i + 5] << 8) | bytes[i + 6];
        int width = (bytes[i + 7] << 8) | bytes[i + 8];
        auto tiles = [&](int d) {
          return width > 0 && height > 0 && width % (d * resolution) == 0 && height % (d * resolution) == 0;
        };
        if (tiles(8)) flag = cv::IMREAD_REDUCED_GRAYSCALE_8;
        else if (tiles(4)) flag = cv::IMREAD_REDUCED_GRAYSCALE_4;
        else if (tiles(2)) flag = cv::IMREAD_REDUCED_GRAYSCALE_2;
        break;
      }
      i += 2 + len;
    }
  }
  cv::Mat img;
  try {
    img = cv::imdecode(bytes, flag);
  } catch (const cv::Exception&) {
    img.release();
  }
  if (img.empty()) return jpeg ? "corrupt JPEG (OpenCV cannot decode it)" : "is not a decodable image";
  if (img.depth() != CV_8U) img.convertTo(img, CV_8U);
  if (img.rows != resolution || img.cols != resolution) {
    cv::Mat resized;
    cv::resize(img, resized, cv::Size(resolution, resolution), 0, 0, cv::INTER_AREA);
    img = resized;
  }
  for (int y = 0; y < resolution; ++y) std::memcpy(out + size_t(y) * resolution, img.ptr<uint8_t>(y), resolution);
  return "";
}

IngestSummary IngestKiumFolder(const IngestOptions& o, MPI_Comm comm) {
  auto start = std::chrono::steady_clock::now();
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (o.resolution < 8 || o.resolution > 4096) {
    throw CollectiveError("--resolution " + std::to_string(o.resolution) + " is out of range (8..4096)");
  }
  // Before reading anything: the inputs are of the right kind, and no output replaces one.
  RequireFolder(o.input_dir, "a folder of K-ium views ({Index}{View}.jpg)");
  if (!o.labels_csv.empty()) RequireFile(o.labels_csv, "a label CSV (train.csv)");
  const std::string skip_report = o.skip_report.empty() ? o.out_path + ".skipped.csv" : o.skip_report;
  RefuseOutputOverInput(o.out_path, {o.input_dir, o.labels_csv});
  if (o.skip_bad) RefuseOutputOverInput(skip_report, {o.input_dir, o.labels_csv});
  cv::setNumThreads(1);  // one rank per core

  IngestSummary summary;
  std::vector<Problem> problems;
  std::vector<PatientEntry> patients = ScanFolder(o, &problems, &summary.every_label_zero);
  if (!problems.empty() && !o.skip_bad) throw CollectiveError(DescribeProblems(problems));
  if (patients.empty() && problems.empty()) throw CollectiveError(o.input_dir + ": no {Index}{View}.jpg images found");

  VolumeProvenance provenance;
  provenance.source = fs::absolute(o.input_dir).lexically_normal().string();
  provenance.labels_file = o.labels_csv.empty() ? "" : fs::absolute(o.labels_csv).lexically_normal().string();
  provenance.tool = "angiotrain 0.1.0";
  provenance.created = NowIso8601();
  {  // one creation time for every rank
    char buf[32] = {};
    provenance.created.copy(buf, sizeof buf - 1);
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, comm);
    provenance.created = buf;
  }
  const bool has_labels = !o.labels_csv.empty();
  VolumeWriter writer(o.out_path, comm, static_cast<int64_t>(patients.size()), o.resolution, has_labels,
                      provenance);

  const int64_t n = static_cast<int64_t>(patients.size());
  const int64_t per_round = o.patients_per_round;
  const size_t view_bytes = size_t(o.resolution) * o.resolution;
  const size_t volume_bytes = kNumViews * view_bytes;
  ProgressLine progress("ingest", n, "patients", o.progress && rank == 0);
  int64_t written = 0;
  std::vector<uint8_t> images;
  for (int64_t round_start = 0; round_start < n; round_start += per_round * size) {
    const int64_t first = std::min(n, round_start + rank * per_round);
    const int64_t last = std::min(n, first + per_round);
    images.assign(size_t(last - first) * volume_bytes, 0);
    std::vector<int32_t> index;
    std::vector<uint8_t> aneurysm, locations;
    std::vector<std::string> my_problems;  // "ROW\tmessage"
    size_t kept = 0;
    for (int64_t p = first; p < last; ++p) {
      const PatientEntry& e = patients[p];
      std::string failure;
      for (int v = 0; v < kNumViews && failure.empty(); ++v) {
        std::string why = DecodeView(e.views[v], o.resolution, images.data() + kept * volume_bytes + v * view_bytes);
        if (!why.empty()) failure = e.views[v] + ": " + why;
      }
      if (!failure.empty()) {
        my_problems.push_back(std::to_string(p) + "\t" + failure);
        continue;
      }
      index.push_back(e.labels.index);
      aneurysm.push_back(e.labels.aneurysm);
      locations.insert(locations.end(), e.labels.locations.begin(), e.labels.locations.end());
      ++kept;
    }
    images.resize(kept * volume_bytes);
    // Agree on decode failures before writing: every rank learns every problem of the round.
    std::vector<std::string> round_problems = AllGatherStrings(comm, my_problems);
    for (const auto& rp : round_problems) {
      size_t tab = rp.find('\t');
      problems.push_back({patients[std::stoll(rp.substr(0, tab))].labels.index, rp.substr(tab + 1)});
    }
    if (!round_problems.empty() && !o.skip_bad) throw CollectiveError(DescribeProblems(problems));
    // Rows stay in patient order: this rank's block starts after the lower ranks' kept rows.
    int64_t mine = static_cast<int64_t>(kept);
    std::vector<int64_t> counts(size);
    MPI_Allgather(&mine, 1, MPI_INT64_T, counts.data(), 1, MPI_INT64_T, comm);
    int64_t offset = written;
    for (int r = 0; r < rank; ++r) offset += counts[r];
    writer.WriteRows(offset, images, index, aneurysm, locations);
    for (int r = 0; r < size; ++r) written += counts[r];
    progress.Update(std::min(n, round_start + per_round * size));
  }
  writer.Commit(written, static_cast<int64_t>(problems.size()));
  progress.Finish();

  summary.patients = written;
  summary.skipped = static_cast<int64_t>(problems.size());
  if (o.skip_bad && !problems.empty()) {
    summary.skip_report = skip_report;
    if (rank == 0) {
      std::ostringstream s;
      s << "Index,reason\n";
      for (const auto& p : problems) {
        std::string reason = p.message;
        std::replace(reason.begin(), reason.end(), ',', ';');
        std::replace(reason.begin(), reason.end(), '"', '\'');
        s << (p.index >= 0 ? std::to_string(p.index) : std::string()) << ',' << reason << '\n';
      }
      WriteFileAtomically(summary.skip_report, s.str());
    }
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace angiotrain
