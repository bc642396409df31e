// The [slurm] schema and the batch script without a cluster: values that could inject shell are
// refused or quoted (and a value that would touch a marker file if executed never does), the
// script's warning -> requeue and resume logic run by bash against stand-in srun and scontrol,
// and `slurm submit` without Slurm's commands; the same for a sweep's job array and results job
// (`sweep run --slurm`).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "slurm/batch_script.h"
#include "slurm/slurm_config.h"
#include "tests/slurm/local_slurm.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::CommandResult;
using testing::FileExists;
using testing::RunAngiotrain;
using testing::RunCommand;
using testing::ScratchDir;

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Values a config could carry to run `touch MARKER` in a shell that evaluates them.
std::vector<std::string> Injections(const std::string& marker) {
  return {"$(touch " + marker + ")", "`touch " + marker + "`", "x;touch " + marker, "x\ntouch " + marker,
          "x' ; touch " + marker + " ; '", "x\" ; touch " + marker + " ; \"", "x && touch " + marker,
          "x|touch " + marker};
}

std::string ErrorOf(const SlurmConfig& c) {
  try {
    ValidateSlurmConfig(c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SlurmConfig, ValuesBoundForSbatchLinesRefuseShellMetacharactersNamingTheKey) {
  using Setter = void (*)(SlurmConfig&, const std::string&);
  const std::vector<std::pair<std::string, Setter>> keys = {
      {"partition", [](SlurmConfig& c, const std::string& v) { c.partition = v; }},
      {"account", [](SlurmConfig& c, const std::string& v) { c.account = v; }},
      {"qos", [](SlurmConfig& c, const std::string& v) { c.qos = v; }},
      {"job_name", [](SlurmConfig& c, const std::string& v) { c.job_name = v; }},
      {"mem", [](SlurmConfig& c, const std::string& v) { c.mem = v; }},
      {"time", [](SlurmConfig& c, const std::string& v) { c.time = v; }},
      {"output", [](SlurmConfig& c, const std::string& v) { c.output = v; }},
      {"network_interface", [](SlurmConfig& c, const std::string& v) { c.network_interface = v; }},
      {"extra", [](SlurmConfig& c, const std::string& v) { c.extra = {"--constraint=" + v}; }},
      {"env", [](SlurmConfig& c, const std::string& v) { c.env = {"BAD NAME" + v + "=1"}; }},
  };
  for (const auto& [key, set] : keys) {
    for (const auto& value : Injections("/tmp/never")) {
      SlurmConfig c;
      set(c, value);
      const std::string error = ErrorOf(c);
      EXPECT_NE(error.find("slurm." + key), std::string::npos) << key << " = " << value << ": " << error;
    }
  }
}

TEST(SlurmConfig, ExtraOptionsComeFromTheAllowList) {
  SlurmConfig c;
  c.extra = {"--constraint=a100", "--exclusive", "--mail-type=END,FAIL"};
  EXPECT_EQ(ErrorOf(c), "");
  for (const std::string bad : {"--wrap=touch x", "--output=/x", "--array=1-3", "--export=ALL", "constraint=a",
                                "--signal=USR2@9", "--chdir=/"}) {
    c.extra = {bad};
    EXPECT_NE(ErrorOf(c).find("not an allowed #SBATCH option"), std::string::npos) << bad;
  }
}

TEST(SlurmConfig, RangesAndFormatsAreChecked) {
  SlurmConfig c;
  c.time = "1-02:03:04";
  EXPECT_EQ(TimeLimitSeconds(c.time), 93784);
  EXPECT_EQ(TimeLimitSeconds("90"), 5400);
  EXPECT_EQ(TimeLimitSeconds("02:00:00"), 7200);
  EXPECT_EQ(ErrorOf(c), "");
  c.signal_seconds = 7200;
  c.time = "01:00:00";
  EXPECT_NE(ErrorOf(c).find("slurm.signal_seconds"), std::string::npos);
  c = SlurmConfig{};
  c.gpus_per_node = 8;
  c.tasks_per_node = 4;
  EXPECT_NE(ErrorOf(c).find("one rank per GPU"), std::string::npos);
  c.tasks_per_node = 0;
  EXPECT_EQ(RanksPerNode(c), 8);
  c = SlurmConfig{};
  c.mem = "64G";
  EXPECT_EQ(ErrorOf(c), "");
  c.mem = "lots";
  EXPECT_NE(ErrorOf(c).find("slurm.mem"), std::string::npos);
}

TEST(SlurmConfig, FileKeysAreTypedAndUnknownOnesNamed) {
  SlurmConfig c = ParseSlurmConfig("[train]\nepochs = 3\n[slurm]\nnodes = 2\ngpus_per_node = 8\nextra = [\"--exclusive\"]\n", "a.toml");
  EXPECT_EQ(c.nodes, 2);
  EXPECT_EQ(c.gpus_per_node, 8);
  EXPECT_EQ(c.extra, std::vector<std::string>{"--exclusive"});
  EXPECT_THROW(ParseSlurmConfig("[slurm]\nnodes = \"two\"\n", "a.toml"), Error);
  try {
    ParseSlurmConfig("[slurm]\nqueue = \"gpu\"\n", "a.toml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.toml"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("slurm.queue"), std::string::npos);
  }
  ApplySlurmOverride(c, "slurm.partition=gpu");
  ApplySlurmOverride(c, "slurm.env=A=1");
  ApplySlurmOverride(c, "slurm.nodes=4");
  EXPECT_EQ(c.partition, "gpu");
  EXPECT_EQ(c.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(c.nodes, 4);
  EXPECT_THROW(ApplySlurmOverride(c, "slurm.nodes=$(touch x)"), Error);
}

TEST(ShellQuote, EveryValueReachesTheShellAsOneLiteralWord) {
  ScratchDir dir;
  const std::string marker = dir / "executed";
  std::vector<std::string> values = Injections(marker);
  values.erase(std::remove_if(values.begin(), values.end(), [](const std::string& v) { return v.find('\n') != std::string::npos; }),
               values.end());
  values.push_back("it's \"quoted\" \\ $HOME ! * ~ {a,b} 'x'");
  for (const auto& value : values) {
    CommandResult r = RunCommand({"bash", "-c", "printf %s " + ShellQuote(value)});
    EXPECT_EQ(r.output, value);
  }
  EXPECT_FALSE(FileExists(marker));
  EXPECT_THROW(ShellQuote("a\ntouch " + marker), Error);
}

// A batch script run by bash against stand-ins for srun and scontrol that record what they got.
class ScriptRun {
 public:
  explicit ScriptRun(const ScratchDir& dir) : dir_(dir) {
    std::filesystem::create_directories(dir_ / "bin");
    WriteText(dir_ / "bin/srun",
              "#!/bin/bash\n"
              "printf '%s\\n' \"$@\" > \"$FAKE_DIR/srun.argv\"\n"
              "printf '%s\\n' \"$*\" >> \"$FAKE_DIR/srun.calls\"\n"
              "printf '%s' \"${PROBE-unset}\" > \"$FAKE_DIR/srun.probe\"\n"
              "case \"$FAKE_SRUN\" in\n"
              "  fail) exit 7 ;;\n"
              "  warn) trap 'echo got-usr1 > \"$FAKE_DIR/srun.usr1\"; exit 0' USR1\n"
              "        sleep 0.3; kill -USR1 $PPID  # what Slurm's --signal=B:USR1 does to the batch shell\n"
              "        for i in $(seq 100); do sleep 0.1; done; exit 9 ;;\n"
              "esac\n");
    WriteText(dir_ / "bin/scontrol", "#!/bin/bash\nprintf '%s\\n' \"$*\" >> \"$FAKE_DIR/scontrol.calls\"\n");
    std::filesystem::permissions(dir_ / "bin/srun", std::filesystem::perms::owner_all);
    std::filesystem::permissions(dir_ / "bin/scontrol", std::filesystem::perms::owner_all);
  }

  CommandResult Run(const TrainJob& job, const std::string& mode, int restarts) {
    return RunScript(TrainBatchScript(job), mode, restarts);
  }
  // `extra_env`: e.g. SLURM_ARRAY_TASK_ID for an array task.
  CommandResult RunScript(const std::string& text, const std::string& mode, int restarts,
                          const std::vector<std::string>& extra_env = {}) {
    const std::string script = dir_ / "job.sbatch";
    WriteText(script, text);
    for (const char* f : {"srun.argv", "srun.calls", "srun.probe", "srun.usr1", "scontrol.calls"})
      std::filesystem::remove(dir_ / f);
    std::vector<std::string> env = {"PATH=" + (dir_ / "bin") + ":/usr/bin:/bin", "FAKE_DIR=" + dir_.path(),
                                    "FAKE_SRUN=" + mode, "SLURM_JOB_ID=42",
                                    "SLURM_RESTART_COUNT=" + std::to_string(restarts)};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    return RunCommand({"bash", script}, 60, env);
  }
  std::string File(const std::string& name) const { return testing::ReadText(dir_ / name); }

 private:
  const ScratchDir& dir_;
};

TrainJob ExampleJob(const ScratchDir& dir) {
  TrainJob job;
  job.workdir = dir.path();
  job.angiotrain = "/opt/angio train/bin/angiotrain";  // a space: quoted, one argument
  job.config = dir / "train.toml";
  job.checkpoint = dir / "last.pt";
  job.log = dir / "train-%j.out";
  return job;
}

TEST(TrainBatchScript, HasTheRequestedResourcesAndAsksForTheWarningSignal) {
  ScratchDir dir;
  TrainJob job = ExampleJob(dir);
  job.slurm.partition = "gpu";
  job.slurm.account = "proj-7";
  job.slurm.qos = "high";
  job.slurm.nodes = 2;
  job.slurm.gpus_per_node = 8;
  job.slurm.cpus_per_task = 6;
  job.slurm.mem = "480G";
  job.slurm.time = "1-00:00:00";
  job.slurm.signal_seconds = 600;
  job.slurm.network_interface = "ib0";
  job.slurm.extra = {"--exclusive", "--constraint=h100"};
  const std::string s = TrainBatchScript(job);
  for (const std::string line :
       {"#SBATCH --partition=gpu\n", "#SBATCH --account=proj-7\n", "#SBATCH --qos=high\n", "#SBATCH --nodes=2\n",
        "#SBATCH --ntasks-per-node=8\n", "#SBATCH --gpus-per-task=1\n", "#SBATCH --cpus-per-task=6\n",
        "#SBATCH --mem=480G\n", "#SBATCH --time=1-00:00:00\n", "#SBATCH --requeue\n",
        "#SBATCH --signal=B:USR1@600\n", "#SBATCH --exclusive\n", "#SBATCH --constraint=h100\n",
        "#SBATCH --open-mode=append\n", "export NCCL_SOCKET_IFNAME='ib0'\n",
        "export OMPI_MCA_btl_tcp_if_include='ib0'\n", "srun --mpi=pmix "})
    EXPECT_NE(s.find(line), std::string::npos) << line << "\n" << s;
  EXPECT_EQ(RunCommand({"bash", "-n", "-c", s}).exit_code, 0);
}

TEST(TrainBatchScript, EnvironmentValuesArriveVerbatimAndAreNeverExecuted) {
  ScratchDir dir;
  ScriptRun run(dir);
  TrainJob job = ExampleJob(dir);
  const std::string marker = dir / "executed";
  const std::string probe = "$(touch " + marker + ")`touch " + marker + "`;touch " + marker + " 'q' \"dq\" \\";
  job.slurm.env = {"PROBE=" + probe};
  ValidateSlurmConfig(job.slurm);
  CommandResult r = run.Run(job, "ok", 0);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(run.File("srun.probe"), probe);
  EXPECT_FALSE(FileExists(marker));
  // The binary's path with a space is one argument; no --resume on a first start.
  EXPECT_EQ(run.File("srun.argv"), "--mpi=pmix\n--kill-on-bad-exit=1\n/opt/angio train/bin/angiotrain\ntrain\n--config\n" +
                                       job.config + "\n");
  job.slurm.env = {"PROBE=x\ntouch " + marker};
  EXPECT_THROW(ValidateSlurmConfig(job.slurm), Error);
  EXPECT_THROW(TrainBatchScript(job), Error);
}

TEST(TrainBatchScript, WarningSignalIsForwardedToTheStepAndTheJobRequeuesItself) {
  ScratchDir dir;
  ScriptRun run(dir);
  TrainJob job = ExampleJob(dir);
  CommandResult r = run.Run(job, "warn", 0);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(run.File("srun.usr1"), "got-usr1\n") << r.output;
  EXPECT_EQ(run.File("scontrol.calls"), "requeue 42\n") << r.output;
  EXPECT_NE(r.output.find("requeueing job 42 (restart 1 of at most 3)"), std::string::npos) << r.output;
}

TEST(TrainBatchScript, RequeuesAreBounded) {
  ScratchDir dir;
  ScriptRun run(dir);
  TrainJob job = ExampleJob(dir);
  job.slurm.max_requeues = 2;
  CommandResult warned_at_limit = run.Run(job, "warn", 2);
  EXPECT_EQ(warned_at_limit.exit_code, 3) << warned_at_limit.output;
  EXPECT_EQ(run.File("scontrol.calls"), "");
  EXPECT_NE(warned_at_limit.output.find("not requeued: requeued 2 times already"), std::string::npos);
  CommandResult past_limit = run.Run(job, "ok", 3);
  EXPECT_EQ(past_limit.exit_code, 3) << past_limit.output;
  EXPECT_FALSE(FileExists(dir / "srun.argv"));  // not started again
}

TEST(TrainBatchScript, RequeuedJobResumesFromTheCheckpointAndFailuresAreNotRequeued) {
  ScratchDir dir;
  ScriptRun run(dir);
  TrainJob job = ExampleJob(dir);
  WriteText(job.checkpoint, "checkpoint");
  ASSERT_EQ(run.Run(job, "ok", 0).exit_code, 0);
  EXPECT_EQ(run.File("srun.argv").find("--resume"), std::string::npos);  // a first start trains afresh
  ASSERT_EQ(run.Run(job, "ok", 1).exit_code, 0);
  EXPECT_NE(run.File("srun.argv").find("\n--resume\n"), std::string::npos);
  job.resume = true;
  ASSERT_EQ(run.Run(job, "ok", 0).exit_code, 0);
  EXPECT_NE(run.File("srun.argv").find("\n--resume\n"), std::string::npos);
  CommandResult failed = run.Run(job, "fail", 0);
  EXPECT_EQ(failed.exit_code, 7) << failed.output;
  EXPECT_EQ(run.File("scontrol.calls"), "");
}

SweepArrayJob ExampleSweep(const ScratchDir& dir) {
  SweepArrayJob job;
  job.workdir = dir.path();
  job.angiotrain = "/opt/angio train/bin/angiotrain";
  job.sweep_file = dir / "sweep.toml";
  job.store = dir / "store";
  job.trials = 3;
  job.array_log = dir / "store/slurm/trial-%A_%a.out";
  job.results_log = dir / "store/slurm/results-%j.out";
  return job;
}

TEST(SweepArrayScript, IsOneArrayTaskPerTrialWithTheConcurrencyLimitAndTheTrainingJobsResources) {
  ScratchDir dir;
  SweepArrayJob job = ExampleSweep(dir);
  job.slurm.partition = "gpu";
  job.slurm.gpus_per_node = 4;
  job.slurm.time = "02:00:00";
  job.slurm.array_parallel = 2;
  const std::string s = SweepArrayScript(job);
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --array=0-2%2\n", "#SBATCH --partition=gpu\n", "#SBATCH --ntasks-per-node=4\n",
        "#SBATCH --gpus-per-task=1\n", "#SBATCH --time=02:00:00\n", "#SBATCH --requeue\n",
        "#SBATCH --signal=B:USR1@300\n", "#SBATCH --open-mode=append\n",
        "#SBATCH --output=" + (dir / "store/slurm/trial-%A_%a.out") + "\n"})
    EXPECT_NE(s.find(line), std::string::npos) << line << "\n" << s;
  EXPECT_EQ(RunCommand({"bash", "-n", "-c", s}).exit_code, 0);
  job.slurm.array_parallel = 4;  // more than the trials: all of them at once
  EXPECT_NE(SweepArrayScript(job).find("#SBATCH --array=0-2%3\n"), std::string::npos);
  job.trials = 0;
  EXPECT_THROW(SweepArrayScript(job), Error);
}

TEST(SweepArrayScript, TaskRunsItsTrialAndRequeuesOnTheWarning) {
  ScratchDir dir;
  ScriptRun run(dir);
  const SweepArrayJob job = ExampleSweep(dir);
  CommandResult r = run.RunScript(SweepArrayScript(job), "ok", 0, {"SLURM_ARRAY_TASK_ID=1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(run.File("srun.argv"), "--mpi=pmix\n--kill-on-bad-exit=1\n/opt/angio train/bin/angiotrain\nsweep\nrun\n"
                                   "--config\n" + job.sweep_file + "\n--dir\n" + job.store + "\n--trial\n1\n");
  // A requeued task runs the same command: the trial store resumes the trial by itself.
  ASSERT_EQ(run.RunScript(SweepArrayScript(job), "ok", 1, {"SLURM_ARRAY_TASK_ID=1"}).exit_code, 0);
  EXPECT_EQ(run.File("srun.argv").find("--resume"), std::string::npos);
  CommandResult warned = run.RunScript(SweepArrayScript(job), "warn", 0, {"SLURM_ARRAY_TASK_ID=2"});
  EXPECT_EQ(warned.exit_code, 0) << warned.output;
  EXPECT_EQ(run.File("srun.usr1"), "got-usr1\n") << warned.output;
  EXPECT_EQ(run.File("scontrol.calls"), "requeue 42\n") << warned.output;
  CommandResult past_limit = run.RunScript(SweepArrayScript(job), "ok", 4, {"SLURM_ARRAY_TASK_ID=2"});
  EXPECT_EQ(past_limit.exit_code, 3) << past_limit.output;
  EXPECT_NE(past_limit.output.find("keeps trial 2 where it stopped"), std::string::npos) << past_limit.output;
  CommandResult not_an_array = run.RunScript(SweepArrayScript(job), "ok", 0);
  EXPECT_NE(not_an_array.exit_code, 0);
  EXPECT_NE(not_an_array.output.find("task of a Slurm job array"), std::string::npos) << not_an_array.output;
}

TEST(SweepResultsScript, WaitsForTheWholeArrayThenRanksTheStoreAndWritesTheReport) {
  ScratchDir dir;
  ScriptRun run(dir);
  SweepArrayJob job = ExampleSweep(dir);
  job.slurm.account = "proj-7";
  job.slurm.gpus_per_node = 8;
  job.slurm.extra = {"--exclusive"};
  const std::string s = SweepResultsScript(job, "777");
  for (const std::string& line : std::vector<std::string>{"#SBATCH --dependency=afterany:777\n", "#SBATCH --ntasks=1\n",
                                 "#SBATCH --account=proj-7\n", "#SBATCH --job-name=angiotrain-results\n",
                                 "#SBATCH --output=" + (dir / "store/slurm/results-%j.out") + "\n"})
    EXPECT_NE(s.find(line), std::string::npos) << line << "\n" << s;
  // No GPUs, no requeue, no exclusive node: it reads files.
  for (const char* option : {"--array", "--gpus", "--requeue", "--exclusive", "--signal"})
    EXPECT_EQ(s.find(std::string("#SBATCH ") + option), std::string::npos) << option;
  EXPECT_THROW(SweepResultsScript(job, "777;touch x"), Error);
  CommandResult r = run.RunScript(s, "ok", 0);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(run.File("srun.calls"),
            "--mpi=pmix --ntasks=1 /opt/angio train/bin/angiotrain sweep status " + job.store + " --write --rows 0\n"
            "--mpi=pmix --ntasks=1 /opt/angio train/bin/angiotrain report --sweep " + job.store + " --examples 1\n");
  CommandResult failed = run.RunScript(s, "fail", 0);
  EXPECT_EQ(failed.exit_code, 7) << failed.output;
  EXPECT_NE(failed.output.find("sweep status failed with status 7"), std::string::npos) << failed.output;
}

TEST(SweepScripts, PathsAndEnvironmentValuesWithShellMetacharactersArriveVerbatimAndAreNeverExecuted) {
  ScratchDir dir;
  ScriptRun run(dir);
  const std::string marker = dir / "executed";
  const std::string odd = "$(touch " + marker + ")`touch " + marker + "`;touch " + marker + " 'q' \"dq\" \\";
  SweepArrayJob job = ExampleSweep(dir);
  job.sweep_file = dir / ("sweep " + odd + ".toml");
  job.store = dir / ("store " + odd);
  job.workdir = dir.path();
  job.slurm.env = {"PROBE=" + odd};
  ValidateSlurmConfig(job.slurm);
  CommandResult task = run.RunScript(SweepArrayScript(job), "ok", 0, {"SLURM_ARRAY_TASK_ID=0"});
  ASSERT_EQ(task.exit_code, 0) << task.output;
  EXPECT_EQ(run.File("srun.argv"), "--mpi=pmix\n--kill-on-bad-exit=1\n/opt/angio train/bin/angiotrain\nsweep\nrun\n"
                                   "--config\n" + job.sweep_file + "\n--dir\n" + job.store + "\n--trial\n0\n");
  EXPECT_EQ(run.File("srun.probe"), odd);
  CommandResult results = run.RunScript(SweepResultsScript(job, "777"), "ok", 0);
  ASSERT_EQ(results.exit_code, 0) << results.output;
  EXPECT_NE(run.File("srun.calls").find("sweep status " + job.store + " --write"), std::string::npos)
      << run.File("srun.calls");
  EXPECT_EQ(run.File("srun.probe"), odd);
  EXPECT_FALSE(FileExists(marker));
  job.store = dir / "store\ntouch x";
  EXPECT_THROW(SweepArrayScript(job), Error);
  EXPECT_THROW(SweepResultsScript(job, "777"), Error);
}

std::string WriteSubmitConfig(const ScratchDir& dir, const std::string& slurm_section) {
  const std::string path = dir / "config.toml";
  WriteText(path, "[data]\nvolume = \"" + (dir / "train.h5") + "\"\n[output]\ndir = \"" + (dir / "run") +
                      "\"\n[slurm]\ntasks_per_node = 2\n" + slurm_section);
  return path;
}

// A PATH without Slurm's commands, with what a singleton MPI_Init needs (Open MPI's orted, and no
// ssh/rsh lookup).
std::vector<std::string> EnvironmentWithoutSlurm(const ScratchDir& dir) {
  std::filesystem::create_directories(dir / "bin");
  std::filesystem::create_symlink(std::filesystem::path(ANGIOTRAIN_MPIEXEC).parent_path() / "orted", dir / "bin/orted");
  return {"PATH=" + (dir / "bin"), "OMPI_MCA_plm_rsh_agent=/bin/false"};
}

TEST(SlurmSubmit, WithoutSlurmSaysSoBeforeWritingAnythingAndDryRunStillPrintsTheScript) {
  ScratchDir dir;
  const std::string config = WriteSubmitConfig(dir, "");
  CommandResult r = RunAngiotrain({"slurm", "submit", "--config", config}, 0, 60, EnvironmentWithoutSlurm(dir));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("sbatch is not on PATH"), std::string::npos) << r.output;
  EXPECT_EQ(testing::CountOccurrences(r.output, "angiotrain: error:"), 1u) << r.output;
  EXPECT_FALSE(FileExists(dir / "run"));

  ScratchDir dry_dir;
  const std::string dry_config = WriteSubmitConfig(dry_dir, "");
  CommandResult dry = RunAngiotrain({"slurm", "submit", "--config", dry_config, "--dry-run"}, 0, 60,
                                    EnvironmentWithoutSlurm(dry_dir));
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_EQ(dry.output.rfind("#!/bin/bash\n", 0), 0u) << dry.output;
  EXPECT_NE(dry.output.find("#SBATCH --ntasks-per-node=2\n"), std::string::npos);
  EXPECT_FALSE(FileExists(dry_dir / "run"));  // a dry run writes nothing
}

TEST(SlurmSubmit, InjectionInAConfigValueIsRefusedBeforeAnythingIsWritten) {
  ScratchDir dir;
  const std::string marker = dir / "executed";
  const std::string config = WriteSubmitConfig(dir, "partition = \"gpu$(touch " + marker + ")\"\n");
  CommandResult r = RunAngiotrain({"slurm", "submit", "--config", config, "--dry-run"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("config key 'slurm.partition'"), std::string::npos) << r.output;
  CommandResult set = RunAngiotrain({"slurm", "submit", "--config", WriteSubmitConfig(dir, ""), "--set",
                                     "slurm.account=a;touch " + marker});
  EXPECT_EQ(set.exit_code, 1) << set.output;
  EXPECT_NE(set.output.find("config key 'slurm.account'"), std::string::npos) << set.output;
  EXPECT_FALSE(FileExists(dir / "run"));
  EXPECT_FALSE(FileExists(marker));
}

// A 3-trial grid sweep (train.lr) over a volume that need not exist: the sweep is only planned.
std::string WriteSlurmSweep(const ScratchDir& dir, const std::string& sweep_extra, const std::string& slurm_section,
                            const std::string& axes = "\"train.lr\" = [0.01, 0.005, 0.001]\n") {
  const std::string path = dir / "sweep.toml";
  WriteText(path, "[sweep]\ndir = \"" + (dir / "store") + "\"\n" + sweep_extra + "\n[base.data]\nvolume = \"" +
                      (dir / "train.h5") + "\"\n[base.train]\nepochs = 2\n[axes]\n" + axes + "[slurm]\n" +
                      slurm_section);
  return path;
}

TEST(SweepRunSlurm, DryRunPrintsTheArrayAndTheResultsScriptsAndWritesNothing) {
  ScratchDir dir;
  const std::string sweep = WriteSlurmSweep(dir, "", "array_parallel = 2\ntasks_per_node = 2\n");
  const std::vector<std::string> without_slurm = EnvironmentWithoutSlurm(dir);
  CommandResult dry = RunAngiotrain({"sweep", "run", "--config", sweep, "--slurm", "--dry-run"}, 0, 60, without_slurm);
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  for (const std::string& part : std::vector<std::string>{
           "#SBATCH --array=0-2%2\n", "#SBATCH --ntasks-per-node=2\n", "#SBATCH --requeue\n",
        "sweep_file='" + sweep + "'\n", "store='" + (dir / "store") + "'\n",
        "sweep run --config \"$sweep_file\" --dir \"$store\" --trial \"$trial\"",
        "#SBATCH --dependency=afterany:ARRAY_JOB_ID\n", "sweep status \"$store\" --write",
        "report --sweep \"$store\""})
    EXPECT_NE(dry.output.find(part), std::string::npos) << part << "\n" << dry.output;
  EXPECT_EQ(testing::CountOccurrences(dry.output, "#!/bin/bash\n"), 2u) << dry.output;
  EXPECT_FALSE(FileExists(dir / "store"));

  // Without --dry-run and without Slurm: said before the store is made.
  CommandResult r = RunAngiotrain({"sweep", "run", "--config", sweep, "--slurm"}, 0, 60, without_slurm);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("sbatch is not on PATH"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(dir / "store"));
}

TEST(SweepRunSlurm, HalvingAndBadSlurmValuesAreRefusedBeforeAnythingIsWrittenOrSubmitted) {
  ScratchDir dir;
  const std::string marker = dir / "executed";
  const std::string halving = WriteSlurmSweep(dir, "method = \"halving\"", "",
                                              "\"train.lr\" = [0.01, 0.001]\n\"train.epochs\" = [1, 2]\n");
  // Slurm's commands on PATH or not, halving is refused first: nothing would be submitted.
  CommandResult r = RunAngiotrain({"sweep", "run", "--config", halving, "--slurm"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("\"halving\" cannot run as a Slurm job array"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(dir / "store"));

  for (const std::string& slurm : std::vector<std::string>{"partition = \"gpu$(touch " + marker + ")\"\n",
                                   "env = [\"X=1\\ntouch " + marker + "\"]\n", "array_parallel = 0\n",
                                   "queue = \"gpu\"\n"}) {
    CommandResult bad = RunAngiotrain({"sweep", "run", "--config", WriteSlurmSweep(dir, "", slurm), "--slurm", "--dry-run"});
    EXPECT_EQ(bad.exit_code, 1) << bad.output;
    EXPECT_NE(bad.output.find("slurm."), std::string::npos) << slurm << "\n" << bad.output;
    EXPECT_EQ(bad.output.find("#!/bin/bash"), std::string::npos) << bad.output;
  }
  // A store folder whose name would reach an #SBATCH line unquoted.
  CommandResult odd_dir = RunAngiotrain({"sweep", "run", "--config", WriteSlurmSweep(dir, "", ""), "--dir",
                                         dir / "st;touch x", "--slurm", "--dry-run"});
  EXPECT_EQ(odd_dir.exit_code, 1) << odd_dir.output;
  EXPECT_NE(odd_dir.output.find("choose such a sweep.dir"), std::string::npos) << odd_dir.output;
  EXPECT_FALSE(FileExists(dir / "store"));
  EXPECT_FALSE(FileExists(marker));
}

}  // namespace
}  // namespace angiotrain
