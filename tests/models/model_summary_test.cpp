// Stage table and multiply-add count: against Table 1 of the paper, a forward pass, and a hand
// count for a tiny model.
#include "models/model_summary.h"

#include <gtest/gtest.h>

#include <tuple>

namespace angiotrain {
namespace {

TEST(StageTable, B0At224IsTable1OfThePaper) {
  std::vector<StageRow> rows = StageTable(EfficientNetConfig::ForVariant("b0"), 224);
  struct Expected {
    const char* op;
    int resolution, channels, layers;
  };
  const Expected table1[] = {{"Conv3x3", 224, 32, 1},       {"MBConv1, k3x3", 112, 16, 1},
                             {"MBConv6, k3x3", 112, 24, 2}, {"MBConv6, k5x5", 56, 40, 2},
                             {"MBConv6, k3x3", 28, 80, 3},  {"MBConv6, k5x5", 14, 112, 3},
                             {"MBConv6, k5x5", 14, 192, 4}, {"MBConv6, k3x3", 7, 320, 1},
                             {"Conv1x1 & Pooling & FC", 7, 1280, 1}};
  ASSERT_EQ(rows.size(), 9u);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(rows[i].stage, i + 1);
    EXPECT_EQ(rows[i].op, table1[i].op) << i;
    EXPECT_EQ(rows[i].resolution, table1[i].resolution) << i;
    EXPECT_EQ(rows[i].channels, table1[i].channels) << i;
    EXPECT_EQ(rows[i].layers, table1[i].layers) << i;
  }
  std::string text = FormatStageTable(rows);
  EXPECT_NE(text.find("MBConv6, k5x5"), std::string::npos);
  EXPECT_NE(text.find("112x112"), std::string::npos);
}

TEST(StageTable, ResolutionsAreTheFeatureMapSidesOfAForwardPass) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b3");
  c.width_mult = 0.25;  // shapes of the maps do not depend on width
  c.in_channels = 8;
  EfficientNet model(c);
  model->eval();
  torch::NoGradGuard no_grad;
  const int side = 101;  // odd sides exercise the rounding of stride-2 convolutions
  std::vector<StageRow> rows = StageTable(c, side);
  torch::Tensor x = torch::rand({1, 8, side, side});
  ASSERT_EQ(rows.size(), model->features()->size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(x.size(2), rows[i].resolution) << "stage " << rows[i].stage;
    x = model->features()[i]->as<LayerSequence>()->forward(x);
    EXPECT_EQ(x.size(1), rows[i].channels) << "stage " << rows[i].stage;
  }
}

TEST(CountMultiplyAdds, EqualsAHandCountForATinyModel) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.width_mult = 0.25;  // channels 8 | 8 8 16 24 32 48 80 | head 320
  c.depth_mult = 0.25;  // one block per stage
  c.in_channels = 1;
  c.num_outputs = 2;
  // 32x32 input; the stem halves it to 16. Per block: expand (1x1) at the input side,
  // depthwise k x k at the output side, squeeze and excite (1x1 on 1x1), project (1x1).
  int64_t expected = 16 * 16 * 8 * 1 * 9;                                        // stem 1->8
  expected += 16 * 16 * 8 * 9 + (8 * 2 + 2 * 8) + 16 * 16 * 8 * 8;                // MBConv1 k3 8->8
  expected += 16 * 16 * 48 * 8 + 8 * 8 * 48 * 9 + 2 * 48 * 2 + 8 * 8 * 8 * 48;    // k3 s2 8->8, 16->8
  expected += 8 * 8 * 48 * 8 + 4 * 4 * 48 * 25 + 2 * 48 * 2 + 4 * 4 * 16 * 48;    // k5 s2 8->16, 8->4
  expected += 4 * 4 * 96 * 16 + 2 * 2 * 96 * 9 + 2 * 96 * 4 + 2 * 2 * 24 * 96;   // k3 s2 16->24, 4->2
  expected += 2 * 2 * 144 * 24 + 2 * 2 * 144 * 25 + 2 * 144 * 6 + 2 * 2 * 32 * 144;  // k5 s1 24->32
  expected += 2 * 2 * 192 * 32 + 1 * 1 * 192 * 25 + 2 * 192 * 8 + 1 * 1 * 48 * 192;  // k5 s2 32->48, 2->1
  expected += 288 * 48 + 288 * 9 + 2 * 288 * 12 + 80 * 288;                      // k3 s1 48->80 at 1x1
  expected += 320 * 80 + 320 * 2;                                                // head conv, classifier
  EXPECT_EQ(CountMultiplyAdds(c, 32), expected);
}

// torchvision's model documentation lists "GFLOPS" 0.39 (B0 at 224), 0.69 (B1 at 240) and 4.39
// (B4 at 380); those figures count multiply-adds of convolutions and linear layers, as here.
TEST(CountMultiplyAdds, RoundToTorchvisionsPublishedFigures) {
  const std::tuple<const char*, int, double> published[] = {{"b0", 224, 0.39}, {"b1", 240, 0.69}, {"b4", 380, 4.39}};
  for (const auto& [variant, side, gmacs] : published) {
    int64_t macs = CountMultiplyAdds(EfficientNetConfig::ForVariant(variant), side);
    EXPECT_NEAR(static_cast<double>(macs) / 1e9, gmacs, 0.005) << variant << " " << macs;
  }
}

}  // namespace
}  // namespace angiotrain
