// The [metrics] section of a config file: where a run's or a sweep's live figures go (README
// "Monitoring"). The monitoring room declares it; the command that reads a config file assembles
// it with the training sections (launcher/run_config.h for train and slurm submit, the sweep spec
// for a sweep's [base.metrics]). Off by default; nothing here changes a run's result, so none of
// it is hashed and all of it may change on a resume.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/training/train_config.h"

namespace angiotrain {

struct MetricsConfig {
  int64_t port = -1;                  // -1: no HTTP exposer; 0: a free port per rank; N: N + local rank
  std::string address = "127.0.0.1";  // the exposer's bind address (0.0.0.0: all interfaces)
  std::string job;                    // label job; "": the name of output.dir's folder
  std::string pushgateway;            // "http://HOST:PORT": push at epoch ends and at the end; "": none
  std::string discovery_dir;          // Prometheus file_sd folder for one entry per rank; "": none
};

// The keys "metrics.port", ... pointing into `config`, for LoadTrainConfig and ApplyOverride
// (OtherSections::fields); all unhashed.
std::vector<ConfigField> MetricsFields(MetricsConfig& config);

// Checks ranges, the job label's characters, the Pushgateway URL, and that this build can export
// at all when asked to; throws Error "config key 'metrics.KEY': problem".
void ValidateMetricsConfig(const MetricsConfig& config);

// The section as TOML ("[metrics]\nport = ...\n"), every key: loading it back gives `config`.
std::string MetricsConfigText(const MetricsConfig& config);

}  // namespace angiotrain
