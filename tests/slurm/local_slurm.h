// A single-node Slurm cluster on loopback for tests: munged, slurmctld and slurmd (Debian's munge
// and slurm-wlm) configured and started in a scratch folder, on free ports, stopped (by their
// pid files) when the object goes away. Client commands reach it through SLURM_CONF=env().
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace angiotrain::testing {

// A file's text; "" when it cannot be read (a job log not written yet).
std::string ReadText(const std::string& path);

class LocalSlurm {
 public:
  // Waits until no other LocalSlurm runs on this machine (measured: two clusters' 2-rank jobs at
  // once crash in Open MPI's shared-memory transport, ctest -j2), starts the daemons and waits
  // until the node is idle. Throws std::runtime_error naming what
  // is missing (a program, a daemon that would not start, with its log).
  explicit LocalSlurm(const std::string& dir);
  ~LocalSlurm();
  LocalSlurm(const LocalSlurm&) = delete;
  LocalSlurm& operator=(const LocalSlurm&) = delete;

  // "SLURM_CONF=..." for every command that talks to this cluster.
  std::vector<std::string> env() const { return {"SLURM_CONF=" + conf_}; }
  // Runs a Slurm client command (scontrol, squeue, scancel...) against this cluster.
  CommandResult Client(const std::vector<std::string>& argv, int timeout_s = 60) const;

  // The fields of `scontrol show job ID` (JobState, Restarts, ExitCode...); empty if unknown.
  std::map<std::string, std::string> Job(const std::string& id) const;
  // Polls Job(id) until its JobState is one of `states`, or `timeout_s` passes; returns the last
  // state seen.
  std::string WaitForState(const std::string& id, const std::vector<std::string>& states, int timeout_s) const;

  // The programs a cluster needs that are not on PATH ("" when all are there).
  static std::string MissingPrograms();

 private:
  void Stop();

  std::string dir_, conf_;
  std::vector<std::string> pid_files_;
  int lock_fd_ = -1;  // held while the cluster lives (see the constructor)
};

}  // namespace angiotrain::testing
