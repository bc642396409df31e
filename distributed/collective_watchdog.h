// Bounded-time failure for a data-parallel job: AbortJob ends every rank, and CollectiveWatchdog
// calls it when a collective does not complete in time (a peer that hangs or skipped it).
//
// How a job ends when one rank fails (verified by tests/distributed/job_failure_test.cpp):
//  - a rank throws: the program catches it at the top and calls AbortJob (launcher/main.cpp
//    does the same with MPI_Abort); MPI_Abort makes mpirun kill every rank;
//  - a rank dies (killed, crashed): mpirun sees it and terminates the other ranks;
//  - a rank hangs, or the ranks disagree on which collective comes next: the others would wait
//    forever inside MPI or NCCL; the watchdog of a waiting rank aborts the job after `timeout`.
// Either way every rank exits non-zero within a bounded time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace angiotrain {

// Prints "angiotrain: error: rank R: MESSAGE" to stderr and ends the whole job: MPI_Abort on
// MPI_COMM_WORLD when MPI is initialised (and not finalised), else _Exit. Safe to call from any
// thread (MPI_THREAD_MULTIPLE) — the watchdog calls it from its own thread.
[[noreturn]] void AbortJob(const std::string& message, int exit_code = 1);

// Watches collectives in flight on a background thread. Each one is registered with Start and
// retired either by Finish(token) (the owner observed completion: MPI requests, which only the
// owning thread may test) or by a `done` predicate that the watchdog polls (CUDA work that the
// host never blocks on: a cudaEventQuery). When one stays in flight longer than `timeout`, the
// handler runs once with a message naming it; the default handler is AbortJob.
// Thread-safe. A timeout of zero disables watching (Start returns a token, nothing is watched).
class CollectiveWatchdog {
 public:
  using Handler = std::function<void(const std::string& message)>;

  explicit CollectiveWatchdog(std::chrono::milliseconds timeout, Handler on_timeout = {});
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Registers a collective; `what` names it ("all-reduce of 6400 float32 (mpi)").
  uint64_t Start(std::string what, std::function<bool()> done = {});
  // Retires a collective. Unknown or already retired tokens are ignored.
  void Finish(uint64_t token);

  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  struct Watched {
    std::string what;
    std::function<bool()> done;
    std::chrono::steady_clock::time_point deadline;
  };
  void Run();

  const std::chrono::milliseconds timeout_;
  const Handler on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<uint64_t, Watched> in_flight_;
  uint64_t next_token_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace angiotrain
