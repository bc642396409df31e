// `slurm submit` never writes its job files over its own inputs: OUTPUT_DIR/slurm/train.toml (the
// config copy the job reads) and OUTPUT_DIR/slurm/train.sbatch are refused when they are the
// --config it was given (or the data volume), before anything is written, as `train` refuses its
// outputs over its inputs (core/path_checks.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::RunAngiotrain;
using testing::ScratchDir;

// A submit config at `path` whose output.dir is `output_dir` and whose volume is `volume`.
std::string WriteConfig(const std::string& path, const std::string& output_dir, const std::string& volume) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "[data]\nvolume = \"" << volume << "\"\n[output]\ndir = \"" << output_dir
                      << "\"\n[slurm]\ntasks_per_node = 2\n";
  return path;
}

void ExpectRefused(const CommandResult& r, const std::string& output, const std::string& input,
                   const std::string& input_bytes) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(output + ": is "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(input), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("#!/bin/bash"), std::string::npos) << r.output;  // no script printed either
  EXPECT_EQ(ReadFile(input), input_bytes) << input << " changed";
}

TEST(SlurmSubmitOutputs, TheJobsConfigCopyOrScriptOverTheGivenConfigIsRefusedBeforeAnythingIsWritten) {
  ScratchDir dir;
  const std::string run = dir / "run";
  for (const std::string name : {"train.toml", "train.sbatch"}) {
    SCOPED_TRACE(name);
    const std::string config = WriteConfig(run + "/slurm/" + name, run, dir / "train.h5");
    const std::string bytes = ReadFile(config);
    // --dry-run writes nothing, but says what the submission would do: refuse.
    ExpectRefused(RunAngiotrain({"slurm", "submit", "--config", config, "--dry-run"}, 0, 60), config, config, bytes);
    // Without --dry-run (with or without sbatch on PATH): refused before the job folder is touched.
    ExpectRefused(RunAngiotrain({"slurm", "submit", "--config", config}, 0, 60), config, config, bytes);
    EXPECT_EQ(testing::ListDir(run + "/slurm"), std::vector<std::string>{name});
    // output.dir spelt another way (run/slurm/..) names the same files.
    const std::string relative = WriteConfig(run + "/slurm/" + name, run + "/slurm/..", dir / "train.h5");
    ExpectRefused(RunAngiotrain({"slurm", "submit", "--config", relative, "--dry-run"}, 0, 60), relative, relative,
                  ReadFile(relative));
    fs::remove_all(run);
  }
}

TEST(SlurmSubmitOutputs, TheJobsFilesOverTheDataVolumeAreRefused) {
  ScratchDir dir;
  const std::string run = dir / "run";
  fs::create_directories(run + "/slurm");
  const std::string volume = run + "/slurm/train.toml";
  std::ofstream(volume) << "not really a volume, but not to be overwritten";
  const std::string config = WriteConfig(dir / "config.toml", run, volume);
  ExpectRefused(RunAngiotrain({"slurm", "submit", "--config", config, "--dry-run"}, 0, 60), volume, volume,
                ReadFile(volume));
  // The same config with another output.dir is fine.
  const std::string fine = WriteConfig(dir / "fine.toml", dir / "elsewhere", volume);
  const CommandResult ok = RunAngiotrain({"slurm", "submit", "--config", fine, "--dry-run"}, 0, 60);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ok.output.rfind("#!/bin/bash\n", 0), 0u) << ok.output;
}

}  // namespace
}  // namespace angiotrain
