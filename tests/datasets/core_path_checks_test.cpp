// core/path_checks.h (run in the datasets suite, which links core; core has no suite of its own).
// An output that resolves to an input, or lies inside an input folder, is refused with both
// paths named; a path of the wrong kind is named with what was expected.
#include "core/path_checks.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// The message of the CollectiveError `check` throws, or "" when it throws nothing.
template <class Check>
std::string Refusal(Check check) {
  try {
    check();
  } catch (const CollectiveError& e) {
    return e.what();
  }
  return "";
}

class PathChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(scratch_ / "images");
    WriteFileAtomically(scratch_ / "images/train.csv", "Index\n");
  }
  ScratchDir scratch_;
};

TEST_F(PathChecks, OutputThatResolvesToAnInputIsRefusedNamingBoth) {
  const std::string input = scratch_ / "images/train.csv";
  fs::create_symlink(input, scratch_ / "link.csv");
  fs::create_hard_link(input, scratch_ / "hard.csv");
  for (const std::string& output : {input, scratch_ / "images/../images/./train.csv", scratch_ / "link.csv",
                                    scratch_ / "hard.csv"}) {
    const std::string message = Refusal([&] { RefuseOutputOverInput(output, {"", input}); });
    EXPECT_EQ(message.rfind(output + ": is the input " + input, 0), 0u) << output << ": " << message;
  }
}

TEST_F(PathChecks, OutputInsideAnInputFolderIsRefused) {
  const std::string folder = scratch_ / "images";
  for (const std::string& output : {scratch_ / "images/volume.h5", scratch_ / "images/new/volume.h5"}) {
    const std::string message = Refusal([&] { RefuseOutputOverInput(output, {folder}); });
    EXPECT_NE(message.find(output + ": is inside the input folder " + folder), std::string::npos) << message;
  }
}

TEST_F(PathChecks, OutputBesideTheInputsIsAccepted) {
  const std::string folder = scratch_ / "images";
  for (const std::string& output : {scratch_ / "volume.h5", scratch_ / "images2/volume.h5", std::string()})
    EXPECT_EQ(Refusal([&] { RefuseOutputOverInput(output, {folder, folder + "/train.csv"}); }), "") << output;
}

TEST_F(PathChecks, PathOfTheWrongKindIsNamedWithWhatWasExpected) {
  const std::string folder = scratch_ / "images", file = scratch_ / "images/train.csv";
  EXPECT_EQ(Refusal([&] { RequireFile(folder, "a TOML file"); }), folder + ": is a folder, expected a TOML file");
  EXPECT_EQ(Refusal([&] { RequireFolder(file, "a folder of views"); }), file + ": is a file, expected a folder of views");
  EXPECT_EQ(Refusal([&] { RequireFile(scratch_ / "none.toml", "a TOML file"); }),
            scratch_ / "none.toml" + ": does not exist (expected a TOML file)");
  EXPECT_EQ(Refusal([&] { RequireFile(file, "a label CSV"); }), "");
  EXPECT_EQ(Refusal([&] { RequireFolder(folder, "a folder of views"); }), "");
}

}  // namespace
}  // namespace angiotrain
