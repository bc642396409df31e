// The quickstart model starts and trains like torchvision's (issue 16): the initial weight
// distribution of each layer type by moments against torchvision's own initialisation, stochastic
// depth's mode and per-block probabilities, and the BCE loss's reduction over the 22 columns.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "models/efficientnet.h"
#include "models/heads.h"
#include "models/torch_save_reader.h"
#include "tests/models/recipe_peer.h"

namespace angiotrain {
namespace {

// The quickstart's model: B0 at width 0.5 / depth 0.5, 8 views in, 22 logits out.
EfficientNetConfig QuickstartModel() {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.width_mult = 0.5;
  c.depth_mult = 0.5;
  c.in_channels = 8;
  c.num_outputs = TaskOutputs(Task::kMultitask);
  return c;
}

// Pooled draws of one layer type and their first four moments.
struct Draws {
  std::vector<double> values;
  void Add(const torch::Tensor& t, double scale) {
    auto flat = t.detach().to(torch::kDouble).reshape({-1}).contiguous();
    const double* p = flat.data_ptr<double>();
    for (int64_t i = 0; i < flat.numel(); ++i) values.push_back(p[i] / scale);
  }
  double n() const { return static_cast<double>(values.size()); }
  double Mean() const {
    double s = 0;
    for (double v : values) s += v;
    return s / n();
  }
  double Central(int k) const {
    const double m = Mean();
    double s = 0;
    for (double v : values) s += std::pow(v - m, k);
    return s / n();
  }
  double Std() const { return std::sqrt(Central(2)); }
  double Kurtosis() const { return Central(4) / (Central(2) * Central(2)); }
};

// The layer type of a weight, by its name and shape; "" for tensors checked exactly instead.
// Convolutions are standardised by torchvision's Kaiming-normal fan-out std, sqrt(2 / fan_out)
// with fan_out = out_channels x kernel area (torch ignores groups), so every convolution of a
// type pools into one sample of (ideally) unit variance.
std::string ConvKind(const std::string& name, const torch::Tensor& w) {
  if (name == "features.0.0.weight") return "stem conv";
  if (name.find(".fc1.weight") != std::string::npos || name.find(".fc2.weight") != std::string::npos)
    return "squeeze-excitation conv";
  if (w.size(1) == 1 && w.size(2) > 1) return "depthwise conv";
  return "1x1 conv";
}

double FanOutStd(const torch::Tensor& w) {
  return std::sqrt(2.0 / static_cast<double>(w.size(0) * w.size(2) * w.size(3)));
}

// Adds one side's weights to per-kind draws; checks BatchNorm and biases exactly.
void Collect(const std::map<std::string, torch::Tensor>& state, const std::string& side,
             std::map<std::string, Draws>& draws) {
  for (const auto& [name, t] : state) {
    const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (name.rfind("classifier.", 0) == 0) {
      if (weight) {
        draws["linear"].Add(t, 1.0 / std::sqrt(static_cast<double>(t.size(0))));
      } else {
        EXPECT_EQ(t.abs().max().item<double>(), 0.0) << side << ": " << name << " is not zero";
      }
    } else if (t.dim() == 4) {
      draws[ConvKind(name, t)].Add(t, FanOutStd(t));
    } else if (name.find("running_var") != std::string::npos || (weight && t.dim() == 1)) {
      // BatchNorm weight and running variance start at 1.
      EXPECT_TRUE(torch::all(t == 1).item<bool>()) << side << ": " << name << " is not all 1";
    } else if (name.find("num_batches_tracked") == std::string::npos) {
      // BatchNorm bias and running mean, convolution biases (squeeze-excitation): 0.
      EXPECT_EQ(t.to(torch::kDouble).abs().max().item<double>(), 0.0) << side << ": " << name << " is not 0";
    }
  }
}

TEST(RecipeAgainstTorchvision, InitialWeightsOfEachLayerTypeHaveTorchvisionsMoments) {
  const std::string dir = testing::RecipePeerOutput({"init", "3"});
  ASSERT_FALSE(dir.empty());
  std::map<std::string, torch::Tensor> theirs;
  for (auto& [name, t] : ReadTorchStateDict(dir + "/weights.pt")) theirs[name] = t;

  torch::manual_seed(11);
  EfficientNet model(QuickstartModel());
  std::map<std::string, torch::Tensor> ours;
  for (const auto& p : model->named_parameters()) ours[p.key()] = p.value().detach();
  for (const auto& b : model->named_buffers()) ours[b.key()] = b.value().detach();

  // The same tensors under the same names and shapes.
  ASSERT_EQ(ours.size(), theirs.size());
  for (const auto& [name, t] : ours) {
    ASSERT_TRUE(theirs.count(name)) << name << " missing from torchvision's model";
    ASSERT_EQ(t.sizes(), theirs.at(name).sizes()) << name;
  }

  std::map<std::string, Draws> a, b;
  Collect(ours, "angiotrain", a);
  Collect(theirs, "torchvision", b);
  ASSERT_EQ(a.size(), 5u);  // stem, depthwise, 1x1, squeeze-excitation, linear
  for (const auto& [kind, x] : a) {
    const Draws& y = b.at(kind);
    ASSERT_EQ(x.n(), y.n()) << kind;
    // Both are samples of the same standardised distribution (unit variance for the
    // convolutions, 1/3 for the uniform classifier): five standard errors of the difference.
    const double sigma = y.Std();
    const double se_mean = sigma * std::sqrt(1.0 / x.n() + 1.0 / y.n());
    const double se_std = sigma * std::sqrt(1.0 / (2 * x.n()) + 1.0 / (2 * y.n()));
    const double se_kurt = std::sqrt(24.0 / x.n() + 24.0 / y.n());  // the normal's, an upper bound here
    SCOPED_TRACE(kind + ": " + std::to_string(static_cast<int64_t>(x.n())) + " draws a side");
    EXPECT_NEAR(x.Mean(), y.Mean(), 5 * se_mean);
    EXPECT_NEAR(x.Std(), y.Std(), 5 * se_std);
    EXPECT_NEAR(x.Kurtosis(), y.Kurtosis(), 5 * se_kurt);
    // And torchvision's rules themselves: Kaiming normal (std 1, kurtosis 3 once standardised),
    // uniform +-1/sqrt(out) (std 1/sqrt(3), kurtosis 1.8).
    const bool uniform = kind == "linear";
    EXPECT_NEAR(y.Std(), uniform ? 1 / std::sqrt(3.0) : 1.0, 5 * se_std);
    EXPECT_NEAR(y.Kurtosis(), uniform ? 1.8 : 3.0, 5 * se_kurt);
  }
}

TEST(RecipeAgainstTorchvision, StochasticDepthHasTorchvisionsPerBlockProbabilities) {
  const std::string dir = testing::RecipePeerOutput({"init", "3"});
  ASSERT_FALSE(dir.empty());
  std::ifstream in(dir + "/stochastic_depth.txt");
  std::vector<std::string> names, modes;
  std::vector<double> probs;
  std::string name, mode;
  double p;
  while (in >> name >> p >> mode) {
    names.push_back(name);
    probs.push_back(p);
    modes.push_back(mode);
  }
  const NetworkSpec net = ScaleNetwork(QuickstartModel());
  ASSERT_EQ(net.blocks.size(), names.size());
  std::map<int, int> within_stage;
  for (size_t i = 0; i < net.blocks.size(); ++i) {
    const BlockSpec& b = net.blocks[i];
    const std::string ours = "features." + std::to_string(b.stage + 1) + "." + std::to_string(within_stage[b.stage]++);
    EXPECT_EQ(ours, names[i]);
    EXPECT_NEAR(b.stochastic_depth_prob, probs[i], 1e-9) << names[i];
    EXPECT_EQ(modes[i], "row") << names[i];  // what MBConvsDropWholeRows checks on our side
  }
}

// torchvision's "row" mode: each sample's residual branch is dropped whole with probability p
// (not the whole batch, not single elements), survivors scaled by 1/(1-p).
TEST(RecipeAgainstTorchvision, MBConvsDropWholeRowsWithTheBlocksProbability) {
  BlockSpec spec{};
  spec.stage = 4;
  spec.expand_ratio = 6;
  spec.kernel = 3;
  spec.stride = 1;
  spec.in_channels = spec.out_channels = 16;
  spec.expanded_channels = 96;
  spec.squeeze_channels = 4;
  spec.stochastic_depth_prob = 0.3;
  spec.residual = true;
  torch::manual_seed(5);
  MBConv block(spec, 1e-5, 0.1);
  block->train();
  const int64_t n = 400;
  torch::Tensor x = torch::randn({n, 16, 6, 6});
  torch::NoGradGuard no_grad;
  torch::Tensor branch = block->forward(x) - x;
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double zero_share = (branch[i].abs() < 1e-12).to(torch::kDouble).mean().item<double>();
    ASSERT_TRUE(zero_share == 1.0 || zero_share < 0.05) << "row " << i << " is " << zero_share << " zero";
    dropped += zero_share == 1.0;
  }
  const double share = static_cast<double>(dropped) / n;
  EXPECT_NEAR(share, 0.3, 5 * std::sqrt(0.3 * 0.7 / n)) << dropped << " of " << n << " rows dropped";
  block->eval();
  EXPECT_EQ((block->forward(x) - x).abs().min().item<double>() > 0, true) << "dropped in eval mode";
}

TEST(RecipeAgainstTorchvision, BceIsTheMeanOverRowsAndAll22ColumnsAsTorch) {
  const std::string dir = testing::RecipePeerOutput({"bce"});
  ASSERT_FALSE(dir.empty());
  std::map<std::string, std::vector<double>> peer;
  for (auto& [key, values] : testing::ReadPeerLines(dir + "/bce.txt")) peer[key] = values;
  auto tensor = [&](const std::string& key) {
    return torch::tensor(peer.at(key), torch::kDouble).to(torch::kFloat).reshape({16, 22});
  };
  torch::Tensor logits = tensor("logits").requires_grad_();
  torch::Tensor loss = BceWithLogitsLoss(logits, tensor("targets"), torch::Tensor());
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), peer.at("loss").at(0), 1e-6);
  EXPECT_LT((logits.grad() - tensor("grad")).abs().max().item<double>(), 1e-8);
}

}  // namespace
}  // namespace angiotrain
