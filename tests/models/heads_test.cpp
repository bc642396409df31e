// Task heads: output widths, column layout, and the BCE-with-logits loss.
#include "models/heads.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "datasets/kium_schema.h"
#include "models/efficientnet.h"

namespace angiotrain {
namespace {

EfficientNet TinyModel(Task task) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.width_mult = 0.25;
  c.depth_mult = 0.25;
  c.in_channels = 8;
  c.num_outputs = TaskOutputs(task);
  return EfficientNet(c);
}

TEST(Heads, LocationLogitsFollowTheSchemasLocationList) {
  static_assert(kLocationLogits == kNumLocations, "one logit per K-ium location");
  EXPECT_EQ(TaskOutputs(Task::kLocation), static_cast<int>(LocationNames().size()));
}

TEST(Heads, PresenceLocationAndMultitaskModelsOutputOneTwentyOneAndTwentyTwoLogits) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::rand({3, 8, 64, 64});
  const std::pair<Task, int64_t> cases[] = {{Task::kPresence, 1}, {Task::kLocation, 21}, {Task::kMultitask, 22}};
  for (const auto& [task, width] : cases) {
    EfficientNet model = TinyModel(task);
    model->eval();
    torch::Tensor logits = model->forward(x);
    EXPECT_EQ(logits.sizes(), torch::IntArrayRef({3, width})) << TaskName(task);
    if (HasPresence(task)) {
      EXPECT_EQ(PresenceColumn(logits, task).sizes(), torch::IntArrayRef({3}));
    }
    if (HasLocations(task)) {
      EXPECT_EQ(LocationColumns(logits, task).sizes(), torch::IntArrayRef({3, 21}));
    }
  }
}

TEST(Heads, MultitaskColumnsArePresenceThenTheLocationsInCsvOrder) {
  torch::Tensor logits = torch::arange(2 * 22, torch::kFloat).reshape({2, 22});
  EXPECT_TRUE(torch::equal(PresenceColumn(logits, Task::kMultitask), torch::tensor({0.0f, 22.0f})));
  torch::Tensor locations = LocationColumns(logits, Task::kMultitask);
  EXPECT_EQ(locations[0][0].item<float>(), 1.0f);
  EXPECT_EQ(locations[1][20].item<float>(), 43.0f);
}

TEST(Heads, ColumnAccessorsRejectATaskWithoutThatOutputOrAWrongWidth) {
  EXPECT_THROW(PresenceColumn(torch::zeros({2, 21}), Task::kLocation), Error);
  EXPECT_THROW(LocationColumns(torch::zeros({2, 1}), Task::kPresence), Error);
  EXPECT_THROW(LocationColumns(torch::zeros({2, 21}), Task::kMultitask), Error);
}

TEST(Heads, ParseTaskAcceptsTheThreeNamesOnly) {
  EXPECT_EQ(ParseTask("presence"), Task::kPresence);
  EXPECT_EQ(ParseTask("location"), Task::kLocation);
  EXPECT_EQ(ParseTask("multitask"), Task::kMultitask);
  EXPECT_EQ(TaskName(ParseTask("multitask")), "multitask");
  EXPECT_THROW(ParseTask("segmentation"), Error);
}

TEST(Loss, BceWithLogitsEqualsTheDefinitionWithPositiveWeights) {
  torch::Tensor logits = torch::tensor({{0.5f, -1.0f, 2.0f}, {-0.3f, 0.0f, 4.0f}});
  torch::Tensor targets = torch::tensor({{1.0f, 0.0f, 1.0f}, {0.0f, 1.0f, 0.0f}});
  torch::Tensor pos_weight = torch::tensor({1.0f, 3.0f, 10.0f});
  torch::Tensor p = torch::sigmoid(logits);
  torch::Tensor expected = -(pos_weight * targets * torch::log(p) + (1 - targets) * torch::log(1 - p)).mean();
  EXPECT_NEAR(BceWithLogitsLoss(logits, targets, pos_weight).item<double>(), expected.item<double>(), 1e-6);
  torch::Tensor unweighted = -(targets * torch::log(p) + (1 - targets) * torch::log(1 - p)).mean();
  EXPECT_NEAR(BceWithLogitsLoss(logits, targets).item<double>(), unweighted.item<double>(), 1e-6);
}

TEST(Loss, RejectsMismatchedShapes) {
  EXPECT_THROW(BceWithLogitsLoss(torch::zeros({2, 22}), torch::zeros({2, 21})), Error);
  EXPECT_THROW(BceWithLogitsLoss(torch::zeros({2, 22}), torch::zeros({2, 22}), torch::ones({21})), Error);
}

}  // namespace
}  // namespace angiotrain
