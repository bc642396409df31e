// Which process does a piece of work, recorded so that a later process can tell whether it still
// runs: a trial left "running" by a process killed outright (kill -9, a node lost) is stale.
// A pid alone is not enough (pids are reused), so the record also holds the process's start time
// (/proc/PID/stat) and the boot it started in; a process on another host cannot be checked.
#pragma once

#include <cstdint>
#include <string>

namespace angiotrain {

struct ProcessIdentity {
  std::string host;   // gethostname(); empty: nothing recorded
  int64_t pid = 0;
  std::string start;  // "BOOT_ID:START_TICKS" (the kernel's boot id and /proc/PID/stat field 22)
};

// This process.
ProcessIdentity ThisProcess();

enum class ProcessState {
  kRunning,     // on this host, the same pid started at the same time: the same process
  kGone,        // on this host, and no such process (or the pid now belongs to another one)
  kCannotCheck  // recorded on another host, or nothing recorded
};
ProcessState CheckProcess(const ProcessIdentity& process);

}  // namespace angiotrain
