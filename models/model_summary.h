// What `angiotrain model info` prints: the stage table of a scaled EfficientNet at a given input
// resolution (as Table 1 of the paper) and the multiply-adds of one forward pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/efficientnet.h"

namespace angiotrain {

// One row of the table: stage 1 is the stem, 2..8 the MBConv stages, 9 the head.
struct StageRow {
  int stage;
  std::string op;  // "Conv3x3", "MBConv6, k5x5", "Conv1x1 & Pooling & FC"
  int resolution;  // side of the stage's input feature map
  int channels;    // output channels
  int layers;
};

std::vector<StageRow> StageTable(const EfficientNetConfig& config, int resolution);

// Side of a convolution's output: (in + 2 * ((kernel - 1) / 2) - kernel) / stride + 1.
int ConvOutputSize(int in, int kernel, int stride);

// Multiply-adds of one forward pass of one sample at resolution x resolution: every
// convolution (including the squeeze-excitation 1x1 convs) and the classifier, counted as
// out_h * out_w * out_channels * in_channels / groups * k * k. Batch norm, activations,
// pooling, the excitation product and residual additions are not counted: the convention of
// torchvision's published figures (0.39 G for B0 at 224, 4.39 G for B4 at 380).
int64_t CountMultiplyAdds(const EfficientNetConfig& config, int resolution);

// The rows as an aligned text table with a header line.
std::string FormatStageTable(const std::vector<StageRow>& rows);

}  // namespace angiotrain
