// Resuming a run through the real binary: an epoch interrupted and resumed logs the figures of
// the whole epoch, as the run without the interruption does (an older checkpoint without the
// epoch's partial figures still resumes, and says what its figure covers), and the temporaries
// that killed writers left in the run folder are removed while a live writer's stay.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "experiments/training/checkpoint.h"
#include "experiments/training/optimization.h"
#include "experiments/training/task_model.h"
#include "tests/support/test_support.h"
#include "tests/support/test_volume.h"

namespace angiotrain {
namespace {

using testing::RunAngiotrain;
using testing::ScratchDir;

// 24 patients, a quarter held out: 18 training rows, batch 2: 9 steps per epoch, 2 epochs.
class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string volume = testing::WriteTestVolume(dir_ / "v.h5", 24);
    config_ = dir_ / "config.toml";
    std::ofstream(config_) << "[data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\nsplit_seed = 3\n"
                           << "[model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\ntask = \"multitask\"\n"
                           << "[train]\nepochs = 2\nbatch_size = 2\nlr = 1e-3\nseed = 5\n"
                           << "[output]\ndir = \"" << (dir_ / "run") << "\"\n";
  }
  testing::CommandResult Train(const std::string& out, bool resume, const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = {"train", "--config", config_, "--set", "output.dir=" + (dir_ / out)};
    if (resume) args.push_back("--resume");
    return RunAngiotrain(args, 0, 300, env);
  }
  // metrics.jsonl of a run, one object per epoch.
  std::vector<nlohmann::json> Metrics(const std::string& out) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(ReadFile(dir_ / (out + "/metrics.jsonl")));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }
  ScratchDir dir_;
  std::string config_;
};

// Stops after global step 12 (epoch 2, its 4th step), with a checkpoint there.
const std::vector<std::string> kStopInEpoch2 = {"ANGIOTRAIN_FAULT=point=stop-request,rank=0,step=12"};

TEST_F(Resume, AnEpochResumedMidWayLogsTheWholeEpochsTrainLossBitForBit) {
  ASSERT_EQ(Train("straight", false).exit_code, 0);
  const auto stopped = Train("stopped", false, kStopInEpoch2);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  ASSERT_EQ(LoadCheckpoint(dir_ / "stopped/last.pt").step, 4) << stopped.output;
  const auto resumed = Train("stopped", true);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const auto straight = Metrics("straight"), after = Metrics("stopped");
  ASSERT_EQ(straight.size(), 2u);
  ASSERT_EQ(after.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(after[e]["epoch"], straight[e]["epoch"]);
    EXPECT_EQ(after[e]["global_step"], straight[e]["global_step"]);
    // Exactly: the resumed epoch adds the same losses in the same order to the same sum.
    EXPECT_EQ(after[e]["train_loss"].get<double>(), straight[e]["train_loss"].get<double>()) << "epoch " << e + 1;
    EXPECT_EQ(after[e]["lr"].get<double>(), straight[e]["lr"].get<double>()) << "epoch " << e + 1;
    EXPECT_EQ(after[e]["val_loss"].get<double>(), straight[e]["val_loss"].get<double>()) << "epoch " << e + 1;
  }
}

// A checkpoint written before the epoch's partial figures were kept (the same file without
// them) still resumes; that epoch's figure then covers the steps since the resume, and the run
// says so.
TEST_F(Resume, AnOlderCheckpointWithoutTheEpochsFiguresResumesAndSaysWhatTheFigureCovers) {
  ASSERT_EQ(Train("straight", false).exit_code, 0);
  ASSERT_EQ(Train("old", false, kStopInEpoch2).exit_code, 0);
  {
    const std::string path = dir_ / "old/last.pt";
    LoadedCheckpoint loaded = LoadCheckpoint(path);
    auto optimizer = MakeOptimizer(loaded.config, loaded.model->parameters());
    CheckpointHeader header = RestoreCheckpoint(path, *loaded.model, *optimizer);
    ASSERT_GT(header.so_far.steps, 0) << "a mid-epoch checkpoint keeps the epoch's figures so far";
    header.so_far = EpochSoFar{};  // written without them, as an older angiotrain did
    SaveCheckpoint(path, *loaded.model, *optimizer, header);
    ASSERT_EQ(ReadCheckpointHeader(path).so_far.steps, 0);
  }
  const auto resumed = Train("old", true);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("covers the steps since this resume only"), std::string::npos) << resumed.output;
  const auto straight = Metrics("straight"), after = Metrics("old");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0]["train_loss"].get<double>(), straight[0]["train_loss"].get<double>());
  EXPECT_NE(after[1]["train_loss"].get<double>(), straight[1]["train_loss"].get<double>());
}

// A pid that no process has on this host any more: a child that has exited and been reaped.
pid_t DeadPid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

// The atomic temporaries (core/atomic_file.h: ".NAME.tmp-PID") of killed writers anywhere in the
// run folder go at the resume; a live writer's, and anything that is not such a temporary, stay.
TEST_F(Resume, RemovesEveryDeadWritersTemporariesAndKeepsALiveWritersAndOtherFiles) {
  const auto stopped = Train("run", false, {"ANGIOTRAIN_FAULT=point=stop-request,rank=0,step=3"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  const std::string dead = std::to_string(DeadPid()), live = std::to_string(getpid());
  const std::string run = dir_ / "run";
  std::filesystem::create_directories(run + "/validation");
  const std::vector<std::string> dead_ones = {
      run + "/.best.pt.tmp-" + dead, run + "/.metrics.jsonl.tmp-" + dead, run + "/.last.pt.tmp-" + dead,
      run + "/.best.json.tmp-" + dead, run + "/validation/.epoch_001.csv.tmp-" + dead};
  const std::vector<std::string> kept = {run + "/.best.pt.tmp-" + live, run + "/.validation_predictions.csv.tmp-" + live,
                                         run + "/notes.tmp-" + dead, run + "/.best.pt.tmp-" + dead + "x",
                                         run + "/.tmp-" + dead};
  for (const auto& path : dead_ones) std::ofstream(path) << "half a file";
  for (const auto& path : kept) std::ofstream(path) << "not ours to remove";
  const auto resumed = Train("run", true);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  for (const auto& path : dead_ones) EXPECT_FALSE(testing::FileExists(path)) << path << " was left";
  for (const auto& path : kept) EXPECT_TRUE(testing::FileExists(path)) << path << " was removed";
}

}  // namespace
}  // namespace angiotrain
