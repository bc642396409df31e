// Live metrics of training runs and sweeps for Prometheus: an HTTP exposer per rank, a file-based
// service-discovery entry per rank, and pushes to a Pushgateway (README "Monitoring" lists every
// metric; monitoring/ holds the Prometheus configuration and the Grafana dashboard).
//
// Where the figures of a rank go. Observers never run collectives (experiments/training/training_records.h), so the
// figures are not gathered to rank 0 over the communicator: every rank serves its own registry
// on its own port (metrics.port + local rank, or a free port each with port = 0) and writes its
// own discovery entry, and Prometheus scrapes each. Rank 0 serves the run-wide figures (loss,
// learning rate, progress, validation, checkpoints) without a rank label; every rank serves its
// per-rank figures (step time and its data-wait and all-reduce-wait parts, last step time, GPU
// memory, run status) with label rank. A gather would add a collective per step for figures
// that Prometheus can merge itself, and would lose the figures of a rank that fails alone.
//
// Pushes run on a background thread: an epoch end only wakes it (the training thread never waits
// on the network), and the run's end (completed, stopped or failed) waits at most
// kFinalPushWaitSeconds for its push. Every rank pushes its registry as one group, grouping key
// job=<job>, instance=rank<R>, with PUT (the group holds exactly this rank's figures); a finished
// job's series are deleted with one DELETE per rank of /metrics/job/<job>/instance/rank<R>.
//
// Bad settings never stop or slow training: a port that cannot be bound, a Pushgateway that does
// not answer and a discovery folder that cannot be written each print one warning on stderr
// ("angiotrain: warning: metrics: ..."), and the rest of the export goes on. Values are checked
// before training by ValidateMetricsConfig (metrics_config.h).
//
// Labels: job (target label from the discovery entry, grouping key of pushes), trial, task and
// variant on every training series, rank on per-rank series, location on per-location AUROC,
// status and reason on the run status, objective on the sweep's best objective. Every label
// value comes from a fixed set or from the configuration, never from data.
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "experiments/monitoring/metrics_config.h"
#include "experiments/training/train_config.h"
#include "experiments/training/training_records.h"

namespace prometheus {
class Registry;
}

namespace angiotrain {

// How long the push at a run's end may hold up the end of the process.
constexpr double kFinalPushWaitSeconds = 5.0;

// The job label of a run: metrics.job, else the name of its output folder (output.dir, a sweep's
// sweep.dir) with characters outside [A-Za-z0-9_.-] replaced by '_'.
std::string MetricsJobName(const MetricsConfig& config, const std::string& output_dir);

// A Pushgateway URL "http[s]://HOST[:PORT][/]" (port 9091 when absent) in the form
// prometheus::Gateway takes. Throws Error naming the URL and the problem.
struct PushgatewayAddress {
  std::string scheme_host;  // "http://HOST"
  std::string port;
};
PushgatewayAddress ParsePushgatewayUrl(const std::string& url);

// Whether this build can export metrics (prometheus-cpp was found); without it a config that
// asks for metrics is refused by ValidateMetricsConfig.
bool MetricsExportCompiled();

// Where one process's figures go: the registry, its HTTP exposer, its discovery entry and its
// pusher. One per process; training runs and sweeps add their series to it. Thread-safe.
class MetricsEndpoint {
 public:
  // Opens what `config` asks for on this rank (see the file comment); nullptr when it asks
  // for nothing (port -1 and no pushgateway). Problems print a warning and leave that part out.
  // `cuda_device` >= 0 adds the GPU memory figures of that device.
  // `output_dir` names the job when metrics.job is empty.
  static std::shared_ptr<MetricsEndpoint> Open(const MetricsConfig& config, const std::string& output_dir, int rank,
                                               int local_rank, int cuda_device = -1);
  // Removes the discovery entry, stops the exposer and the pusher (a push still blocked on the
  // network is left to finish on its own). Test-only: with ANGIOTRAIN_TEST_METRICS_LINGER_S=N
  // set, first keeps serving N more seconds, so that a test's Prometheus scrapes a short run's
  // final figures without the run being slowed.
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  prometheus::Registry& registry();
  const std::string& job() const;
  int rank() const;
  int port() const;                          // the port listened on; -1 when none
  const std::string& discovery_file() const;  // "" when none was written

  // Asks the background thread to push the registry now (coalesced with a push in progress);
  // returns at once. Does nothing without a pushgateway.
  void Push();
  // Pushes and waits up to `seconds` for the answer; false when it failed or did not come in
  // time (warned). True without a pushgateway.
  bool PushAndWait(double seconds = kFinalPushWaitSeconds);

  struct State;

 private:
  explicit MetricsEndpoint(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The figures of one training run (README "Monitoring"), on `endpoint`, with label trial =
// `trial` ("" outside sweeps). Pushes at each epoch end and at the run's end.
class TrainingMetrics : public TrainingObserver {
 public:
  TrainingMetrics(std::shared_ptr<MetricsEndpoint> endpoint, const TrainConfig& config, std::string trial = "");
  // A run that neither ended (OnRunEnd) nor failed (OnFailure) is marked failed, reason
  // "aborted", and pushed.
  ~TrainingMetrics() override;
  TrainingMetrics(const TrainingMetrics&) = delete;
  TrainingMetrics& operator=(const TrainingMetrics&) = delete;

  void OnRunStart(const RunStartRecord& r) override;
  void OnStep(const StepRecord& r) override;
  void OnEpochEnd(const EpochRecord& r) override;
  void OnCheckpoint(const CheckpointRecord& r) override;
  void OnRunEnd(const RunEndRecord& r) override;
  // The run failed with `error` (what Train() threw): status failed with its reason (error,
  // collective_error or exception; the message itself goes to the log, not into a label),
  // pushed before returning (at most kFinalPushWaitSeconds).
  void OnFailure(const std::exception& error);

  struct Series;

 private:
  void Finish(const std::string& status, const std::string& reason);

  std::shared_ptr<MetricsEndpoint> endpoint_;
  std::string trial_, task_, variant_;
  std::unique_ptr<Series> series_;
  int rank_ = 0;
  int64_t world_size_ = 1;
  int64_t planned_steps_ = 0;
  bool finished_ = false;
};

// Sweep progress on `endpoint` (the sweep runner's): trials by status and the best objective so
// far, label objective = `objective` (e.g. "aneurysm_auroc"). Each call updates the figures and
// pushes (asynchronously).
class SweepMetrics {
 public:
  SweepMetrics(std::shared_ptr<MetricsEndpoint> endpoint, std::string objective);
  // Sets angiotrain_sweep_trials{status}; every status of SweepTrialStatuses() not in `counts`
  // is set to 0. Throws Error on a status outside that list.
  void SetTrialCounts(const std::map<std::string, int64_t>& counts);
  void SetBestObjective(double value);

 private:
  std::shared_ptr<MetricsEndpoint> endpoint_;
  std::string objective_;
};

// The statuses angiotrain_sweep_trials knows: pending, running, completed, stopped, pruned, failed.
const std::vector<std::string>& SweepTrialStatuses();

}  // namespace angiotrain
