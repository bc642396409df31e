// Ingest: K-ium folder -> volume file, through the real binary (and mpirun), plus every kind
// of bad input named in the issue: one clear message naming the file, non-zero exit, no output.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "core/atomic_file.h"
#include "datasets/volume_file.h"
#include "tests/datasets/kium_fixture.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

namespace fs = std::filesystem;

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override { fx_ = WriteKiumFixture(scratch_ / "train_set", 6, 64); }

  CommandResult Ingest(std::vector<std::string> extra = {}, int ranks = 0) {
    std::vector<std::string> args = {"ingest", "--input", fx_.dir, "--labels", fx_.labels,
                                     "--out", out(), "--resolution", "64", "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunAngiotrain(args, ranks, 300);
  }
  std::string out() const { return scratch_ / "volume.h5"; }

  // The bad-input contract: non-zero exit, the message names the file and the problem, and
  // neither the output nor a temporary file is left in the output folder.
  void ExpectRejected(const CommandResult& r, const std::string& file, const std::string& problem) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << "message does not name " << file << ":\n" << r.output;
    EXPECT_NE(r.output.find(problem), std::string::npos) << "message does not say '" << problem << "':\n" << r.output;
    EXPECT_FALSE(FileExists(out()));
    for (const auto& name : ListDir(scratch_.path())) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }

  // A failed run over an existing output: non-zero exit, the message names the file and the
  // problem, the old output is byte for byte what it was, and no temporary file is left.
  void ExpectKeptGoodFile(const CommandResult& r, const std::string& good, const std::string& file,
                          const std::string& problem) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << "message does not name " << file << ":\n" << r.output;
    EXPECT_NE(r.output.find(problem), std::string::npos) << "message does not say '" << problem << "':\n" << r.output;
    EXPECT_TRUE(ReadFile(out()) == good) << "the existing output was changed";
    for (const auto& name : ListDir(scratch_.path())) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }

  std::string View(int32_t index, const std::string& view) const {
    return fx_.dir + "/" + std::to_string(index) + view + ".jpg";
  }

  ScratchDir scratch_;
  KiumFixture fx_;
};

TEST_F(IngestTest, WritesEveryViewAndLabelInCsvOrder) {
  CommandResult r = Ingest();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  VolumeReader v(out(), MPI_COMM_NULL);
  ASSERT_EQ(v.rows(), 6);
  EXPECT_EQ(v.resolution(), 64);
  ASSERT_TRUE(v.has_labels());
  std::vector<uint8_t> images;
  v.ReadImages({0, 1, 2, 3, 4, 5}, &images);
  for (int p = 0; p < 6; ++p) {
    EXPECT_EQ(v.index()[p], fx_.patients[p].index);
    EXPECT_EQ(v.aneurysm()[p], fx_.patients[p].aneurysm);
    for (int k = 0; k < kNumLocations; ++k) EXPECT_EQ(v.locations()[p * kNumLocations + k], fx_.patients[p].locations[k]);
    for (int view = 0; view < kNumViews; ++view) {
      cv::Mat expected = cv::imread(View(fx_.patients[p].index, ViewNames()[view]), cv::IMREAD_GRAYSCALE);
      ASSERT_EQ(std::memcmp(expected.data, images.data() + (size_t(p) * kNumViews + view) * 64 * 64, 64 * 64), 0)
          << "patient " << p << " view " << ViewNames()[view];
    }
  }
  EXPECT_EQ(v.provenance().skipped, 0);
  EXPECT_NE(v.provenance().source.find("train_set"), std::string::npos);
}

TEST_F(IngestTest, ResizesToTheRequestedResolution) {
  CommandResult r = RunAngiotrain({"ingest", "--input", fx_.dir, "--labels", fx_.labels, "--out", out(),
                                   "--resolution", "16", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  VolumeReader v(out(), MPI_COMM_NULL);
  EXPECT_EQ(v.resolution(), 16);
  std::vector<uint8_t> images;
  v.ReadImages({0}, &images);
  EXPECT_EQ(images.size(), size_t(8 * 16 * 16));
}

// Views for the pixel check. Gray levels stay within [40, 215]: JPEG ringing is then never
// clipped at 0 or 255, the one case where the scaled decode and the full-size one differ by
// more than a level (see README, Ingest).
cv::Mat SmoothView(cv::Size size, uint32_t seed) {
  std::mt19937 rng(seed);
  cv::Mat img(size, CV_8UC1);
  for (int y = 0; y < size.height; ++y) {
    for (int x = 0; x < size.width; ++x) {
      double v = 60 + 80.0 * x / size.width + 40.0 * y / size.height + 15 * std::sin(0.07 * x) * std::cos(0.05 * y);
      img.at<uint8_t>(y, x) = cv::saturate_cast<uint8_t>(v);
    }
  }
  const int w = size.width, h = size.height;
  for (int i = 0; i < 6; ++i) {  // vessel-like lines and blobs with sharp edges
    cv::Point a(rng() % w, rng() % h), b(rng() % w, rng() % h);
    cv::line(img, a, b, cv::Scalar(40 + rng() % 176), 1 + rng() % 5, cv::LINE_AA);
    cv::circle(img, cv::Point(rng() % w, rng() % h), 3 + rng() % (w / 8), cv::Scalar(40 + rng() % 176), -1, cv::LINE_AA);
  }
  cv::GaussianBlur(img, img, cv::Size(0, 0), 1.0);
  return img;
}

cv::Mat NoisyView(cv::Size size, uint32_t seed) {
  cv::Mat img(size, CV_8UC1);
  cv::RNG rng(seed);
  rng.fill(img, cv::RNG::UNIFORM, 40, 216);
  return img;
}

// Each view is R x R as OpenCV's area resize of the full-size decode makes it, within one gray
// level, whichever way ingest decodes it: at 1/2, 1/4 or 1/8 scale (sides multiples of 2R, 4R,
// 8R) or at full size (other sides, where blocks would straddle the output pixels).
TEST(IngestPixelsTest, EveryViewIsTheAreaResizeOfTheFullSizeDecodeWithinOneGrayLevel) {
  constexpr int R = 64;
  const std::array<cv::Size, kNumViews> sizes = {{
      {128, 128}, {256, 256}, {512, 512}, {1024, 512},  // 1/2, 1/4, 1/8, 1/8 then 2:1 area
      {512, 256},                                       // 1/4
      {600, 600}, {700, 520}, {96, 96},                 // full size: 1/8 and 1/4 would not tile
  }};
  ScratchDir scratch;
  const std::string dir = scratch / "test_set";
  fs::create_directories(dir);
  const std::vector<std::string> kinds = {"smooth", "noisy"};  // patients 1000 and 1001
  for (size_t p = 0; p < kinds.size(); ++p) {
    for (int v = 0; v < kNumViews; ++v) {
      const uint32_t seed = static_cast<uint32_t>(10 * p + v + 1);
      cv::Mat img = p == 0 ? SmoothView(sizes[v], seed) : NoisyView(sizes[v], seed);
      ASSERT_TRUE(cv::imwrite(dir + "/" + std::to_string(1000 + p) + ViewNames()[v] + ".jpg", img,
                              {cv::IMWRITE_JPEG_QUALITY, 95}));
    }
  }

  CommandResult r = RunAngiotrain({"ingest", "--input", dir, "--out", scratch / "volume.h5", "--resolution",
                                   std::to_string(R), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  VolumeReader volume(scratch / "volume.h5", MPI_COMM_NULL);
  ASSERT_EQ(volume.index(), (std::vector<int32_t>{1000, 1001}));
  std::vector<uint8_t> images;
  volume.ReadImages({0, 1}, &images);

  for (size_t p = 0; p < kinds.size(); ++p) {
    double largest = 0, total = 0;
    for (int v = 0; v < kNumViews; ++v) {
      cv::Mat full = cv::imread(dir + "/" + std::to_string(1000 + p) + ViewNames()[v] + ".jpg", cv::IMREAD_GRAYSCALE);
      cv::Mat expected, difference;
      cv::resize(full, expected, cv::Size(R, R), 0, 0, cv::INTER_AREA);
      cv::Mat stored(R, R, CV_8UC1, images.data() + (p * kNumViews + v) * R * R);
      cv::absdiff(stored, expected, difference);
      double max_difference = 0;
      cv::minMaxLoc(difference, nullptr, &max_difference);
      EXPECT_LE(max_difference, 1) << kinds[p] << " " << sizes[v].width << "x" << sizes[v].height;
      largest = std::max(largest, max_difference);
      total += cv::mean(difference)[0];
    }
    std::printf("%s views: largest difference %g, mean %.3f gray levels\n", kinds[p].c_str(), largest,
                total / kNumViews);
  }
}

TEST_F(IngestTest, TwoRanksWriteTheSameFileAsOneRank) {
  ASSERT_EQ(Ingest({}, 1).exit_code, 0);
  fs::rename(out(), scratch_ / "one.h5");
  // 2 patients per rank and round: rank 0 takes 1000-1001 and 1004-1005, rank 1 takes
  // 1002-1003 and nothing in the second round (uneven shares, several collective writes).
  CommandResult two = Ingest({"--patients-per-round", "2"}, 2);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  VolumeReader a(scratch_ / "one.h5", MPI_COMM_NULL), b(out(), MPI_COMM_NULL);
  ASSERT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.index(), b.index());
  EXPECT_EQ(a.aneurysm(), b.aneurysm());
  EXPECT_EQ(a.locations(), b.locations());
  std::vector<int64_t> all = {0, 1, 2, 3, 4, 5};
  std::vector<uint8_t> ia, ib;
  a.ReadImages(all, &ia);
  b.ReadImages(all, &ib);
  EXPECT_TRUE(ia == ib);
}

TEST_F(IngestTest, H5pyReadsTheFileWithoutKnowingAngiotrain) {
  ASSERT_EQ(Ingest().exit_code, 0);
  std::string script = std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/datasets/read_volume_h5py.py";
  CommandResult r = RunCommand({ANGIOTRAIN_PYTHON, script, out(), fx_.dir});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("images (6, 8, 64, 64) uint8"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("views LI-A,LI-B,RI-A,RI-B,LV-A,LV-B,RV-A,RV-B"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pixels match OpenCV decode: True"), std::string::npos) << r.output;
}

TEST_F(IngestTest, TestSetWithoutLabelsIngestsFromFileNames) {
  CommandResult r = RunAngiotrain({"ingest", "--input", fx_.dir, "--out", out(), "--resolution", "64", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  VolumeReader v(out(), MPI_COMM_NULL);
  EXPECT_EQ(v.rows(), 6);
  EXPECT_FALSE(v.has_labels());
  EXPECT_EQ(v.index().front(), 1000);
  EXPECT_EQ(v.index().back(), 1005);
}

TEST_F(IngestTest, ProgressLineReportsPatientsAndRate) {
  CommandResult r = RunAngiotrain({"ingest", "--input", fx_.dir, "--labels", fx_.labels, "--out", out(),
                                   "--resolution", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ingest 6/6 patients"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/s"), std::string::npos) << r.output;
}

// --- bad input -------------------------------------------------------------------------------

TEST_F(IngestTest, RejectsMissingView) {
  fs::remove(View(1003, "LV-B"));
  ExpectRejected(Ingest(), View(1003, "LV-B"), "missing view LV-B of patient 1003");
}

TEST_F(IngestTest, RejectsCorruptJpeg) {
  std::string bytes = ReadFile(View(1002, "RI-A"));
  for (size_t i = 2; i < 200 && i < bytes.size(); ++i) bytes[i] = static_cast<char>(0x5A);  // wreck the headers
  WriteText(View(1002, "RI-A"), bytes);
  ExpectRejected(Ingest(), View(1002, "RI-A"), "corrupt JPEG");
}

TEST_F(IngestTest, RejectsTruncatedJpeg) {
  std::string bytes = ReadFile(View(1001, "LI-B"));
  WriteText(View(1001, "LI-B"), bytes.substr(0, bytes.size() / 2));
  ExpectRejected(Ingest(), View(1001, "LI-B"), "truncated JPEG");
}

TEST_F(IngestTest, RejectsFileThatIsNotAnImage) {
  WriteText(View(1004, "RV-A"), "Index,Aneurysm\nthis is text, not a picture\n");
  ExpectRejected(Ingest(), View(1004, "RV-A"), "is not a decodable image");
}

TEST_F(IngestTest, RejectsEmptyImageFile) {
  WriteText(View(1004, "RV-B"), "");
  ExpectRejected(Ingest(), View(1004, "RV-B"), "is empty");
}

TEST_F(IngestTest, RejectsLabelRowWithoutImages) {
  for (const auto& view : ViewNames()) fs::remove(View(1005, view));
  ExpectRejected(Ingest(), fx_.labels, "patient 1005 has a label row but no images");
}

TEST_F(IngestTest, RejectsImagesWithoutLabelRow) {
  for (const auto& view : ViewNames()) fs::copy_file(View(1000, view), View(2000, view));
  ExpectRejected(Ingest(), View(2000, "LI-A"), "patient 2000 has images but no row in " + fx_.labels);
}

TEST_F(IngestTest, RejectsDuplicateIndex) {
  std::string csv = ReadFile(fx_.labels);
  csv += csv.substr(csv.find('\n') + 1, csv.find('\n', csv.find('\n') + 1) - csv.find('\n'));  // repeat row 1
  WriteText(fx_.labels, csv);
  ExpectRejected(Ingest(), fx_.labels, "duplicate Index 1000");
}

// Applies `edit` to every line of the label CSV (line 0 is the header).
void EditCsvLines(const std::string& path, const std::function<std::string(int, const std::string&)>& edit) {
  std::string csv = ReadFile(path), out, line;
  int n = 0;
  for (char c : csv) {
    if (c != '\n') {
      line += c;
      continue;
    }
    out += edit(n++, line) + "\n";
    line.clear();
  }
  WriteText(path, out);
}

TEST_F(IngestTest, RejectsMissingCsvColumn) {
  EditCsvLines(fx_.labels, [](int, const std::string& l) { return l.substr(0, l.rfind(',')); });  // drop R_PCA
  ExpectRejected(Ingest(), fx_.labels, "missing column(s): R_PCA");
}

TEST_F(IngestTest, RejectsUnknownCsvColumn) {
  EditCsvLines(fx_.labels, [](int n, const std::string& l) { return l + (n == 0 ? ",Notes" : ",x"); });
  ExpectRejected(Ingest(), fx_.labels, "unknown column 'Notes'");
}

TEST_F(IngestTest, RejectsLabelOtherThanZeroOrOne) {
  std::string csv = ReadFile(fx_.labels);
  size_t row2 = csv.find("\n1001,") + 6;
  csv[row2] = '2';
  WriteText(fx_.labels, csv);
  ExpectRejected(Ingest(), fx_.labels + ":3: column Aneurysm: label '2' is not 0 or 1", "is not 0 or 1");
}

TEST_F(IngestTest, RejectsLocationLabelOtherThanZeroOrOne) {
  EditCsvLines(fx_.labels, [](int n, const std::string& l) {
    return n == 4 ? l.substr(0, l.rfind(',')) + ",-1" : l;  // R_PCA, the last column, of patient 1003
  });
  ExpectRejected(Ingest(), fx_.labels + ":5: column R_PCA: label '-1' is not 0 or 1", "is not 0 or 1");
}

TEST_F(IngestTest, RejectsCrlfLineEnds) {
  std::string csv = ReadFile(fx_.labels), crlf;
  for (char c : csv) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  WriteText(fx_.labels, crlf);
  ExpectRejected(Ingest(), fx_.labels, "CRLF");
}

TEST_F(IngestTest, RejectsUtf8ByteOrderMark) {
  WriteText(fx_.labels, "\xEF\xBB\xBF" + ReadFile(fx_.labels));
  ExpectRejected(Ingest(), fx_.labels, "byte-order mark");
}

TEST_F(IngestTest, RejectsNonIntegerIndex) {
  std::string csv = ReadFile(fx_.labels);
  csv.replace(csv.find("\n1002,"), 6, "\n10x2,");
  WriteText(fx_.labels, csv);
  ExpectRejected(Ingest(), fx_.labels, "'10x2' is not an integer");
}

TEST_F(IngestTest, RejectsOutputInMissingFolder) {
  CommandResult r = RunAngiotrain({"ingest", "--input", fx_.dir, "--labels", fx_.labels, "--out",
                                   scratch_ / "no/such/dir/volume.h5", "--quiet"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(scratch_ / "no/such/dir/volume.h5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(scratch_ / "no"));
}

TEST_F(IngestTest, BadInputUnderTwoRanksFailsOnceWithoutHanging) {
  std::string bytes = ReadFile(View(1003, "RV-B"));  // rank 1's share (see TwoRanks... above)
  WriteText(View(1003, "RV-B"), bytes.substr(0, bytes.size() / 3));
  CommandResult r = Ingest({"--patients-per-round", "2"}, 2);
  ExpectRejected(r, View(1003, "RV-B"), "truncated JPEG");
  EXPECT_EQ(r.output.find("MPI_ABORT"), std::string::npos) << "expected a clean collective exit:\n" << r.output;
}

// The failed runs below fail part way: the output is open and rows of earlier rounds are
// written when the bad view of the last round is decoded.
TEST_F(IngestTest, RunFailingPartWayKeepsTheExistingGoodFile) {
  ASSERT_EQ(Ingest().exit_code, 0);
  const std::string good = ReadFile(out());
  WriteText(View(1005, "RV-B"), "not an image");  // 1000-1003 are written in rounds 1 and 2
  CommandResult r = Ingest({"--patients-per-round", "2"});
  ExpectKeptGoodFile(r, good, View(1005, "RV-B"), "is not a decodable image");
}

TEST_F(IngestTest, RunFailingWhileDecodingOnAnotherRankKeepsTheExistingGoodFile) {
  ASSERT_EQ(Ingest().exit_code, 0);
  const std::string good = ReadFile(out());
  // One patient per rank and round: rank 0 takes 1000, 1002, 1004 and rank 1 takes 1001, 1003,
  // 1005; the corrupt view of 1005 is found by rank 1 in the third round.
  std::string bytes = ReadFile(View(1005, "LI-A"));
  for (size_t i = 2; i < 200 && i < bytes.size(); ++i) bytes[i] = static_cast<char>(0x5A);  // wreck the headers
  WriteText(View(1005, "LI-A"), bytes);
  CommandResult r = Ingest({"--patients-per-round", "1"}, 2);
  ExpectKeptGoodFile(r, good, View(1005, "LI-A"), "corrupt JPEG");
}

TEST_F(IngestTest, SkipBadIngestsTheGoodPatientsAndReportsTheRest) {
  fs::remove(View(1001, "LI-A"));                 // found by the scan, on every rank
  WriteText(View(1002, "RI-B"), "not an image");  // found while decoding, on rank 1
  CommandResult r = Ingest({"--skip-bad", "--patients-per-round", "2"}, 2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  VolumeReader v(out(), MPI_COMM_NULL);
  EXPECT_EQ(v.index(), (std::vector<int32_t>{1000, 1003, 1004, 1005}));
  EXPECT_EQ(v.provenance().skipped, 2);
  std::string report = ReadFile(out() + ".skipped.csv");
  EXPECT_NE(report.find("1001,"), std::string::npos) << report;
  EXPECT_NE(report.find("missing view LI-A"), std::string::npos) << report;
  EXPECT_NE(report.find("1002,"), std::string::npos) << report;
  EXPECT_NE(report.find("is not a decodable image"), std::string::npos) << report;
}

}  // namespace
}  // namespace angiotrain::testing
