// angiotrain_metrics_bench: what the Prometheus export costs, measured where it runs: the
// training thread's TrainingMetrics::OnStep per call (rank 0, the rank that records the most),
// and the exposer thread's page for one scrape (a run with every validation series), read over
// HTTP as Prometheus reads it. The step-time comparison with metrics on and off is
// bench/metrics_overhead.sh; this gives the part of a step that the export adds.
// Usage: angiotrain_metrics_bench [--steps 200000] [--scrapes 2000]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "experiments/monitoring/metrics_export.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// GET /metrics from 127.0.0.1:port; the body's size (0 on failure).
size_t Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  size_t total = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char request[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (send(fd, request, sizeof request - 1, 0) > 0) {
      char buffer[65536];
      for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) total += static_cast<size_t>(n);
    }
  }
  close(fd);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace angiotrain;
  long steps = 200000, scrapes = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--scrapes")) scrapes = std::atol(argv[i + 1]);
  }
  TrainConfig config;
  config.output.dir = "/tmp/metrics-bench";
  MetricsConfig metrics_config;
  metrics_config.port = 0;
  config.train.epochs = 1000;
  auto endpoint = MetricsEndpoint::Open(metrics_config, config.output.dir, 0, 0);
  TrainingMetrics metrics(endpoint, config);
  RunStartRecord start;
  start.config = &config;
  start.world_size = 2;
  start.steps_per_epoch = steps;
  metrics.OnRunStart(start);
  // One validation with all 21 locations, so that the page holds every series a run can have.
  EpochRecord epoch;
  epoch.epoch = 1;
  ValidationRecord v;
  v.aneurysm_auroc = 0.9;
  LocationReport l;
  l.macro_auroc = 0.8;
  for (auto& s : l.per_location) s.auroc = 0.7;
  v.locations = l;
  epoch.validation = v;
  metrics.OnEpochEnd(epoch);

  std::vector<int64_t> rows(8);
  StepRecord step{0, 0, 0, steps, 0, &rows, 0.5, 1e-4, 0.05, 0.001, 0.01};
  const auto t0 = std::chrono::steady_clock::now();
  for (long s = 0; s < steps; ++s) {
    step.step = step.global_step = s;
    metrics.OnStep(step);
  }
  const double per_step = Seconds(t0) / steps;

  size_t bytes = 0;
  const auto t1 = std::chrono::steady_clock::now();
  for (long s = 0; s < scrapes; ++s) bytes = Scrape(endpoint->port());
  const double per_scrape = Seconds(t1) / scrapes;
  std::printf("OnStep: %.2f us per step (%ld steps)\n", per_step * 1e6, steps);
  std::printf("scrape: %.3f ms per page of %zu bytes over loopback HTTP (%ld scrapes)\n", per_scrape * 1e3, bytes,
              scrapes);
  std::printf("at a 40 ms step: OnStep adds %.4f%%; a scrape every 250 ms takes %.2f%% of the exposer thread\n",
              100 * per_step / 0.040, 100 * per_scrape / 0.250);
  return 0;
}
