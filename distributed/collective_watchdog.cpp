// AbortJob and CollectiveWatchdog: every rank of a failed job exits non-zero in bounded time.
#include "distributed/collective_watchdog.h"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace angiotrain {

void AbortJob(const std::string& message, int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  bool mpi_up = initialized && !finalized;
  int rank = 0;
  if (mpi_up) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "angiotrain: error: rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  if (mpi_up) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

CollectiveWatchdog::CollectiveWatchdog(std::chrono::milliseconds timeout, Handler on_timeout)
    : timeout_(timeout),
      on_timeout_(on_timeout ? std::move(on_timeout)
                             : Handler([](const std::string& message) { AbortJob(message); })) {
  if (timeout_.count() > 0) thread_ = std::thread([this] { Run(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t CollectiveWatchdog::Start(std::string what, std::function<bool()> done) {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t token = next_token_++;
  if (timeout_.count() > 0) {
    in_flight_[token] = {std::move(what), std::move(done), std::chrono::steady_clock::now() + timeout_};
  }
  return token;
}

void CollectiveWatchdog::Finish(uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_.erase(token);
}

void CollectiveWatchdog::Run() {
  // Poll often enough to fire within ~10% of the timeout, but not busily.
  auto poll = std::clamp<std::chrono::milliseconds>(timeout_ / 10, std::chrono::milliseconds(10),
                                                    std::chrono::milliseconds(500));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, poll);
    if (stopping_) break;
    auto now = std::chrono::steady_clock::now();
    std::vector<std::string> expired;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (it->second.done && it->second.done()) {
        it = in_flight_.erase(it);
      } else if (now >= it->second.deadline) {
        expired.push_back(it->second.what);
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
    if (expired.empty()) continue;
    lock.unlock();
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", timeout_.count() / 1000.0);
    for (const auto& what : expired) {
      on_timeout_(what + " did not complete within " + seconds +
                  " s (a rank hung, died, or skipped this collective); aborting the job");
    }
    lock.lock();
  }
}

}  // namespace angiotrain
