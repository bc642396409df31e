// Multi-rank tests inside one gtest binary: a test that needs N ranks re-runs itself under
// `mpirun -np N` (filtered to its own name) and checks the job; inside the job, the same test
// body runs on every rank. ctest therefore lists and reports each multi-rank test by name.
//
//   TEST(Communicator, AllReduceSums) {
//     ANGIOTRAIN_RUN_ON_RANKS(2);   // parent: runs the job, expects every rank to pass, returns
//     ... body, run by each of the 2 ranks ...
//   }
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace angiotrain::testing {

inline int WorldRank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

inline int WorldSize() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// True inside a job started by RunCurrentTestOnRanks (the test main initialises MPI; a process
// started without mpirun is a world of one).
inline bool IsMpiRank() { return WorldSize() > 1; }

struct RanksRun {
  CommandResult result;
  double seconds = 0;
};

// Runs the current test under mpirun -np `ranks` and returns what happened.
inline RanksRun RunCurrentTestOnRanks(int ranks, int timeout_s = 120) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::vector<std::string> argv = MpirunPrefix(ranks);  // RunCommand drops MPI_Init's variables
  argv.push_back(std::filesystem::read_symlink("/proc/self/exe").string());
  argv.push_back(std::string("--gtest_filter=") + info->test_suite_name() + "." + info->name());
  argv.push_back("--gtest_color=no");
  auto start = std::chrono::steady_clock::now();
  RanksRun run;
  run.result = RunCommand(argv, timeout_s);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

// Expects the current test to pass on every one of `ranks` ranks (and to have run at all: a
// filter that matched nothing would also exit 0).
inline void ExpectPassesOnRanks(int ranks) {
  RanksRun run = RunCurrentTestOnRanks(ranks);
  size_t passed = 0;
  for (size_t at = run.result.output.find("[  PASSED  ] 1 test."); at != std::string::npos;
       at = run.result.output.find("[  PASSED  ] 1 test.", at + 1)) {
    ++passed;
  }
  EXPECT_EQ(run.result.exit_code, 0) << run.result.output;
  EXPECT_EQ(passed, static_cast<size_t>(ranks)) << run.result.output;
}

}  // namespace angiotrain::testing

#define ANGIOTRAIN_RUN_ON_RANKS(ranks)                      \
  if (!::angiotrain::testing::IsMpiRank()) {                 \
    ::angiotrain::testing::ExpectPassesOnRanks(ranks);       \
    return;                                                  \
  }                                                          \
  ASSERT_EQ(::angiotrain::testing::WorldSize(), (ranks)) << "run under mpirun -np " #ranks
