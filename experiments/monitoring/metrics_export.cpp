// Prometheus export of training runs and sweeps: exposer, discovery entry, background pusher and
// the series of TrainingMetrics and SweepMetrics (see metrics_export.h).
#include "experiments/monitoring/metrics_export.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/error.h"

#ifdef ANGIOTRAIN_HAVE_PROMETHEUS
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gateway.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>

#include "core/atomic_file.h"
#include "datasets/kium_schema.h"
#include "experiments/evaluation/metrics.h"
#include "experiments/monitoring/metrics_exposer.h"
#endif
#ifdef ANGIOTRAIN_HAVE_NCCL  // the CUDA runtime is linked with the NCCL backend
#include <cuda_runtime_api.h>
#endif

namespace angiotrain {

namespace {

bool JobCharacter(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

}  // namespace

std::string MetricsJobName(const MetricsConfig& config, const std::string& output_dir) {
  if (!config.job.empty()) return config.job;
  std::string name = std::filesystem::path(output_dir).lexically_normal().filename().string();
  if (name.empty() || name == "." || name == "..")
    name = std::filesystem::path(output_dir).lexically_normal().parent_path().filename().string();
  for (char& c : name)
    if (!JobCharacter(c)) c = '_';
  if (name.size() > 64) name.resize(64);
  return name.empty() || name == "." || name == ".." ? "angiotrain" : name;
}

PushgatewayAddress ParsePushgatewayUrl(const std::string& url) {
  auto fail = [&](const std::string& problem) -> PushgatewayAddress {
    throw Error("pushgateway URL '" + url + "': " + problem + " (expected http://HOST:PORT)");
  };
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return fail("no scheme");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return fail("the scheme must be http or https");
  std::string rest = url.substr(scheme_end + 3);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return fail("a path is not allowed");
  std::string host = rest, port = scheme == "https" ? "443" : "9091";
  const auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) || std::stoi(port) < 1 ||
        std::stoi(port) > 65535)
      return fail("the port must be a number in 1..65535");
  }
  if (host.empty()) return fail("no host");
  for (char c : host)
    if (!(JobCharacter(c) || c == '[' || c == ']' || c == ':')) return fail("the host has a character that is not allowed");
  return {scheme + "://" + host, port};
}

const std::vector<std::string>& SweepTrialStatuses() {
  static const std::vector<std::string> statuses = {"pending", "running", "completed", "stopped", "pruned", "failed"};
  return statuses;
}

#ifdef ANGIOTRAIN_HAVE_PROMETHEUS

bool MetricsExportCompiled() { return true; }

namespace {

using prometheus::Labels;

void Warn(const std::string& message) {
  std::fprintf(stderr, "angiotrain: warning: metrics: %s\n", message.c_str());
  std::fflush(stderr);
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

// What Prometheus should connect to for a listener bound to `address`.
std::string TargetHost(const std::string& address) {
  if (address == "0.0.0.0" || address == "::" || address == "[::]") return HostName();
  if (address.find(':') != std::string::npos && address.front() != '[') return "[" + address + "]";
  return address;
}

#ifdef ANGIOTRAIN_HAVE_NCCL
// GPU memory of one CUDA device, read at each scrape or push (on the exposer's or the pusher's
// thread, never the training thread): used = total - free, as cudaMemGetInfo reports them.
class GpuMemory : public prometheus::Collectable {
 public:
  GpuMemory(int device, int rank) : device_(device), rank_(rank) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(device_) != cudaSuccess || cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return {};
    auto family = [&](const std::string& name, const std::string& help, double value) {
      prometheus::MetricFamily f{name, help, prometheus::MetricType::Gauge, {}};
      prometheus::ClientMetric m;
      m.label = {{"device", std::to_string(device_)}, {"rank", std::to_string(rank_)}};
      m.gauge.value = value;
      f.metric.push_back(m);
      return f;
    };
    return {family("angiotrain_gpu_memory_used_bytes", "GPU memory in use on this rank's device (all processes)",
                   static_cast<double>(total_bytes - free_bytes)),
            family("angiotrain_gpu_memory_total_bytes", "GPU memory of this rank's device",
                   static_cast<double>(total_bytes))};
  }

 private:
  int device_, rank_;
};
#endif

// Pushes a registry to a Pushgateway on its own thread. The thread holds a shared_ptr to the
// pusher, so an endpoint that goes away while a push hangs on the network leaves it behind safely.
class Pusher {
 public:
  Pusher(const std::string& url, const PushgatewayAddress& address, const std::string& job, int rank)
      : url_(url), group_("job " + job + ", instance rank" + std::to_string(rank)),
        gateway_(address.scheme_host, address.port, job, {{"instance", "rank" + std::to_string(rank)}}) {}

  static void Start(const std::shared_ptr<Pusher>& self) { std::thread([self] { self->Loop(); }).detach(); }

  void Register(const std::weak_ptr<prometheus::Collectable>& c) { gateway_.RegisterCollectable(c); }

  uint64_t Request() {
    std::lock_guard<std::mutex> lock(mutex_);
    cv_.notify_all();
    return ++requested_;
  }

  bool RequestAndWait(double seconds) {
    const uint64_t target = Request();
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done_ >= target; })) {
      Warn("the push to " + url_ + " (" + group_ + ") did not finish within " + std::to_string(seconds).substr(0, 3) +
           " s; going on without it");
      return false;
    }
    return last_ok_;
  }

  // Ends the thread after the push in progress; waits for it at most `seconds`.
  void Stop(double seconds) {
    std::unique_lock<std::mutex> lock(mutex_);
    stop_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return exited_; });
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || requested_ > done_; });
      if (stop_) break;
      const uint64_t target = requested_;
      lock.unlock();
      const int code = gateway_.Push();
      lock.lock();
      const bool ok = code >= 200 && code < 300;
      if (!ok && last_ok_)
        Warn("push to " + url_ + " (" + group_ + ") failed: " +
             (code < 0 ? "no connection (curl error " + std::to_string(-code) + ")" : "HTTP " + std::to_string(code)) +
             "; training goes on and later pushes are tried again");
      if (ok && !last_ok_) Warn("push to " + url_ + " works again");
      last_ok_ = ok;
      done_ = target;
      cv_.notify_all();
    }
    exited_ = true;
    cv_.notify_all();
  }

  std::string url_, group_;
  prometheus::Gateway gateway_;
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t requested_ = 0, done_ = 0;
  bool last_ok_ = true, stop_ = false, exited_ = false;
};

}  // namespace

struct MetricsEndpoint::State {
  std::string job, discovery_file;
  int rank = 0, port = -1;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<prometheus::Collectable> gpu;
  std::unique_ptr<MetricsExposer> exposer;
  std::shared_ptr<Pusher> pusher;
};

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<State> state) : state_(std::move(state)) {}

std::shared_ptr<MetricsEndpoint> MetricsEndpoint::Open(const MetricsConfig& m, const std::string& output_dir,
                                                       int rank, int local_rank, int cuda_device) {
  if (m.port < 0 && m.pushgateway.empty()) return nullptr;
  auto s = std::make_unique<State>();
  s->job = MetricsJobName(m, output_dir);
  s->rank = rank;
#ifdef ANGIOTRAIN_HAVE_NCCL
  if (cuda_device >= 0) s->gpu = std::make_shared<GpuMemory>(cuda_device, rank);
#endif
  if (m.port >= 0) {
    const int port = m.port == 0 ? 0 : static_cast<int>(m.port) + local_rank;
    std::weak_ptr<prometheus::Registry> registry = s->registry;
    std::weak_ptr<prometheus::Collectable> gpu = s->gpu;
    try {
      s->exposer = std::make_unique<MetricsExposer>(m.address, port, [registry, gpu] {
        std::vector<prometheus::MetricFamily> families;
        for (const std::shared_ptr<prometheus::Collectable>& c :
             {std::shared_ptr<prometheus::Collectable>(registry.lock()), gpu.lock()})
          if (c)
            for (auto& f : c->Collect()) families.push_back(std::move(f));
        return prometheus::TextSerializer().Serialize(families);
      });
      s->port = s->exposer->port();
    } catch (const std::exception& e) {
      Warn("rank " + std::to_string(rank) + " cannot listen on " + e.what() +
           ": this rank serves no metrics, training goes on (metrics.port, metrics.address)");
    }
  }
  if (s->exposer && !m.discovery_dir.empty()) {
    const std::string host = TargetHost(m.address);
    std::string file_host = HostName();
    for (char& c : file_host)
      if (!JobCharacter(c)) c = '_';
    const std::string path = m.discovery_dir + "/" + s->job + "_" + file_host + "_" + std::to_string(s->port) + ".json";
    try {
      std::error_code ec;
      std::filesystem::create_directories(m.discovery_dir, ec);
      nlohmann::ordered_json entry = nlohmann::ordered_json::array(
          {{{"targets", {host + ":" + std::to_string(s->port)}}, {"labels", {{"job", s->job}}}}});
      WriteFileAtomically(path, entry.dump(2) + "\n");
      s->discovery_file = path;
    } catch (const std::exception& e) {
      Warn("cannot write the discovery entry " + path + " (" + e.what() +
           "): Prometheus will not find rank " + std::to_string(rank) + " through metrics.discovery_dir; training goes on");
    }
  }
  if (!m.pushgateway.empty()) {
    s->pusher = std::make_shared<Pusher>(m.pushgateway, ParsePushgatewayUrl(m.pushgateway), s->job, rank);
    s->pusher->Register(s->registry);
    if (s->gpu) s->pusher->Register(s->gpu);
    Pusher::Start(s->pusher);
  }
  return std::shared_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(s)));
}

MetricsEndpoint::~MetricsEndpoint() {
  State& s = *state_;
  if (const char* linger = std::getenv("ANGIOTRAIN_TEST_METRICS_LINGER_S"); linger && s.exposer)
    std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(linger)));
  if (!s.discovery_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(s.discovery_file, ec);
  }
  s.exposer.reset();
  if (s.pusher) s.pusher->Stop(1.0);
}

prometheus::Registry& MetricsEndpoint::registry() { return *state_->registry; }
const std::string& MetricsEndpoint::job() const { return state_->job; }
int MetricsEndpoint::rank() const { return state_->rank; }
int MetricsEndpoint::port() const { return state_->port; }
const std::string& MetricsEndpoint::discovery_file() const { return state_->discovery_file; }

void MetricsEndpoint::Push() {
  if (state_->pusher) state_->pusher->Request();
}

bool MetricsEndpoint::PushAndWait(double seconds) {
  return state_->pusher ? state_->pusher->RequestAndWait(seconds) : true;
}

// ---- training series ------------------------------------------------------------------------

namespace {

const std::vector<std::string>& RunStatuses() {
  static const std::vector<std::string> statuses = {"running", "completed", "stopped", "failed"};
  return statuses;
}

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r, const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& r, const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Histogram>& HistogramFamily(prometheus::Registry& r, const std::string& name,
                                                           const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

Labels With(Labels labels, const std::string& name, const std::string& value) {
  labels[name] = value;
  return labels;
}

}  // namespace

// The series a run updates often, looked up once; the rest are added when first set.
struct TrainingMetrics::Series {
  prometheus::Registry* registry = nullptr;
  Labels run, rank;  // labels of run-wide and of per-rank series
  prometheus::Gauge *loss = nullptr, *lr = nullptr, *epoch = nullptr, *global_step = nullptr, *progress = nullptr,
                    *last_step = nullptr;
  prometheus::Counter *samples = nullptr, *steps = nullptr, *checkpoints = nullptr;
  prometheus::Histogram *step_seconds = nullptr, *data_wait = nullptr, *allreduce_wait = nullptr,
                        *checkpoint_seconds = nullptr;

  prometheus::Gauge& Run(const std::string& name, const std::string& help, const Labels& extra = {}) {
    Labels labels = run;
    labels.insert(extra.begin(), extra.end());
    return GaugeFamily(*registry, name, help).Add(labels);
  }
  prometheus::Gauge& Rank(const std::string& name, const std::string& help, const Labels& extra = {}) {
    Labels labels = rank;
    labels.insert(extra.begin(), extra.end());
    return GaugeFamily(*registry, name, help).Add(labels);
  }
};

TrainingMetrics::TrainingMetrics(std::shared_ptr<MetricsEndpoint> endpoint, const TrainConfig& config,
                                 std::string trial)
    : endpoint_(std::move(endpoint)),
      trial_(std::move(trial)),
      task_(config.model.task),
      variant_(config.model.variant),
      series_(std::make_unique<Series>()) {
  if (!endpoint_) throw Error("TrainingMetrics needs a MetricsEndpoint");
}

TrainingMetrics::~TrainingMetrics() {
  if (!finished_ && series_->registry) Finish("failed", "aborted");
}

void TrainingMetrics::OnRunStart(const RunStartRecord& r) {
  Series& s = *series_;
  rank_ = r.rank;
  world_size_ = r.world_size;
  planned_steps_ = r.config->train.epochs * r.steps_per_epoch;
  s.registry = &endpoint_->registry();
  s.run = {{"trial", trial_}, {"task", task_}, {"variant", variant_}};
  s.rank = With(s.run, "rank", std::to_string(r.rank));
  auto& reg = *s.registry;
  const prometheus::Histogram::BucketBoundaries step_buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                                1,     2.5,  5,     10,   25,  60};
  const prometheus::Histogram::BucketBoundaries wait_buckets = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                                0.05,   0.1,    0.25,  0.5,    1,     2.5,  10};
  s.step_seconds = &HistogramFamily(reg, "angiotrain_step_duration_seconds", "Wall time of a training step on this rank")
                        .Add(s.rank, step_buckets);
  s.data_wait = &HistogramFamily(reg, "angiotrain_step_data_wait_seconds",
                                 "Part of a step spent waiting for the batch prefetcher on this rank")
                     .Add(s.rank, wait_buckets);
  s.allreduce_wait = &HistogramFamily(reg, "angiotrain_step_allreduce_wait_seconds",
                                      "Part of a step spent waiting for gradient all-reduce buckets on this rank")
                          .Add(s.rank, wait_buckets);
  s.last_step = &s.Rank("angiotrain_last_step_timestamp_seconds", "Unix time at which this rank finished its last step");
  for (const auto& status : RunStatuses())
    s.Rank("angiotrain_run_status", "1 for the status of the run on this rank (running, completed, stopped, failed)",
           {{"status", status}})
        .Set(status == "running" ? 1 : 0);
  if (r.rank != 0) return;
  s.loss = &s.Run("angiotrain_train_loss", "Training loss of the last step (mean over the ranks)");
  s.lr = &s.Run("angiotrain_learning_rate", "Learning rate of the last step");
  s.epoch = &s.Run("angiotrain_epoch", "Epoch in progress (1-based; the last one once the run ended)");
  s.global_step = &s.Run("angiotrain_global_step", "Training steps done in the whole run, resumed ones included");
  s.progress = &s.Run("angiotrain_progress_ratio", "Share of the run's planned steps done");
  s.samples = &CounterFamily(reg, "angiotrain_samples_total", "Samples trained over all ranks").Add(s.run);
  s.steps = &CounterFamily(reg, "angiotrain_steps_total", "Training steps done by this process").Add(s.run);
  s.Run("angiotrain_epochs", "Epochs the run is configured for").Set(static_cast<double>(r.config->train.epochs));
  s.Run("angiotrain_world_size", "Ranks of the run").Set(r.world_size);
  s.Run("angiotrain_run_start_timestamp_seconds", "Unix time at which the run started").Set(UnixSeconds());
  s.epoch->Set(static_cast<double>(r.start_epoch + 1));
  s.global_step->Set(static_cast<double>(r.start_global_step));
  if (planned_steps_ > 0) s.progress->Set(static_cast<double>(r.start_global_step) / planned_steps_);
  s.checkpoints = &CounterFamily(reg, "angiotrain_checkpoint_writes_total", "Checkpoints written").Add(s.run);
  s.checkpoint_seconds = &HistogramFamily(reg, "angiotrain_checkpoint_write_duration_seconds",
                                          "Time to write a checkpoint (BatchNorm averaging included)")
                              .Add(s.run, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                                                                  5, 10, 30, 60, 120});
}

void TrainingMetrics::OnStep(const StepRecord& r) {
  Series& s = *series_;
  s.step_seconds->Observe(r.seconds);
  s.data_wait->Observe(r.data_wait_seconds);
  s.allreduce_wait->Observe(r.allreduce_wait_seconds);
  s.last_step->Set(UnixSeconds());
  if (r.rank != 0) return;
  s.loss->Set(r.loss);
  s.lr->Set(r.lr);
  s.epoch->Set(static_cast<double>(r.epoch + 1));
  s.global_step->Set(static_cast<double>(r.global_step + 1));
  if (planned_steps_ > 0) s.progress->Set(static_cast<double>(r.global_step + 1) / planned_steps_);
  s.steps->Increment();
  if (r.rows) s.samples->Increment(static_cast<double>(r.rows->size() * world_size_));
}

void TrainingMetrics::OnEpochEnd(const EpochRecord& r) {
  Series& s = *series_;
  if (r.rank == 0) {
    s.Run("angiotrain_epoch_train_loss", "Mean training loss of the last completed epoch").Set(r.train_loss);
    s.Run("angiotrain_epoch_samples_per_second", "Samples per second of training time in the last completed epoch")
        .Set(r.samples_per_second);
    if (r.validation) {
      const ValidationRecord& v = *r.validation;
      s.Run("angiotrain_validation_epoch", "Epoch of the last validation").Set(static_cast<double>(r.epoch));
      s.Run("angiotrain_validation_loss", "Validation loss").Set(v.loss);
      s.Run("angiotrain_validation_aneurysm_accuracy", "Validation accuracy of aneurysm presence at threshold 0.5")
          .Set(v.aneurysm_accuracy);
      if (v.aneurysm_auroc) s.Run("angiotrain_validation_aneurysm_auroc", "Validation AUROC of aneurysm presence").Set(*v.aneurysm_auroc);
      if (v.locations) {
        const LocationReport& l = *v.locations;
        s.Run("angiotrain_validation_location_accuracy",
              "Validation K-ium location accuracy (correct cells over patients x 21)")
            .Set(l.kium_accuracy);
        s.Run("angiotrain_validation_no_location_accuracy",
              "K-ium location accuracy of predicting no location at all, on the same validation rows")
            .Set(l.no_location_accuracy);
        if (l.macro_auroc)
          s.Run("angiotrain_validation_location_auroc_mean", "Mean of the defined per-location validation AUROCs")
              .Set(*l.macro_auroc);
        std::array<std::optional<double>, kNumLocations> aurocs;
        for (int k = 0; k < kNumLocations; ++k) {
          aurocs[k] = l.per_location[k].auroc;
          // A location with one class in the validation truth has no AUROC: its series is left
          // out, or set to NaN if an earlier validation had one.
          auto& family = GaugeFamily(*s.registry, "angiotrain_validation_location_auroc",
                                     "Validation AUROC of one location (label location)");
          const Labels labels = With(s.run, "location", LocationNames()[k]);
          if (aurocs[k])
            family.Add(labels).Set(*aurocs[k]);
          else if (family.Has(labels))
            family.Add(labels).Set(std::numeric_limits<double>::quiet_NaN());
        }
        if (auto rsna = RsnaWeightedAuc(v.aneurysm_auroc, aurocs))
          s.Run("angiotrain_validation_rsna_weighted_auc",
                "RSNA 2025 weighted AUC (presence weight 13, each location 1; experiments/evaluation/metrics.h)")
              .Set(*rsna);
      }
    }
  }
  endpoint_->Push();
}

void TrainingMetrics::OnCheckpoint(const CheckpointRecord& r) {
  if (r.rank != 0) return;
  Series& s = *series_;
  s.checkpoints->Increment();
  s.checkpoint_seconds->Observe(r.seconds);
  s.Run("angiotrain_last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint written").Set(UnixSeconds());
}

void TrainingMetrics::OnRunEnd(const RunEndRecord& r) {
  if (r.rank == 0 && series_->progress && r.reason == RunEnd::kCompleted) series_->progress->Set(1);
  Finish(RunEndName(r.reason), "");
}

void TrainingMetrics::OnFailure(const std::exception& error) {
  const char* reason = dynamic_cast<const CollectiveError*>(&error) ? "collective_error"
                       : dynamic_cast<const Error*>(&error)         ? "error"
                                                                    : "exception";
  Finish("failed", reason);
}

void TrainingMetrics::Finish(const std::string& status, const std::string& reason) {
  finished_ = true;
  Series& s = *series_;
  if (!s.registry) return;  // the run never started: nothing was exported
  for (const auto& st : RunStatuses())
    s.Rank("angiotrain_run_status", "1 for the status of the run on this rank (running, completed, stopped, failed)",
           {{"status", st}})
        .Set(st == status ? 1 : 0);
  if (!reason.empty())
    s.Rank("angiotrain_run_failure_info",
           "1 with the class of a failed run's error (error, collective_error, exception, aborted); the message is "
           "in the log",
           {{"reason", reason}})
        .Set(1);
  endpoint_->PushAndWait();
}

// ---- sweep series ---------------------------------------------------------------------------

SweepMetrics::SweepMetrics(std::shared_ptr<MetricsEndpoint> endpoint, std::string objective)
    : endpoint_(std::move(endpoint)), objective_(std::move(objective)) {
  if (!endpoint_) throw Error("SweepMetrics needs a MetricsEndpoint");
}

void SweepMetrics::SetTrialCounts(const std::map<std::string, int64_t>& counts) {
  const auto& statuses = SweepTrialStatuses();
  for (const auto& [status, n] : counts)
    if (std::find(statuses.begin(), statuses.end(), status) == statuses.end())
      throw Error("SweepMetrics: unknown trial status '" + status + "'");
  auto& family = GaugeFamily(endpoint_->registry(), "angiotrain_sweep_trials", "Trials of the sweep by status");
  for (const auto& status : statuses) {
    auto it = counts.find(status);
    family.Add({{"status", status}}).Set(it == counts.end() ? 0 : static_cast<double>(it->second));
  }
  endpoint_->Push();
}

void SweepMetrics::SetBestObjective(double value) {
  GaugeFamily(endpoint_->registry(), "angiotrain_sweep_best_objective", "Best objective of the sweep's trials so far")
      .Add({{"objective", objective_}})
      .Set(value);
  endpoint_->Push();
}

#else  // built without prometheus-cpp: ValidateTrainConfig refuses configs that ask for metrics

bool MetricsExportCompiled() { return false; }

namespace {
[[noreturn]] void NotCompiled() {
  throw Error("this angiotrain was built without prometheus-cpp (install prometheus-cpp-dev and rebuild)");
}
}  // namespace

struct MetricsEndpoint::State {};
struct TrainingMetrics::Series {};
MetricsEndpoint::MetricsEndpoint(std::unique_ptr<State> state) : state_(std::move(state)) {}
std::shared_ptr<MetricsEndpoint> MetricsEndpoint::Open(const MetricsConfig& config, const std::string&, int, int,
                                                       int) {
  if (config.port < 0 && config.pushgateway.empty()) return nullptr;
  NotCompiled();
}
MetricsEndpoint::~MetricsEndpoint() = default;
TrainingMetrics::TrainingMetrics(std::shared_ptr<MetricsEndpoint>, const TrainConfig&, std::string) { NotCompiled(); }
TrainingMetrics::~TrainingMetrics() = default;
void TrainingMetrics::OnRunStart(const RunStartRecord&) {}
void TrainingMetrics::OnStep(const StepRecord&) {}
void TrainingMetrics::OnEpochEnd(const EpochRecord&) {}
void TrainingMetrics::OnCheckpoint(const CheckpointRecord&) {}
void TrainingMetrics::OnRunEnd(const RunEndRecord&) {}
void TrainingMetrics::OnFailure(const std::exception&) {}
SweepMetrics::SweepMetrics(std::shared_ptr<MetricsEndpoint>, std::string) { NotCompiled(); }
void SweepMetrics::SetTrialCounts(const std::map<std::string, int64_t>&) {}
void SweepMetrics::SetBestObjective(double) {}

#endif

}  // namespace angiotrain
