// The loopback Slurm cluster of the tests (local_slurm.h).
#include "tests/slurm/local_slurm.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "slurm/sbatch.h"

namespace angiotrain::testing {
namespace {
namespace fs = std::filesystem;

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    throw std::runtime_error("LocalSlurm: cannot find a free loopback port");
  close(fd);
  return ntohs(address.sin_port);
}

std::string ShortHostName() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  std::string host = name;
  return host.substr(0, host.find('.'));
}

// The daemons are under /usr/sbin, which a non-root PATH may lack.
std::string Program(const std::string& name) {
  std::string path = FindOnPath(name);
  if (path.empty() && fs::exists("/usr/sbin/" + name)) path = "/usr/sbin/" + name;
  return path;
}

}  // namespace

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string LocalSlurm::MissingPrograms() {
  std::string missing;
  for (const char* p : {"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun"})
    if (Program(p).empty()) missing += std::string(missing.empty() ? "" : ", ") + p;
  return missing;
}

LocalSlurm::LocalSlurm(const std::string& dir) : dir_(dir), conf_(dir + "/slurm.conf") {
  if (const std::string missing = MissingPrograms(); !missing.empty())
    throw std::runtime_error("LocalSlurm: not on PATH: " + missing +
                             " (install Debian's slurm-wlm and munge: scripts/install-deps.sh)");
  lock_fd_ = open("/tmp/angiotrain-local-slurm.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0666);
  if (lock_fd_ >= 0) flock(lock_fd_, LOCK_EX);
  for (const char* sub : {"munge", "state", "spool", "log"}) fs::create_directories(dir_ + "/" + sub);
  fs::permissions(dir_ + "/munge", fs::perms::owner_all);

  // munge: a fresh key and socket of this cluster's own.
  const std::string key = dir_ + "/munge/munge.key", socket = dir_ + "/munge/munge.socket";
  {
    std::ifstream random("/dev/urandom", std::ios::binary);
    std::string bytes(1024, '\0');
    random.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(key, std::ios::binary) << bytes;
    fs::permissions(key, fs::perms::owner_read);
  }
  pid_files_.push_back(dir_ + "/munge/munged.pid");
  CommandResult munged = RunCommand({Program("munged"), "--force", "--socket=" + socket, "--key-file=" + key,
                                     "--log-file=" + dir_ + "/munge/munged.log", "--pid-file=" + pid_files_.back(),
                                     "--seed-file=" + dir_ + "/munge/munged.seed"},
                                    30);
  if (munged.exit_code != 0) throw std::runtime_error("LocalSlurm: munged would not start: " + munged.output);

  const passwd* user = getpwuid(getuid());
  const std::string host = ShortHostName(), user_name = user ? user->pw_name : "root";
  const unsigned cpus = std::max(2u, std::thread::hardware_concurrency());
  std::ofstream conf(conf_);
  conf << "ClusterName=angiotest\n"
       << "SlurmctldHost=" << host << "(127.0.0.1)\n"
       << "SlurmctldPort=" << FreeLoopbackPort() << "\nSlurmdPort=" << FreeLoopbackPort() << "\n"
       << "SlurmUser=" << user_name << "\nSlurmdUser=" << user_name << "\n"
       << "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=" << socket << "\n"
       << "StateSaveLocation=" << dir_ << "/state\nSlurmdSpoolDir=" << dir_ << "/spool\n"
       << "SlurmctldPidFile=" << dir_ << "/slurmctld.pid\nSlurmdPidFile=" << dir_ << "/slurmd.pid\n"
       << "SlurmctldLogFile=" << dir_ << "/log/slurmctld.log\nSlurmdLogFile=" << dir_ << "/log/slurmd.log\n"
       // Known to work with srun --mpi=pmix and Debian's Open MPI in containers without cgroups.
       << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
       << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
       << "MpiDefault=none\nSchedulerType=sched/backfill\nReturnToService=2\n"
       << "AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n"
       << "JobAcctGatherType=jobacct_gather/none\n"
       << "MinJobAge=600\nSlurmdTimeout=60\nInactiveLimit=0\nKillWait=5\n"
       // Job ids of their own: slurmstepd's PMIx names its files after the job id, so two test
       // clusters on one machine (ctest -j2) must not both run a job 1.
       << "FirstJobId=" << 1000 + (getpid() % 100000) * 100 << "\n"
       // At least 2 CPUs for a 2-rank job, whatever the machine reports.
       << "SlurmdParameters=config_overrides\n"
       << "NodeName=" << host << " NodeAddr=127.0.0.1 CPUs=" << cpus << " State=UNKNOWN\n"
       << "PartitionName=debug Nodes=" << host << " Default=YES MaxTime=INFINITE State=UP\n";
  conf.close();

  pid_files_.push_back(dir_ + "/slurmctld.pid");
  CommandResult ctld = RunCommand({Program("slurmctld"), "-f", conf_, "-i"}, 60, env());
  if (ctld.exit_code != 0) throw std::runtime_error("LocalSlurm: slurmctld would not start: " + ctld.output);
  pid_files_.push_back(dir_ + "/slurmd.pid");
  CommandResult slurmd = RunCommand({Program("slurmd"), "-f", conf_}, 60, env());
  if (slurmd.exit_code != 0) throw std::runtime_error("LocalSlurm: slurmd would not start: " + slurmd.output);

  std::string state;
  for (int i = 0; i < 150; ++i) {
    state = Client({"sinfo", "-h", "-o", "%t"}).output;
    if (state.rfind("idle", 0) == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  Stop();
  close(lock_fd_);
  throw std::runtime_error("LocalSlurm: the node did not become idle (sinfo: " + state + ")\nslurmctld.log:\n" +
                           ReadText(dir_ + "/log/slurmctld.log") + "\nslurmd.log:\n" + ReadText(dir_ + "/log/slurmd.log"));
}

LocalSlurm::~LocalSlurm() {
  Stop();
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the machine to the next cluster
}

void LocalSlurm::Stop() {
  if (pid_files_.empty()) return;
  // Jobs first (their steps belong to slurmstepd processes), then the daemons, newest first.
  Client({"scancel", "--full", "--user=" + std::to_string(getuid())}, 30);
  for (int i = 0; i < 50 && !Client({"squeue", "-h"}, 10).output.empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (auto file = pid_files_.rbegin(); file != pid_files_.rend(); ++file) {
    const pid_t pid = static_cast<pid_t>(std::atol(ReadText(*file).c_str()));
    if (pid <= 1) continue;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (kill(pid, 0) == 0) kill(pid, SIGKILL);
  }
  pid_files_.clear();
}

CommandResult LocalSlurm::Client(const std::vector<std::string>& argv, int timeout_s) const {
  return RunCommand(argv, timeout_s, env());
}

std::map<std::string, std::string> LocalSlurm::Job(const std::string& id) const {
  std::map<std::string, std::string> fields;
  std::istringstream words(Client({"scontrol", "-o", "show", "job", id}).output);
  for (std::string word; words >> word;) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) fields.emplace(word.substr(0, eq), word.substr(eq + 1));
  }
  return fields;
}

std::string LocalSlurm::WaitForState(const std::string& id, const std::vector<std::string>& states,
                                     int timeout_s) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::string state;
  while (std::chrono::steady_clock::now() < deadline) {
    state = Job(id)["JobState"];
    if (std::find(states.begin(), states.end(), state) != states.end()) return state;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return state;
}

}  // namespace angiotrain::testing
