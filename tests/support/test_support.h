// Shared fixtures for the test suites: scratch folders, running the real binary (optionally
// under mpirun), and small file helpers.
#pragma once

#include <string>
#include <vector>

namespace angiotrain::testing {

// A fresh folder under $TMPDIR, removed at destruction unless ANGIOTRAIN_KEEP_TEST_DIRS is set.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Records the environment as it was before MPI_Init (which adds OMPI_/PMIX_ variables that
// would make a child mpirun believe it is nested). test_main calls it first thing.
void SaveEnvironmentBeforeMpi();

// Runs argv (no shell) with the environment saved before MPI_Init plus `env` ("NAME=value"
// entries, which win), and captures its output.
CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_s = 600,
                         const std::vector<std::string>& env = {});
// Runs the angiotrain binary with `args`; with ranks > 0 under mpirun -np ranks (which passes
// `env` on to every rank).
CommandResult RunAngiotrain(const std::vector<std::string>& args, int ranks = 0, int timeout_s = 600,
                            const std::vector<std::string>& env = {});
// mpirun argv prefix for `ranks` ranks on this machine (oversubscribe, root allowed, loopback).
std::vector<std::string> MpirunPrefix(int ranks);

bool FileExists(const std::string& path);
// Lists the names in a folder (no . and ..).
std::vector<std::string> ListDir(const std::string& dir);
// How many times `part` occurs in `text` (a message printed once, not once per rank).
size_t CountOccurrences(const std::string& text, const std::string& part);

}  // namespace angiotrain::testing
