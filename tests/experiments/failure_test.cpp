// The one failure path: an error on any rank, in any phase of a command, ends every rank of the
// job within seconds, non-zero, with the failing rank's message printed once (naming the rank
// when it is not rank 0). Failures are injected with ANGIOTRAIN_FAULT (core/fault_injection.h)
// under a real mpirun; a hang fails through the harness's timeout, not the CI limit.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <filesystem>
#include <iterator>
#include <fstream>

#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "tests/support/test_support.h"
#include "tests/support/test_volume.h"

namespace angiotrain {
namespace {

using testing::RunAngiotrain;
using testing::ScratchDir;

constexpr int kDeadlineSeconds = 20;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

class FailurePath : public ::testing::Test {
 protected:
  void SetUp() override {
    volume_ = testing::WriteTestVolume(dir_ / "v.h5", 16, 11, 2000);
    config_ = dir_ / "config.toml";
    std::ofstream(config_) << "[data]\nvolume = \"" << volume_ << "\"\nvalidation_split = 0.25\n"
                           << "[model]\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
                           << "[train]\nepochs = 2\nbatch_size = 2\nlr = 1e-3\n"
                           << "[output]\ndir = \"" << (dir_ / "run") << "\"\ncheckpoint_every_steps = 2\n";
  }

  // Runs `args` on `ranks` ranks with a fault at `point` on `rank` and checks the promise.
  void ExpectOneCleanFailure(const std::vector<std::string>& args, const std::string& point, int rank,
                             int ranks = 2, const std::string& extra = "") {
    SCOPED_TRACE(point + " on rank " + std::to_string(rank) + " of " + std::to_string(ranks));
    const auto start = std::chrono::steady_clock::now();
    auto r = RunAngiotrain(args, ranks, kDeadlineSeconds + 10,
                           {"ANGIOTRAIN_FAULT=point=" + point + ",rank=" + std::to_string(rank) + ",action=error" +
                            extra});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_LT(seconds, kDeadlineSeconds) << r.output;
    EXPECT_EQ(Count(r.output, "angiotrain: error:"), 1u) << r.output;
    EXPECT_EQ(Count(r.output, "injected error at " + point), 1u) << r.output;
    if (rank != 0) {
      EXPECT_NE(r.output.find("error: rank " + std::to_string(rank) + " of " + std::to_string(ranks)),
                std::string::npos)
          << r.output;
    }
  }

  std::vector<std::string> Train() const { return {"train", "--config", config_}; }

  ScratchDir dir_;
  std::string volume_, config_;
};

TEST_F(FailurePath, EveryTrainingPhaseOnEitherRankEndsTheJobWithOneMessage) {
  for (const char* point : {"config", "volume-open", "model", "broadcast", "train-step", "validation"})
    for (int rank : {1, 0}) ExpectOneCleanFailure(Train(), point, rank);
  // Only rank 0 writes checkpoints; the first one is at global step 2.
  ExpectOneCleanFailure(Train(), "checkpoint-write", 0, 2, ",step=2");
  // A third rank waits in the same collectives.
  ExpectOneCleanFailure(Train(), "train-step", 2, 3, ",step=1");
}

TEST_F(FailurePath, PredictionsGatherOnEitherRankEndsTheJobWithOneMessage) {
  auto trained = RunAngiotrain({"train", "--config", config_, "--set", "train.epochs=1"});
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  std::string header = "Index,Aneurysm";
  for (const auto& n : LocationNames()) header += "," + n;
  std::ofstream csv(dir_ / "test.csv");
  csv << header << "\n";
  for (int p = 0; p < 16; ++p) {
    csv << 2000 + p << ",0";
    for (int k = 0; k < kNumLocations; ++k) csv << ",0";
    csv << "\n";
  }
  csv.close();
  const std::vector<std::string> predict = {"predict", "--checkpoint", dir_ / "run/last.pt", "--input", volume_,
                                            "--template", dir_ / "test.csv", "--out", dir_ / "output.csv"};
  for (int rank : {1, 0}) ExpectOneCleanFailure(predict, "predict-gather", rank);
  for (int rank : {1, 0}) ExpectOneCleanFailure(predict, "volume-open", rank);
  EXPECT_FALSE(testing::FileExists(dir_ / "output.csv"));
}

}  // namespace
}  // namespace angiotrain

namespace angiotrain {
namespace {

// A configuration refused by the checks leaves output.dir as it was: absent stays absent, and an
// existing folder keeps exactly its files.
TEST_F(FailurePath, RejectedConfigLeavesTheOutputFolderAsItWas) {
  for (const std::string bad : {"train.lr=inf", "train.lr=0", "model.init=imagenet", "train.optimizer=lamb",
                                "evaluation.threshold=median"}) {
    SCOPED_TRACE(bad);
    auto r = RunAngiotrain({"train", "--config", config_, "--set", bad}, 2, 60);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_EQ(Count(r.output, "angiotrain: error:"), 1u) << r.output;
    EXPECT_FALSE(testing::FileExists(dir_ / "run")) << r.output;
  }
  std::filesystem::create_directories(dir_ / "run");
  std::ofstream(dir_ / "run/notes.txt") << "mine";
  auto r = RunAngiotrain({"train", "--config", config_, "--set", "train.epochs=0"});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(testing::ListDir(dir_ / "run"), std::vector<std::string>{"notes.txt"});
}

// train's outputs never replace its inputs, and output.dir naming a file is refused up front.
TEST_F(FailurePath, TrainRefusesOutputsOverItsInputs) {
  const std::string volume_bytes = ReadBytes(volume_);
  // The volume where last.pt would go.
  std::filesystem::create_directories(dir_ / "clash");
  std::filesystem::copy_file(volume_, dir_ / "clash/last.pt");
  auto r = RunAngiotrain({"train", "--config", config_, "--set", "data.volume=" + (dir_ / "clash/last.pt"), "--set",
                          "output.dir=" + (dir_ / "clash")},
                         2, 60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("clash/last.pt"), std::string::npos) << r.output;
  EXPECT_EQ(ReadBytes(dir_ / "clash/last.pt"), volume_bytes);
  // output.dir is an existing file.
  r = RunAngiotrain({"train", "--config", config_, "--set", "output.dir=" + volume_}, 2, 60);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("is a file, expected a folder"), std::string::npos) << r.output;
  EXPECT_EQ(Count(r.output, "angiotrain: error:"), 1u) << r.output;
  EXPECT_EQ(ReadBytes(volume_), volume_bytes);
}

// The same run writes the same checkpoint bytes, and a temporary checkpoint left by a killed
// writer is removed at the next start.
TEST_F(FailurePath, CheckpointsAreReproducibleAndStaleTemporariesRemoved) {
  // Twice into the same folder (the checkpoint holds the configuration, output.dir included).
  for (const char* keep : {"first", ""}) {
    auto r = RunAngiotrain({"train", "--config", config_, "--set", "train.epochs=1", "--set",
                            "output.dir=" + (dir_ / "a")});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    if (*keep) std::filesystem::rename(dir_ / "a", dir_ / keep);
  }
  EXPECT_TRUE(ReadBytes(dir_ / "first/last.pt") == ReadBytes(dir_ / "a/last.pt")) << "the two runs wrote different bytes";
  std::ofstream(dir_ / "a/.last.pt.tmp-999999999") << "half a checkpoint";
  auto r = RunAngiotrain({"train", "--config", config_, "--set", "train.epochs=1", "--set",
                          "output.dir=" + (dir_ / "a"), "--resume"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("nothing to do"), std::string::npos) << r.output;
  EXPECT_FALSE(testing::FileExists(dir_ / "a/.last.pt.tmp-999999999"));
}

}  // namespace
}  // namespace angiotrain
