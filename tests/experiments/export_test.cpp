// `angiotrain export`: the torch.save writer round-trips through our reader, and a trained
// phantom model exported to a state_dict loads into torchvision (strict) and gives angiotrain
// predict's logits (the PyTorch peer tests/experiments/export_peer.py, Debian's torchvision);
// through the same export, models/grad_cam.h equals the textbook Grad-CAM in PyTorch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/volume_file.h"
#include "experiments/training/checkpoint.h"
#include "models/grad_cam.h"
#include "models/efficientnet.h"
#include "models/torch_save_reader.h"
#include "models/torch_save_writer.h"
#include "tests/experiments/phantom_run.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::RunAngiotrain;
using testing::ScratchDir;

TEST(TorchSaveWriter, EveryDtypeShapeAndOrderReadsBackThroughTheReader) {
  ScratchDir dir;
  StateDict state = {
      {"z.float", torch::randn({3, 4}).t()},  // not contiguous: written as a contiguous copy
      {"a.double", torch::randn({2}, torch::kDouble)},
      {"scalar.long", torch::tensor(int64_t{5000000000})},
      {"int", torch::tensor({-70000, 1, 300}, torch::kInt)},
      {"short", torch::tensor({-3, 4}, torch::kShort)},
      {"char", torch::tensor({-3, 4}, torch::kChar)},
      {"byte", torch::tensor({250, 4}, torch::kByte)},
      {"bool", torch::tensor({true, false})},
      {"half", torch::randn({2, 2}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"empty", torch::zeros({0, 3})},
  };
  const std::string path = dir / "state.pt";
  WriteTorchStateDict(path, state);
  const StateDict back = ReadTorchStateDict(path);
  ASSERT_EQ(back.size(), state.size());
  for (size_t k = 0; k < state.size(); ++k) {
    EXPECT_EQ(back[k].first, state[k].first);
    EXPECT_EQ(back[k].second.scalar_type(), state[k].second.scalar_type()) << state[k].first;
    EXPECT_TRUE(back[k].second.sizes().equals(state[k].second.sizes())) << state[k].first;
    EXPECT_TRUE(torch::equal(back[k].second, state[k].second)) << state[k].first;
  }
}

TEST(TorchSaveWriter, ModuleStateDictUsesTorchvisionNamesAndOrder) {
  EfficientNetConfig c = EfficientNetConfig::ForVariant("b0");
  c.width_mult = c.depth_mult = 0.1;
  c.in_channels = 8;
  c.num_outputs = 22;
  EfficientNet model(c);
  const StateDict state = ModuleStateDict(*model);
  // torchvision's model.state_dict() starts and ends like this.
  ASSERT_GE(state.size(), 6u);
  EXPECT_EQ(state[0].first, "features.0.0.weight");
  EXPECT_EQ(state[1].first, "features.0.1.weight");
  EXPECT_EQ(state[3].first, "features.0.1.running_mean");
  EXPECT_EQ(state[5].first, "features.0.1.num_batches_tracked");
  EXPECT_EQ(state.back().first, "classifier.1.bias");
  EXPECT_EQ(state.size(), model->named_parameters().size() + model->named_buffers().size());
}

TEST(TorchSaveWriter, RefusesARepeatedName) {
  EXPECT_THROW(TorchSaveBytes({{"w", torch::ones(1)}, {"w", torch::ones(1)}}), Error);
}

// The promise: torchvision.models.efficientnet_bN() with the stem and the head replaced
// loads the export with strict=True and gives the logits of `angiotrain predict`.
TEST(ExportCommand, TorchvisionLoadsTheExportStrictlyAndGivesPredictsLogits) {
  ScratchDir dir;
  testing::PhantomRun run;
  testing::PhantomRunOptions options;
  options.patients = 12;
  options.epochs = 1;  // trained weights and BatchNorm statistics, not the initialisation
  testing::MakePhantomRun(dir, options, &run);
  const std::string model = dir / "model.pt";
  testing::CommandResult r = RunAngiotrain({"export", "--checkpoint", run.run + "/last.pt", "--out", model});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(testing::FileExists(model + ".json"));
  const auto description = nlohmann::json::parse(ReadFile(model + ".json"));
  EXPECT_EQ(description["stem"]["in_channels"], 8);
  EXPECT_EQ(description["head"]["out_features"], 22);
  EXPECT_EQ(description["head"]["columns"][0], "Aneurysm");
  EXPECT_EQ(description["head"]["columns"][21], "R_PCA");
  r = RunAngiotrain({"predict", "--checkpoint", run.run + "/last.pt", "--input", run.volume, "--template",
                     run.data + "/train_set/train.csv", "--out", dir / "predict.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::RunCommand({ANGIOTRAIN_PYTHON, std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/experiments/export_peer.py",
                           model, run.volume, dir / "predict.probabilities.csv"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("patients 12, columns 22"), std::string::npos) << r.output;
}

// models/grad_cam.h against the textbook Grad-CAM in PyTorch (a forward hook on torchvision's
// features[8], the default layer, and of earlier stages, the explain --layer option: features[5]
// at 1/16 and features[3] at 1/8 of the input) of the exported model: same coarse map and logit,
// for presence and a location.
TEST(GradCam, EqualsTheTorchvisionReferenceOnTheExportedModel) {
  ScratchDir dir;
  testing::PhantomRun run;
  testing::PhantomRunOptions options;
  options.patients = 12;
  options.resolution = 128;  // a 4x4 map at features.8, 8x8 at features.5, 16x16 at features.3
  testing::MakePhantomRun(dir, options, &run);
  const std::string model_path = dir / "model.pt";
  testing::CommandResult r = RunAngiotrain({"export", "--checkpoint", run.run + "/last.pt", "--out", model_path});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  LoadedCheckpoint checkpoint = LoadCheckpoint(run.run + "/last.pt");
  VolumeReader volume(run.volume, MPI_COMM_NULL);
  struct Case {
    int row, column, layer;  // volume row, logit column (presence, L_MCA), features block
  };
  std::vector<Case> cases;
  for (int row = 0; row < 12; ++row) cases.insert(cases.end(), {{row, 0, 8}, {row, 11, 8}});
  for (int row = 0; row < 6; ++row) cases.insert(cases.end(), {{row, 0, 5}, {row, 11, 5}, {row, 0, 3}, {row, 11, 3}});
  std::vector<std::string> argv = {ANGIOTRAIN_PYTHON, std::string(ANGIOTRAIN_SOURCE_DIR) + "/tests/experiments/export_peer.py",
                                   "gradcam", model_path, run.volume};
  for (const Case& c : cases)
    argv.push_back(std::to_string(c.row) + ":" + std::to_string(c.column) + ":" + std::to_string(c.layer));
  r = testing::RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto references = nlohmann::json::parse(r.output.substr(r.output.find('[')));
  ASSERT_EQ(references.size(), cases.size());
  std::map<int, int> nonzero;  // by layer: maps with something above 0 (an all-zero map would compare nothing)
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    std::vector<uint8_t> bytes;
    volume.ReadImages({c.row}, &bytes);
    const torch::Tensor x = torch::from_blob(bytes.data(), {1, 8, 128, 128}, torch::kUInt8).to(torch::kFloat) / 255.0;
    const GradCamResult ours = ComputeGradCam(checkpoint.model, x, c.column, c.layer);
    const auto& reference = references[k];
    EXPECT_NEAR(ours.logit, reference["logit"].get<double>(), 1e-5);
    const int side = c.layer == 8 ? 4 : c.layer == 5 ? 8 : 16, cell = 128 / side;
    ASSERT_EQ(ours.coarse.size(0), side) << "features." << c.layer;
    ASSERT_EQ(reference["coarse"].size(), static_cast<size_t>(side)) << "features." << c.layer;
    const double scale = std::max(1e-6, ours.coarse.max().item<double>());
    for (int i = 0; i < side; ++i)
      for (int j = 0; j < side; ++j)
        EXPECT_NEAR(ours.coarse[i][j].item<double>(), reference["coarse"][i][j].get<double>(), 1e-4 * scale)
            << "row " << c.row << " column " << c.column << " features." << c.layer << " cell " << i << "," << j;
    // The up-sampled map keeps the coarse map's peak cell.
    const int64_t peak = ours.map.argmax().item<int64_t>(), coarse_peak = ours.coarse.argmax().item<int64_t>();
    if (ours.coarse.max().item<double>() > 0) {
      ++nonzero[c.layer];
      EXPECT_EQ((peak / 128) / cell, coarse_peak / side);
      EXPECT_EQ((peak % 128) / cell, coarse_peak % side);
    }
  }
  EXPECT_GE(nonzero[8], 4);
  EXPECT_GE(nonzero[5], 2);
  EXPECT_GE(nonzero[3], 2);
}

TEST(ExportCommand, RefusesAnOutputOverTheCheckpointAndAMissingCheckpoint) {
  ScratchDir dir;
  testing::CommandResult r = RunAngiotrain({"export", "--checkpoint", dir / "none.pt", "--out", dir / "m.pt"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(dir / "none.pt"), std::string::npos) << r.output;
  WriteFileAtomically(dir / "c.pt", "not a checkpoint");
  r = RunAngiotrain({"export", "--checkpoint", dir / "c.pt", "--out", dir / "c.pt"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(ReadFile(dir / "c.pt"), "not a checkpoint");
}

}  // namespace
}  // namespace angiotrain
