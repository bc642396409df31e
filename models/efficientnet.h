// EfficientNet-B0…B7 (Tan & Le, 2019) built the way torchvision 0.14 builds it: the architecture
// is data (the B0 stage table and the compound-scaling table below) and one loop turns it into
// modules. Module names equal torchvision's, so a torchvision state_dict maps onto ours 1:1.
//
//   EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");  // or set width/depth_mult
//   c.in_channels = 8;                                            // one channel per view
//   c.num_outputs = TaskOutputs(Task::kMultitask);                // models/heads.h
//   EfficientNet model(c);
//   InitializeModel(model, "torchvision:efficientnet_b0.pth");    // models/weight_import.h
//   torch::Tensor logits = model->forward(x);                     // [N, 22], no sigmoid
#pragma once

#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

namespace angiotrain {

// One row of Table 1 of the paper: a stage of identical MBConv blocks, before scaling.
struct StageSpec {
  int expand_ratio;  // 1 (MBConv1) or 6 (MBConv6): expanded width = in_channels * expand_ratio
  int kernel;        // depthwise kernel size
  int stride;        // of the stage's first block; the others have stride 1
  int in_channels;
  int out_channels;
  int layers;
};

// The B0 stages. Stem: 3x3 conv, stride 2, to stages[0].in_channels (32). Head: 1x1 conv to
// 4 * the last stage's out_channels (1280 for B0), global average pooling, dropout, linear.
inline const std::array<StageSpec, 7>& B0Stages() {
  static const std::array<StageSpec, 7> stages = {{
      // expand kernel stride  in  out layers
      {1, 3, 1, 32, 16, 1},
      {6, 3, 2, 16, 24, 2},
      {6, 5, 2, 24, 40, 2},
      {6, 3, 2, 40, 80, 3},
      {6, 5, 1, 80, 112, 3},
      {6, 5, 2, 112, 192, 4},
      {6, 3, 1, 192, 320, 1},
  }};
  return stages;
}

// One member of the compound-scaled family. Batch-norm settings are torchvision's: B5-B7 use
// eps 1e-3 and momentum 0.01 (their weights were ported from TensorFlow), B0-B4 the defaults.
struct VariantSpec {
  const char* name;
  double width_mult;
  double depth_mult;
  int resolution;  // the input side the variant was trained at
  double dropout;  // before the classifier
  double bn_eps;
  double bn_momentum;
};

inline const std::array<VariantSpec, 8>& Variants() {
  static const std::array<VariantSpec, 8> variants = {{
      // name width depth  res  dropout bn_eps bn_momentum
      {"b0", 1.0, 1.0, 224, 0.2, 1e-5, 0.1},
      {"b1", 1.0, 1.1, 240, 0.2, 1e-5, 0.1},
      {"b2", 1.1, 1.2, 260, 0.3, 1e-5, 0.1},
      {"b3", 1.2, 1.4, 300, 0.3, 1e-5, 0.1},
      {"b4", 1.4, 1.8, 380, 0.4, 1e-5, 0.1},
      {"b5", 1.6, 2.2, 456, 0.4, 1e-3, 0.01},
      {"b6", 1.8, 2.6, 528, 0.5, 1e-3, 0.01},
      {"b7", 2.0, 3.1, 600, 0.5, 1e-3, 0.01},
  }};
  return variants;
}

// Channel rounding of torchvision (`_make_divisible`): channels * mult rounded to the nearest
// multiple of 8, at least 8, and never more than 10% below channels * mult.
int AdjustChannels(double channels, double mult);
// Depth scaling: ceil(layers * mult).
int AdjustDepth(int layers, double mult);

// Everything that shapes the network. Build one with ForVariant and change what you need
// (in_channels, num_outputs; width_mult/depth_mult for tiny test models).
struct EfficientNetConfig {
  std::string variant = "b0";  // informational ("custom" when the multipliers were changed)
  double width_mult = 1.0;
  double depth_mult = 1.0;
  int resolution = 224;  // nominal input side; the network itself accepts any size
  double dropout = 0.2;
  // Drop probability of the residual branch of the last block; block i of n uses
  // stochastic_depth_prob * i / n (row mode: whole samples are dropped), as torchvision.
  double stochastic_depth_prob = 0.2;
  double bn_eps = 1e-5;
  double bn_momentum = 0.1;
  int in_channels = 3;
  int num_outputs = 1000;  // logits; see models/heads.h for the task heads (1, 21, 22)

  // "b0".."b7" (case-insensitive); throws Error naming the valid variants otherwise.
  static EfficientNetConfig ForVariant(const std::string& name);
};

// One MBConv block after scaling: what the module builder, the stage table and the
// multiply-add count all read.
struct BlockSpec {
  int stage;  // 0-based index into B0Stages()
  int expand_ratio;
  int kernel;
  int stride;
  int in_channels;
  int expanded_channels;  // == in_channels when expand_ratio is 1 (no expansion conv)
  int squeeze_channels;   // squeeze-and-excitation bottleneck: max(1, in_channels / 4)
  int out_channels;
  double stochastic_depth_prob;
  bool residual;  // stride 1 and in == out
};

// The scaled network as data, in forward order.
struct NetworkSpec {
  int stem_channels;
  std::vector<BlockSpec> blocks;
  int head_channels;  // 4 * the last block's out_channels
};
NetworkSpec ScaleNetwork(const EfficientNetConfig& config);

// A Sequential that can sit inside another: LibTorch's templated Sequential::forward cannot be
// stored in a container, so stages, blocks and conv-norm-activation triples use this one.
// Children are numbered 0, 1, ... as in torch.nn.Sequential (hence torchvision's names).
class LayerSequenceImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(const torch::Tensor& x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(LayerSequence);

// Squeeze-and-excitation: x * sigmoid(fc2(silu(fc1(mean over H, W of x)))), fc = 1x1 conv.
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(int channels, int squeeze_channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

// Mobile inverted bottleneck: expand (1x1), depthwise (kxk), squeeze-excitation, project
// (1x1, no activation), plus the residual with stochastic depth when shapes allow.
class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(const BlockSpec& spec, double bn_eps, double bn_momentum);
  torch::Tensor forward(const torch::Tensor& x);
  const BlockSpec& spec() const { return spec_; }

 private:
  BlockSpec spec_;
  LayerSequence block_{nullptr};
};
TORCH_MODULE(MBConv);

// The network. forward(x) maps [N, in_channels, H, W] float to logits [N, num_outputs]; no
// sigmoid or softmax. Submodules: features (0 = stem, 1..7 = stages, 8 = head conv; each a
// LayerSequence),
// classifier (0 = dropout, 1 = linear), as torchvision. Weights start with torchvision's init.
// Save and load the whole state with torch::save(model, path) / torch::load(model, path).
// Channels-last inputs are accepted everywhere (see ToChannelsLast for the weights).
class EfficientNetImpl : public torch::nn::Module {
 public:
  explicit EfficientNetImpl(const EfficientNetConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  // The pooled features before dropout and the classifier: [N, head_channels].
  torch::Tensor ForwardFeatures(const torch::Tensor& x);

  const EfficientNetConfig& config() const { return config_; }
  const NetworkSpec& network() const { return network_; }
  torch::nn::Sequential& features() { return features_; }
  torch::nn::Linear& classifier_linear() { return linear_; }

 private:
  EfficientNetConfig config_;
  NetworkSpec network_;
  torch::nn::Sequential features_{nullptr};
  torch::nn::Sequential classifier_{nullptr};
  torch::nn::Linear linear_{nullptr};
};
TORCH_MODULE(EfficientNet);

// Stores every 4-D parameter and buffer of `module` in channels-last order (NHWC), which is
// what cuDNN's fastest convolutions want; feed it inputs made with
// x.contiguous(torch::MemoryFormat::ChannelsLast). Values are unchanged.
void ToChannelsLast(torch::nn::Module& module);

// Number of elements over all parameters (buffers excluded), as torchvision's num_params.
int64_t CountParameters(const torch::nn::Module& module);

}  // namespace angiotrain
