// EfficientNet modules and the scaling rules. See efficientnet.h; the reference is torchvision
// 0.14 models/efficientnet.py, which this follows layer for layer.
#include "models/efficientnet.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "models/batch_norm.h"

namespace angiotrain {

int AdjustChannels(double channels, double mult) {
  const int divisor = 8;
  double v = channels * mult;
  int rounded = std::max(divisor, static_cast<int>(v + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * v) rounded += divisor;  // rounding down may lose at most 10%
  return rounded;
}

int AdjustDepth(int layers, double mult) { return static_cast<int>(std::ceil(layers * mult)); }

EfficientNetConfig EfficientNetConfig::ForVariant(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string known;
  for (const VariantSpec& v : Variants()) {
    if (lower == v.name) {
      EfficientNetConfig c;
      c.variant = v.name;
      c.width_mult = v.width_mult;
      c.depth_mult = v.depth_mult;
      c.resolution = v.resolution;
      c.dropout = v.dropout;
      c.bn_eps = v.bn_eps;
      c.bn_momentum = v.bn_momentum;
      return c;
    }
    known += (known.empty() ? "" : ", ") + std::string(v.name);
  }
  throw Error("unknown EfficientNet variant '" + name + "' (expected one of " + known + ")");
}

NetworkSpec ScaleNetwork(const EfficientNetConfig& config) {
  if (config.width_mult <= 0 || config.depth_mult <= 0) {
    throw Error("EfficientNet: width_mult and depth_mult must be positive (got " +
                std::to_string(config.width_mult) + ", " + std::to_string(config.depth_mult) + ")");
  }
  const auto& stages = B0Stages();
  NetworkSpec net;
  net.stem_channels = AdjustChannels(stages[0].in_channels, config.width_mult);
  int total_blocks = 0;
  for (const StageSpec& s : stages) total_blocks += AdjustDepth(s.layers, config.depth_mult);

  int block_id = 0;
  for (size_t stage = 0; stage < stages.size(); ++stage) {
    const StageSpec& s = stages[stage];
    const int out = AdjustChannels(s.out_channels, config.width_mult);
    const int layers = AdjustDepth(s.layers, config.depth_mult);
    for (int j = 0; j < layers; ++j) {
      BlockSpec b;
      b.stage = static_cast<int>(stage);
      b.expand_ratio = s.expand_ratio;
      b.kernel = s.kernel;
      b.stride = j == 0 ? s.stride : 1;
      b.in_channels = j == 0 ? AdjustChannels(s.in_channels, config.width_mult) : out;
      b.expanded_channels = AdjustChannels(b.in_channels, s.expand_ratio);
      b.squeeze_channels = std::max(1, b.in_channels / 4);
      b.out_channels = out;
      b.stochastic_depth_prob =
          config.stochastic_depth_prob * static_cast<double>(block_id) / total_blocks;
      b.residual = b.stride == 1 && b.in_channels == b.out_channels;
      net.blocks.push_back(b);
      ++block_id;
    }
  }
  net.head_channels = 4 * net.blocks.back().out_channels;
  return net;
}

namespace {

// torchvision's Conv2dNormActivation: conv (no bias, "same" padding) -> batch norm -> SiLU. The
// batch norm is BatchNorm2d that can share its statistics over data-parallel ranks (batch_norm.h).
LayerSequence ConvNormActivation(int in, int out, int kernel, int stride, int groups,
                                         double bn_eps, double bn_momentum, bool activation) {
  LayerSequence seq;
  seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                       .stride(stride)
                                       .padding((kernel - 1) / 2)
                                       .groups(groups)
                                       .bias(false)));
  seq->push_back(
      SyncableBatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(bn_eps).momentum(bn_momentum)));
  if (activation) seq->push_back(torch::nn::SiLU());
  return seq;
}

// Row-mode stochastic depth (Huang et al. 2016): each sample's residual branch is zeroed with
// probability p and the survivors scaled by 1/(1-p), so the expectation is unchanged.
torch::Tensor StochasticDepth(const torch::Tensor& x, double p) {
  const double survival = 1.0 - p;
  torch::Tensor noise = torch::empty({x.size(0), 1, 1, 1}, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

}  // namespace

SqueezeExcitationImpl::SqueezeExcitationImpl(int channels, int squeeze_channels) {
  fc1_ = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, squeeze_channels, 1)));
  fc2_ = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze_channels, channels, 1)));
}

torch::Tensor SqueezeExcitationImpl::forward(const torch::Tensor& x) {
  torch::Tensor scale = torch::adaptive_avg_pool2d(x, {1, 1});
  scale = torch::sigmoid(fc2_->forward(torch::silu(fc1_->forward(scale))));
  return x * scale;
}

MBConvImpl::MBConvImpl(const BlockSpec& spec, double bn_eps, double bn_momentum) : spec_(spec) {
  if (spec.stride < 1 || spec.stride > 2) throw Error("MBConv: stride must be 1 or 2");
  block_ = LayerSequence();
  // 1. expand: 1x1 conv to the wide inner representation (skipped for MBConv1).
  if (spec.expanded_channels != spec.in_channels) {
    block_->push_back(ConvNormActivation(spec.in_channels, spec.expanded_channels, 1, 1, 1, bn_eps,
                                         bn_momentum, true));
  }
  // 2. depthwise: one kxk filter per channel, carries the stride.
  block_->push_back(ConvNormActivation(spec.expanded_channels, spec.expanded_channels, spec.kernel,
                                       spec.stride, spec.expanded_channels, bn_eps, bn_momentum, true));
  // 3. squeeze-and-excitation: channel gating from a bottleneck sized by the block's input.
  block_->push_back(SqueezeExcitation(spec.expanded_channels, spec.squeeze_channels));
  // 4. project: linear 1x1 conv back to the narrow output (no activation).
  block_->push_back(ConvNormActivation(spec.expanded_channels, spec.out_channels, 1, 1, 1, bn_eps,
                                       bn_momentum, false));
  register_module("block", block_);
}

torch::Tensor MBConvImpl::forward(const torch::Tensor& x) {
  torch::Tensor result = block_->forward(x);
  if (spec_.residual) {
    if (is_training() && spec_.stochastic_depth_prob > 0.0) {
      result = StochasticDepth(result, spec_.stochastic_depth_prob);
    }
    result.add_(x);  // in place as torchvision: `result` is this block's own fresh tensor
  }
  return result;
}

EfficientNetImpl::EfficientNetImpl(const EfficientNetConfig& config)
    : config_(config), network_(ScaleNetwork(config)) {
  if (config.in_channels < 1) throw Error("EfficientNet: in_channels must be >= 1");
  if (config.num_outputs < 1) throw Error("EfficientNet: num_outputs must be >= 1");
  if (config.dropout < 0 || config.dropout >= 1 || config.stochastic_depth_prob < 0 ||
      config.stochastic_depth_prob > 1) {
    throw Error("EfficientNet: dropout must be in [0, 1) and stochastic_depth_prob in [0, 1]");
  }
  const double eps = config.bn_eps, momentum = config.bn_momentum;

  features_ = torch::nn::Sequential();
  features_->push_back(
      ConvNormActivation(config.in_channels, network_.stem_channels, 3, 2, 1, eps, momentum, true));
  // One Sequential per stage (features.1 .. features.7), blocks numbered within the stage.
  for (size_t first = 0; first < network_.blocks.size();) {
    LayerSequence stage;
    size_t i = first;
    for (; i < network_.blocks.size() && network_.blocks[i].stage == network_.blocks[first].stage; ++i) {
      stage->push_back(MBConv(network_.blocks[i], eps, momentum));
    }
    features_->push_back(stage);
    first = i;
  }
  features_->push_back(ConvNormActivation(network_.blocks.back().out_channels,
                                          network_.head_channels, 1, 1, 1, eps, momentum, true));
  register_module("features", features_);

  linear_ = torch::nn::Linear(network_.head_channels, config.num_outputs);
  classifier_ = torch::nn::Sequential(torch::nn::Dropout(config.dropout), linear_);
  register_module("classifier", classifier_);

  // torchvision's initialisation, so that a model trained from scratch here starts like one
  // trained from scratch there.
  torch::NoGradGuard no_grad;
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* bn = m->as<SyncableBatchNorm2d>()) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    } else if (auto* linear = m->as<torch::nn::Linear>()) {
      const double range = 1.0 / std::sqrt(static_cast<double>(linear->weight.size(0)));
      linear->weight.uniform_(-range, range);
      linear->bias.zero_();
    }
  }
}

torch::Tensor EfficientNetImpl::ForwardFeatures(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != config_.in_channels) {
    throw Error("EfficientNet: expected input [N, " + std::to_string(config_.in_channels) +
                ", H, W], got " + c10::str(x.sizes()));
  }
  return torch::adaptive_avg_pool2d(features_->forward(x), {1, 1}).flatten(1);
}

torch::Tensor EfficientNetImpl::forward(const torch::Tensor& x) {
  return classifier_->forward(ForwardFeatures(x));
}

void ToChannelsLast(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
  for (auto& b : module.buffers()) {
    if (b.dim() == 4) b.set_data(b.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

int64_t CountParameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace angiotrain
