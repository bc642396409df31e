// The config of train and slurm submit, assembled from its sections (see run_config.h).
#include "launcher/run_config.h"

namespace angiotrain {

RunConfig LoadRunConfig(const std::string& path, const std::vector<std::string>& overrides) {
  RunConfig config;
  OtherSections others;
  others.fields = MetricsFields(config.metrics);
  others.skipped_tables = {"slurm"};
  config.train = LoadTrainConfig(path, others);
  for (const auto& assignment : overrides) ApplyOverride(config.train, assignment, others);
  return config;
}

void ValidateRunConfig(const RunConfig& config) {
  ValidateTrainConfig(config.train);
  ValidateMetricsConfig(config.metrics);
}

std::string RunConfigText(const RunConfig& config) {
  return CanonicalText(config.train) + "\n" + MetricsConfigText(config.metrics);
}

}  // namespace angiotrain
