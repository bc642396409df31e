// The Prometheus export against real servers on loopback: Debian's prometheus runs
// monitoring/prometheus.yml (with a temporary discovery folder, a short scrape interval and the
// test's Pushgateway), a real 2-rank training and a 2-rank training that fails mid-epoch report to
// it, and every PromQL expression of monitoring/grafana-dashboard.json must return data. The
// Pushgateway keeps the failed job's last figures and its failure reason; promtool accepts the
// scraped exposition and the configuration. Bad [metrics] settings only warn.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <set>
#include <thread>

#include "core/atomic_file.h"
#include "experiments/monitoring/metrics_export.h"
#include "experiments/training/train_config.h"
#include "tests/experiments/metrics_test_support.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::FindSample;
using testing::Http;
using testing::ParseExposition;
using testing::RunAngiotrain;
using testing::ScratchDir;
using testing::UrlEncode;

// The program's path on PATH, or "" (the test then fails, naming the Debian package).
std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return "";
}

bool WaitUntil(const std::function<bool()>& condition, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

// A server started for one test (its output in `log`), stopped with SIGTERM at the end.
class Server {
 public:
  Server(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      FILE* out = std::fopen(log.c_str(), "w");
      if (out) {
        dup2(fileno(out), 1);
        dup2(fileno(out), 2);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Server() {
    kill(-pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 50 && waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  std::string Log() const { return fs::exists(log_) ? ReadFile(log_) : ""; }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// A phantom volume of `patients` patients at 32 px, made by the real synth and ingest commands.
std::string PhantomVolume(const ScratchDir& dir, int patients) {
  const std::string images = dir / "phantom", volume = dir / "volume.h5";
  CommandResult r = RunAngiotrain({"synth", "--out", images, "--patients", std::to_string(patients), "--seed", "11",
                                   "--resolution", "64", "--quiet"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = RunAngiotrain({"ingest", "--input", images + "/train_set", "--labels", images + "/train_set/train.csv", "--out",
                     volume, "--resolution", "32"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return volume;
}

// A tiny-model training config with a [metrics] section.
std::string WriteMetricsConfig(const std::string& path, const std::string& volume, const std::string& output_dir,
                               int epochs, const std::string& metrics) {
  std::ofstream(path) << "[data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\n"
                      << "[model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\ntask = \"multitask\"\n"
                      << "[train]\nepochs = " << epochs << "\nbatch_size = 2\nlr = 1e-3\nseed = 5\n"
                      << "[output]\ndir = \"" << output_dir << "\"\n[metrics]\n"
                      << metrics;
  return path;
}

// monitoring/prometheus.yml with the values it marks "test:" replaced.
std::string TestPrometheusConfig(const std::string& discovery_dir, int pushgateway_port) {
  std::string text = ReadFile(std::string(ANGIOTRAIN_SOURCE_DIR) + "/monitoring/prometheus.yml");
  const std::vector<std::pair<std::string, std::string>> replacements = {
      {"scrape_interval: 15s", "scrape_interval: 250ms"},
      {"scrape_timeout: 10s", "scrape_timeout: 200ms"},
      {"evaluation_interval: 15s", "evaluation_interval: 1s"},
      {"/var/lib/angiotrain/discovery/*.json", discovery_dir + "/*.json"},
      {"127.0.0.1:9091", "127.0.0.1:" + std::to_string(pushgateway_port)},
  };
  for (const auto& [from, to] : replacements) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "monitoring/prometheus.yml no longer has '" << from << "'";
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  return text;
}

struct PanelQuery {
  std::string panel, expr;
  bool instant = false;
};

// Every target of every panel of the dashboard (rows' nested panels included).
std::vector<PanelQuery> DashboardQueries(const nlohmann::json& dashboard) {
  std::vector<PanelQuery> out;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& panels) {
    for (const auto& p : panels) {
      if (p.contains("panels")) walk(p["panels"]);
      if (!p.contains("targets")) continue;
      for (const auto& t : p["targets"])
        out.push_back({p["title"].get<std::string>(), t["expr"].get<std::string>(), t.value("instant", false)});
    }
  };
  walk(dashboard["panels"]);
  return out;
}

std::string Substitute(std::string text, const std::map<std::string, std::string>& variables) {
  for (const auto& [name, value] : variables)
    for (size_t at; (at = text.find(name)) != std::string::npos;) text.replace(at, name.size(), value);
  return text;
}

// The result of a Prometheus API query (throws on an API error, with Prometheus's message).
nlohmann::json PromQuery(int port, const std::string& path) {
  const auto reply = Http("GET", port, path);
  auto json = nlohmann::json::parse(reply.body.empty() ? "{}" : reply.body);
  if (reply.status != 200 || json.value("status", "") != "success")
    throw std::runtime_error(path + ": HTTP " + std::to_string(reply.status) + " " + reply.body);
  return json["data"];
}

// Whether a query result has at least one finite value.
bool HasFiniteValue(const nlohmann::json& data) {
  auto finite = [](const nlohmann::json& pair) { return std::isfinite(std::stod(pair[1].get<std::string>())); };
  for (const auto& series : data["result"]) {
    if (series.contains("value") && finite(series["value"])) return true;
    if (series.contains("values"))
      for (const auto& v : series["values"])
        if (finite(v)) return true;
  }
  return false;
}

double Now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

TEST(MetricsPrometheus, EveryDashboardQueryReturnsDataAndTheFailedJobStaysOnThePushgateway) {
  const std::string prometheus = FindProgram("prometheus"), promtool = FindProgram("promtool"),
                    pushgateway = FindProgram("prometheus-pushgateway");
  ASSERT_FALSE(prometheus.empty() || promtool.empty())
      << "prometheus/promtool not on PATH: install Debian's prometheus (scripts/install-deps.sh)";
  ASSERT_FALSE(pushgateway.empty())
      << "prometheus-pushgateway not on PATH: install Debian's prometheus-pushgateway (scripts/install-deps.sh)";
  ScratchDir dir;
  const std::string discovery = dir / "discovery";
  fs::create_directories(discovery);
  const int pg_port = testing::FreePort(), prom_port = testing::FreePort();
  Server pg({pushgateway, "--web.listen-address=127.0.0.1:" + std::to_string(pg_port)}, dir / "pushgateway.log");
  WriteFileAtomically(dir / "prometheus.yml", TestPrometheusConfig(discovery, pg_port));
  CommandResult check = testing::RunCommand({promtool, "check", "config", dir / "prometheus.yml"});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  check = testing::RunCommand({promtool, "check", "config", std::string(ANGIOTRAIN_SOURCE_DIR) + "/monitoring/prometheus.yml"});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  Server prom({prometheus, "--config.file=" + dir / "prometheus.yml", "--storage.tsdb.path=" + dir / "tsdb",
               "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
              dir / "prometheus.log");
  ASSERT_TRUE(WaitUntil([&] { return Http("GET", prom_port, "/-/ready").status == 200; }, 60)) << prom.Log();
  ASSERT_TRUE(WaitUntil([&] { return Http("GET", pg_port, "/-/ready").status == 200; }, 30)) << pg.Log();
  const double t0 = Now() - 1;

  // An 8-epoch run on 2 ranks (job "ok", about 20 s of training), long enough to be scraped while
  // it trains: Prometheus takes up to 10 s to scrape a new target (its discovery and scrape
  // managers each apply changes every 5 s). This thread keeps the last exposition of rank 0.
  const std::string volume = PhantomVolume(dir, 300);
  const std::string pg_url = "http://127.0.0.1:" + std::to_string(pg_port);
  const std::string metrics_keys =
      "port = 0\ndiscovery_dir = \"" + discovery + "\"\npushgateway = \"" + pg_url + "\"\n";
  const std::vector<std::string> linger = {"ANGIOTRAIN_TEST_METRICS_LINGER_S=3"};
  auto ok = std::async(std::launch::async, [&] {
    return RunAngiotrain({"train", "--config", WriteMetricsConfig(dir / "ok.toml", volume, dir / "ok", 8, metrics_keys)},
                         2, 600, linger);
  });
  std::string exposition;
  std::set<std::string> entries_seen;
  while (ok.wait_for(std::chrono::milliseconds(300)) != std::future_status::ready) {
    for (const auto& name : testing::ListDir(discovery)) {
      if (name.rfind("ok_", 0) != 0) continue;
      entries_seen.insert(name);
      const int port = std::stoi(name.substr(name.rfind('_') + 1));
      const auto page = Http("GET", port, "/metrics");
      if (page.status == 200 && page.body.find("angiotrain_validation_loss") != std::string::npos) exposition = page.body;
    }
  }
  const CommandResult ok_run = ok.get();
  ASSERT_EQ(ok_run.exit_code, 0) << ok_run.output;
  EXPECT_EQ(entries_seen.size(), 2u) << "one discovery entry per rank";
  for (const auto& name : testing::ListDir(discovery)) EXPECT_NE(name.rfind("ok_", 0), 0u) << name << " left behind";

  // promtool lints the exposition that Prometheus scraped.
  ASSERT_FALSE(exposition.empty());
  WriteFileAtomically(dir / "exposition.txt", exposition);
  check = testing::RunCommand({"/bin/sh", "-c", "\"$0\" check metrics < \"$1\"", promtool, dir / "exposition.txt"});
  EXPECT_EQ(check.exit_code, 0) << check.output;

  // A run that fails in the middle of its third epoch on rank 0 (job "failed", 56 steps an epoch).
  const CommandResult failed = RunAngiotrain(
      {"train", "--config", WriteMetricsConfig(dir / "failed.toml", volume, dir / "failed", 4, metrics_keys)}, 2, 600,
      {"ANGIOTRAIN_FAULT=point=train-step,rank=0,step=140,action=error", linger[0]});
  ASSERT_NE(failed.exit_code, 0) << failed.output;

  // A real 2-trial sweep on 2 ranks (job "sweep": the store's folder name), each trial's figures
  // labelled with its name, the sweep's progress pushed after each trial.
  std::ofstream(dir / "sweep.toml") << "[sweep]\nmethod = \"grid\"\ndir = \"" << (dir / "sweep") << "\"\n"
                                    << "[base.data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\n"
                                    << "[base.model]\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
                                    << "[base.train]\nepochs = 1\nbatch_size = 2\nseed = 5\n"
                                    << "[base.metrics]\n" << metrics_keys
                                    << "[axes]\n\"train.lr\" = [1e-3, 2e-3]\n";
  const CommandResult swept = RunAngiotrain({"sweep", "run", "--config", dir / "sweep.toml"}, 2, 600, linger);
  ASSERT_EQ(swept.exit_code, 0) << swept.output;

  // The Pushgateway holds both jobs' last figures; the failed one with its reason.
  const auto pushed = ParseExposition(Http("GET", pg_port, "/metrics").body);
  const std::map<std::string, std::string> failed0 = {{"job", "failed"}, {"instance", "rank0"}};
  auto with = [](std::map<std::string, std::string> labels, const std::string& k, const std::string& v) {
    labels[k] = v;
    return labels;
  };
  EXPECT_EQ(FindSample(pushed, "angiotrain_run_status", with(failed0, "status", "failed")), 1) << failed.output;
  EXPECT_EQ(FindSample(pushed, "angiotrain_run_failure_info", with(failed0, "reason", "error")), 1);
  EXPECT_EQ(FindSample(pushed, "angiotrain_global_step", failed0), 140);  // the steps done before the failure
  EXPECT_TRUE(FindSample(pushed, "angiotrain_validation_loss", failed0));  // epoch 2's validation
  EXPECT_EQ(FindSample(pushed, "angiotrain_validation_epoch", failed0), 2);
  for (const std::string rank : {"rank0", "rank1"})
    EXPECT_EQ(FindSample(pushed, "angiotrain_run_status", {{"job", "ok"}, {"instance", rank}, {"status", "completed"}}), 1)
        << rank;
  EXPECT_EQ(FindSample(pushed, "angiotrain_sweep_trials", {{"job", "sweep"}, {"instance", "rank0"}, {"status", "completed"}}),
            2)
      << swept.output;

  // Prometheus has scraped the Pushgateway and the sweep since.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return !PromQuery(prom_port, "/api/v1/query?query=" + UrlEncode("angiotrain_run_failure_info{job=\"failed\"}"))["result"]
                    .empty() &&
               !PromQuery(prom_port, "/api/v1/query?query=" + UrlEncode("angiotrain_sweep_trials"))["result"].empty();
      },
      30))
      << prom.Log();

  // Prometheus found the run through its discovery entries and scraped it while it trained (the
  // rate panels need that): the first global step it saw is below the last.
  const double t1 = Now();
  const auto steps = PromQuery(prom_port, "/api/v1/query_range?query=" +
                                              UrlEncode("angiotrain_global_step{job=\"ok\", instance!~\"rank.*\"}") +
                                              "&start=" + std::to_string(t0) + "&end=" + std::to_string(t1) + "&step=0.25");
  ASSERT_EQ(steps["result"].size(), 1u) << steps.dump();
  const auto& values = steps["result"][0]["values"];
  const double first_step = std::stod(values.front()[1].get<std::string>()),
               last_step = std::stod(values.back()[1].get<std::string>());
  std::printf("first scraped global step %.0f of %.0f\n", first_step, last_step);
  EXPECT_LT(first_step, last_step) << "Prometheus scraped the run only after it had trained";

  // Every panel's expression, with the dashboard's variables filled in as Grafana would.
  const auto dashboard = nlohmann::json::parse(ReadFile(std::string(ANGIOTRAIN_SOURCE_DIR) + "/monitoring/grafana-dashboard.json"));
  const std::map<std::string, std::string> variables = {
      {"$job", "ok|failed|sweep"}, {"$trial", ".*"}, {"$__rate_interval", "2s"}};
  const auto queries = DashboardQueries(dashboard);
  EXPECT_GE(queries.size(), 20u);
  int gpu_only = 0;
  for (const PanelQuery& q : queries) {
    const std::string expr = Substitute(q.expr, variables);
    const std::string path =
        q.instant ? "/api/v1/query?query=" + UrlEncode(expr)
                  : "/api/v1/query_range?query=" + UrlEncode(expr) + "&start=" + std::to_string(t0) +
                        "&end=" + std::to_string(t1) + "&step=0.5";
    nlohmann::json data;
    try {
      data = PromQuery(prom_port, path);
    } catch (const std::exception& e) {
      ADD_FAILURE() << q.panel << ": " << e.what();
      continue;
    }
    if (q.expr.find("angiotrain_gpu_memory") != std::string::npos) {
      // GPU memory is exported by CUDA ranks only (README "Monitoring"); these runs are on the CPU.
      ++gpu_only;
      EXPECT_TRUE(data["result"].empty()) << q.panel;
      continue;
    }
    EXPECT_TRUE(HasFiniteValue(data)) << "panel '" << q.panel << "' returns no data: " << expr;
  }
  EXPECT_EQ(gpu_only, 2);
  // The template variables' queries (label_values) find their labels.
  EXPECT_FALSE(PromQuery(prom_port, "/api/v1/label/job/values?match[]=angiotrain_run_status").empty());
  const auto jobs = PromQuery(prom_port, "/api/v1/label/job/values?match[]=angiotrain_run_status");
  for (const std::string job : {"ok", "failed"})
    EXPECT_NE(std::find(jobs.begin(), jobs.end(), job), jobs.end()) << job << " in " << jobs.dump();

  // A finished job's groups are deleted by their grouping key.
  for (const std::string rank : {"rank0", "rank1"})
    EXPECT_EQ(Http("DELETE", pg_port, "/metrics/job/ok/instance/" + rank).status / 100, 2);
  EXPECT_EQ(FindSample(ParseExposition(Http("GET", pg_port, "/metrics").body), "angiotrain_epochs", {{"job", "ok"}}),
            std::nullopt);
}

TEST(MetricsPrometheus, BadSettingsWarnAndTrainingCompletes) {
  ScratchDir dir;
  const std::string volume = PhantomVolume(dir, 40);
  WriteFileAtomically(dir / "a_file", "x");
  // Port P is taken (rank 0 would listen on P, rank 1 on P + 1); nothing answers at the
  // Pushgateway's port; the discovery folder lies below a file.
  const int closed_port = testing::FreePort();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  listen(fd, 4);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int busy = ntohs(address.sin_port);
  const std::string keys = "port = " + std::to_string(busy) + "\ndiscovery_dir = \"" + dir / "a_file/sd" +
                           "\"\npushgateway = \"http://127.0.0.1:" + std::to_string(closed_port) + "\"\n";
  const CommandResult r =
      RunAngiotrain({"train", "--config", WriteMetricsConfig(dir / "c.toml", volume, dir / "run", 2, keys)}, 2);
  close(fd);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("train: completed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("warning: metrics: rank 0 cannot listen on 127.0.0.1:" + std::to_string(busy)),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("warning: metrics: cannot write the discovery entry " + dir / "a_file/sd"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("warning: metrics: push to http://127.0.0.1:" + std::to_string(closed_port)),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace angiotrain
