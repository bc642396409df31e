// sbatch from angiotrain (sbatch.h).
#include "slurm/sbatch.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"

extern char** environ;

namespace angiotrain {
namespace {

bool IsLauncherVariable(const std::string& entry) {
  if (entry.rfind("OMPI_MCA_", 0) == 0) return false;
  for (const char* prefix : {"OMPI_", "PMIX_", "OPAL_", "PRTE_"})
    if (entry.rfind(prefix, 0) == 0) return true;
  return false;
}

struct Captured {
  int status = -1;
  std::string out, err;
};

// Runs argv with `env`, capturing stdout and stderr (through files: no pipe to drain while waiting).
Captured Run(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  char out_name[] = "/tmp/angiotrain-sbatch-out-XXXXXX";
  char err_name[] = "/tmp/angiotrain-sbatch-err-XXXXXX";
  const int out_fd = mkstemp(out_name), err_fd = mkstemp(err_name);
  if (out_fd < 0 || err_fd < 0) throw Error("sbatch: cannot create a temporary file in /tmp");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  Captured result;
  if (spawned == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  auto slurp = [](int fd) {
    std::string text;
    char buf[4096];
    lseek(fd, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    close(fd);
    return text;
  };
  result.out = slurp(out_fd);
  result.err = slurp(err_fd);
  unlink(out_name);
  unlink(err_name);
  if (spawned != 0) throw Error("sbatch: cannot start " + argv[0] + ": " + std::strerror(spawned));
  return result;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

std::vector<std::string> EnvironmentForSlurm() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (!IsLauncherVariable(*e)) env.push_back(*e);
  return env;
}

std::string SbatchProgram() {
  const std::string sbatch = FindOnPath("sbatch");
  if (sbatch.empty())
    throw Error("sbatch is not on PATH: submitting needs Slurm's client commands (run it on the "
                "cluster's login node, or install them: Debian's slurm-client); --dry-run prints the script "
                "without them");
  return sbatch;
}

std::string SubmitBatchScript(const std::string& script_path) {
  const std::string sbatch = SbatchProgram();
  const Captured r = Run({sbatch, "--parsable", script_path}, EnvironmentForSlurm());
  if (r.status != 0)
    throw Error("sbatch refused " + script_path + " (exit " + std::to_string(r.status) +
                "): " + Trim(r.err.empty() ? r.out : r.err));
  // --parsable prints "JOBID" or "JOBID;CLUSTER".
  std::string id = Trim(r.out);
  id = id.substr(0, id.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw Error("sbatch printed '" + Trim(r.out) + "', not a job id");
  return id;
}

}  // namespace angiotrain
