// Bounded-time failure of a data-parallel job: a rank that throws, dies, or leaves the others
// waiting in a collective ends the whole job non-zero within seconds, never a hang.
#include "distributed/collective_watchdog.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "distributed/mpi_communicator.h"
#include "tests/distributed/mpirun_test_support.h"

namespace angiotrain {
namespace {

using namespace std::chrono_literals;
using testing::IsMpiRank;
using testing::RunCurrentTestOnRanks;
using testing::WorldRank;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(CollectiveWatchdog, ReportsACollectiveThatOutlivesTheTimeoutByName) {
  std::atomic<int> calls{0};
  std::string message;
  std::mutex mutex;
  CollectiveWatchdog watchdog(100ms, [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(mutex);
    message = m;
    ++calls;
  });
  watchdog.Start("all-reduce of 10 Float (mpi)");
  for (int i = 0; i < 200 && calls == 0; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(300ms);  // time to (wrongly) report it twice
  EXPECT_EQ(calls, 1);
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_TRUE(Contains(message, "all-reduce of 10 Float (mpi) did not complete within 0.1 s")) << message;
}

TEST(CollectiveWatchdog, StaysQuietForCollectivesThatFinishInTime) {
  std::atomic<int> calls{0};
  CollectiveWatchdog watchdog(200ms, [&](const std::string&) { ++calls; });
  for (int i = 0; i < 5; ++i) {
    uint64_t token = watchdog.Start("broadcast");
    std::this_thread::sleep_for(50ms);
    watchdog.Finish(token);
  }
  std::atomic<bool> done{false};
  watchdog.Start("polled GPU work", [&] { return done.load(); });
  std::this_thread::sleep_for(50ms);
  done = true;  // retired by the watchdog's own polling, no Finish call
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(calls, 0);
}

TEST(JobFailure, RankThatThrowsAbortsTheJobWhileItsPeerWaitsInACollective) {
  if (!IsMpiRank()) {
    auto run = RunCurrentTestOnRanks(2, /*timeout_s=*/90);
    EXPECT_NE(run.result.exit_code, 0) << run.result.output;
    EXPECT_LT(run.seconds, 60) << run.result.output;
    EXPECT_TRUE(Contains(run.result.output, "angiotrain: error: rank 1: bad batch on rank 1")) << run.result.output;
    return;
  }
  // The program's top level: catch, then AbortJob (launcher/main.cpp does the same).
  try {
    MpiCommunicator comm(MPI_COMM_WORLD);
    torch::Tensor t = torch::ones({4});
    comm.AllReduce(t);
    if (comm.rank() == 1) throw Error("bad batch on rank 1");
    comm.AllReduce(t);  // rank 0 waits here for a peer that never comes
  } catch (const std::exception& e) {
    AbortJob(e.what());
  }
  ADD_FAILURE() << "rank " << WorldRank() << " got past a collective its peer never joined";
}

TEST(JobFailure, KilledRankEndsTheJobNonZeroWithinSixtySeconds) {
  if (!IsMpiRank()) {
    auto run = RunCurrentTestOnRanks(2, /*timeout_s=*/90);
    EXPECT_NE(run.result.exit_code, 0) << run.result.output;
    EXPECT_LT(run.seconds, 60) << run.result.output;
    return;
  }
  // No watchdog: ending the job is mpirun's doing once it sees a rank die.
  MpiCommunicator comm(MPI_COMM_WORLD);
  torch::Tensor t = torch::ones({1024});
  for (int step = 0; step < 1000000; ++step) {
    if (comm.rank() == 1 && step == 20) raise(SIGKILL);  // as the OOM killer would
    comm.AllReduce(t);
    t.fill_(1);
  }
  ADD_FAILURE() << "rank " << WorldRank() << " finished a loop its peer died in";
}

TEST(JobFailure, WatchdogAbortsARankStuckInACollectiveItsPeerSkipped) {
  if (!IsMpiRank()) {
    auto run = RunCurrentTestOnRanks(2, /*timeout_s=*/90);
    EXPECT_NE(run.result.exit_code, 0) << run.result.output;
    EXPECT_LT(run.seconds, 30) << "rank 1 sleeps 60 s: only the watchdog ends the job sooner\n"
                               << run.result.output;
    EXPECT_TRUE(Contains(run.result.output, "rank 0: all-reduce of 4 Float (mpi) did not complete within 2 s"))
        << run.result.output;
    return;
  }
  auto watchdog = std::make_shared<CollectiveWatchdog>(2s);
  MpiCommunicator comm(MPI_COMM_WORLD, watchdog);
  if (comm.rank() == 0) {
    torch::Tensor t = torch::ones({4});
    comm.AllReduce(t);
  } else {
    std::this_thread::sleep_for(60s);  // a hung rank: alive, never joins
  }
  ADD_FAILURE() << "rank " << WorldRank() << " was not aborted";
}

}  // namespace
}  // namespace angiotrain
