// The run's page under threshold rules that learn (f1, youden, a gate over them) or need the
// presence column (gate:RULE): their location figures are scored on the validation rows with cuts
// learnt out of sample, each half with the other half's, as a sweep scores them. Before, `train`
// left no report for such a run and `report --run` failed ("learns its thresholds ... fit it").
#include <gtest/gtest.h>

#include <string>

#include "core/atomic_file.h"
#include "tests/experiments/phantom_run.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::CommandResult;
using testing::RunAngiotrain;
using testing::ScratchDir;

TEST(RunReportRules, LearningAndGateRulesAreScoredCrossFittedAndThePageSaysSo) {
  ScratchDir dir;
  testing::PhantomRunOptions o;
  o.patients = 24;
  o.resolution = 32;
  o.synth_resolution = 64;
  // [train] keys, then the run's rule in a section of its own (the fixture writes [output] next).
  o.train = "batch_size = 4\nlr = 1e-3\n[evaluation]\nthreshold = \"f1\"\n";
  testing::PhantomRun run;
  testing::MakePhantomRun(dir, o, &run);
  if (HasFatalFailure()) return;
  // train wrote the page at its end.
  ASSERT_TRUE(testing::FileExists(run.run + "/report.html"));
  const std::string page = ReadFile(run.run + "/report.html");
  EXPECT_NE(page.find("threshold rule f1, its cuts cross-fitted on two halves of the validation rows"),
            std::string::npos);
  // Other rules: the run's config.toml names the rule (evaluation.threshold is not hashed).
  const std::string config = ReadFile(run.run + "/config.toml");
  const size_t line = config.find("\nthreshold = ");
  ASSERT_NE(line, std::string::npos) << config;
  const size_t end = config.find('\n', line + 1);
  for (const std::string rule : {"youden", "gate:f1", "gate:fixed:0.5"}) {
    std::string changed = config;
    changed.replace(line + 1, end - line - 1, "threshold = \"" + rule + "\"");
    WriteFileAtomically(run.run + "/config.toml", changed);
    const std::string out = dir / "again.html";
    const CommandResult r = RunAngiotrain({"report", "--run", run.run, "--out", out, "--examples", "0"});
    ASSERT_EQ(r.exit_code, 0) << rule << ": " << r.output;
    const bool learns = rule != "gate:fixed:0.5";
    EXPECT_NE(ReadFile(out).find("threshold rule " + rule +
                                          (learns ? ", its cuts cross-fitted on two halves of the validation rows"
                                                  : "; ")),
              std::string::npos)
        << rule;
  }
}

}  // namespace
}  // namespace angiotrain
