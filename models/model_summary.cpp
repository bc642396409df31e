// Stage table and multiply-add count, both read from ScaleNetwork's data. See model_summary.h.
#include "models/model_summary.h"

#include <cstdio>

#include "core/error.h"

namespace angiotrain {

int ConvOutputSize(int in, int kernel, int stride) {
  return (in + 2 * ((kernel - 1) / 2) - kernel) / stride + 1;
}

std::vector<StageRow> StageTable(const EfficientNetConfig& config, int resolution) {
  if (resolution < 1) throw Error("resolution must be >= 1, got " + std::to_string(resolution));
  const NetworkSpec net = ScaleNetwork(config);
  std::vector<StageRow> rows;
  rows.push_back({1, "Conv3x3", resolution, net.stem_channels, 1});
  int side = ConvOutputSize(resolution, 3, 2);
  for (const BlockSpec& b : net.blocks) {
    if (rows.back().stage != b.stage + 2) {
      const std::string k = std::to_string(b.kernel);
      rows.push_back({b.stage + 2, "MBConv" + std::to_string(b.expand_ratio) + ", k" + k + "x" + k, side,
                      b.out_channels, 0});
    }
    ++rows.back().layers;
    side = ConvOutputSize(side, b.kernel, b.stride);
  }
  rows.push_back({rows.back().stage + 1, "Conv1x1 & Pooling & FC", side, net.head_channels, 1});
  return rows;
}

int64_t CountMultiplyAdds(const EfficientNetConfig& config, int resolution) {
  const NetworkSpec net = ScaleNetwork(config);
  // A convolution producing an out_side x out_side map.
  auto conv = [](int64_t out_side, int64_t in_c, int64_t out_c, int64_t kernel, int64_t groups) {
    return out_side * out_side * out_c * (in_c / groups) * kernel * kernel;
  };
  int side = ConvOutputSize(resolution, 3, 2);
  int64_t macs = conv(side, config.in_channels, net.stem_channels, 3, 1);
  for (const BlockSpec& b : net.blocks) {
    if (b.expanded_channels != b.in_channels) macs += conv(side, b.in_channels, b.expanded_channels, 1, 1);
    side = ConvOutputSize(side, b.kernel, b.stride);
    macs += conv(side, b.expanded_channels, b.expanded_channels, b.kernel, b.expanded_channels);
    macs += conv(1, b.expanded_channels, b.squeeze_channels, 1, 1);  // squeeze on the pooled 1x1
    macs += conv(1, b.squeeze_channels, b.expanded_channels, 1, 1);  // excite
    macs += conv(side, b.expanded_channels, b.out_channels, 1, 1);   // project
  }
  macs += conv(side, net.blocks.back().out_channels, net.head_channels, 1, 1);
  macs += static_cast<int64_t>(net.head_channels) * config.num_outputs;  // classifier
  return macs;
}

std::string FormatStageTable(const std::vector<StageRow>& rows) {
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "%-6s %-24s %-12s %9s %7s\n", "stage", "operator", "resolution",
                "channels", "layers");
  out += line;
  for (const StageRow& r : rows) {
    const std::string res = std::to_string(r.resolution) + "x" + std::to_string(r.resolution);
    std::snprintf(line, sizeof line, "%-6d %-24s %-12s %9d %7d\n", r.stage, r.op.c_str(), res.c_str(),
                  r.channels, r.layers);
    out += line;
  }
  return out;
}

}  // namespace angiotrain
