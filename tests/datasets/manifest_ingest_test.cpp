// Ingest through a manifest (datasets/manifest.h): any folder layout ingests to the same volume as
// the K-ium folder, rows in manifest or label order and the same file for any number of ranks;
// each bad manifest is refused with one message naming the file and the problem, nothing written.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "datasets/label_table.h"
#include "datasets/volume_file.h"
#include "tests/datasets/kium_fixture.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

namespace fs = std::filesystem;

// The fixture's K-ium folder, and the same images moved into a hospital-like layout
// export/P{index}/S{view}/IM0001.jpg (no K-ium names) with a manifest export/manifest.csv.
class ManifestIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fx_ = WriteKiumFixture(scratch_ / "train_set", 5, 32);
    fs::create_directories(Export());
    for (const auto& p : fx_.patients) {
      for (int v = 0; v < kNumViews; ++v) {
        const std::string rel = "P" + std::to_string(p.index) + "/S" + std::to_string(v + 1) + "/IM0001.jpg";
        fs::create_directories(fs::path(Export() + "/" + rel).parent_path());
        fs::copy_file(fx_.View(p.index, ViewNames()[v]), Export() + "/" + rel);
        rows_.push_back({p.index, ViewNames()[v], rel});
      }
    }
  }

  struct Row {
    int32_t index;
    std::string view, path;
  };
  std::string Export() const { return scratch_ / "export"; }
  std::string Manifest() const { return Export() + "/manifest.csv"; }
  std::string out() const { return scratch_ / "volume.h5"; }

  // Writes the manifest from `rows`, with the fixture's labels as columns when `labels`.
  void WriteManifest(const std::vector<Row>& rows, bool labels = false) {
    std::ostringstream s;
    s << "Index,View,Path";
    if (labels)
      for (const auto& n : LocationNames()) s << ',' << n;
    if (labels) s << ",Aneurysm";
    s << '\n';
    for (const Row& r : rows) {
      s << r.index << ',' << r.view << ',' << r.path;
      if (labels) {
        const PatientLabels* l = nullptr;
        for (const auto& p : fx_.patients)
          if (p.index == r.index) l = &p;
        for (uint8_t v : l->locations) s << ',' << int(v);
        s << ',' << int(l->aneurysm);
      }
      s << '\n';
    }
    WriteText(Manifest(), s.str());
  }

  CommandResult IngestManifest(std::vector<std::string> extra = {}, int ranks = 0, bool labels_csv = true) {
    std::vector<std::string> args = {"ingest", "--manifest", Manifest(), "--out", out(), "--resolution", "32",
                                     "--quiet"};
    if (labels_csv) args.insert(args.end(), {"--labels", fx_.labels});
    args.insert(args.end(), extra.begin(), extra.end());
    return RunAngiotrain(args, ranks, 300);
  }

  void ExpectRejected(const CommandResult& r, const std::string& file, const std::string& problem) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << "message does not name " << file << ":\n" << r.output;
    EXPECT_NE(r.output.find(problem), std::string::npos) << "message does not say '" << problem << "':\n" << r.output;
    EXPECT_EQ(CountOccurrences(r.output, problem), 1u) << "one message:\n" << r.output;
    EXPECT_FALSE(FileExists(out()));
    for (const auto& name : ListDir(scratch_.path())) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }

  ScratchDir scratch_;
  KiumFixture fx_;
  std::vector<Row> rows_;
};

void ExpectSameVolume(const std::string& a_path, const std::string& b_path) {
  VolumeReader a(a_path, MPI_COMM_NULL), b(b_path, MPI_COMM_NULL);
  ASSERT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.has_labels(), b.has_labels());
  EXPECT_EQ(a.index(), b.index());
  EXPECT_EQ(a.aneurysm(), b.aneurysm());
  EXPECT_EQ(a.locations(), b.locations());
  std::vector<int64_t> all;
  for (int64_t r = 0; r < a.rows(); ++r) all.push_back(r);
  std::vector<uint8_t> ia, ib;
  a.ReadImages(all, &ia);
  b.ReadImages(all, &ib);
  EXPECT_TRUE(ia == ib) << "images differ";
}

TEST_F(ManifestIngestTest, AnyLayoutIngestsToTheSameVolumeAsTheKiumFolder) {
  std::vector<Row> shuffled(rows_.rbegin(), rows_.rend());  // order of rows does not matter with --labels
  WriteManifest(shuffled);
  CommandResult r = IngestManifest();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  fs::rename(out(), scratch_ / "manifest.h5");
  r = RunAngiotrain({"ingest", "--input", fx_.dir, "--labels", fx_.labels, "--out", out(), "--resolution", "32",
                     "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ExpectSameVolume(scratch_ / "manifest.h5", out());
  VolumeReader v(scratch_ / "manifest.h5", MPI_COMM_NULL);
  EXPECT_EQ(v.provenance().source, fs::absolute(Manifest()).lexically_normal().string());
}

TEST_F(ManifestIngestTest, LabelColumnsOfTheManifestServeWithoutALabelCsv) {
  WriteManifest(rows_, true);
  CommandResult r = IngestManifest({}, 0, false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  fs::rename(out(), scratch_ / "own.h5");
  WriteManifest(rows_);
  ASSERT_EQ(IngestManifest().exit_code, 0);
  ExpectSameVolume(scratch_ / "own.h5", out());
  VolumeReader v(scratch_ / "own.h5", MPI_COMM_NULL);
  EXPECT_TRUE(v.has_labels());
  EXPECT_EQ(v.provenance().labels_file, fs::absolute(Manifest()).lexically_normal().string());
}

TEST_F(ManifestIngestTest, WithoutLabelsRowsFollowTheManifestsOrderAndTwoRanksWriteTheSameFile) {
  std::vector<Row> rows;  // patients 1003, 1001, 1004, 1000, 1002
  for (int32_t index : {1003, 1001, 1004, 1000, 1002})
    for (const Row& row : rows_)
      if (row.index == index) rows.push_back(row);
  WriteManifest(rows);
  CommandResult r = IngestManifest({}, 1, false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  {
    VolumeReader v(out(), MPI_COMM_NULL);
    EXPECT_EQ(v.index(), (std::vector<int32_t>{1003, 1001, 1004, 1000, 1002}));
    EXPECT_FALSE(v.has_labels());
  }
  fs::rename(out(), scratch_ / "one.h5");
  r = IngestManifest({"--patients-per-round", "1"}, 2, false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ExpectSameVolume(scratch_ / "one.h5", out());
}

// --- bad manifests -------------------------------------------------------------------------------

TEST_F(ManifestIngestTest, RejectsRowWhoseFileIsMissing) {
  WriteManifest(rows_);
  fs::remove(Export() + "/P1002/S3/IM0001.jpg");
  ExpectRejected(IngestManifest(), Export() + "/P1002/S3/IM0001.jpg", "no such file");
}

TEST_F(ManifestIngestTest, RejectsViewNamedTwice) {
  std::vector<Row> rows = rows_;
  rows.push_back({1001, "RV-A", "P1001/S1/IM0001.jpg"});
  WriteManifest(rows);
  ExpectRejected(IngestManifest(), Manifest() + ":42", "view RV-A of patient 1001 is named twice");
}

TEST_F(ManifestIngestTest, RejectsViewMissingForAPatient) {
  std::vector<Row> rows;
  for (const Row& r : rows_)
    if (!(r.index == 1004 && r.view == "LV-B")) rows.push_back(r);
  WriteManifest(rows);
  ExpectRejected(IngestManifest(), Manifest(), "patient 1004 has no row for view LV-B");
}

TEST_F(ManifestIngestTest, RejectsUnknownViewName) {
  std::vector<Row> rows = rows_;
  rows[3].view = "LI-C";
  WriteManifest(rows);
  ExpectRejected(IngestManifest(), Manifest() + ":5", "'LI-C' is not a K-ium view");
}

TEST_F(ManifestIngestTest, RejectsPathLeavingTheFolderThroughDotDotUnlessAllowed) {
  std::vector<Row> rows = rows_;
  rows[0].path = "../train_set/1000LI-A.jpg";
  WriteManifest(rows);
  ExpectRejected(IngestManifest(), Manifest() + ":2", "leaves the manifest's folder");
  CommandResult r = IngestManifest({"--allow-outside"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(ManifestIngestTest, RejectsPathLeavingTheFolderThroughASymbolicLinkUnlessAllowed) {
  fs::create_directory_symlink(fx_.dir, Export() + "/linked");
  std::vector<Row> rows = rows_;
  rows[9].path = "linked/1001LI-B.jpg";
  WriteManifest(rows);
  ExpectRejected(IngestManifest(), Manifest() + ":11", "through a symbolic link");
  CommandResult r = IngestManifest({"--allow-outside"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(ManifestIngestTest, RejectsLabelColumnThatDisagreesWithTheLabelCsv) {
  WriteManifest(rows_, true);
  std::vector<PatientLabels> labels = fx_.patients;
  labels[2].locations[LocationIndex("L_MCA")] ^= 1;
  WriteLabelTable(fx_.labels, labels);
  ExpectRejected(IngestManifest(), Manifest(), "column L_MCA of patient 1002");
  CommandResult r = IngestManifest();
  EXPECT_NE(r.output.find(fx_.labels), std::string::npos) << r.output;
}

TEST_F(ManifestIngestTest, RejectsManifestWithoutPathColumn) {
  WriteText(Manifest(), "Index,View\n1000,LI-A\n");
  ExpectRejected(IngestManifest(), Manifest(), "needs the columns Index, View and Path");
}

TEST_F(ManifestIngestTest, InputAndManifestTogetherAreRefused) {
  WriteManifest(rows_);
  CommandResult r = IngestManifest({"--input", fx_.dir});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("excludes"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(out()));
}

}  // namespace
}  // namespace angiotrain::testing
