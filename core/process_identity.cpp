// Recording and checking which process does a piece of work. See process_identity.h.
#include "core/process_identity.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace angiotrain {

namespace {

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// Field 22 of /proc/PID/stat (the start time in clock ticks since boot); "" when the process
// does not exist. The second field, the command name in parentheses, may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
std::string StartTicks(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 1));
  std::string field;
  for (int k = 3; k <= 22; ++k)
    if (!(rest >> field)) return "";
  return field;
}

}  // namespace

ProcessIdentity ThisProcess() {
  ProcessIdentity p;
  p.host = HostName();
  p.pid = static_cast<int64_t>(getpid());
  p.start = BootId() + ":" + StartTicks(p.pid);
  return p;
}

ProcessState CheckProcess(const ProcessIdentity& process) {
  if (process.host.empty() || process.pid <= 0 || process.host != HostName()) return ProcessState::kCannotCheck;
  const std::string ticks = StartTicks(process.pid);
  if (ticks.empty()) return ProcessState::kGone;
  return process.start == BootId() + ":" + ticks ? ProcessState::kRunning : ProcessState::kGone;
}

}  // namespace angiotrain
