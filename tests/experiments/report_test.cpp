// Reports and explanations as a user meets them: the curves' arithmetic, `angiotrain train`
// leaving report.html, the page opened in headless Chromium (no console error, no broken image or
// link, every chart drawn; a screenshot kept under build/tests/report-screenshots/), the figures
// on the page equal to the run's files, and `angiotrain explain` with its errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/volume_file.h"
#include "experiments/evaluation/metrics.h"
#include "experiments/evaluation/curves.h"
#include "experiments/reports/report_grad_cam.h"
#include "experiments/reports/report_html.h"
#include "experiments/evaluation/submission.h"
#include "tests/experiments/phantom_run.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::CommandResult;
using testing::RunAngiotrain;
using testing::ScratchDir;

TEST(ReportCurves, OperatingPointsAndAveragePrecisionMatchSklearnOnAWorkedExample) {
  // sklearn: roc_curve -> fpr [0, 0, .5, .5, 1], tpr [0, .5, .5, 1, 1];
  // average_precision_score -> 0.8333.
  const std::vector<double> scores = {0.1, 0.4, 0.35, 0.8};
  const std::vector<uint8_t> labels = {0, 0, 1, 1};
  const auto points = OperatingPoints(scores, labels);
  ASSERT_EQ(points.size(), 5u);
  const double fpr[] = {0, 0, 0.5, 0.5, 1}, tpr[] = {0, 0.5, 0.5, 1, 1};
  for (size_t k = 0; k < points.size(); ++k) {
    EXPECT_DOUBLE_EQ(points[k].fpr, fpr[k]) << k;
    EXPECT_DOUBLE_EQ(points[k].tpr, tpr[k]) << k;
  }
  EXPECT_NEAR(*AveragePrecision(points), 5.0 / 6.0, 1e-12);
  EXPECT_TRUE(OperatingPoints({0.3, 0.4}, {1, 1}).empty());  // one class: no curve
}

TEST(ReportCurves, TiedScoresAreOnePoint) {
  const auto points = OperatingPoints({0.5, 0.5, 0.5, 0.9}, {0, 1, 0, 1});
  ASSERT_EQ(points.size(), 3u);
  EXPECT_DOUBLE_EQ(points[2].fpr, 1.0);
  EXPECT_DOUBLE_EQ(points[2].tpr, 1.0);
  EXPECT_DOUBLE_EQ(points[1].tpr, 0.5);
}

TEST(ReportCurves, BootstrapIntervalHoldsTheAurocAndNarrowsWithMorePatients) {
  std::vector<double> scores;
  std::vector<uint8_t> labels;
  for (int i = 0; i < 400; ++i) {
    labels.push_back(i % 2);
    scores.push_back((i % 2 ? 0.6 : 0.4) + 0.5 * std::sin(i * 12.9898));  // overlapping classes
  }
  const double auroc = *Auroc(scores, labels);
  const auto band = BootstrapRoc(scores, labels, 300);
  ASSERT_TRUE(band);
  EXPECT_EQ(band->resamples, 300);
  EXPECT_LT(band->auroc_low, auroc);
  EXPECT_GT(band->auroc_high, auroc);
  for (size_t g = 0; g < band->fpr.size(); ++g) EXPECT_LE(band->tpr_low[g], band->tpr_high[g]) << g;
  const auto again = BootstrapRoc(scores, labels, 300);
  EXPECT_EQ(again->auroc_low, band->auroc_low);  // seeded: the same page every time
  std::vector<double> few_scores(scores.begin(), scores.begin() + 40);
  std::vector<uint8_t> few_labels(labels.begin(), labels.begin() + 40);
  const auto wide = BootstrapRoc(few_scores, few_labels, 300);
  EXPECT_GT(wide->auroc_high - wide->auroc_low, band->auroc_high - band->auroc_low);
}

TEST(ReportHtml, EscapesTextAndEncodesBase64) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  EXPECT_EQ(Base64(""), "");
  EXPECT_EQ(Base64("f"), "Zg==");
  EXPECT_EQ(Base64("fo"), "Zm8=");
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

// Runs the browser check; `screenshot` is kept under build/tests/report-screenshots/.
CommandResult OpenInChromium(const std::string& page, const std::string& screenshot, int min_charts, int min_images) {
  std::filesystem::create_directories("report-screenshots");
  return testing::RunCommand({ANGIOTRAIN_PYTHON,
                              std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/experiments/report_browser_check.py", page,
                              "report-screenshots/" + screenshot, "--min-charts", std::to_string(min_charts),
                              "--min-images", std::to_string(min_images)},
                             180);
}

// Finds `label` in a table row of the page and returns the number in the next cell.
double TableNumber(const std::string& html, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(html, m, std::regex("<td>" + label + "</td><td>([0-9.]+)"))) return -1;
  return std::stod(m[1]);
}

class RunReport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    testing::PhantomRunOptions o;
    o.patients = 24;
    o.epochs = 2;
    o.synth_options = "--aneurysm-size 6,9 --contrast 3";
    testing::MakePhantomRun(*dir_, o, &run_);
  }
  static void TearDownTestSuite() { delete dir_; }
  static ScratchDir* dir_;
  static testing::PhantomRun run_;
};
ScratchDir* RunReport::dir_ = nullptr;
testing::PhantomRun RunReport::run_;

TEST_F(RunReport, TrainWritesThePageAndChromiumShowsItWithoutErrors) {
  if (::testing::Test::HasFatalFailure()) return;
  const std::string page = run_.run + "/report.html";
  ASSERT_TRUE(testing::FileExists(page)) << "train did not leave report.html";
  // 6 charts (ROC, PR, loss, validation figures, per-location scores and accuracy), Grad-CAM figures.
  const CommandResult r = OpenInChromium(page, "run_report.png", 6, 1);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"problems\": []"), std::string::npos) << r.output;
}

TEST_F(RunReport, PageFiguresEqualTheRunsFiles) {
  const std::string page = dir_->path() + "/again.html";
  CommandResult r = RunAngiotrain({"report", "--run", run_.run, "--out", page, "--examples", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = ReadFile(page);
  // The AUROC of the shown epoch's validation predictions against the volume's labels: the best
  // epoch's (best.json, validation/epoch_NNN.csv), which need not be the last one's
  // (validation_predictions.csv).
  const int best_epoch = nlohmann::json::parse(ReadFile(run_.run + "/best.json")).at("epoch").get<int>();
  char shown[32];
  std::snprintf(shown, sizeof shown, "/validation/epoch_%03d.csv", best_epoch);
  VolumeReader volume(run_.volume, MPI_COMM_NULL);
  std::map<int32_t, uint8_t> truth;
  for (size_t i = 0; i < volume.index().size(); ++i) truth[volume.index()[i]] = volume.aneurysm()[i];
  std::vector<double> scores;
  std::vector<uint8_t> labels;
  for (const auto& row : ReadProbabilities(run_.run + shown)) {
    scores.push_back(row.prediction.aneurysm);
    labels.push_back(truth.at(row.index));
  }
  const auto auroc = Auroc(scores, labels);
  ASSERT_TRUE(auroc) << "the validation split holds one class";
  EXPECT_NEAR(TableNumber(html, "Aneurysm AUROC"), *auroc, 5e-4) << "page: " << page << ", epoch " << best_epoch;
  EXPECT_EQ(TableNumber(html, "validation patients"), static_cast<double>(scores.size()));
  EXPECT_NE(html.find("seed&#39;s rule mean+1std"), std::string::npos);
  EXPECT_NE(html.find("no-location baseline"), std::string::npos);
  EXPECT_NE(html.find("[train]"), std::string::npos);  // the configuration
  EXPECT_EQ(html.find("http://"), std::string::npos);  // nothing fetched from the network
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
}

// The row "figures from" of the page's summary (its second cell, tags kept).
std::string FiguresFrom(const std::string& html) {
  std::smatch m;
  if (!std::regex_search(html, m, std::regex("<td>figures from</td><td>(.*?)</td></tr>"))) return "";
  return m[1];
}

// AUROC of a validation probabilities file against the volume's labels.
std::optional<double> AurocOf(const std::string& predictions, const std::string& volume_path) {
  VolumeReader volume(volume_path, MPI_COMM_NULL);
  std::map<int32_t, uint8_t> truth;
  for (size_t i = 0; i < volume.index().size(); ++i) truth[volume.index()[i]] = volume.aneurysm()[i];
  std::vector<double> scores;
  std::vector<uint8_t> labels;
  for (const auto& row : ReadProbabilities(predictions)) {
    scores.push_back(row.prediction.aneurysm);
    labels.push_back(truth.at(row.index));
  }
  return Auroc(scores, labels);
}

// A run with per-epoch evidence: the figures are best.pt's epoch (by the run's objective), read
// from that epoch's stored predictions, and the page says so; without best.pt, or with a best.json
// that does not match best.pt, they are the last validation's and last.pt's, said as plainly.
TEST_F(RunReport, FiguresComeFromTheBestEpochAndThePageSaysWhich) {
  namespace fs = std::filesystem;
  const auto best = nlohmann::json::parse(ReadFile(run_.run + "/best.json"));
  const int64_t epoch = best["epoch"];
  ASSERT_TRUE(epoch == 1 || epoch == 2) << best.dump();
  const std::string stored = run_.run + (epoch == 1 ? "/validation/epoch_001.csv" : "/validation/epoch_002.csv");

  // A copy of the run without validation_predictions.csv: the best epoch's own file is what is read.
  const std::string copy = dir_->path() + "/best-only";
  fs::copy(run_.run, copy, fs::copy_options::recursive);
  fs::remove(copy + "/validation_predictions.csv");
  fs::remove(copy + "/report.html");
  CommandResult r = RunAngiotrain({"report", "--run", copy, "--examples", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("figures of epoch " + std::to_string(epoch) + ", best.pt"), std::string::npos) << r.output;
  std::string html = ReadFile(copy + "/report.html");
  std::string from = FiguresFrom(html);
  EXPECT_EQ(from.rfind("epoch " + std::to_string(epoch) + " of 2, <code>best.pt</code>: the best epoch by presence_auroc", 0),
            0u)
      << from;
  EXPECT_EQ(from.find("also the last epoch") != std::string::npos, epoch == 2) << from;
  const auto auroc = AurocOf(stored, run_.volume);
  if (auroc) {
    EXPECT_NEAR(TableNumber(html, "Aneurysm AUROC"), *auroc, 5e-4);
  }
  EXPECT_NE(html.find("ROC and precision-recall (epoch " + std::to_string(epoch) + ", best.pt)"), std::string::npos);
  EXPECT_NE(html.find("Grad-CAM of epoch " + std::to_string(epoch) + ", best.pt"), std::string::npos);
  EXPECT_NE(html.find("explain --checkpoint best.pt"), std::string::npos);

  // The same run as if it had gone on for a third epoch that scored worse (its predictions
  // inverted): the figures stay the best epoch's, and the last epoch's AUROC is given beside them.
  const std::string continued = dir_->path() + "/continued";
  fs::copy(run_.run, continued, fs::copy_options::recursive);
  std::vector<int32_t> indices;
  std::vector<PatientPrediction> inverted;
  for (const auto& row : ReadProbabilities(run_.run + "/validation_predictions.csv")) {
    indices.push_back(row.index);
    inverted.push_back(row.prediction);
    inverted.back().aneurysm = 1 - row.prediction.aneurysm;
  }
  const std::string third = ProbabilitiesCsvText(CanonicalHeader(), indices, inverted);
  WriteFileAtomically(continued + "/validation/epoch_003.csv", third);
  WriteFileAtomically(continued + "/validation_predictions.csv", third);
  r = RunAngiotrain({"report", "--run", continued, "--examples", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  html = ReadFile(continued + "/report.html");
  from = FiguresFrom(html);
  EXPECT_EQ(from.rfind("epoch " + std::to_string(epoch) + " of 3, <code>best.pt</code>", 0), 0u) << from;
  EXPECT_EQ(from.find("also the last epoch"), std::string::npos) << from;
  const auto third_auroc = AurocOf(continued + "/validation_predictions.csv", run_.volume);
  if (auroc && third_auroc) {
    EXPECT_NEAR(TableNumber(html, "Aneurysm AUROC"), *auroc, 5e-4);
    const std::string row = "<td>last epoch (3, last.pt) Aneurysm AUROC</td><td>";
    const size_t at = html.find(row);
    ASSERT_NE(at, std::string::npos);
    EXPECT_NEAR(std::stod(html.substr(at + row.size(), 12)), *third_auroc, 5e-4);
  }

  // Without best.pt: the last validation and last.pt, labelled as such.
  const std::string last_only = dir_->path() + "/last-only";
  fs::copy(run_.run, last_only, fs::copy_options::recursive);
  fs::remove(last_only + "/best.pt");
  r = RunAngiotrain({"report", "--run", last_only, "--examples", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  html = ReadFile(last_only + "/report.html");
  EXPECT_EQ(FiguresFrom(html),
            "the last validation (epoch 2) and <code>last.pt</code>; no best.pt in the run folder");
  const auto last_auroc = AurocOf(run_.run + "/validation_predictions.csv", run_.volume);
  if (last_auroc) {
    EXPECT_NEAR(TableNumber(html, "Aneurysm AUROC"), *last_auroc, 5e-4);
  }
  EXPECT_NE(html.find("ROC and precision-recall (last validation, epoch 2, last.pt)"), std::string::npos);
  EXPECT_NE(html.find("explain --checkpoint last.pt"), std::string::npos);

  // A best.json naming another epoch than best.pt holds (a run cut between the two writes) does
  // not label best.pt with it.
  const std::string mismatched = dir_->path() + "/mismatched";
  fs::copy(run_.run, mismatched, fs::copy_options::recursive);
  nlohmann::json other = best;
  other["epoch"] = 3 - epoch;
  WriteFileAtomically(mismatched + "/best.json", other.dump());
  r = RunAngiotrain({"report", "--run", mismatched, "--examples", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  from = FiguresFrom(ReadFile(mismatched + "/report.html"));
  EXPECT_NE(from.find("the last validation (epoch 2) and <code>last.pt</code>; " + mismatched + "/best.pt holds epoch " +
                      std::to_string(epoch) + " step 0, but " + mismatched + "/best.json names epoch " +
                      std::to_string(3 - epoch)),
            std::string::npos)
      << from;
}

// The Grad-CAM figures' stage: by default the one that localises in the project's measurement
// (tests/experiments/grad_cam_phantom_test.cpp takes its maps over the same kReportGradCamLayer,
// README "How well the maps point at aneurysms"), features.3; `--layer` takes another; the page
// says which. A bad --layer is refused, naming --layer, and no page is written.
TEST_F(RunReport, GradCamFiguresUseTheMeasuredStageUnlessLayerNamesAnotherAndThePageSaysWhich) {
  EXPECT_EQ(kReportGradCamLayer, 3) << "the stage that localised on every phantom model (README table)";
  const std::string page = dir_->path() + "/layers.html";
  CommandResult r = RunAngiotrain({"report", "--run", run_.run, "--out", page, "--examples", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string html = ReadFile(page);
  // 64 px: features.3 is 1/8 of the input, an 8x8 map.
  EXPECT_NE(html.find("Grad-CAM over features.3 (8x8 map at 64 px"), std::string::npos) << page;
  r = RunAngiotrain({"report", "--run", run_.run, "--out", page, "--examples", "1", "--layer", "features.8"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  html = ReadFile(page);
  EXPECT_NE(html.find("Grad-CAM over features.8 (2x2 map at 64 px"), std::string::npos) << page;
  EXPECT_EQ(html.find("Grad-CAM over features.3"), std::string::npos) << page;
  for (const std::string layer : {"features.9", "classifier.1"}) {
    const std::string bad = dir_->path() + "/bad-layer.html";
    r = RunAngiotrain({"report", "--run", run_.run, "--out", bad, "--layer", layer});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("report --layer '" + layer + "': expected features.0 to features.8"), std::string::npos)
        << r.output;
    EXPECT_FALSE(testing::FileExists(bad));
  }
}

TEST_F(RunReport, NamesTheMissingVolumeAndTheMissingRunFolder) {
  CommandResult r = RunAngiotrain({"report", "--run", run_.run, "--out", dir_->path() + "/x.html", "--volume",
                                   dir_->path() + "/gone.h5"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("gone.h5: the volume with the validation labels is missing"), std::string::npos) << r.output;
  r = RunAngiotrain({"report", "--run", dir_->path() + "/data"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no config.toml"), std::string::npos) << r.output;
}

TEST_F(RunReport, ExplainWritesTheGridWithPredictsProbability) {
  const std::string png = dir_->path() + "/explain.png";
  CommandResult r = RunAngiotrain({"explain", "--checkpoint", run_.run + "/last.pt", "--input", run_.volume,
                                   "--patient", "1003", "--out", png});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  // The default layer is the last stage (features.8, 1/32: 2x2 at 64 px).
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("presence p = ([0-9.]+), Grad-CAM over features.8, a 2x2 map")))
      << r.output;
  const double explained = std::stod(m[1]);
  r = RunAngiotrain({"predict", "--checkpoint", run_.run + "/last.pt", "--input", run_.volume, "--template",
                     run_.data + "/train_set/train.csv", "--out", dir_->path() + "/p.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  double predicted = -1;
  for (const auto& row : ReadProbabilities(dir_->path() + "/p.probabilities.csv"))
    if (row.index == 1003) predicted = row.prediction.aneurysm;
  EXPECT_NEAR(explained, predicted, 1e-6);
  // A 2 x 4 grid of 256-pixel panels under a title bar: 4*256 + 3*4 wide, 36 + 2*256 + 4 high.
  const std::string bytes = ReadFile(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  auto be32 = [&](size_t at) {
    return (static_cast<uint8_t>(bytes[at]) << 24) | (static_cast<uint8_t>(bytes[at + 1]) << 16) |
           (static_cast<uint8_t>(bytes[at + 2]) << 8) | static_cast<uint8_t>(bytes[at + 3]);
  };
  EXPECT_EQ(be32(16), 4 * 256 + 3 * 4);
  EXPECT_EQ(be32(20), 36 + 2 * 256 + 4);
  // --layer takes an earlier stage (features.4, 1/16: 4x4 at 64 px); the output explained is the same.
  r = RunAngiotrain({"explain", "--checkpoint", run_.run + "/last.pt", "--input", run_.volume, "--patient", "1003",
                     "--layer", "features.4", "--out", png});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("presence p = ([0-9.]+), Grad-CAM over features.4, a 4x4 map")))
      << r.output;
  EXPECT_EQ(std::stod(m[1]), explained);
}

TEST_F(RunReport, ExplainNamesAnUnknownPatientTargetAndAResolutionMismatch) {
  const std::string png = dir_->path() + "/bad.png";
  CommandResult r = RunAngiotrain({"explain", "--checkpoint", run_.run + "/last.pt", "--input", run_.volume,
                                   "--patient", "99", "--out", png});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(run_.volume + ": no patient with Index 99 (it holds 24 patients, Index 1000 to 1023)"),
            std::string::npos)
      << r.output;
  r = RunAngiotrain({"explain", "--checkpoint", run_.run + "/last.pt", "--input", run_.volume, "--patient", "1003",
                     "--target", "L_NOSE", "--out", png});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--target 'L_NOSE': expected presence or a location"), std::string::npos) << r.output;
  for (const std::string layer : {"features.9", "classifier.1", "features."}) {
    r = RunAngiotrain({"explain", "--checkpoint", run_.run + "/last.pt", "--input", run_.volume, "--patient", "1003",
                       "--layer", layer, "--out", png});
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("Grad-CAM layer '" + layer + "': expected features.0 to features.8"), std::string::npos)
        << r.output;
  }
  const std::string small = dir_->path() + "/small.h5";
  r = RunAngiotrain({"ingest", "--input", run_.data + "/train_set", "--out", small, "--resolution", "32", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunAngiotrain({"explain", "--checkpoint", run_.run + "/last.pt", "--input", small, "--patient", "1003", "--out",
                     png});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(small + ": resolution 32, but the model in " + run_.run + "/last.pt was trained at 64"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(testing::FileExists(png));
}

// The sweep's page: the ranked evaluations linking each trial's page, one chart per axis, opened
// in Chromium (the links resolve: the check fails on a missing file).
TEST(SweepReport, SweepRunWritesTheRankedPageLinkedToEachTrialsPage) {
  ScratchDir dir;
  testing::PhantomRun run;
  testing::PhantomRunOptions o;
  o.patients = 24;
  o.synth_options = "--aneurysm-size 6,9 --contrast 3";
  o.run_training = false;
  testing::MakePhantomRun(dir, o, &run);
  const std::string store = dir / "sweep";
  {
    std::ofstream f(dir / "sweep.toml");
    f << "[sweep]\nmethod = \"grid\"\nobjective = \"presence_auroc\"\ndir = \"" << store << "\"\n"
      << "[base.data]\nvolume = \"" << run.volume << "\"\nvalidation_split = 0.25\nsplit_seed = 1\n"
      << "[base.model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\ntask = \"multitask\"\n"
      << "[base.train]\nbatch_size = 4\nseed = 1\n"
      << "[axes]\n\"train.lr\" = [1e-3, 1e-2]\n\"train.epochs\" = [1, 2]\nthresholds = [\"mean+1std\", \"fixed:0.5\"]\n";
  }
  CommandResult r = RunAngiotrain({"sweep", "run", "--config", dir / "sweep.toml"}, 0, 900);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string page = store + "/report.html";
  ASSERT_TRUE(testing::FileExists(page)) << r.output;
  const std::string html = ReadFile(page);
  for (const char* trial : {"trials/t0000/report.html", "trials/t0001/report.html"}) {
    EXPECT_NE(html.find(std::string("href=\"") + trial + "\""), std::string::npos) << trial;
    EXPECT_TRUE(testing::FileExists(store + "/" + trial)) << trial;
  }
  // Charts: the objective against train.lr, epochs and the threshold rule.
  r = OpenInChromium(page, "sweep_report.png", 3, 0);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"problems\": []"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"links\": "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace angiotrain
