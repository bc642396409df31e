// The phantom generator: reproducible, the exact K-ium layout, labels that match the
// annotations, aneurysms drawn only where their injection fills the parent artery, and a label
// signal that is local (global image statistics near chance, a local blob feature well above).
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "datasets/label_table.h"
#include "datasets/phantom/phantom.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

namespace fs = std::filesystem;

// Small, fast phantoms unless a test needs more.
PhantomOptions SmallOptions(int patients, int test_patients = 0) {
  PhantomOptions o;
  o.patients = patients;
  o.test_patients = test_patients;
  o.resolution = 96;
  o.seed = 7;
  o.show_progress = false;
  return o;
}

std::vector<std::string> SortedNames(const std::string& dir) {
  std::vector<std::string> names = ListDir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> ExpectedFiles(int32_t first, int count, std::vector<std::string> extra) {
  for (int32_t i = first; i < first + count; ++i)
    for (const auto& v : ViewNames()) extra.push_back(std::to_string(i) + v + ".jpg");
  std::sort(extra.begin(), extra.end());
  return extra;
}

// For each annotated aneurysm of a split: (index, location name).
std::set<std::pair<int32_t, std::string>> AnnotatedLocations(const nlohmann::json& doc) {
  std::set<std::pair<int32_t, std::string>> out;
  for (const auto& a : doc.at("aneurysms")) out.insert({a.at("index").get<int32_t>(), a.at("location").get<std::string>()});
  return out;
}

std::set<std::pair<int32_t, std::string>> LabelledLocations(const LabelTable& table) {
  std::set<std::pair<int32_t, std::string>> out;
  for (const auto& p : table.patients)
    for (int k = 0; k < kNumLocations; ++k)
      if (p.locations[k]) out.insert({p.index, LocationNames()[k]});
  return out;
}

TEST(PhantomTest, SameSeedGivesByteIdenticalFilesForAnyThreadCount) {
  ScratchDir a, b;
  PhantomOptions o = SmallOptions(3, 2);
  o.prevalence = 1.0;
  o.threads = 1;
  GeneratePhantomDataset(o, a.path());
  o.threads = 3;
  GeneratePhantomDataset(o, b.path());
  for (const std::string split : {"train_set", "test_set"}) {
    std::vector<std::string> names = SortedNames(a / split);
    ASSERT_EQ(names, SortedNames(b / split));
    for (const auto& name : names)
      EXPECT_EQ(ReadFile(a / split + "/" + name), ReadFile(b / split + "/" + name)) << split << "/" << name;
  }
}

TEST(PhantomTest, DifferentSeedsGiveDifferentPatients) {
  ScratchDir a, b;
  PhantomOptions o = SmallOptions(1);
  GeneratePhantomDataset(o, a.path());
  o.seed += 1;
  GeneratePhantomDataset(o, b.path());
  EXPECT_NE(ReadFile(a / "train_set/1000LI-A.jpg"), ReadFile(b / "train_set/1000LI-A.jpg"));
}

TEST(PhantomTest, WritesTheKiumLayoutExactly) {
  ScratchDir out;
  PhantomOptions o = SmallOptions(3, 2);
  PhantomSummary s = GeneratePhantomDataset(o, out.path());
  EXPECT_EQ(s.train_patients, 3);
  EXPECT_EQ(s.test_patients, 2);
  // Nothing but the two splits: no staging folder is left behind.
  EXPECT_EQ(SortedNames(out.path()), (std::vector<std::string>{"test_set", "train_set"}));
  EXPECT_EQ(SortedNames(out / "train_set"), ExpectedFiles(1000, 3, {"train.csv", "annotations.json"}));
  EXPECT_EQ(SortedNames(out / "test_set"),
            ExpectedFiles(1003, 2, {"test.csv", "groundtruth.csv", "annotations.json"}));
  // The CSV header in the DESIGN.md column order.
  std::string header = ReadFile(out / "train_set/train.csv");
  header = header.substr(0, header.find('\n'));
  EXPECT_EQ(header,
            "Index,Aneurysm,L_ICA,R_ICA,L_PCOM,R_PCOM,L_AntChor,R_AntChor,L_ACA,R_ACA,L_ACOM,R_ACOM,L_MCA,R_MCA,"
            "L_VA,R_VA,L_PICA,R_PICA,L_SCA,R_SCA,BA,L_PCA,R_PCA");
  // test.csv: the test indices with every label 0.
  LabelTable test = ReadLabelTable(out / "test_set/test.csv");
  ASSERT_EQ(test.patients.size(), 2u);
  for (const auto& p : test.patients) {
    EXPECT_EQ(p.aneurysm, 0);
    for (uint8_t v : p.locations) EXPECT_EQ(v, 0);
  }
  LabelTable truth = ReadLabelTable(out / "test_set/groundtruth.csv");
  ASSERT_EQ(truth.patients.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(truth.patients[i].index, test.patients[i].index);
  // Every view is an 8-bit single-channel JPEG of the asked size.
  for (const auto& v : ViewNames()) {
    cv::Mat image = cv::imread(out / ("test_set/1004" + v + ".jpg"), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(image.empty()) << v;
    EXPECT_EQ(image.type(), CV_8UC1) << v;
    EXPECT_EQ(image.rows, 96);
    EXPECT_EQ(image.cols, 96);
  }
}

TEST(PhantomTest, LabelsAndGroundTruthMatchTheAnnotations) {
  ScratchDir out;
  PhantomOptions o = SmallOptions(12, 8);
  o.prevalence = 0.6;
  GeneratePhantomDataset(o, out.path());
  struct Split {
    std::string folder, labels;
  };
  for (const Split& split : {Split{"train_set", "train.csv"}, Split{"test_set", "groundtruth.csv"}}) {
    LabelTable table = ReadLabelTable(out / (split.folder + "/" + split.labels));
    nlohmann::json doc = nlohmann::json::parse(ReadFile(out / (split.folder + "/annotations.json")));
    EXPECT_EQ(AnnotatedLocations(doc), LabelledLocations(table)) << split.folder;
    std::set<int32_t> with_sac;
    for (const auto& a : doc.at("aneurysms")) {
      with_sac.insert(a.at("index").get<int32_t>());
      EXPECT_FALSE(a.at("views").empty()) << "an aneurysm that no view shows: " << a.dump();
      for (const auto& seen : a.at("views")) {
        EXPECT_GE(ViewIndex(seen.at("view").get<std::string>()), 0);
        EXPECT_GT(seen.at("radius_px").get<double>(), 0);
        EXPECT_GE(seen.at("x").get<double>(), 0);
        EXPECT_LT(seen.at("x").get<double>(), o.resolution);
        EXPECT_GE(seen.at("y").get<double>(), 0);
        EXPECT_LT(seen.at("y").get<double>(), o.resolution);
      }
    }
    for (const auto& p : table.patients) EXPECT_EQ(p.aneurysm, with_sac.count(p.index)) << "patient " << p.index;
  }
}

// The injection whose views always show an aneurysm at `location`, e.g. "LI" for L_MCA.
std::string OwnInjection(const std::string& location) {
  if (location == "BA") return "LV";
  const std::string base = location.substr(2);
  bool vertebral = base == "VA" || base == "PICA" || base == "SCA" || base == "PCA";
  return location.substr(0, 1) + (vertebral ? "V" : "I");
}

// Which views may show an aneurysm at each location (DESIGN.md: the carotid injections fill
// ICA, PCOM, AntChor, ACA, ACOM, MCA, mostly on their side; the vertebral ones VA, PICA, SCA,
// BA and PCA). The ACA and ACOM fill across the midline, the P2 through the PCOM.
std::set<std::string> ViewsThatMayShow(const std::string& location) {
  if (location == "BA") return {"LV-A", "LV-B", "RV-A", "RV-B"};
  const std::string side = location.substr(0, 1), other = side == "L" ? "R" : "L";
  const std::string base = location.substr(2);
  std::set<std::string> views;
  auto add = [&](const std::string& injection) { views.insert({injection + "-A", injection + "-B"}); };
  add(OwnInjection(location));
  if (base == "ACA" || base == "ACOM") add(other + "I");
  if (base == "VA" || base == "SCA" || base == "PCA") add(other + "V");
  if (base == "PCA") add(side + "I");
  return views;
}

TEST(PhantomTest, AneurysmsAreAnnotatedOnlyInViewsWhoseInjectionFillsTheirArtery) {
  PhantomOptions o = SmallOptions(0);
  o.prevalence = 1.0;
  o.max_aneurysms = 3;
  o.uniform_locations = true;
  std::set<std::string> locations_seen;
  for (int32_t index = 1000; index < 1150; ++index) {
    PhantomPatient p = MakePhantomPatient(o, index);
    ASSERT_FALSE(p.aneurysms.empty());
    for (size_t a = 0; a < p.aneurysms.size(); ++a) {
      const std::string location = LocationNames()[p.aneurysms[a].location];
      locations_seen.insert(location);
      std::set<std::string> allowed = ViewsThatMayShow(location);
      std::set<std::string> shown;
      for (const AneurysmInView& seen : AneurysmViews(o, p, static_cast<int>(a))) {
        EXPECT_TRUE(allowed.count(ViewNames()[seen.view])) << location << " drawn in " << ViewNames()[seen.view];
        shown.insert(ViewNames()[seen.view]);
      }
      // Its own injection always shows it, in both angles.
      const std::string own = OwnInjection(location);
      EXPECT_TRUE(shown.count(own + "-A") && shown.count(own + "-B")) << location << " not shown by " << own;
    }
  }
  EXPECT_EQ(locations_seen.size(), static_cast<size_t>(kNumLocations)) << "150 patients should cover every location";
}

TEST(PhantomTest, AnAneurysmDarkensItsAnnotatedViewsAndNoOthers) {
  PhantomOptions o = SmallOptions(0);
  o.resolution = 256;
  o.prevalence = 1.0;
  o.uniform_locations = true;
  int checked = 0;
  for (int32_t index = 1000; index < 1012; ++index) {
    PhantomPatient with = MakePhantomPatient(o, index);
    std::array<cv::Mat, kNumViews> images = RenderPhantomViews(o, with);
    for (size_t a = 0; a < with.aneurysms.size(); ++a) {
      PhantomPatient without = with;
      without.aneurysms.erase(without.aneurysms.begin() + static_cast<long>(a));
      std::array<cv::Mat, kNumViews> bare = RenderPhantomViews(o, without);
      std::vector<AneurysmInView> seen = AneurysmViews(o, with, static_cast<int>(a));
      for (int v = 0; v < kNumViews; ++v) {
        auto it = std::find_if(seen.begin(), seen.end(), [v](const AneurysmInView& s) { return s.view == v; });
        cv::Mat darker;
        cv::subtract(bare[v], images[v], darker, cv::noArray(), CV_32F);
        if (it == seen.end()) {
          EXPECT_EQ(cv::countNonZero(darker != 0), 0) << "sac " << a << " of " << index << " changed " << ViewNames()[v];
          continue;
        }
        // At the annotated centre the view is clearly darker (the sac fills with contrast), and
        // the change is confined near the annotated disc (blur: a few pixels).
        int x = static_cast<int>(std::lround(it->x)), y = static_cast<int>(std::lround(it->y));
        float centre = darker.at<float>(y, x);
        EXPECT_GT(centre, 8.0f * it->opacity) << "sac " << a << " of " << index << " in " << ViewNames()[v];
        cv::Mat far = cv::Mat::ones(darker.size(), CV_8U);
        cv::circle(far, {x, y}, static_cast<int>(it->radius_px + 4), cv::Scalar(0), cv::FILLED);
        double max_far = 0;
        cv::minMaxLoc(cv::abs(darker), nullptr, &max_far, nullptr, nullptr, far);
        EXPECT_LT(max_far, 1.0) << "sac " << a << " of " << index << " changed pixels far from its disc in "
                                << ViewNames()[v];
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 20);
}

// A few hundred patients at 256 px, generated once for the signal tests, and the Python peer
// (scikit-learn) that scores global statistics and a local blob feature against the labels.
class PhantomSignalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new ScratchDir;
    PhantomOptions o;
    o.patients = 300;
    o.resolution = 256;
    o.seed = 11;
    o.show_progress = false;
    GeneratePhantomDataset(o, scratch_->path());
    CommandResult r = RunCommand({ANGIOTRAIN_PYTHON, std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/datasets/phantom_signal.py",
                                  scratch_->path() + "/train_set"},
                                 600);
    output_ = new std::string(r.output);
    std::printf("phantom_signal.py: %s", r.output.c_str());  // the scores, for the log
    if (r.exit_code == 0) {
      std::string last = r.output.substr(r.output.rfind('{'));
      scores_ = new nlohmann::json(nlohmann::json::parse(last));
    }
  }
  static void TearDownTestSuite() {
    delete scratch_;
    delete output_;
    delete scores_;
  }
  static ScratchDir* scratch_;
  static std::string* output_;
  static nlohmann::json* scores_;
};
ScratchDir* PhantomSignalTest::scratch_ = nullptr;
std::string* PhantomSignalTest::output_ = nullptr;
nlohmann::json* PhantomSignalTest::scores_ = nullptr;

TEST_F(PhantomSignalTest, PerViewMeanAndVarianceStayNearChanceAtPredictingAneurysm) {
  ASSERT_NE(scores_, nullptr) << *output_;
  EXPECT_EQ(scores_->at("patients").get<int>(), 300);
  EXPECT_LT(scores_->at("global_auroc").get<double>(), 0.65) << *output_;
}

TEST_F(PhantomSignalTest, ALocalRoundBlobFeaturePredictsAneurysm) {
  ASSERT_NE(scores_, nullptr) << *output_;
  EXPECT_GT(scores_->at("local_auroc").get<double>(), 0.75) << *output_;
}

TEST(SynthCommandTest, WritesTheDatasetAndSaysWhat) {
  ScratchDir out;
  CommandResult r = RunAngiotrain({"synth", "--out", out / "data", "--patients", "2", "--test-patients", "1",
                                   "--seed", "3", "--resolution", "64", "--prevalence", "1", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 train patients (2 with aneurysms)"), std::string::npos) << r.output;
  EXPECT_TRUE(FileExists(out / "data/train_set/1001RV-B.jpg"));
  EXPECT_TRUE(FileExists(out / "data/test_set/1002LI-A.jpg"));
  EXPECT_EQ(ReadLabelTable(out / "data/train_set/train.csv").patients.size(), 2u);
}

TEST(SynthCommandTest, RefusesToReplaceANonEmptySplitUnlessForced) {
  ScratchDir out;
  fs::create_directories(out / "train_set");
  WriteFileAtomically(out / "train_set/precious.txt", "keep me\n");
  std::vector<std::string> args = {"synth", "--out", out.path(), "--patients", "1", "--seed", "1",
                                   "--resolution", "64", "--quiet"};
  CommandResult refused = RunAngiotrain(args);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find(out / "train_set"), std::string::npos) << refused.output;
  EXPECT_NE(refused.output.find("--force"), std::string::npos) << refused.output;
  EXPECT_TRUE(FileExists(out / "train_set/precious.txt"));
  EXPECT_FALSE(FileExists(out / "test_set"));

  args.push_back("--force");
  CommandResult forced = RunAngiotrain(args);
  ASSERT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_FALSE(FileExists(out / "train_set/precious.txt"));
  EXPECT_TRUE(FileExists(out / "train_set/1000LI-A.jpg"));
}

TEST(SynthCommandTest, RejectsAnOutOfRangeOptionNamingIt) {
  ScratchDir out;
  CommandResult r = RunAngiotrain({"synth", "--out", out / "data", "--patients", "2", "--seed", "1",
                                   "--prevalence", "1.5", "--quiet"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("prevalence"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(out / "data/train_set"));
}

}  // namespace
}  // namespace angiotrain::testing
