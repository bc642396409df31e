// Messages name the thing, once: a folder given where a file is expected is called a folder,
// with its path; under mpirun a command-line error is printed once (by rank 0), and the job exits
// non-zero without Open MPI's abort banner.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "tests/support/test_support.h"

namespace angiotrain::testing {
namespace {

namespace fs = std::filesystem;

TEST(CommandMessages, FolderWhereAFileIsExpectedIsCalledAFolder) {
  ScratchDir scratch;
  const std::string folder = scratch / "a_folder", file = scratch / "file.csv";
  fs::create_directories(folder);
  WriteFileAtomically(file, "Index\n");
  struct Case {
    std::vector<std::string> args;
    std::string expected;  // after "FOLDER: is a folder, expected "
  };
  const std::vector<Case> cases = {
      {{"train", "--config", folder}, "a TOML file"},
      {{"predict", "--checkpoint", folder, "--input", file, "--template", file, "--out", scratch / "o.csv"},
       "a checkpoint"},
      {{"predict", "--checkpoint", file, "--input", file, "--template", folder, "--out", scratch / "o.csv"},
       "a submission template CSV"},
      {{"evaluate", "--pred", folder, "--truth", file}, "a submission CSV"},
      {{"evaluate", "--pred", file, "--truth", folder}, "a label CSV"},
  };
  for (const Case& c : cases) {
    CommandResult r = RunAngiotrain(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args[0] << ": " << r.output;
    EXPECT_NE(r.output.find(folder + ": is a folder, expected " + c.expected), std::string::npos)
        << c.args[0] << ":\n" << r.output;
  }
}

TEST(CommandMessages, CommandLineErrorUnderTwoRanksIsPrintedOnceWithoutAbort) {
  ScratchDir scratch;
  fs::create_directories(scratch / "a_folder");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"ingest", "--input", "x", "--out", "y.h5", "--no-such-option"}, "--no-such-option"},  // unknown option
      {{"evaluate", "--pred", "output.csv"}, "--truth is required"},                          // missing option
      {{"ingest", "--input", "x", "--out", "y.h5", "--resolution", "many"}, "many"},          // bad value
      {{"train", "--config", scratch / "a_folder"}, "is a folder, expected a TOML file"},     // bad path, all ranks
  };
  for (const Case& c : cases) {
    CommandResult r = RunAngiotrain(c.args, 2, 120);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_EQ(CountOccurrences(r.output, c.message), 1u) << r.output;
    EXPECT_EQ(r.output.find("MPI_ABORT"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace angiotrain::testing
