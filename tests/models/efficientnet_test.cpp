// EfficientNet: scaling rules, parity with torchvision (parameter counts of B0-B7, eval logits
// of B0 and B2), gradients, stochastic depth, channels-last inputs, save/load.
#include "models/efficientnet.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "models/torch_save_reader.h"
#include "models/weight_import.h"
#include "tests/models/torchvision_peer.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

// A small model for behaviour tests: every stage kept, one block each, narrow.
EfficientNetConfig TinyConfig(int in_channels, int outputs) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.variant = "custom";
  c.width_mult = 0.25;
  c.depth_mult = 0.5;
  c.in_channels = in_channels;
  c.num_outputs = outputs;
  return c;
}

// max |a - b| relative to max |b|: the tolerance measure of the parity tests.
double RelativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

TEST(AdjustChannels, RoundsToTheNearestMultipleOfEightLikeTorchvision) {
  EXPECT_EQ(AdjustChannels(32, 1.0), 32);
  EXPECT_EQ(AdjustChannels(32, 1.1), 32);    // 35.2 -> 32 (within 10%)
  EXPECT_EQ(AdjustChannels(112, 1.4), 160);  // 156.8 -> 160
  EXPECT_EQ(AdjustChannels(192, 1.6), 304);  // 307.2 -> 304
  EXPECT_EQ(AdjustChannels(320, 1.8), 576);
  EXPECT_EQ(AdjustChannels(16, 0.25), 8);    // never below 8
  EXPECT_EQ(AdjustChannels(10, 1.0), 16);    // 8 would lose 20%: one more step
  EXPECT_EQ(AdjustChannels(24, 6), 144);     // expansion of MBConv6
}

TEST(AdjustDepth, RoundsUp) {
  EXPECT_EQ(AdjustDepth(2, 1.1), 3);
  EXPECT_EQ(AdjustDepth(1, 3.1), 4);
  EXPECT_EQ(AdjustDepth(4, 1.0), 4);
  EXPECT_EQ(AdjustDepth(3, 1.8), 6);  // 5.4
}

TEST(EfficientNetConfig, ForVariantReadsTheScalingTable) {
  EfficientNetConfig b5 = EfficientNetConfig::ForVariant("B5");
  EXPECT_EQ(b5.variant, "b5");
  EXPECT_DOUBLE_EQ(b5.width_mult, 1.6);
  EXPECT_DOUBLE_EQ(b5.depth_mult, 2.2);
  EXPECT_EQ(b5.resolution, 456);
  EXPECT_DOUBLE_EQ(b5.dropout, 0.4);
  EXPECT_DOUBLE_EQ(b5.bn_eps, 1e-3);  // torchvision's B5-B7 batch norm
  EXPECT_DOUBLE_EQ(EfficientNetConfig::ForVariant("b4").bn_eps, 1e-5);
}

TEST(EfficientNetConfig, ForVariantRejectsUnknownNamesAndListsTheValidOnes) {
  try {
    EfficientNetConfig::ForVariant("b8");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'b8'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("b0, b1"), std::string::npos) << e.what();
  }
}

TEST(EfficientNet, B0HeadAndStemFollowTheStageTable) {
  NetworkSpec net = ScaleNetwork(EfficientNetConfig::ForVariant("b0"));
  EXPECT_EQ(net.stem_channels, 32);
  EXPECT_EQ(net.blocks.size(), 16u);
  EXPECT_EQ(net.head_channels, 1280);
}

TEST(EfficientNet, ParameterCountsEqualTorchvisionForAllEightVariants) {
  std::string dir = testing::TorchvisionPeerOutput("counts", {"counts"});
  ASSERT_FALSE(dir.empty());
  std::ifstream in(dir + "/counts.txt");
  std::map<std::string, int64_t> expected;
  std::string name;
  int64_t count = 0;
  while (in >> name >> count) expected[name] = count;
  ASSERT_EQ(expected.size(), 8u);
  for (const VariantSpec& v : Variants()) {
    EfficientNetConfig c = EfficientNetConfig::ForVariant(v.name);
    c.in_channels = 3;
    c.num_outputs = 1000;
    EfficientNet model(c);
    EXPECT_EQ(CountParameters(*model), expected.at(v.name)) << v.name;
  }
}

// Loads the peer's random weights into our model of the same variant and compares eval logits.
void ExpectEvalLogitsEqualTorchvision(const std::string& variant) {
  std::string dir = testing::TorchvisionPeerOutput("reference-" + variant, {"reference", variant, "72", "2"});
  ASSERT_FALSE(dir.empty());
  EfficientNetConfig c = EfficientNetConfig::ForVariant(variant);
  c.in_channels = 3;
  c.num_outputs = 1000;
  EfficientNet model(c);
  ImportReport report = ImportTorchvisionWeights(model, dir + "/weights.pt");
  EXPECT_FALSE(report.stem_adapted);
  EXPECT_FALSE(report.classifier_replaced);
  StateDict io = ReadTorchStateDict(dir + "/io.pt");
  ASSERT_EQ(io.size(), 2u);
  ASSERT_EQ(io[0].first, "input");
  ASSERT_EQ(io[1].first, "logits");
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->forward(io[0].second);
  ASSERT_EQ(logits.sizes(), io[1].second.sizes());
  const double error = RelativeError(logits, io[1].second);
  EXPECT_LE(error, 1e-4);
  std::printf("%s: max |ours - torchvision| / max |torchvision| = %.2e\n", variant.c_str(), error);
}

TEST(EfficientNet, B0EvalLogitsEqualTorchvisionWithTheSameWeights) { ExpectEvalLogitsEqualTorchvision("b0"); }

// B2 exercises both multipliers (width 1.1 with its rounding, depth 1.2).
TEST(EfficientNet, B2EvalLogitsEqualTorchvisionWithTheSameWeights) { ExpectEvalLogitsEqualTorchvision("b2"); }

TEST(EfficientNet, ForwardRejectsTheWrongChannelCount) {
  EfficientNet model(TinyConfig(8, 22));
  EXPECT_THROW(model->forward(torch::zeros({1, 3, 32, 32})), Error);
}

TEST(EfficientNet, EveryParameterReceivesAGradient) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.in_channels = 8;
  c.num_outputs = 22;
  c.stochastic_depth_prob = 0.0;  // a dropped branch would legitimately get a zero gradient
  c.dropout = 0.0;
  EfficientNet model(c);
  model->train();
  torch::manual_seed(3);
  torch::Tensor loss = model->forward(torch::rand({2, 8, 64, 64})).pow(2).mean();
  loss.backward();
  int checked = 0;
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(model->parameters().size()));
  EXPECT_GT(checked, 200);
}

TEST(EfficientNet, StochasticDepthGrowsLinearlyToTheConfiguredProbability) {
  EfficientNet model(EfficientNetConfig::ForVariant("b0"));
  std::vector<double> probs;
  for (const auto& m : model->modules(false)) {
    if (auto* block = m->as<MBConv>()) probs.push_back(block->spec().stochastic_depth_prob);
  }
  ASSERT_EQ(probs.size(), 16u);
  for (size_t i = 0; i < probs.size(); ++i) EXPECT_DOUBLE_EQ(probs[i], 0.2 * i / 16.0) << i;
}

TEST(EfficientNet, StochasticDepthMakesTrainingForwardsRandomAndEvalDeterministic) {
  EfficientNetConfig c = TinyConfig(3, 4);
  c.dropout = 0.0;
  c.stochastic_depth_prob = 0.9;
  EfficientNet model(c);
  torch::Tensor x = torch::rand({4, 3, 64, 64});
  torch::NoGradGuard no_grad;
  model->train();  // batch statistics only depend on x: any difference is stochastic depth
  bool differ = false;
  torch::Tensor first = model->forward(x);
  for (int k = 0; k < 5 && !differ; ++k) differ = !torch::equal(first, model->forward(x));
  EXPECT_TRUE(differ);
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));

  c.stochastic_depth_prob = 0.0;
  EfficientNet plain(c);
  plain->train();
  EXPECT_TRUE(torch::allclose(plain->forward(x), plain->forward(x)));
}

TEST(EfficientNet, ChannelsLastInputsAndWeightsGiveTheSameLogits) {
  EfficientNet model(TinyConfig(8, 22));
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::rand({2, 8, 64, 64});
  torch::Tensor reference = model->forward(x);
  torch::Tensor x_nhwc = x.contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_LE(RelativeError(model->forward(x_nhwc), reference), 1e-5);
  ToChannelsLast(*model);
  EXPECT_TRUE(model->features()->parameters()[0].is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_LE(RelativeError(model->forward(x_nhwc), reference), 1e-5);
}

TEST(EfficientNet, SaveAndLoadRestoreTheWholeState) {
  testing::ScratchDir dir;
  EfficientNet model(TinyConfig(8, 1));
  {
    torch::NoGradGuard no_grad;  // give the batch-norm buffers non-default values
    for (auto& b : model->buffers()) {
      if (b.is_floating_point()) {
        b.add_(0.5);
      } else {
        b.add_(3);  // num_batches_tracked
      }
    }
  }
  torch::save(model, dir / "model.pt");
  EfficientNet restored(TinyConfig(8, 1));
  torch::load(restored, dir / "model.pt");
  model->eval();
  restored->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::rand({1, 8, 32, 32});
  EXPECT_TRUE(torch::equal(model->forward(x), restored->forward(x)));
}

}  // namespace
}  // namespace angiotrain
