// Outputs never replace inputs: `predict` (the submission and its probabilities sidecar) and
// `evaluate --json` refuse an output path that resolves to one of their inputs, before reading
// anything, naming both paths, and leave the input byte for byte as it was.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::RunAngiotrain;
using testing::ScratchDir;

// The refusal contract: non-zero exit, a message naming the output and the input, the input intact.
void ExpectRefused(const CommandResult& r, const std::string& output, const std::string& input,
                   const std::string& input_bytes) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(output + ": is "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(input), std::string::npos) << "message does not name " << input << ":\n" << r.output;
  EXPECT_EQ(ReadFile(input), input_bytes) << input << " changed";
}

// No input needs to be valid: the refusal comes before any of them is read.
class OutputSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(scratch_ / "test_set");
    for (const char* name : {"last.pt", "test.h5", "test_set/test.csv", "output.csv", "groundtruth.csv",
                             "output.probabilities.csv"})
      WriteFileAtomically(scratch_ / name, std::string("contents of ") + name + "\n");
  }
  std::string path(const std::string& name) const { return scratch_ / name; }

  CommandResult Predict(const std::string& input, const std::string& template_path, const std::string& out) {
    return RunAngiotrain({"predict", "--checkpoint", path("last.pt"), "--input", input, "--template", template_path,
                          "--out", out});
  }
  ScratchDir scratch_;
};

TEST_F(OutputSafetyTest, PredictRefusesAnOutputOrSidecarThatIsAnInput) {
  fs::create_symlink(path("last.pt"), path("checkpoint-link.csv"));
  struct Case {
    std::string out, refused, input;  // --out, the output refused (the submission or its sidecar), the input
  };
  const std::vector<Case> cases = {
      {path("last.pt"), path("last.pt"), path("last.pt")},
      {path("checkpoint-link.csv"), path("checkpoint-link.csv"), path("last.pt")},
      {path("test.h5"), path("test.h5"), path("test.h5")},
      {path("test_set/test.csv"), path("test_set/test.csv"), path("test_set/test.csv")},
      // The sidecar of output.csv is output.probabilities.csv, here the template.
      {path("output.csv"), path("output.probabilities.csv"), path("output.probabilities.csv")},
  };
  for (const Case& c : cases) {
    const std::string template_path = c.input == path("output.probabilities.csv") ? c.input : path("test_set/test.csv");
    const std::string bytes = ReadFile(c.input);
    ExpectRefused(Predict(path("test.h5"), template_path, c.out), c.refused, c.input, bytes);
  }
  // An image folder as the input: nothing is written into it.
  CommandResult r = Predict(path("test_set"), path("test.h5"), path("test_set/output.csv"));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(path("test_set/output.csv") + ": is inside the input folder " + path("test_set")),
            std::string::npos)
      << r.output;
  EXPECT_EQ(testing::ListDir(path("test_set")), std::vector<std::string>{"test.csv"});
}

TEST_F(OutputSafetyTest, EvaluateRefusesJsonThatIsAnInput) {
  fs::create_symlink(path("groundtruth.csv"), path("truth-link.json"));
  const std::vector<std::pair<std::string, std::string>> cases = {  // --json, the input it is
      {path("output.csv"), path("output.csv")},
      {path("truth-link.json"), path("groundtruth.csv")},
      {path("output.probabilities.csv"), path("output.probabilities.csv")}};
  for (const auto& [json, input] : cases) {
    const std::string bytes = ReadFile(input);
    CommandResult r = RunAngiotrain({"evaluate", "--pred", path("output.csv"), "--truth", path("groundtruth.csv"),
                                     "--probabilities", path("output.probabilities.csv"), "--json", json});
    ExpectRefused(r, json, input, bytes);
  }
}

}  // namespace
}  // namespace angiotrain
