// The HTTP side of the Prometheus export: a small server that answers GET /metrics with a page
// made at each request, on a thread of its own (experiments/monitoring/metrics_export.h uses it).
//
// Why not prometheus-cpp's Exposer: it serves through civetweb, whose threads are created with a
// fixed 100 KiB stack (Debian's libcivetweb 1.15), and a process that loads LibTorch and OpenBLAS
// has more static thread-local storage than that (OpenBLAS alone 60 KiB), so pthread_create
// fails with EINVAL and the exposer never starts. This server's thread has the default stack.
// It serves one connection at a time (Prometheus scrapes are sequential), with a 2 s read timeout
// so that a stuck client cannot hold it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace angiotrain {

class MetricsExposer {
 public:
  // Listens on `address`:`port` (an IPv4 or IPv6 literal or a host name; port 0: a free port)
  // and serves `page` at /metrics (404 elsewhere). Throws Error "ADDRESS:PORT: REASON" when the
  // address cannot be bound (in use, not an address of this machine, ...).
  MetricsExposer(const std::string& address, int port, std::function<std::string()> page);
  // Stops serving (a request in progress is finished) and closes the socket.
  ~MetricsExposer();
  MetricsExposer(const MetricsExposer&) = delete;
  MetricsExposer& operator=(const MetricsExposer&) = delete;

  int port() const { return port_; }
  // How many /metrics pages were served so far.
  int64_t pages_served() const { return pages_served_.load(); }

 private:
  void Serve();
  void Answer(int connection);

  std::function<std::string()> page_;
  int listen_fd_ = -1, wake_read_ = -1, wake_write_ = -1;
  int port_ = 0;
  std::atomic<int64_t> pages_served_{0};
  std::thread thread_;
};

}  // namespace angiotrain
