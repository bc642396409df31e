// `angiotrain evaluate` end to end through the real binary: figures in the JSON equal the hand
// computation on a 6-patient case; mismatched indices and invalid cells fail with a message.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "datasets/kium_schema.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using nlohmann::json;
using testing::CommandResult;
using testing::RunAngiotrain;
using testing::ScratchDir;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// One K-ium CSV row: Index, Aneurysm, then the 21 locations in canonical order, each "0" unless
// named in `cells` (location name -> text).
struct Row {
  int index;
  std::string aneurysm;
  std::map<std::string, std::string> cells;
  std::string other = "0";  // value of the locations not named
};

std::string KiumCsv(const std::vector<Row>& rows) {
  std::string s = "Index,Aneurysm";
  for (const auto& n : LocationNames()) s += "," + n;
  s += "\n";
  for (const Row& r : rows) {
    s += std::to_string(r.index) + "," + r.aneurysm;
    for (const auto& n : LocationNames()) {
      auto it = r.cells.find(n);
      s += "," + (it == r.cells.end() ? r.other : it->second);
    }
    s += "\n";
  }
  return s;
}

// Truth: patients 1, 2, 4 have an aneurysm; locations L_ICA (1, 4), R_MCA and BA (2).
const std::vector<Row> kTruth = {
    {1, "1", {{"L_ICA", "1"}}}, {2, "1", {{"BA", "1"}, {"R_MCA", "1"}}}, {3, "0", {}},
    {4, "1", {{"L_ICA", "1"}}}, {5, "0", {}},                           {6, "0", {}},
};
// Prediction: L_ICA found on 1, false on 3, missed on 4; BA found on 2, R_MCA missed on 2.
const std::vector<Row> kPred = {
    {1, "0.9", {{"L_ICA", "1"}}}, {2, "0.6", {{"BA", "1"}}}, {3, "0.6", {{"L_ICA", "1"}}},
    {4, "0.3", {}},               {5, "0.1", {}},            {6, "0.6", {}},
};
// Sidecar: same Aneurysm; L_ICA AUROC 7/8, R_MCA 2/5 (ties with 4 negatives), BA 1; the other
// 18 locations have no positive (AUROC undefined).
const std::vector<Row> kProbabilities = {
    {1, "0.9", {{"L_ICA", "0.8"}, {"R_MCA", "0.5"}, {"BA", "0.1"}}, "0.01"},
    {2, "0.6", {{"L_ICA", "0.1"}, {"R_MCA", "0.3"}, {"BA", "0.9"}}, "0.01"},
    {3, "0.6", {{"L_ICA", "0.7"}, {"R_MCA", "0.3"}, {"BA", "0.1"}}, "0.01"},
    {4, "0.3", {{"L_ICA", "0.2"}, {"R_MCA", "0.3"}, {"BA", "0.1"}}, "0.01"},
    {5, "0.1", {{"L_ICA", "0.1"}, {"R_MCA", "0.3"}, {"BA", "0.1"}}, "0.01"},
    {6, "0.6", {{"L_ICA", "0.05"}, {"R_MCA", "0.3"}, {"BA", "0.1"}}, "0.01"},
};

TEST(EvaluateCommand, FiguresMatchTheHandComputation) {
  ScratchDir dir;
  WriteText(dir / "truth.csv", KiumCsv(kTruth));
  WriteText(dir / "pred.csv", KiumCsv(kPred));
  WriteText(dir / "pred.probabilities.csv", KiumCsv(kProbabilities));
  CommandResult r = RunAngiotrain({"evaluate", "--pred", dir / "pred.csv", "--truth", dir / "truth.csv",
                                   "--probabilities", dir / "pred.probabilities.csv", "--json", dir / "eval.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json j = json::parse(ReadFile(dir / "eval.json"));

  EXPECT_EQ(j["patients"], 6);
  // Positives 0.9, 0.6, 0.3 against negatives 0.6, 0.1, 0.6: 3 + (0.5 + 1 + 0.5) + 1 of 9 pairs.
  EXPECT_NEAR(j["aneurysm_auroc"].get<double>(), 6.0 / 9, 1e-12);
  // 3 wrong cells of 6 x 21; the truth has 4 positive cells.
  EXPECT_NEAR(j["location_accuracy"].get<double>(), 123.0 / 126, 1e-12);
  EXPECT_NEAR(j["no_location_accuracy"].get<double>(), 122.0 / 126, 1e-12);
  EXPECT_NEAR(j["exact_match"].get<double>(), 3.0 / 6, 1e-12);  // patients 1, 5, 6
  EXPECT_NEAR(j["no_location_exact_match"].get<double>(), 3.0 / 6, 1e-12);  // patients 3, 5, 6

  const json& ica = j["per_location"]["L_ICA"];
  EXPECT_EQ(ica["support"], 2);
  EXPECT_EQ(ica["tp"], 1);
  EXPECT_EQ(ica["fp"], 1);
  EXPECT_EQ(ica["fn"], 1);
  EXPECT_NEAR(ica["precision"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(ica["recall"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(ica["f1"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(ica["auroc"].get<double>(), 7.0 / 8, 1e-12);
  const json& mca = j["per_location"]["R_MCA"];
  EXPECT_TRUE(mca["precision"].is_null());  // never predicted
  EXPECT_NEAR(mca["recall"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(mca["auroc"].get<double>(), 2.0 / 5, 1e-12);
  EXPECT_NEAR(j["per_location"]["BA"]["f1"].get<double>(), 1.0, 1e-12);
  const json& pca = j["per_location"]["R_PCA"];
  EXPECT_EQ(pca["support"], 0);
  EXPECT_TRUE(pca["recall"].is_null());
  EXPECT_TRUE(pca["auroc"].is_null());

  EXPECT_EQ(j["locations_present"], 3);
  EXPECT_NEAR(j["macro_precision"].get<double>(), (0.5 + 0 + 1) / 3, 1e-12);
  EXPECT_NEAR(j["macro_recall"].get<double>(), (0.5 + 0 + 1) / 3, 1e-12);
  EXPECT_NEAR(j["macro_f1"].get<double>(), (0.5 + 0 + 1) / 3, 1e-12);
  EXPECT_EQ(j["locations_with_auroc"], 3);
  EXPECT_NEAR(j["macro_auroc"].get<double>(), (7.0 / 8 + 2.0 / 5 + 1) / 3, 1e-12);
  EXPECT_NEAR(j["rsna_weighted_auc"].get<double>(), (13 * 6.0 / 9 + 7.0 / 8 + 2.0 / 5 + 1) / 16, 1e-12);

  // The table prints the K-ium figures next to the baseline, and "undefined" where a ratio is.
  EXPECT_NE(r.output.find("Aneurysm AUROC"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.9762"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.9683"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("undefined"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("RSNA 2025 weighted AUC"), std::string::npos) << r.output;
}

TEST(EvaluateCommand, FormatJsonPrintsTheSameDocumentWithoutSidecarFigures) {
  ScratchDir dir;
  WriteText(dir / "truth.csv", KiumCsv(kTruth));
  WriteText(dir / "pred.csv", KiumCsv(kPred));
  CommandResult r = RunAngiotrain({"evaluate", "--pred", dir / "pred.csv", "--truth", dir / "truth.csv", "--format",
                                   "json", "--json", dir / "eval.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json printed = json::parse(r.output);
  EXPECT_EQ(printed, json::parse(ReadFile(dir / "eval.json")));
  EXPECT_NEAR(printed["location_accuracy"].get<double>(), 123.0 / 126, 1e-12);
  EXPECT_TRUE(printed["rsna_weighted_auc"].is_null());
  EXPECT_TRUE(printed["macro_auroc"].is_null());
  EXPECT_TRUE(printed["per_location"]["L_ICA"]["auroc"].is_null());
}

TEST(EvaluateCommand, MismatchedIndicesFailNamingFilesAndIndices) {
  ScratchDir dir;
  WriteText(dir / "truth.csv", KiumCsv(kTruth));
  std::vector<Row> pred = kPred;
  pred.back().index = 7;  // 6 missing, 7 extra
  WriteText(dir / "pred.csv", KiumCsv(pred));
  CommandResult r = RunAngiotrain({"evaluate", "--pred", dir / "pred.csv", "--truth", dir / "truth.csv"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(dir / "pred.csv"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(dir / "truth.csv"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Index missing from pred: 1 (6)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Index in pred but not in truth: 1 (7)"), std::string::npos) << r.output;
}

TEST(EvaluateCommand, SidecarFromAnotherRunFails) {
  ScratchDir dir;
  WriteText(dir / "truth.csv", KiumCsv(kTruth));
  WriteText(dir / "pred.csv", KiumCsv(kPred));
  std::vector<Row> probabilities = kProbabilities;
  probabilities[3].aneurysm = "0.35";  // Index 4: 0.3 in pred
  WriteText(dir / "p.csv", KiumCsv(probabilities));
  CommandResult r = RunAngiotrain(
      {"evaluate", "--pred", dir / "pred.csv", "--truth", dir / "truth.csv", "--probabilities", dir / "p.csv"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(dir / "p.csv" + ":5: Index 4: Aneurysm"), std::string::npos) << r.output;
}

TEST(EvaluateCommand, AneurysmOutsideUnitIntervalFailsNamingLineAndColumn) {
  ScratchDir dir;
  WriteText(dir / "truth.csv", KiumCsv(kTruth));
  std::vector<Row> pred = kPred;
  pred[1].aneurysm = "1.5";
  WriteText(dir / "pred.csv", KiumCsv(pred));
  CommandResult r = RunAngiotrain({"evaluate", "--pred", dir / "pred.csv", "--truth", dir / "truth.csv"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(dir / "pred.csv" + ":3: column Aneurysm: probability '1.5' is not in [0, 1]"),
            std::string::npos)
      << r.output;
}

TEST(EvaluateCommand, LocationThatIsAProbabilityFails) {
  ScratchDir dir;
  WriteText(dir / "truth.csv", KiumCsv(kTruth));
  std::vector<Row> pred = kPred;
  pred[0].cells["L_ICA"] = "0.8";
  WriteText(dir / "pred.csv", KiumCsv(pred));
  CommandResult r = RunAngiotrain({"evaluate", "--pred", dir / "pred.csv", "--truth", dir / "truth.csv"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(dir / "pred.csv" + ":2: column L_ICA: '0.8' is not 0 or 1"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace angiotrain
