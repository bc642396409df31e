// The config file of `train` and `slurm submit`, as these commands assemble it from the rooms
// that declare its sections: the training sections (experiments/training/train_config.h) and
// [metrics] (experiments/monitoring/metrics_config.h). [slurm] is read by slurm/slurm_config.h.
#pragma once

#include <string>
#include <vector>

#include "experiments/monitoring/metrics_config.h"
#include "experiments/training/train_config.h"

namespace angiotrain {

struct RunConfig {
  TrainConfig train;
  MetricsConfig metrics;
};

// Reads `path` and applies `overrides` ("section.key=value", training and metrics keys); the
// [slurm] table is skipped. Throws Error naming the file or the key.
RunConfig LoadRunConfig(const std::string& path, const std::vector<std::string>& overrides);

// Both sections' checks; throws Error naming the key.
void ValidateRunConfig(const RunConfig& config);

// Every key of both as TOML (CanonicalText, then [metrics]): LoadRunConfig of it gives `config`.
std::string RunConfigText(const RunConfig& config);

}  // namespace angiotrain
