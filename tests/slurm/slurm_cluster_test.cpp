// `angiotrain slurm submit` against a real single-node Slurm on loopback (local_slurm.h): a
// 2-rank training job started by srun --mpi=pmix; Slurm's warning signal to a running job
// (scancel --batch --signal=USR1, what --signal=B:USR1@N does at the time limit) makes it
// checkpoint, requeue itself and resume to the same final weights as an uninterrupted run; a
// cancelled job keeps its last complete checkpoint. Tiny model on a 32 px phantom volume.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "experiments/checkpoint.h"
#include "tests/slurm/local_slurm.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::CommandResult;
using testing::FileExists;
using testing::LocalSlurm;
using testing::RunAngiotrain;
using testing::ScratchDir;

// A labelled 32 px volume of 24 phantom patients (angiotrain synth + ingest).
std::string MakeVolume(const ScratchDir& dir) {
  CommandResult synth = RunAngiotrain({"synth", "--out", dir / "kium", "--patients", "24", "--seed", "3",
                                       "--resolution", "64"});
  EXPECT_EQ(synth.exit_code, 0) << synth.output;
  const std::string volume = dir / "train.h5";
  CommandResult ingest = RunAngiotrain({"ingest", "--input", dir / "kium/train_set", "--labels",
                                        dir / "kium/train_set/train.csv", "--out", volume, "--resolution", "32"});
  EXPECT_EQ(ingest.exit_code, 0) << ingest.output;
  return volume;
}

// A tiny training config for 2 ranks on the local cluster; `extra` is appended to [slurm].
std::string WriteJobConfig(const ScratchDir& dir, const std::string& name, const std::string& volume,
                           int64_t epochs, const std::string& output_extra = "", const std::string& slurm_extra = "") {
  const std::string path = dir / (name + ".toml");
  std::ofstream(path) << "[data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\n"
                      << "[model]\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
                      << "[train]\nepochs = " << epochs << "\nbatch_size = 2\nlr = 1e-3\nseed = 5\n"
                      << "[output]\ndir = \"" << (dir / name) << "\"\n" << output_extra
                      << "[slurm]\njob_name = \"" << name << "\"\ntasks_per_node = 2\ntime = \"30:00\"\n"
                      << "network_interface = \"lo\"\n" << slurm_extra;
  return path;
}

std::string Submit(const LocalSlurm& slurm, const std::string& config) {
  CommandResult r = RunAngiotrain({"slurm", "submit", "--config", config}, 0, 60, slurm.env());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos) return line;
  ADD_FAILURE() << "no job id in: " << r.output;
  return "";
}

bool WaitForText(const std::string& path, const std::string& text, int timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (testing::ReadText(path).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::vector<std::pair<std::string, torch::Tensor>> Weights(const std::string& checkpoint) {
  LoadedCheckpoint c = LoadCheckpoint(checkpoint);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : c.model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : c.model->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

TEST(SlurmCluster, TwoRankJobRunsAndAWarnedJobRequeuesAndEndsWithTheSameWeights) {
  ScratchDir dir;
  LocalSlurm slurm(dir / "cluster");
  const std::string volume = MakeVolume(dir);
  const std::string marker = dir / "executed";
  // An environment value that would create the marker if the script evaluated it.
  const std::string probe = "env = [\"PROBE=$(touch " + marker + ");touch " + marker + "\"]\n";
  const std::string reference_id = Submit(slurm, WriteJobConfig(dir, "reference", volume, 30, "", probe));
  const std::string warned_id = Submit(slurm, WriteJobConfig(dir, "warned", volume, 30, "", probe));
  ASSERT_FALSE(reference_id.empty() || warned_id.empty());

  const std::string reference_log = dir / ("reference/slurm/train-" + reference_id + ".out");
  EXPECT_EQ(slurm.WaitForState(reference_id, {"COMPLETED", "FAILED", "CANCELLED"}, 300), "COMPLETED")
      << testing::ReadText(reference_log);
  const std::string reference_output = testing::ReadText(reference_log);
  EXPECT_NE(reference_output.find("2 rank(s) x batch 2"), std::string::npos) << reference_output;
  EXPECT_NE(reference_output.find("train: completed after 120 steps"), std::string::npos) << reference_output;

  // The warning comes while the second job trains (after its second epoch).
  const std::string warned_log = dir / ("warned/slurm/train-" + warned_id + ".out");
  ASSERT_TRUE(WaitForText(warned_log, "epoch 2/30", 300)) << testing::ReadText(warned_log);
  CommandResult signal = slurm.Client({"scancel", "--batch", "--signal=USR1", warned_id});
  ASSERT_EQ(signal.exit_code, 0) << signal.output;
  // Requeued: pending again with one restart. Slurm holds a requeued job back for about two
  // minutes (its begin time); the test lets it start now.
  ASSERT_EQ(slurm.WaitForState(warned_id, {"PENDING"}, 120), "PENDING") << testing::ReadText(warned_log);
  EXPECT_EQ(slurm.Job(warned_id)["Restarts"], "1");
  CommandResult start_now = slurm.Client({"scontrol", "update", "JobId=" + warned_id, "StartTime=now"});
  ASSERT_EQ(start_now.exit_code, 0) << start_now.output;
  EXPECT_EQ(slurm.WaitForState(warned_id, {"COMPLETED", "FAILED", "CANCELLED"}, 300), "COMPLETED") << testing::ReadText(warned_log);
  const std::string warned_output = testing::ReadText(warned_log);
  for (const std::string& line : std::vector<std::string>{"warning signal: every rank checkpoints", "train: stopped after",
                                 "requeueing job " + warned_id + " (restart 1 of at most 3)",
                                 "job " + warned_id + " (restart 1)", "resuming from " + (dir / "warned/last.pt"),
                                 "train: completed after"})
    EXPECT_NE(warned_output.find(line), std::string::npos) << line << "\n" << warned_output;
  EXPECT_EQ(slurm.Job(warned_id)["ExitCode"], "0:0");

  const auto reference = Weights(dir / "reference/last.pt"), resumed = Weights(dir / "warned/last.pt");
  ASSERT_EQ(reference.size(), resumed.size());
  for (size_t i = 0; i < reference.size(); ++i)
    EXPECT_TRUE(torch::equal(reference[i].second, resumed[i].second)) << reference[i].first;
  EXPECT_EQ(LoadCheckpoint(dir / "warned/last.pt").global_step, 120);
  EXPECT_FALSE(FileExists(marker));
}

TEST(SlurmCluster, CancelledJobKeepsItsLastCompleteCheckpointAndIsNotRequeued) {
  ScratchDir dir;
  LocalSlurm slurm(dir / "cluster");
  const std::string volume = MakeVolume(dir);
  const std::string id = Submit(slurm, WriteJobConfig(dir, "cancelled", volume, 500, "checkpoint_every_steps = 1\n"));
  ASSERT_FALSE(id.empty());
  const std::string log = dir / ("cancelled/slurm/train-" + id + ".out");
  ASSERT_TRUE(WaitForText(log, "epoch 2/500", 300)) << testing::ReadText(log);
  CommandResult cancel = slurm.Client({"scancel", id});  // SIGTERM to the batch shell and every rank
  ASSERT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_EQ(slurm.WaitForState(id, {"CANCELLED", "COMPLETED", "FAILED"}, 120), "CANCELLED") << testing::ReadText(log);
  EXPECT_EQ(slurm.Job(id)["Restarts"], "0");
  LoadedCheckpoint last = LoadCheckpoint(dir / "cancelled/last.pt");  // throws if torn
  EXPECT_GE(last.global_step, 8);
  EXPECT_EQ(testing::ReadText(log).find("requeueing"), std::string::npos);
}

}  // namespace
}  // namespace angiotrain
