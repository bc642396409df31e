// The Prometheus export in one process: the [metrics] keys, the HTTP exposer, the discovery entry,
// pushes that never block the caller, and what TrainingMetrics and SweepMetrics make of the
// trainer's records (read back over HTTP, as Prometheus reads them).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/kium_schema.h"
#include "experiments/evaluation/metrics.h"
#include "experiments/monitoring/metrics_export.h"
#include "experiments/monitoring/metrics_exposer.h"
#include "experiments/training/train_config.h"
#include "experiments/training/trainer.h"
#include "tests/experiments/metrics_test_support.h"
#include "tests/support/test_support.h"
#include "tests/support/test_volume.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using testing::FindSample;
using testing::Http;
using testing::ParseExposition;
using testing::Sample;
using testing::ScratchDir;

// A socket bound to a free loopback port that listens but never accepts: a port in use, and a
// server that never answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    listen(fd_, 16);
    socklen_t length = sizeof address;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
};

// A run's training config with its [metrics] section beside it, as the train command assembles
// them (launcher/run_config.h), and the endpoint that section opens on one rank.
struct MetricsRun : TrainConfig {
  MetricsConfig metrics;
};

MetricsRun RunWithMetrics(const std::string& output_dir, int64_t port = 0) {
  MetricsRun c;
  c.data.volume = "v.h5";
  c.output.dir = output_dir;
  c.metrics.port = port;
  return c;
}

std::shared_ptr<MetricsEndpoint> OpenEndpoint(const MetricsRun& c, int rank, int local_rank) {
  return MetricsEndpoint::Open(c.metrics, c.output.dir, rank, local_rank);
}

std::vector<Sample> Scrape(const MetricsEndpoint& endpoint) {
  const auto reply = Http("GET", endpoint.port(), "/metrics");
  EXPECT_EQ(reply.status, 200);
  return ParseExposition(reply.body);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(MetricsConfig, OffByDefaultUnhashedAndValidatedByKey) {
  TrainConfig c;
  c.data.volume = "v.h5";
  const MetricsConfig off;
  EXPECT_EQ(off.port, -1);
  EXPECT_EQ(off.address, "127.0.0.1");
  EXPECT_EQ(MetricsEndpoint::Open(off, "out/run", 0, 0), nullptr);  // nothing listens, nothing is written
  // The [metrics] keys are read and overridden with the training keys, and change no hash.
  MetricsConfig m;
  OtherSections others;
  others.fields = MetricsFields(m);
  TrainConfig with = c;
  ApplyOverride(with, "metrics.port=9400", others);
  ApplyOverride(with, "metrics.pushgateway=http://127.0.0.1:9091", others);
  ApplyOverride(with, "metrics.discovery_dir=/tmp/sd", others);
  ApplyOverride(with, "metrics.job=run-1", others);
  EXPECT_EQ(m.port, 9400);
  EXPECT_EQ(m.job, "run-1");
  EXPECT_NO_THROW(ValidateMetricsConfig(m));
  EXPECT_EQ(ConfigHash(with), ConfigHash(c));
  EXPECT_THROW(ApplyOverride(with, "metrics.port=1"), Error);  // not a training key
  const MetricsConfig loaded = [] {
    MetricsConfig back;
    OtherSections sections;
    sections.fields = MetricsFields(back);
    ParseTrainConfig("[data]\nvolume = \"v.h5\"\n\n[metrics]\nport = 9400\njob = \"run-1\"\n", "x.toml", sections);
    return back;
  }();
  MetricsConfig again;  // the section's text loads back to the same values
  OtherSections again_sections;
  again_sections.fields = MetricsFields(again);
  ParseTrainConfig(MetricsConfigText(m), "text", again_sections);
  EXPECT_EQ(MetricsConfigText(again), MetricsConfigText(m));
  EXPECT_EQ(again.pushgateway, "http://127.0.0.1:9091");
  EXPECT_EQ(loaded.port, 9400);
  EXPECT_EQ(loaded.job, "run-1");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"metrics.port=70000", "metrics.port"},
      {"metrics.port=-2", "metrics.port"},
      {"metrics.pushgateway=127.0.0.1:9091", "metrics.pushgateway"},
      {"metrics.pushgateway=http://host:99999", "metrics.pushgateway"},
      {"metrics.pushgateway=http://host:9091/metrics", "metrics.pushgateway"},
      {"metrics.job=a/b", "metrics.job"},
  };
  for (const auto& [assignment, key] : bad) {
    MetricsConfig b;
    OtherSections bs;
    bs.fields = MetricsFields(b);
    TrainConfig t = c;
    ApplyOverride(t, assignment, bs);
    try {
      ValidateMetricsConfig(b);
      ADD_FAILURE() << assignment << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
  MetricsConfig discovery_alone;
  discovery_alone.discovery_dir = "/tmp/sd";
  EXPECT_THROW(ValidateMetricsConfig(discovery_alone), Error);
}

TEST(MetricsConfig, JobDefaultsToTheOutputFolderName) {
  MetricsConfig m;
  EXPECT_EQ(MetricsJobName(m, "runs/lr 1e-3/"), "lr_1e-3");
  m.job = "mine";
  EXPECT_EQ(MetricsJobName(m, "runs/lr 1e-3/"), "mine");
}

TEST(MetricsConfig, PushgatewayUrlIsSplitForTheClient) {
  EXPECT_EQ(ParsePushgatewayUrl("http://pg.example:9091/").scheme_host, "http://pg.example");
  EXPECT_EQ(ParsePushgatewayUrl("http://pg.example:9091/").port, "9091");
  EXPECT_EQ(ParsePushgatewayUrl("http://pg.example").port, "9091");
  EXPECT_THROW(ParsePushgatewayUrl("ftp://pg.example"), Error);
}

TEST(MetricsExposer, ServesThePageAtMetricsOnly) {
  int calls = 0;
  MetricsExposer exposer("127.0.0.1", 0, [&] { return "x_total " + std::to_string(++calls) + "\n"; });
  ASSERT_GT(exposer.port(), 0);
  auto first = Http("GET", exposer.port(), "/metrics");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "x_total 1\n");
  EXPECT_EQ(Http("GET", exposer.port(), "/metrics?x=1").body, "x_total 2\n");
  EXPECT_EQ(Http("GET", exposer.port(), "/").status, 404);
  EXPECT_EQ(Http("POST", exposer.port(), "/metrics").status, 405);
  EXPECT_EQ(exposer.pages_served(), 2);
}

TEST(MetricsExposer, APortInUseIsAnErrorNamingAddressAndPort) {
  SilentListener busy;
  try {
    MetricsExposer exposer("127.0.0.1", busy.port(), [] { return std::string(); });
    FAIL() << "bound a port in use";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(busy.port())), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
}

TEST(MetricsEndpoint, APortInUseWarnsAndTheEndpointStillPushes) {
  SilentListener busy;
  ScratchDir dir;
  MetricsRun c = RunWithMetrics(dir / "run", busy.port());
  ::testing::internal::CaptureStderr();
  auto endpoint = OpenEndpoint(c, 0, 0);
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_NE(endpoint, nullptr);
  EXPECT_EQ(endpoint->port(), -1);
  EXPECT_NE(err.find("warning: metrics: rank 0 cannot listen on 127.0.0.1:" + std::to_string(busy.port())),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("training goes on"), std::string::npos) << err;
}

TEST(MetricsEndpoint, WritesADiscoveryEntryPerRankAndRemovesItAtTheEnd) {
  ScratchDir dir;
  MetricsRun c = RunWithMetrics(dir / "my-run");
  c.metrics.discovery_dir = dir / "sd/nested";  // created when missing
  std::string file;
  {
    auto rank0 = OpenEndpoint(c, 0, 0);
    auto rank1 = OpenEndpoint(c, 1, 1);
    file = rank0->discovery_file();
    ASSERT_FALSE(file.empty());
    EXPECT_NE(file, rank1->discovery_file());
    EXPECT_EQ(testing::ListDir(c.metrics.discovery_dir).size(), 2u);
    const auto entry = nlohmann::json::parse(ReadFile(file));
    ASSERT_EQ(entry.size(), 1u);
    EXPECT_EQ(entry[0]["targets"], nlohmann::json::array({"127.0.0.1:" + std::to_string(rank0->port())}));
    EXPECT_EQ(entry[0]["labels"], nlohmann::json({{"job", "my-run"}}));
    EXPECT_EQ(Http("GET", rank0->port(), "/metrics").status, 200);
  }
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(testing::ListDir(c.metrics.discovery_dir).empty());
}

TEST(MetricsEndpoint, AnUnwritableDiscoveryFolderWarnsAndServesAnyway) {
  ScratchDir dir;
  WriteFileAtomically(dir / "a_file", "x");
  MetricsRun c = RunWithMetrics(dir / "run");
  c.metrics.discovery_dir = dir / "a_file/sd";  // below a file: cannot be created
  ::testing::internal::CaptureStderr();
  auto endpoint = OpenEndpoint(c, 0, 0);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(endpoint->discovery_file().empty());
  EXPECT_NE(err.find("warning: metrics: cannot write the discovery entry " + c.metrics.discovery_dir), std::string::npos)
      << err;
  EXPECT_EQ(Http("GET", endpoint->port(), "/metrics").status, 200);
}

TEST(MetricsEndpoint, APushgatewayThatNeverAnswersNeverHoldsTheCaller) {
  SilentListener hanging;  // accepts connections into its backlog and never answers
  ScratchDir dir;
  MetricsRun c = RunWithMetrics(dir / "run", -1);
  c.metrics.pushgateway = "http://127.0.0.1:" + std::to_string(hanging.port());
  auto start = std::chrono::steady_clock::now();
  {
    auto endpoint = OpenEndpoint(c, 0, 0);
    for (int i = 0; i < 100; ++i) endpoint->Push();  // an epoch end: only wakes the pusher
    EXPECT_LT(Seconds(start), 1.0);
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(endpoint->PushAndWait(0.3));  // the run's end: bounded
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("did not finish within 0.3 s"), std::string::npos) << err;
  }  // the stuck push is left behind
  EXPECT_LT(Seconds(start), 3.0);
}

TEST(MetricsEndpoint, AnUnreachablePushgatewayWarnsOnce) {
  ScratchDir dir;
  MetricsRun c = RunWithMetrics(dir / "run", -1);
  c.metrics.pushgateway = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  auto endpoint = OpenEndpoint(c, 0, 0);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(endpoint->PushAndWait(5));
  EXPECT_FALSE(endpoint->PushAndWait(5));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(testing::CountOccurrences(err, c.metrics.pushgateway + " (job run, instance rank0) failed: no connection"), 1u)
      << err;
}

// Records of a 2-epoch run on rank `rank` of 2, the second epoch with a validation.
struct FakeRun {
  TrainConfig config;
  std::vector<int64_t> rows = {3, 4, 5};
  LocationReport locations;
  FakeRun() {
    config.train.epochs = 2;
    config.model.task = "multitask";
    config.model.variant = "b2";
    locations.kium_accuracy = 0.9;
    locations.no_location_accuracy = 0.95;
    locations.macro_auroc = 0.7;
    locations.per_location[0].auroc = 0.6;  // L_ICA
    locations.per_location[4].auroc = 0.8;  // L_AntChor; the others undefined
  }
  void Start(TrainingMetrics& m, int rank) {
    RunStartRecord r;
    r.config = &config;
    r.rank = rank;
    r.world_size = 2;
    r.steps_per_epoch = 5;
    m.OnRunStart(r);
  }
  void Step(TrainingMetrics& m, int rank, int64_t global_step, double seconds) {
    StepRecord r{rank, global_step / 5, global_step % 5, 5, global_step, &rows, 0.25, 1e-3, seconds, 0.01, 0.02};
    m.OnStep(r);
  }
  void EpochEnd(TrainingMetrics& m, int rank) {
    EpochRecord e;
    e.rank = rank;
    e.epoch = 1;
    e.epochs = 2;
    e.train_loss = 0.3;
    e.samples_per_second = 42;
    if (rank == 0) {
      ValidationRecord v;
      v.loss = 0.5;
      v.aneurysm_accuracy = 0.75;
      v.aneurysm_auroc = 0.9;
      v.locations = locations;
      e.validation = v;
    }
    m.OnEpochEnd(e);
  }
};

TEST(TrainingMetrics, RecordsBecomeTheDocumentedSeries) {
  ScratchDir dir;
  FakeRun run;
  MetricsRun c = RunWithMetrics(dir / "run");
  auto endpoint = OpenEndpoint(c, 0, 0);
  TrainingMetrics metrics(endpoint, run.config, "t7");
  run.Start(metrics, 0);
  auto samples = Scrape(*endpoint);
  EXPECT_EQ(FindSample(samples, "angiotrain_run_status", {{"status", "running"}, {"rank", "0"}}), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_loss"), std::nullopt);  // no validation yet: no series
  run.Step(metrics, 0, 0, 0.2);
  run.Step(metrics, 0, 1, 3.0);
  run.EpochEnd(metrics, 0);
  metrics.OnCheckpoint({0, dir / "run/last.pt", 1, 0, 5, 0.75});
  samples = Scrape(*endpoint);
  const std::map<std::string, std::string> run_labels = {{"trial", "t7"}, {"task", "multitask"}, {"variant", "b2"}};
  EXPECT_EQ(FindSample(samples, "angiotrain_train_loss", run_labels), 0.25);
  EXPECT_EQ(FindSample(samples, "angiotrain_learning_rate"), 1e-3);
  EXPECT_EQ(FindSample(samples, "angiotrain_samples_total"), 2 * 3 * 2);  // 2 steps x 3 rows x 2 ranks
  EXPECT_EQ(FindSample(samples, "angiotrain_global_step"), 2);
  EXPECT_DOUBLE_EQ(*FindSample(samples, "angiotrain_progress_ratio"), 2.0 / 10);
  EXPECT_EQ(FindSample(samples, "angiotrain_step_duration_seconds_count", {{"rank", "0"}}), 2);
  EXPECT_DOUBLE_EQ(*FindSample(samples, "angiotrain_step_duration_seconds_sum", {{"rank", "0"}}), 3.2);
  EXPECT_EQ(FindSample(samples, "angiotrain_step_duration_seconds_bucket", {{"rank", "0"}, {"le", "0.25"}}), 1);
  EXPECT_DOUBLE_EQ(*FindSample(samples, "angiotrain_step_data_wait_seconds_sum", {{"rank", "0"}}), 0.02);
  EXPECT_DOUBLE_EQ(*FindSample(samples, "angiotrain_step_allreduce_wait_seconds_sum", {{"rank", "0"}}), 0.04);
  EXPECT_EQ(FindSample(samples, "angiotrain_epoch_samples_per_second"), 42);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_loss", run_labels), 0.5);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_aneurysm_auroc"), 0.9);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_aneurysm_accuracy"), 0.75);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_location_accuracy"), 0.9);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_no_location_accuracy"), 0.95);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_location_auroc_mean"), 0.7);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_location_auroc", {{"location", "L_ICA"}}), 0.6);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_location_auroc", {{"location", "L_AntChor"}}), 0.8);
  EXPECT_EQ(FindSample(samples, "angiotrain_validation_location_auroc", {{"location", "BA"}}), std::nullopt);
  std::array<std::optional<double>, kNumLocations> aurocs;
  aurocs[0] = 0.6;
  aurocs[4] = 0.8;
  EXPECT_DOUBLE_EQ(*FindSample(samples, "angiotrain_validation_rsna_weighted_auc"), *RsnaWeightedAuc(0.9, aurocs));
  EXPECT_EQ(FindSample(samples, "angiotrain_checkpoint_writes_total"), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_checkpoint_write_duration_seconds_sum"), 0.75);
  for (const Sample& s : samples) {
    if (s.name.rfind("angiotrain_", 0) != 0) continue;
    const bool per_rank = s.labels.count("rank") > 0;
    const bool rank_figure = s.name.find("_step_") != std::string::npos || s.name.find("run_status") != std::string::npos ||
                             s.name.find("last_step") != std::string::npos;
    EXPECT_EQ(per_rank, rank_figure) << s.name << ": label rank only on per-rank figures";
  }
  RunEndRecord end;
  end.reason = RunEnd::kCompleted;
  metrics.OnRunEnd(end);
  samples = Scrape(*endpoint);
  EXPECT_EQ(FindSample(samples, "angiotrain_run_status", {{"status", "completed"}}), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_run_status", {{"status", "running"}}), 0);
  EXPECT_EQ(FindSample(samples, "angiotrain_progress_ratio"), 1);
}

// A real run in this process (2 epochs, one rank), its export scraped at every epoch's
// end, after metrics.jsonl has its line: every figure equals the run's own record of that epoch,
// value by value (an epoch off by one, a stale or misrouted figure fails), and the epoch gauge
// stays on the last epoch once the run ended.
TEST(TrainingMetrics, ExportedFiguresEqualTheRunsOwnRecordsEpochByEpoch) {
  ScratchDir dir;
  const std::string volume = testing::WriteTestVolume(dir / "v.h5", 12);
  std::ofstream(dir / "config.toml") << "[data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\nsplit_seed = 3\n"
                                     << "[model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
                                     << "task = \"multitask\"\n[train]\nepochs = 2\nbatch_size = 2\nlr = 1e-3\n"
                                     << "seed = 5\nwarmup_epochs = 1\n[output]\ndir = \"" << (dir / "run") << "\"\n";
  const TrainConfig config = LoadTrainConfig(dir / "config.toml");
  ValidateTrainConfig(config);
  auto endpoint = OpenEndpoint(RunWithMetrics(dir / "run"), 0, 0);
  TrainingMetrics metrics(endpoint, config, "t1");
  struct CompareWithMetricsJsonl : TrainingObserver {
    std::shared_ptr<MetricsEndpoint> endpoint;
    std::string jsonl;
    int64_t batch = 0, planned_steps = 0;
    int epochs_checked = 0;
    void OnRunStart(const RunStartRecord& r) override { planned_steps = r.config->train.epochs * r.steps_per_epoch; }
    void OnEpochEnd(const EpochRecord& record) override {
      std::istringstream in(ReadFile(jsonl));
      nlohmann::json j;
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) j = nlohmann::json::parse(line);
      ASSERT_EQ(j.value("epoch", int64_t{0}), record.epoch) << "metrics.jsonl has no line of this epoch yet";
      const auto s = Scrape(*endpoint);
      const std::string at = "epoch " + std::to_string(record.epoch);
      const double step = j["global_step"].get<double>();
      EXPECT_EQ(FindSample(s, "angiotrain_epoch"), j["epoch"].get<double>()) << at;
      EXPECT_EQ(FindSample(s, "angiotrain_validation_epoch"), j["epoch"].get<double>()) << at;
      EXPECT_EQ(FindSample(s, "angiotrain_global_step"), step) << at;
      EXPECT_EQ(FindSample(s, "angiotrain_samples_total"), step * batch) << at;  // one rank
      EXPECT_EQ(FindSample(s, "angiotrain_steps_total"), step) << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_progress_ratio"), step / planned_steps) << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_learning_rate"), j["lr"].get<double>()) << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_epoch_train_loss"), j["train_loss"].get<double>()) << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_epoch_samples_per_second"), j["samples_per_second"].get<double>())
          << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_validation_loss"), j["val_loss"].get<double>()) << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_validation_aneurysm_accuracy"), j["aneurysm_accuracy"].get<double>())
          << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_validation_aneurysm_auroc"), j["aneurysm_auroc"].get<double>()) << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_validation_location_accuracy"), j["location_accuracy"].get<double>())
          << at;
      EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_validation_no_location_accuracy"),
                       j["no_location_accuracy"].get<double>())
          << at;
      if (j["location_macro_auroc"].is_number()) {
        EXPECT_DOUBLE_EQ(*FindSample(s, "angiotrain_validation_location_auroc_mean"),
                         j["location_macro_auroc"].get<double>())
            << at;
      } else {
        EXPECT_EQ(FindSample(s, "angiotrain_validation_location_auroc_mean"), std::nullopt) << at;
      }
      for (const auto& [name, figures] : j["per_location"].items()) {
        const auto exported = FindSample(s, "angiotrain_validation_location_auroc", {{"location", name}});
        if (figures["auroc"].is_number()) {
          ASSERT_TRUE(exported) << at << " " << name;
          EXPECT_DOUBLE_EQ(*exported, figures["auroc"].get<double>()) << at << " " << name;
        } else {
          EXPECT_TRUE(!exported || std::isnan(*exported)) << at << " " << name;
        }
      }
      ++epochs_checked;
    }
  } compare;
  compare.endpoint = endpoint;
  compare.jsonl = dir / "run/metrics.jsonl";
  compare.batch = config.train.batch_size;
  const auto context = ProcessContext::Create(MPI_COMM_WORLD, DeviceRequest::kCpu);
  const TrainSummary summary = Train(config, context, {&metrics, &compare});
  EXPECT_EQ(summary.global_step, compare.planned_steps);
  EXPECT_EQ(compare.epochs_checked, 2);
  EXPECT_EQ(FindSample(Scrape(*endpoint), "angiotrain_epoch"), 2) << "after the run: the last epoch";
}

TEST(TrainingMetrics, OtherRanksExportOnlyTheirPerRankFigures) {
  ScratchDir dir;
  FakeRun run;
  auto endpoint = OpenEndpoint(RunWithMetrics(dir / "run"), 1, 1);
  TrainingMetrics metrics(endpoint, run.config);
  run.Start(metrics, 1);
  run.Step(metrics, 1, 0, 0.2);
  run.EpochEnd(metrics, 1);
  for (const Sample& s : Scrape(*endpoint)) {
    if (s.name.rfind("angiotrain_", 0) == 0) {
      EXPECT_EQ(s.labels.at("rank"), "1") << s.name;
    }
  }
  EXPECT_EQ(FindSample(Scrape(*endpoint), "angiotrain_step_duration_seconds_count"), 1);
}

TEST(TrainingMetrics, FailuresAreClassifiedAndARunLeftUnfinishedIsAborted) {
  ScratchDir dir;
  FakeRun run;
  auto endpoint = OpenEndpoint(RunWithMetrics(dir / "run"), 0, 0);
  {
    TrainingMetrics metrics(endpoint, run.config, "a");
    run.Start(metrics, 0);
    metrics.OnFailure(CollectiveError("non-finite training loss"));
  }
  {
    TrainingMetrics metrics(endpoint, run.config, "b");
    run.Start(metrics, 0);
    metrics.OnFailure(std::runtime_error("bad_alloc"));
  }
  {
    TrainingMetrics metrics(endpoint, run.config, "c");
    run.Start(metrics, 0);
  }  // destroyed while running: an exception went past the launcher
  const auto samples = Scrape(*endpoint);
  EXPECT_EQ(FindSample(samples, "angiotrain_run_failure_info", {{"trial", "a"}, {"reason", "collective_error"}}), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_run_failure_info", {{"trial", "b"}, {"reason", "exception"}}), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_run_failure_info", {{"trial", "c"}, {"reason", "aborted"}}), 1);
  for (const std::string trial : {"a", "b", "c"})
    EXPECT_EQ(FindSample(samples, "angiotrain_run_status", {{"trial", trial}, {"status", "failed"}}), 1) << trial;
}

TEST(SweepMetrics, TrialsByStatusAndTheBestObjectiveBesideTheTrialsSeries) {
  ScratchDir dir;
  FakeRun run;
  auto endpoint = OpenEndpoint(RunWithMetrics(dir / "sweep"), 0, 0);
  SweepMetrics sweep(endpoint, "aneurysm_auroc");
  TrainingMetrics trial0(endpoint, run.config, "0"), trial1(endpoint, run.config, "1");
  run.Start(trial0, 0);
  run.Start(trial1, 0);
  sweep.SetTrialCounts({{"completed", 1}, {"running", 1}});
  sweep.SetBestObjective(0.87);
  EXPECT_THROW(sweep.SetTrialCounts({{"finished", 1}}), Error);
  const auto samples = Scrape(*endpoint);
  EXPECT_EQ(FindSample(samples, "angiotrain_sweep_trials", {{"status", "completed"}}), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_sweep_trials", {{"status", "running"}}), 1);
  EXPECT_EQ(FindSample(samples, "angiotrain_sweep_trials", {{"status", "failed"}}), 0);
  EXPECT_EQ(FindSample(samples, "angiotrain_sweep_best_objective", {{"objective", "aneurysm_auroc"}}), 0.87);
  EXPECT_TRUE(FindSample(samples, "angiotrain_epochs", {{"trial", "0"}}));
  EXPECT_TRUE(FindSample(samples, "angiotrain_epochs", {{"trial", "1"}}));
}

}  // namespace
}  // namespace angiotrain
