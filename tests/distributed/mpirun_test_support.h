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

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
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

// The variables MPI_Init added to this process's environment (the test main makes every test
// process an MPI singleton). An mpirun started with them thinks it is inside a job and exits 1
// without output, so they are removed for it; variables the user set before are kept.
inline std::vector<std::string> VariablesAddedByMpiInit() {
  std::set<std::string> at_exec;  // /proc/self/environ is the environment as the process started
  std::ifstream initial("/proc/self/environ", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(initial)), std::istreambuf_iterator<char>());
  for (size_t begin = 0; begin < all.size();) {
    size_t end = all.find('\0', begin);
    if (end == std::string::npos) end = all.size();
    std::string entry = all.substr(begin, end - begin);
    at_exec.insert(entry.substr(0, entry.find('=')));
    begin = end + 1;
  }
  std::vector<std::string> added;
  for (char** env = environ; *env; ++env) {
    std::string name(*env, std::string(*env).find('='));
    bool mpi = name.rfind("OMPI_", 0) == 0 || name.rfind("PMIX_", 0) == 0 || name.rfind("ORTE_", 0) == 0 ||
               name.rfind("OPAL_", 0) == 0;
    if (mpi && !at_exec.count(name)) added.push_back(name);
  }
  return added;
}

struct RanksRun {
  CommandResult result;
  double seconds = 0;
};

// Runs the current test under mpirun -np `ranks` and returns what happened.
inline RanksRun RunCurrentTestOnRanks(int ranks, int timeout_s = 120) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::vector<std::string> argv = {"env"};
  for (const auto& name : VariablesAddedByMpiInit()) argv.insert(argv.end(), {"-u", name});
  for (const auto& arg : MpirunPrefix(ranks)) argv.push_back(arg);
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
