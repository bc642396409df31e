// K-ium submission writer: template order kept, integer locations, probability sidecar, atomicity.
#include "experiments/evaluation/submission.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/error.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::FileExists;
using testing::ScratchDir;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// A test.csv-like template: columns in a non-canonical order (Aneurysm first, locations reversed,
// Index last), rows not sorted, every label 0.
std::vector<std::string> ShuffledHeader() {
  std::vector<std::string> h = {"Aneurysm"};
  for (int k = kNumLocations - 1; k >= 0; --k) h.push_back(LocationNames()[k]);
  h.push_back("Index");
  return h;
}

std::string TemplateText(const std::vector<int>& indices) {
  std::string s;
  auto header = ShuffledHeader();
  for (size_t c = 0; c < header.size(); ++c) s += (c ? "," : "") + header[c];
  s += "\n";
  for (int index : indices) {
    for (size_t c = 0; c < header.size(); ++c) s += (c ? "," : "") + (header[c] == "Index" ? std::to_string(index) : "0");
    s += "\n";
  }
  return s;
}

PatientPrediction Prediction(double aneurysm, double base) {
  PatientPrediction p;
  p.aneurysm = aneurysm;
  for (int k = 0; k < kNumLocations; ++k) p.locations[k] = base + 0.01 * k;  // base .. base + 0.2
  return p;
}

TEST(WriteSubmission, KeepsTemplateRowsAndColumnsAndWritesIntegerLocations) {
  ScratchDir dir;
  WriteText(dir / "test.csv", TemplateText({30, 10, 20}));
  std::map<int32_t, PatientPrediction> predictions = {
      {10, Prediction(0.125, 0.0)},   // locations 0.00 .. 0.20: all below 0.5
      {20, Prediction(0.1 + 0.2, 0.4)},  // 0.40 .. 0.60: locations 11.. (0.51+) above 0.5
      {30, Prediction(1.0, 0.6)},     // all above
      {99, Prediction(0.5, 0.5)},     // not in the template: ignored
  };
  WriteSubmission(dir / "test.csv", dir / "output.csv", predictions, ThresholdRule::Fixed(0.5));

  CsvTable out = ReadCsv(dir / "output.csv");
  EXPECT_EQ(out.header, ShuffledHeader());
  ASSERT_EQ(out.rows.size(), 3u);
  const int index_col = out.Column("Index"), aneurysm_col = out.Column("Aneurysm");
  EXPECT_EQ(out.rows[0][index_col], "30");
  EXPECT_EQ(out.rows[1][index_col], "10");
  EXPECT_EQ(out.rows[2][index_col], "20");
  // The shortest text that reads back to the same double.
  EXPECT_EQ(out.rows[0][aneurysm_col], "1");
  EXPECT_EQ(out.rows[1][aneurysm_col], "0.125");
  EXPECT_EQ(std::stod(out.rows[2][aneurysm_col]), 0.1 + 0.2);
  for (int k = 0; k < kNumLocations; ++k) {
    const int col = out.Column(LocationNames()[k]);
    EXPECT_EQ(out.rows[0][col], "1") << LocationNames()[k];
    EXPECT_EQ(out.rows[1][col], "0") << LocationNames()[k];
    EXPECT_EQ(out.rows[2][col], 0.4 + 0.01 * k > 0.5 ? "1" : "0") << LocationNames()[k];
  }

  CsvTable sidecar = ReadCsv(ProbabilitiesPathFor(dir / "output.csv"));
  EXPECT_EQ(ProbabilitiesPathFor(dir / "output.csv"), dir / "output.probabilities.csv");
  EXPECT_EQ(sidecar.header, ShuffledHeader());
  ASSERT_EQ(sidecar.rows.size(), 3u);
  EXPECT_EQ(sidecar.rows[2][index_col], "20");
  for (int k = 0; k < kNumLocations; ++k) {
    EXPECT_EQ(std::stod(sidecar.rows[2][sidecar.Column(LocationNames()[k])]), 0.4 + 0.01 * k);
  }
}

TEST(WriteSubmission, MeanPlusStdRuleIsTakenOverTheTemplateRowsOnly) {
  ScratchDir dir;
  WriteText(dir / "test.csv", TemplateText({1, 2}));
  // Patient 3 is not in the template; counted, it would lift L_ICA's threshold above patient 2's 0.3.
  std::map<int32_t, PatientPrediction> predictions = {{1, Prediction(0.5, 0.1)}, {2, Prediction(0.5, 0.3)}};
  predictions[3] = Prediction(0.5, 0.1);
  predictions[3].locations[0] = 1.0;
  WriteSubmission(dir / "test.csv", dir / "out.csv", predictions, ThresholdRule::MeanPlusStd(0.5));
  std::vector<SubmissionRow> rows = ReadSubmission(dir / "out.csv");
  ASSERT_EQ(rows.size(), 2u);
  // Over patients 1 and 2 each location has mean m and std 0.1: threshold m + 0.05, so patient 2 is 1.
  for (int k = 0; k < kNumLocations; ++k) {
    EXPECT_EQ(rows[0].locations[k], 0) << LocationNames()[k];
    EXPECT_EQ(rows[1].locations[k], 1) << LocationNames()[k];
  }
}

TEST(WriteSubmission, MissingPredictionNamesTheIndexAndWritesNothing) {
  ScratchDir dir;
  WriteText(dir / "test.csv", TemplateText({1, 2, 3}));
  std::map<int32_t, PatientPrediction> predictions = {{1, Prediction(0.2, 0.1)}, {3, Prediction(0.2, 0.1)}};
  try {
    WriteSubmission(dir / "test.csv", dir / "output.csv", predictions, ThresholdRule::MeanPlusStd());
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir / "test.csv"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no prediction for Index 2"), std::string::npos) << msg;
  }
  EXPECT_FALSE(FileExists(dir / "output.csv"));
  EXPECT_FALSE(FileExists(dir / "output.probabilities.csv"));
}

TEST(WriteSubmission, ProbabilityOutsideUnitIntervalIsAnErrorAndKeepsTheOldFiles) {
  ScratchDir dir;
  WriteText(dir / "test.csv", TemplateText({1, 2}));
  std::map<int32_t, PatientPrediction> good = {{1, Prediction(0.2, 0.1)}, {2, Prediction(0.7, 0.1)}};
  WriteSubmission(dir / "test.csv", dir / "output.csv", good, ThresholdRule::Fixed(0.5));
  const std::string before = ReadFile(dir / "output.csv");
  const std::string sidecar_before = ReadFile(dir / "output.probabilities.csv");

  std::map<int32_t, PatientPrediction> bad = good;
  bad[2].locations[LocationIndex("BA")] = 1.5;
  try {
    WriteSubmission(dir / "test.csv", dir / "output.csv", bad, ThresholdRule::Fixed(0.5));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Index 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("BA = 1.5"), std::string::npos) << msg;
  }
  bad = good;
  bad[1].aneurysm = std::nan("");
  EXPECT_THROW(WriteSubmission(dir / "test.csv", dir / "output.csv", bad, ThresholdRule::Fixed(0.5)), Error);
  EXPECT_EQ(ReadFile(dir / "output.csv"), before);
  EXPECT_EQ(ReadFile(dir / "output.probabilities.csv"), sidecar_before);
  EXPECT_EQ(testing::ListDir(dir.path()).size(), 3u);  // no temporary left behind
}

// While alive, this process cannot write past `bytes` in any file: the write fails with EFBIG
// (SIGXFSZ, which would kill the process, is ignored). The old limit and handler come back at
// the end of the scope, also when an assertion leaves it.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) ADD_FAILURE() << "setrlimit(RLIMIT_FSIZE) failed";
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*saved_handler_)(int) = SIG_DFL;
};

TEST(WriteSubmission, WriteFailingAfterTheSubmissionIsWrittenKeepsBothOldFiles) {
  ScratchDir dir, elsewhere;
  WriteText(dir / "test.csv", TemplateText({1, 2, 3}));
  std::map<int32_t, PatientPrediction> old_predictions = {
      {1, Prediction(0.2, 0.1)}, {2, Prediction(0.7, 0.1)}, {3, Prediction(0.4, 0.2)}};
  WriteSubmission(dir / "test.csv", dir / "output.csv", old_predictions, ThresholdRule::Fixed(0.5));
  const std::string before = ReadFile(dir / "output.csv");
  const std::string sidecar_before = ReadFile(dir / "output.probabilities.csv");

  // New predictions, and the sizes of the files they make (written in another folder): the
  // submission is smaller than its sidecar, so a size limit between the two lets the
  // submission be written in full and fails the sidecar part way.
  std::map<int32_t, PatientPrediction> new_predictions = {
      {1, Prediction(0.9, 0.45)}, {2, Prediction(0.05, 0.6)}, {3, Prediction(0.55, 0.3)}};
  WriteSubmission(dir / "test.csv", elsewhere / "output.csv", new_predictions, ThresholdRule::Fixed(0.5));
  const auto submission_size = std::filesystem::file_size(elsewhere / "output.csv");
  const auto sidecar_size = std::filesystem::file_size(elsewhere / "output.probabilities.csv");
  ASSERT_LT(submission_size + 100, sidecar_size);
  ASSERT_NE(ReadFile(elsewhere / "output.csv"), before);

  std::string message;
  {
    FileSizeLimit limit((submission_size + sidecar_size) / 2);
    try {
      WriteSubmission(dir / "test.csv", dir / "output.csv", new_predictions, ThresholdRule::Fixed(0.5));
    } catch (const Error& e) {
      message = e.what();
    }
  }
  EXPECT_NE(message.find(dir / "output.probabilities.csv" + ": write failed"), std::string::npos)
      << "expected the sidecar write to fail, got: '" << message << "'";
  EXPECT_EQ(ReadFile(dir / "output.csv"), before);
  EXPECT_EQ(ReadFile(dir / "output.probabilities.csv"), sidecar_before);
  EXPECT_EQ(testing::ListDir(dir.path()).size(), 3u);  // no temporary left behind
}

TEST(WriteSubmission, TemplateWithoutTheKiumColumnsIsRejected) {
  ScratchDir dir;
  WriteText(dir / "test.csv", "Index,Aneurysm\n1,0\n");
  try {
    WriteSubmission(dir / "test.csv", dir / "output.csv", {}, ThresholdRule::Fixed(0.5));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing column(s): L_ICA"), std::string::npos) << e.what();
  }
}

TEST(ReadSubmission, RejectsNonBinaryLocationsAndOutOfRangeAneurysmNamingLineAndColumn) {
  ScratchDir dir;
  std::string header = "Index,Aneurysm";
  std::string zeros;
  for (const auto& n : LocationNames()) {
    header += "," + n;
    zeros += ",0";
  }
  WriteText(dir / "a.csv", header + "\n1,0.5" + zeros + "\n2,1.01" + zeros + "\n");
  try {
    ReadSubmission(dir / "a.csv");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "a.csv" + ":3: column Aneurysm"), std::string::npos) << e.what();
  }
  std::string two = zeros;
  two.replace(two.size() - 1, 1, "2");  // R_PCA, the last column
  WriteText(dir / "b.csv", header + "\n1,0.5" + two + "\n");
  try {
    ReadSubmission(dir / "b.csv");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "b.csv" + ":2: column R_PCA: '2' is not 0 or 1"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace angiotrain
