// The [metrics] section: its keys, its checks and its text (see metrics_config.h).
#include "experiments/monitoring/metrics_config.h"

#include "core/error.h"
#include "experiments/monitoring/metrics_export.h"

namespace angiotrain {

std::vector<ConfigField> MetricsFields(MetricsConfig& m) {
  return {
      {"metrics.port", &m.port, false},
      {"metrics.address", &m.address, false},
      {"metrics.job", &m.job, false},
      {"metrics.pushgateway", &m.pushgateway, false},
      {"metrics.discovery_dir", &m.discovery_dir, false},
  };
}

void ValidateMetricsConfig(const MetricsConfig& m) {
  auto fail = [](const std::string& key, const std::string& problem) {
    throw Error("config key '" + key + "': " + problem);
  };
  if (m.port < -1 || m.port > 65535) fail("metrics.port", "must be -1 (off), 0 (a free port) or a port in 1..65535");
  if (m.port >= 0 && m.address.empty()) fail("metrics.address", "must name an address to listen on (e.g. 127.0.0.1)");
  if (!m.job.empty() && (m.job.size() > 64 || m.job.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                                     "0123456789_.-") != std::string::npos))
    fail("metrics.job", "'" + m.job + "' must be 1 to 64 of A-Z a-z 0-9 _ . -");
  if (!m.pushgateway.empty()) {
    try {
      ParsePushgatewayUrl(m.pushgateway);
    } catch (const Error& e) {
      fail("metrics.pushgateway", e.what());
    }
  }
  if (!m.discovery_dir.empty() && m.port < 0) fail("metrics.discovery_dir", "needs metrics.port >= 0 (an exposer to discover)");
  if ((m.port >= 0 || !m.pushgateway.empty()) && !MetricsExportCompiled())
    fail(m.port >= 0 ? "metrics.port" : "metrics.pushgateway",
         "this angiotrain was built without prometheus-cpp (install prometheus-cpp-dev and rebuild)");
}

std::string MetricsConfigText(const MetricsConfig& config) {
  MetricsConfig copy = config;
  return SectionsText(MetricsFields(copy));
}

}  // namespace angiotrain
