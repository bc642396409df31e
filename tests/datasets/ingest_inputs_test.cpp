// Ingest and its inputs: an output never replaces an input (refused before anything is read,
// the input left byte for byte), inputs of the wrong kind are named as such, a label file whose
// labels are all 0 (a test template) is warned about once, and a JPEG ends at its end-of-image
// marker whatever follows it.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <filesystem>

#include "core/atomic_file.h"
#include "datasets/ingest.h"
#include "datasets/label_table.h"
#include "tests/datasets/kium_fixture.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

namespace fs = std::filesystem;

// A 4-patient K-ium folder (64 px views and train.csv) in a fresh scratch folder.
struct Folder {
  ScratchDir scratch;
  KiumFixture fx = WriteKiumFixture(scratch / "train_set", 4, 64);
};

CommandResult Ingest(const std::string& out, const std::string& input, const std::string& labels, int ranks = 0) {
  return RunAngiotrain(
      {"ingest", "--input", input, "--labels", labels, "--out", out, "--resolution", "32", "--quiet"}, ranks, 300);
}

TEST(IngestInputs, OutputThatIsTheLabelFileAViewOrInsideTheImageFolderIsRefused) {
  Folder f;
  fs::create_symlink(f.fx.labels, f.scratch / "labels-link.csv");
  struct Case {
    std::string out, input;  // the input it would replace (or the folder it lies in)
  };
  const std::vector<Case> cases = {{f.fx.labels, f.fx.labels},
                                   {f.scratch / "labels-link.csv", f.fx.labels},
                                   {f.fx.View(1001, "RI-B"), f.fx.dir},
                                   {f.fx.dir + "/volume.h5", f.fx.dir}};
  const std::string labels = ReadFile(f.fx.labels), view = ReadFile(f.fx.View(1001, "RI-B"));
  for (const Case& c : cases) {
    CommandResult r = Ingest(c.out, f.fx.dir, f.fx.labels);
    EXPECT_NE(r.exit_code, 0) << c.out << ":\n" << r.output;
    EXPECT_NE(r.output.find(c.out + ": is "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.input), std::string::npos) << r.output;
    EXPECT_EQ(ReadFile(f.fx.labels), labels) << c.out;
    EXPECT_EQ(ReadFile(f.fx.View(1001, "RI-B")), view) << c.out;
  }
  EXPECT_EQ(ListDir(f.fx.dir).size(), 4u * kNumViews + 1) << "something was written into the image folder";
}

TEST(IngestInputs, InputsOfTheWrongKindAreNamedAsSuch) {
  Folder f;
  CommandResult r = Ingest(f.scratch / "v.h5", f.fx.labels, f.fx.labels);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(f.fx.labels + ": is a file, expected a folder"), std::string::npos) << r.output;
  r = Ingest(f.scratch / "v.h5", f.fx.dir, f.fx.dir);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(f.fx.dir + ": is a folder, expected a label CSV"), std::string::npos) << r.output;
}

TEST(IngestInputs, LabelFileOfZerosIsWarnedAboutOnceUnderTwoRanks) {
  Folder f;
  const std::string warning = "every label is 0";
  CommandResult r = Ingest(f.scratch / "train.h5", f.fx.dir, f.fx.labels);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(CountOccurrences(r.output, warning), 0u) << r.output;

  std::vector<PatientLabels> zeros = f.fx.patients;
  for (auto& p : zeros) p = PatientLabels{p.index};
  WriteLabelTable(f.fx.labels, zeros);  // what K-ium's test.csv looks like
  r = Ingest(f.scratch / "test.h5", f.fx.dir, f.fx.labels, 2);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(CountOccurrences(r.output, warning), 1u) << r.output;
  EXPECT_NE(r.output.find(f.fx.labels + ": " + warning), std::string::npos) << r.output;
}

// --- where a JPEG ends (DecodeView in-process) ----------------------------------------------------

TEST(IngestInputs, JpegWithTrailingBytesDecodesAsWithout) {
  Folder f;
  const std::string path = f.fx.View(1002, "LV-A");
  std::vector<uint8_t> expected(32 * 32), decoded(32 * 32);
  ASSERT_EQ(DecodeView(path, 32, expected.data()), "");
  std::string trailing;
  for (int i = 0; i < 300; ++i) trailing += static_cast<char>(i * 37);  // FF, D9, zeros among them
  WriteText(path, ReadFile(path) + trailing);
  EXPECT_EQ(DecodeView(path, 32, decoded.data()), "");
  EXPECT_EQ(decoded, expected);
}

TEST(IngestInputs, TruncatedJpegIsRefusedWhateverFollowsOrPrecedes) {
  Folder f;
  const std::string path = f.fx.View(1002, "LV-B"), bytes = ReadFile(path);
  std::vector<uint8_t> out(32 * 32);
  const std::string half = bytes.substr(0, bytes.size() / 2);
  WriteText(path, half);
  EXPECT_EQ(DecodeView(path, 32, out.data()).rfind("truncated JPEG", 0), 0u);
  WriteText(path, half + std::string(300, '\0'));  // padding after a cut
  EXPECT_EQ(DecodeView(path, 32, out.data()).rfind("truncated JPEG", 0), 0u);
  // An end-of-image marker inside a header segment (as in an embedded EXIF thumbnail) is not the end.
  WriteText(path, bytes.substr(0, 2) + std::string("\xFF\xE1\x00\x06\xFF\xD9\x00\x00", 8) + half.substr(2));
  EXPECT_EQ(DecodeView(path, 32, out.data()).rfind("truncated JPEG", 0), 0u);
}

}  // namespace
}  // namespace angiotrain::testing
