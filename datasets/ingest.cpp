// K-ium folder or manifest -> HDF5 volume file, in parallel over MPI ranks. See ingest.h.
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
#include "datasets/dicom_view.h"
#include "datasets/kium_schema.h"
#include "datasets/label_table.h"
#include "datasets/manifest.h"
#include "datasets/volume_file.h"

namespace angiotrain {
namespace fs = std::filesystem;
namespace {

using Problem = IngestProblem;

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

}  // namespace

std::string DecodeView(const std::string& path, int resolution, uint8_t* out, const std::string& frame) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return "cannot be opened";
  std::vector<uint8_t> bytes(static_cast<size_t>(f.tellg()));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()))) {
    return "cannot be read";
  }
  if (bytes.empty()) return "is empty (0 bytes)";
  if (LooksLikeDicom(bytes)) {
    DicomFrameRule rule;
    std::string why = ParseDicomFrameRule(frame, &rule);
    return why.empty() ? DecodeDicomView(path, resolution, rule, out) : why;
  }
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
  DicomFrameRule frame_rule;
  if (std::string why = ParseDicomFrameRule(o.frame, &frame_rule); !why.empty()) throw CollectiveError(why);
  // Before reading anything: the inputs are of the right kind, and no output replaces one.
  const bool manifest_mode = !o.manifest.empty();
  const std::string input = manifest_mode ? o.manifest : o.input_dir;
  if (manifest_mode) {
    RequireFile(o.manifest, "a manifest CSV (Index,View,Path)");
  } else {
    RequireFolder(o.input_dir, "a folder of K-ium views ({Index}{View}.jpg)");
  }
  if (!o.labels_csv.empty()) RequireFile(o.labels_csv, "a label CSV (train.csv)");
  const std::string skip_report = o.skip_report.empty() ? o.out_path + ".skipped.csv" : o.skip_report;
  RefuseOutputOverInput(o.out_path, {input, o.labels_csv});
  if (o.skip_bad) RefuseOutputOverInput(skip_report, {input, o.labels_csv});
  cv::setNumThreads(1);  // one rank per core

  IngestSummary summary;
  IngestPlan plan;
  try {
    plan = manifest_mode ? PlanFromManifest(o.manifest, o.labels_csv, o.allow_outside)
                         : PlanFromKiumFolder(o.input_dir, o.labels_csv);
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    throw CollectiveError(e.what());
  }
  if (manifest_mode) {  // the manifest's images may lie anywhere: none may be an output
    std::vector<std::string> images;
    for (const auto& p : plan.patients) images.insert(images.end(), p.views.begin(), p.views.end());
    RefuseOutputOverInput(o.out_path, images);
    if (o.skip_bad) RefuseOutputOverInput(skip_report, images);
  }
  summary.every_label_zero = plan.every_label_zero;
  std::vector<Problem> problems = std::move(plan.problems);
  std::vector<IngestPatient> patients = std::move(plan.patients);
  if (!problems.empty() && !o.skip_bad) throw CollectiveError(DescribeProblems(problems));
  if (patients.empty() && problems.empty()) {
    throw CollectiveError(manifest_mode ? o.manifest + ": the manifest has no rows"
                                        : o.input_dir + ": no {Index}{View}.jpg images found");
  }

  VolumeProvenance provenance;
  provenance.source = fs::absolute(input).lexically_normal().string();
  provenance.labels_file = plan.labels_file.empty() ? "" : fs::absolute(plan.labels_file).lexically_normal().string();
  provenance.tool = "angiotrain 0.1.0";
  provenance.created = NowIso8601();
  {  // one creation time for every rank
    char buf[32] = {};
    provenance.created.copy(buf, sizeof buf - 1);
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, comm);
    provenance.created = buf;
  }
  const bool has_labels = plan.has_labels;
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
      const IngestPatient& e = patients[p];
      std::string failure;
      for (int v = 0; v < kNumViews && failure.empty(); ++v) {
        std::string why = DecodeView(e.views[v], o.resolution, images.data() + kept * volume_bytes + v * view_bytes, o.frame);
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
