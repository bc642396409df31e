// Torchvision weight import: reading torch.save files, adapting the stem to 8 channels,
// replacing the classifier, and naming every tensor that does not fit.
#include "models/weight_import.h"

#include <gtest/gtest.h>

#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "models/heads.h"
#include "models/torch_save_reader.h"
#include "tests/models/torchvision_peer.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

std::string B0Weights() {
  std::string dir = testing::TorchvisionPeerOutput("reference-b0", {"reference", "b0", "72", "2"});
  return dir.empty() ? "" : dir + "/weights.pt";
}

EfficientNetConfig EightChannelMultitaskB0() {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.in_channels = 8;
  c.num_outputs = TaskOutputs(Task::kMultitask);
  return c;
}

// The model's parameters and buffers by name, cloned.
std::map<std::string, torch::Tensor> Snapshot(EfficientNet& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : model->named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

std::string ImportError(EfficientNet& model, const std::string& path) {
  try {
    ImportTorchvisionWeights(model, path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ReadTorchStateDict, ReadsATorchvisionStateDictInOrderWithDtypes) {
  std::string path = B0Weights();
  ASSERT_FALSE(path.empty());
  StateDict sd = ReadTorchStateDict(path);
  EfficientNet model(EfficientNetConfig::ForVariant("b0"));
  EXPECT_EQ(sd.size(), model->named_parameters().size() + model->named_buffers().size());
  EXPECT_EQ(sd.front().first, "features.0.0.weight");
  EXPECT_EQ(sd.front().second.sizes(), torch::IntArrayRef({32, 3, 3, 3}));
  EXPECT_EQ(sd.back().first, "classifier.1.bias");
  std::map<std::string, torch::Tensor> by_name(sd.begin(), sd.end());
  EXPECT_EQ(by_name.at("features.0.1.num_batches_tracked").scalar_type(), torch::kLong);
  EXPECT_EQ(by_name.at("features.0.1.num_batches_tracked").item<int64_t>(), 7);
  EXPECT_EQ(by_name.at("features.0.1.running_var").scalar_type(), torch::kFloat);
}

TEST(ReadTorchStateDict, RejectsAFileThatIsNotAZipTorchSaveNamingIt) {
  testing::ScratchDir dir;
  WriteFileAtomically(dir / "notes.pt", "not a checkpoint\n");
  try {
    ReadTorchStateDict(dir / "notes.pt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "notes.pt"), std::string::npos) << e.what();
  }
}

TEST(ImportTorchvisionWeights, AdaptsTheStemAndKeepsTheTaskHeadForAnEightChannelModel) {
  std::string path = B0Weights();
  ASSERT_FALSE(path.empty());
  std::map<std::string, torch::Tensor> file;
  for (auto& [name, t] : ReadTorchStateDict(path)) file[name] = t;
  EfficientNet model(EightChannelMultitaskB0());
  std::map<std::string, torch::Tensor> before = Snapshot(model);

  ImportReport report = ImportTorchvisionWeights(model, path);

  EXPECT_TRUE(report.stem_adapted);
  EXPECT_TRUE(report.classifier_replaced);
  std::map<std::string, torch::Tensor> after = Snapshot(model);
  // Stem: RGB mean, repeated over the 8 channels, times 3/8.
  torch::Tensor rgb = file.at("features.0.0.weight");
  torch::Tensor stem = after.at("features.0.0.weight");
  ASSERT_EQ(stem.sizes(), torch::IntArrayRef({32, 8, 3, 3}));
  for (int c = 0; c < 8; ++c) {
    EXPECT_TRUE(torch::allclose(stem.select(1, c), rgb.mean(1) * (3.0 / 8.0), 1e-6, 1e-7)) << c;
  }
  // The classifier is the task head, untouched; everything else equals the file.
  EXPECT_TRUE(torch::equal(after.at("classifier.1.weight"), before.at("classifier.1.weight")));
  EXPECT_EQ(after.at("classifier.1.weight").sizes(), torch::IntArrayRef({22, 1280}));
  int equal = 0;
  for (const auto& [name, tensor] : after) {
    if (name == "features.0.0.weight" || name.rfind("classifier.", 0) == 0) continue;
    EXPECT_TRUE(torch::equal(tensor, file.at(name))) << name;
    ++equal;
  }
  EXPECT_EQ(report.copied, equal);
  EXPECT_EQ(equal, static_cast<int>(file.size()) - 3);
}

TEST(ImportTorchvisionWeights, AGreyImageGivesTheSameStemResponseAsInRgb) {
  std::string path = B0Weights();
  ASSERT_FALSE(path.empty());
  std::map<std::string, torch::Tensor> file;
  for (auto& [name, t] : ReadTorchStateDict(path)) file[name] = t;
  EfficientNet model(EightChannelMultitaskB0());
  ImportTorchvisionWeights(model, path);
  torch::Tensor grey = torch::rand({1, 1, 16, 16});
  torch::Tensor rgb_response = torch::conv2d(grey.repeat({1, 3, 1, 1}), file.at("features.0.0.weight"));
  torch::NoGradGuard no_grad;
  torch::Tensor ours = torch::conv2d(grey.repeat({1, 8, 1, 1}), model->features()->parameters()[0]);
  EXPECT_TRUE(torch::allclose(ours, rgb_response, 1e-4, 1e-5));
}

TEST(ImportTorchvisionWeights, NamesRenamedReshapedAndMissingTensorsAndLeavesTheModelUnchanged) {
  std::string dir = testing::TorchvisionPeerOutput("broken", {"broken"});
  ASSERT_FALSE(dir.empty());
  EfficientNet model(EightChannelMultitaskB0());
  std::map<std::string, torch::Tensor> before = Snapshot(model);

  std::string renamed = ImportError(model, dir + "/renamed.pt");
  EXPECT_NE(renamed.find("missing in the file: features.1.0.block.1.fc1.weight"), std::string::npos) << renamed;
  EXPECT_NE(renamed.find("unexpected in the file: features.1.0.block.9.weight"), std::string::npos) << renamed;
  EXPECT_NE(renamed.find(dir + "/renamed.pt"), std::string::npos) << renamed;

  std::string reshaped = ImportError(model, dir + "/reshaped.pt");
  EXPECT_NE(reshaped.find("shape mismatch: features.2.1.block.3.1.running_var (file [25], model [24])"),
            std::string::npos)
      << reshaped;

  std::string dropped = ImportError(model, dir + "/dropped.pt");
  EXPECT_NE(dropped.find("missing in the file: features.8.1.bias"), std::string::npos) << dropped;

  for (const auto& [name, tensor] : Snapshot(model)) EXPECT_TRUE(torch::equal(tensor, before.at(name))) << name;
}

TEST(ImportTorchvisionWeights, NamesTheMissingTensorsOfAnotherVariantAndCountsTheRest) {
  std::string path = B0Weights();
  ASSERT_FALSE(path.empty());
  EfficientNet b1(EfficientNetConfig::ForVariant("b1"));  // same widths, one more block per stage
  std::string message = ImportError(b1, path);
  EXPECT_NE(message.find("EfficientNet-b1"), std::string::npos) << message;
  EXPECT_NE(message.find("missing in the file: features.1.1.block.0.0.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("features.2.2.block.0.0.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("more)"), std::string::npos) << message;  // long lists are cut, with a count
}

TEST(InitializeModel, AcceptsRandomAndTorchvisionSpecsOnly) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.width_mult = 0.25;
  EfficientNet model(c);
  EXPECT_EQ(InitializeModel(model, "random").copied, 0);
  EXPECT_EQ(InitializeModel(model, "").copied, 0);
  EXPECT_THROW(InitializeModel(model, "imagenet"), Error);
  EXPECT_THROW(InitializeModel(model, "torchvision:"), Error);
  EXPECT_THROW(InitializeModel(model, "torchvision:/nonexistent/weights.pt"), Error);
}

}  // namespace
}  // namespace angiotrain
