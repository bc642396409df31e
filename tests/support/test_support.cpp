// Test fixtures. See test_support.h.
#include "tests/support/test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace angiotrain::testing {
namespace fs = std::filesystem;

namespace {
std::vector<std::string>& SavedEnvironment() {
  static std::vector<std::string> env;
  return env;
}
}  // namespace

void SaveEnvironmentBeforeMpi() {
  for (char** e = environ; *e; ++e) SavedEnvironment().push_back(*e);
}

ScratchDir::ScratchDir() {
  std::string base = fs::temp_directory_path().string() + "/angiotrain-test-XXXXXX";
  std::vector<char> buf(base.begin(), base.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

ScratchDir::~ScratchDir() {
  if (std::getenv("ANGIOTRAIN_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_s, const std::vector<std::string>& extra_env) {
  std::vector<std::string> environment = SavedEnvironment();
  if (environment.empty())
    for (char** e = environ; *e; ++e) environment.push_back(*e);
  for (const auto& entry : extra_env) {
    const std::string name = entry.substr(0, entry.find('=') + 1);
    environment.erase(std::remove_if(environment.begin(), environment.end(),
                                     [&](const std::string& e) { return e.rfind(name, 0) == 0; }),
                      environment.end());
    environment.push_back(entry);
  }
  int pipefd[2];
  if (pipe(pipefd) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> env;
    for (auto& e : environment) env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
    execvpe(args[0], args.data(), env.data());
    _exit(127);
  }
  close(pipefd[1]);
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  bool done = false;
  char buf[4096];
  while (true) {
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) result.output.append(buf, n);
    if (done) break;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      done = true;  // drain once more
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.output += "\n[test harness: killed after " + std::to_string(timeout_s) + " s]\n";
      close(pipefd[0]);
      result.exit_code = -9;
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(pipefd[0]);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::vector<std::string> MpirunPrefix(int ranks) {
  return {ANGIOTRAIN_MPIEXEC, "-np", std::to_string(ranks), "--oversubscribe", "--allow-run-as-root",
          "--bind-to", "none", "--mca", "btl", "self,vader,tcp", "--mca", "btl_tcp_if_include", "lo",
          "--mca", "oob_tcp_if_include", "lo"};
}

CommandResult RunAngiotrain(const std::vector<std::string>& args, int ranks, int timeout_s,
                            const std::vector<std::string>& env) {
  std::vector<std::string> argv;
  if (ranks > 0) {
    argv = MpirunPrefix(ranks);
    for (const auto& entry : env) {
      argv.push_back("-x");
      argv.push_back(entry.substr(0, entry.find('=')));
    }
  }
  argv.push_back(ANGIOTRAIN_BIN);
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout_s, env);
}

bool FileExists(const std::string& path) { return fs::exists(path); }

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

size_t CountOccurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace angiotrain::testing
