// `angiotrain slurm submit`: a training config with a [slurm] section -> a checked, quoted batch
// script (slurm/batch_script.h) in OUTPUT_DIR/slurm/ -> sbatch -> the job id.
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/path_checks.h"
#include "experiments/training/train_config.h"
#include "launcher/commands.h"
#include "launcher/run_config.h"
#include "slurm/batch_script.h"
#include "slurm/sbatch.h"
#include "slurm/slurm_config.h"

namespace angiotrain {

namespace {
namespace fs = std::filesystem;

struct SlurmSubmitOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  bool resume = false;
  bool dry_run = false;
};

void RunSlurmSubmit(const SlurmSubmitOptions& o) {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (world > 1) throw CollectiveError("slurm submit: run it once, not under mpirun (the job's srun starts the ranks)");
  RequireFile(o.config_path, "a TOML file");
  SlurmConfig slurm = LoadSlurmConfig(o.config_path);
  std::vector<std::string> run_overrides;
  for (const auto& assignment : o.overrides) {
    if (IsSlurmOverride(assignment))
      ApplySlurmOverride(slurm, assignment);
    else
      run_overrides.push_back(assignment);
  }
  RunConfig run = LoadRunConfig(o.config_path, run_overrides);
  TrainConfig& config = run.train;
  if (o.resume) config.train.resume = true;
  ValidateRunConfig(run);
  ValidateSlurmConfig(slurm);

  // The job runs in this folder (sbatch's default), so the config's relative paths mean there
  // what they mean here; the job's own files are named absolutely.
  const fs::path workdir = fs::current_path();
  const fs::path output_dir = fs::absolute(config.output.dir).lexically_normal();
  const fs::path job_dir = output_dir / "slurm";
  TrainJob job;
  job.slurm = slurm;
  job.workdir = workdir.string();
  job.angiotrain = fs::read_symlink("/proc/self/exe").string();
  job.config = (job_dir / "train.toml").string();
  job.checkpoint = (output_dir / "last.pt").string();
  job.log = slurm.output.empty() ? (job_dir / "train-%j.out").string() : slurm.output;
  job.resume = config.train.resume;
  if (!IsSbatchWord(job.log))
    throw Error("output.dir " + output_dir.string() + ": the job log " + job.log +
                " would go into an #SBATCH line, which takes only letters, digits and ._-/%+:@,=; choose such an "
                "output.dir, or set slurm.output");
  const std::string script_path = (job_dir / "train.sbatch").string();
  // The job's own files must not replace what this command reads (a config kept in the run's
  // slurm/ folder, submitted from there): refused, as train refuses its outputs, dry run or not.
  std::string init_file;
  if (config.model.init.rfind("torchvision:", 0) == 0) init_file = config.model.init.substr(std::string("torchvision:").size());
  for (const std::string& output : {job.config, script_path})
    RefuseOutputOverInput(output, {o.config_path, config.data.volume, init_file});
  config.train.resume = false;  // the script adds --resume when there is something to resume
  const std::string script = TrainBatchScript(job);
  if (o.dry_run) {
    std::fputs(script.c_str(), stdout);
    return;
  }
  SbatchProgram();  // Slurm missing: say so before writing anything

  fs::create_directories(job_dir);
  WriteFileAtomically(job.config, RunConfigText(run));
  WriteFileAtomically(script_path, script);
  const std::string id = SubmitBatchScript(script_path);
  std::printf("%s\n", id.c_str());
  std::fprintf(stderr, "slurm submit: job %s (%s), log %s\n", id.c_str(), script_path.c_str(), job.log.c_str());
}

}  // namespace

void AddSlurmCommand(CLI::App& app) {
  CLI::App* slurm = app.add_subcommand("slurm", "Run training on a Slurm cluster (see README, Running on a Slurm cluster)");
  slurm->require_subcommand(1);
  auto o = std::make_shared<SlurmSubmitOptions>();
  CLI::App* submit = slurm->add_subcommand(
      "submit", "Write the batch script of a training run from the config's [slurm] section into "
                "OUTPUT_DIR/slurm/, submit it with sbatch and print the job id. The job requeues itself "
                "on Slurm's warning signal and resumes from output.dir/last.pt");
  submit->add_option("--config", o->config_path, "Training config (TOML) with a [slurm] section")->required();
  submit->add_option("--set", o->overrides, "Override one key: section.key=value, slurm.key=value too (repeatable)")
      ->take_all();
  submit->add_flag("--resume", o->resume, "Resume from output.dir/last.pt from the first start");
  submit->add_flag("--dry-run", o->dry_run, "Print the batch script; write and submit nothing");
  submit->callback([o] { RunSlurmSubmit(*o); });
}

}  // namespace angiotrain
