// `sweep run` as a user meets it when things go wrong: its exit status when trials failed (on one
// rank, under mpirun, and as one Slurm array task with --trial), a trial whose process was killed
// outright (stale in `sweep status`, resumed by the next run, skipped while its process still
// runs), HDF5 files that are missing or not HDF5 (one message naming the file, no HDF5-DIAG
// pages), and a bad threshold rule in the base config named by its key. Tiny models on 32 px
// volumes.
#include <gtest/gtest.h>
#include <mpi.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/process_identity.h"
#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "experiments/sweeps/sweep_spec.h"
#include "experiments/sweeps/sweep_store.h"
#include "tests/support/test_support.h"
#include "tests/support/test_volume.h"

namespace angiotrain {
namespace {

using testing::CommandResult;
using testing::CountOccurrences;
using testing::FileExists;
using testing::RunAngiotrain;
using testing::ScratchDir;

// A sweep file over a tiny model on `volume` (written when it is DIR/volume.h5 and missing).
std::string WriteSweep(const ScratchDir& dir, const std::string& axes, const std::string& base_train = "epochs = 1\n",
                       const std::string& sweep_extra = "", const std::string& volume_path = "",
                       const std::string& base_extra = "") {
  const std::string volume = volume_path.empty() ? dir / "volume.h5" : volume_path;
  if (volume_path.empty() && !FileExists(volume)) testing::WriteTestVolume(volume, 40, 11, 3000);
  const std::string path = dir / "sweep.toml";
  std::ofstream(path) << "[sweep]\ndir = \"" << (dir / "store") << "\"\n" << sweep_extra << "\n"
                      << "[base.data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\nsplit_seed = 3\n"
                      << "[base.model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
                      << "[base.train]\nbatch_size = 5\nseed = 5\nthreads = 1\n" << base_train << base_extra << "\n"
                      << "[axes]\n" << axes;
  return path;
}

const char* kThreeRates = "\"train.lr\" = [0.01, 0.005, 0.001]\n";
const char* kSecondTrialFails = "ANGIOTRAIN_FAULT=point=sweep-trial,step=1,action=error";

// ---- Exit status -----------------------------------------------------------------------------

TEST(SweepRunExitStatus, FailedTrialsEndTheRunNonZeroAfterTheOthersFinishListingEachWithItsReason) {
  ScratchDir dir;
  const std::string config = WriteSweep(dir, kThreeRates);
  const CommandResult r = RunAngiotrain({"sweep", "run", "--config", config}, 0, 600, {kSecondTrialFails});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string store = dir / "store";
  // The others trained, and the results (the failed trial ranked last) were written first.
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0000").state, "completed");
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0001").state, "failed");
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0002").state, "completed");
  EXPECT_TRUE(FileExists(store + "/results.csv"));
  EXPECT_NE(r.output.find("1 of 3 trial(s) failed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("t0001 (train.lr=0.005): "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("injected error at sweep-trial"), std::string::npos) << r.output;
  EXPECT_EQ(CountOccurrences(r.output, "angiotrain: error:"), 1u) << r.output;

  // A rerun skips the failed trial and still says that the sweep has one.
  const CommandResult again = RunAngiotrain({"sweep", "run", "--config", config}, 0, 600);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("t0001 (train.lr=0.005): "), std::string::npos) << again.output;
  // Failures expected: the documented flag makes the same store exit 0.
  const CommandResult allowed = RunAngiotrain({"sweep", "run", "--config", config, "--allow-failures"}, 0, 600);
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_EQ(allowed.output.find("angiotrain: error:"), std::string::npos) << allowed.output;
  const CommandResult help = RunAngiotrain({"sweep", "run", "--help"});
  EXPECT_NE(help.output.find("--allow-failures"), std::string::npos) << help.output;
}

TEST(SweepRunExitStatus, EveryRankLeavesWithTheSameNonZeroStatusUnderMpirun) {
  ScratchDir dir;
  // A non-finite loss at the first step of every trial: every rank learns it in the same step.
  const std::string config = WriteSweep(dir, "\"train.lr\" = [0.01, 0.005]\n");
  const CommandResult r =
      RunAngiotrain({"sweep", "run", "--config", config}, 2, 600, {"ANGIOTRAIN_FAULT=point=loss,step=1,action=nan"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("2 of 2 trial(s) failed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("non-finite training loss"), std::string::npos) << r.output;
  EXPECT_EQ(CountOccurrences(r.output, "angiotrain: error:"), 1u) << r.output;  // rank 0 alone says it
  EXPECT_EQ(r.output.find("MPI_ABORT"), std::string::npos) << r.output;          // a clean exit, no abort
  EXPECT_EQ(ReadTrialStatus(dir / "store/trials/t0000").state, "failed");
  EXPECT_EQ(ReadTrialStatus(dir / "store/trials/t0001").state, "failed");
}

TEST(SweepRunExitStatus, AnArrayTaskExitsNonZeroForItsFailedTrialOnly) {
  ScratchDir dir;
  const std::string config = WriteSweep(dir, kThreeRates);
  const CommandResult failing =
      RunAngiotrain({"sweep", "run", "--config", config, "--trial", "1"}, 0, 600, {kSecondTrialFails});
  EXPECT_EQ(failing.exit_code, 1) << failing.output;
  EXPECT_NE(failing.output.find("1 of 1 trial(s) failed"), std::string::npos) << failing.output;
  EXPECT_NE(failing.output.find("t0001 (train.lr=0.005): "), std::string::npos) << failing.output;
  // Another task of the same array: its own trial completes, whatever trial 1 did.
  const CommandResult fine = RunAngiotrain({"sweep", "run", "--config", config, "--trial", "0"}, 0, 600);
  EXPECT_EQ(fine.exit_code, 0) << fine.output;
  EXPECT_EQ(ReadTrialStatus(dir / "store/trials/t0000").state, "completed");
}

// ---- Stale trials ----------------------------------------------------------------------------

// Trial 1 run as one array task would (`--trial 1`), its process killed outright (SIGKILL, by the
// test-only fault point) in its second epoch: the store says "running" with no process behind it.
TEST(SweepRunStaleTrials, AKilledTrialIsStaleInStatusAndTheNextRunCompletesIt) {
  ScratchDir dir;
  const std::string config =
      WriteSweep(dir, "\"train.lr\" = [0.01, 0.005]\n", "epochs = 2\n", "", "", "[base.output]\ncheckpoint_every_steps = 4\n");
  const CommandResult killed = RunAngiotrain({"sweep", "run", "--config", config, "--trial", "1"}, 0, 600,
                                             {"ANGIOTRAIN_FAULT=point=sweep-trial-1,step=8,action=kill"});
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  const std::string store = dir / "store", trial = store + "/trials/t0001";
  const TrialStatus left = ReadTrialStatus(trial);
  ASSERT_EQ(left.state, "running");
  EXPECT_EQ(RunningProcessState(left), ProcessState::kGone);

  const CommandResult status = RunAngiotrain({"sweep", "status", store});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("t0001  running"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("stale: its process " + std::to_string(left.process.pid) + " on " + left.process.host +
                               " is gone"),
            std::string::npos)
      << status.output;

  const CommandResult resumed = RunAngiotrain({"sweep", "run", "--config", config, "--trial", "1"}, 0, 600);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming from its checkpoint"), std::string::npos) << resumed.output;
  EXPECT_EQ(ReadTrialStatus(trial).state, "completed");
  EXPECT_EQ(ReadTrialStatus(trial).epochs_done, 2);
  const CommandResult after = RunAngiotrain({"sweep", "status", store});
  EXPECT_NE(after.output.find("t0001  completed"), std::string::npos) << after.output;
  EXPECT_EQ(after.output.find("stale"), std::string::npos) << after.output;
}

// A "running" record whose process still runs (this test's own), one whose pid now belongs to
// another process (same pid, another start time), and one from another host.
TEST(SweepRunStaleTrials, ARunningTrialsProcessIsCheckedOnItsHostAndLeftAloneWhileItRuns) {
  ScratchDir dir;
  const std::string config = WriteSweep(dir, "\"train.lr\" = [0.01, 0.005, 0.001]\n");
  ASSERT_EQ(RunAngiotrain({"sweep", "plan", "--config", config}).exit_code, 0);
  const std::string store = dir / "store";
  // The store as `sweep run` makes it, with three trials recorded as running.
  ASSERT_EQ(RunAngiotrain({"sweep", "run", "--config", config, "--trial", "2"}, 0, 600).exit_code, 0);
  TrialStatus alive;
  alive.state = "running";
  alive.process = ThisProcess();
  WriteTrialStatus(store + "/trials/t0000", alive);
  TrialStatus reused = alive;
  reused.process.start += "1";  // the same pid, started at another time: not the process recorded
  WriteTrialStatus(store + "/trials/t0001", reused);
  TrialStatus elsewhere = alive;
  elsewhere.process.host = "node-elsewhere-17";
  WriteTrialStatus(store + "/trials/t0002", elsewhere);
  EXPECT_EQ(RunningProcessState(ReadTrialStatus(store + "/trials/t0000")), ProcessState::kRunning);

  const CommandResult status = RunAngiotrain({"sweep", "status", store});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  const std::string me = "process " + std::to_string(alive.process.pid) + " on " + alive.process.host;
  EXPECT_NE(status.output.find("(" + me + ")"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("(stale: its " + me + " is gone"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("(running on node-elsewhere-17 (cannot check))"), std::string::npos) << status.output;

  // `sweep run` leaves the live one alone (no second writer in its folder) and trains the stale one.
  const CommandResult run = RunAngiotrain({"sweep", "run", "--config", config, "--trial", "0"}, 0, 600);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("running in " + me + ", skipped"), std::string::npos) << run.output;
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0000").state, "running");
  EXPECT_FALSE(FileExists(store + "/trials/t0000/last.pt"));
  const CommandResult stale = RunAngiotrain({"sweep", "run", "--config", config, "--trial", "1"}, 0, 600);
  EXPECT_EQ(stale.exit_code, 0) << stale.output;
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0001").state, "completed");
}

// ---- HDF5 messages ---------------------------------------------------------------------------

// What a command prints for a volume that is missing or is not HDF5: its own message naming the
// file, and none of HDF5's automatic error stack.
void ExpectOneMessageNamingTheFile(const CommandResult& r, const std::string& file, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("HDF5-DIAG"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(file + ": "), std::string::npos) << r.output;
}

TEST(SweepRunMessages, AMissingOrNonHdf5VolumeIsNamedWithoutHdf5Diagnostics) {
  ScratchDir dir;
  const std::string not_hdf5 = dir / "notes.h5";
  std::ofstream(not_hdf5) << "these are notes, not an HDF5 file\n";
  const std::string missing = dir / "missing.h5";
  for (const std::string& volume : {missing, not_hdf5}) {
    // A sweep: the trial fails on it (the sweep goes on and exits non-zero).
    ScratchDir sweep_dir;
    const std::string config = WriteSweep(sweep_dir, "\"train.lr\" = [0.01]\n", "epochs = 1\n", "", volume);
    ExpectOneMessageNamingTheFile(RunAngiotrain({"sweep", "run", "--config", config}, 0, 600), volume,
                                  "sweep run on " + volume);
    // A cross-validated sweep checks its folds on the volume when it plans.
    ScratchDir cv_dir;
    const std::string cv = WriteSweep(cv_dir, "\"train.lr\" = [0.01]\n", "epochs = 1\n", "cross_validation = 2", volume);
    ExpectOneMessageNamingTheFile(RunAngiotrain({"sweep", "run", "--config", cv}, 0, 600), volume,
                                  "cross-validated sweep run on " + volume);
    // train and predict.
    const std::string train = dir / "train.toml";
    std::ofstream(train) << "[data]\nvolume = \"" << volume << "\"\n[model]\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
                         << "[train]\nepochs = 1\n[output]\ndir = \"" << (dir / "run") << "\"\n";
    ExpectOneMessageNamingTheFile(RunAngiotrain({"train", "--config", train}, 0, 600), volume, "train on " + volume);
    ExpectOneMessageNamingTheFile(RunAngiotrain({"inspect", volume}, 0, 60), volume, "inspect " + volume);
  }
}

// ---- The base config's threshold rule --------------------------------------------------------

TEST(SweepRunMessages, ABadThresholdRuleInTheBaseConfigIsNamedByItsKey) {
  ScratchDir dir;
  const std::string config =
      WriteSweep(dir, "\"train.lr\" = [0.01]\n", "epochs = 1\n", "", "", "[base.evaluation]\nthreshold = \"top:0\"\n");
  std::string message = "no error";
  try {
    LoadSweepSpec(config);
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find(config), std::string::npos) << message;
  EXPECT_NE(message.find("evaluation.threshold"), std::string::npos) << message;
  EXPECT_NE(message.find("top:0"), std::string::npos) << message;
  const CommandResult r = RunAngiotrain({"sweep", "plan", "--config", config});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("evaluation.threshold"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace angiotrain
