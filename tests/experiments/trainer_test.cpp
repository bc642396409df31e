// The trainer through the real binary: data-parallel equivalence (2 ranks x b == 1 rank x 2b),
// a killed rank ends the job and the run resumes bit-exactly, the NaN guard, config errors, and
// predict writing the template's rows. Tiny models (width 0.1, depth 0.1) on 32 px volumes.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>

#include "core/csv.h"
#include "core/error.h"
#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "experiments/submission.h"
#include "experiments/train_config.h"
#include "experiments/trainer.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::RunAngiotrain;
using testing::ScratchDir;

constexpr int kResolution = 32;

// A labelled volume of `patients` patients: noise images, with a bright square in view 0 at a
// place that depends on the first location for positives (so there is something to learn).
std::string WriteVolume(const std::string& path, int patients, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  const int R = kResolution;
  std::vector<uint8_t> images(static_cast<size_t>(patients) * kNumViews * R * R);
  std::vector<int32_t> index(patients);
  std::vector<uint8_t> aneurysm(patients), locations(static_cast<size_t>(patients) * kNumLocations);
  for (auto& v : images) v = static_cast<uint8_t>(rng() % 120);
  for (int p = 0; p < patients; ++p) {
    index[p] = 1000 + p;
    aneurysm[p] = p % 2;
    if (!aneurysm[p]) continue;
    int loc = static_cast<int>(rng() % kNumLocations);
    locations[static_cast<size_t>(p) * kNumLocations + loc] = 1;
    int y = (loc / 5) * 6 + 2, x = (loc % 5) * 6 + 2;
    for (int dy = 0; dy < 4; ++dy)
      for (int dx = 0; dx < 4; ++dx) images[(static_cast<size_t>(p) * kNumViews * R + y + dy) * R + x + dx] = 250;
  }
  VolumeProvenance provenance;
  provenance.source = "trainer_test";
  VolumeWriter writer(path, MPI_COMM_SELF, patients, R, true, provenance);
  writer.WriteRows(0, images, index, aneurysm, locations);
  writer.Commit(patients, 0);
  return path;
}

// A config file for a tiny model; `extra` is appended (TOML).
std::string WriteConfig(const ScratchDir& dir, const std::string& volume, const std::string& extra = "") {
  std::string path = dir / "config.toml";
  std::ofstream out(path);
  out << "[data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\nsplit_seed = 3\n"
      << "[model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\ntask = \"multitask\"\n"
      << "[train]\nepochs = 2\nbatch_size = 2\nlr = 1e-3\nseed = 5\n"
      << "[output]\ndir = \"" << (dir / "run") << "\"\n"
      << extra;
  return path;
}

void ExpectSucceeded(const testing::CommandResult& r) { ASSERT_EQ(r.exit_code, 0) << r.output; }

std::vector<std::pair<std::string, torch::Tensor>> State(const LoadedCheckpoint& c) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : c.model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : c.model->named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

TEST(TrainConfig, UnknownKeyInFileNamesFileAndKey) {
  try {
    ParseTrainConfig("[train]\nepochz = 3\n", "my.toml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my.toml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("train.epochz"), std::string::npos) << e.what();
  }
}

TEST(TrainConfig, WrongTypeNamesKey) {
  try {
    ParseTrainConfig("[train]\nepochs = \"ten\"\n", "my.toml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.epochs"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("integer"), std::string::npos) << e.what();
  }
}

TEST(TrainConfig, OverridesAreTypedBySchemaAndUnknownOnesRejected) {
  TrainConfig c = ParseTrainConfig("[train]\nlr = 0.5\n", "x.toml");
  ApplyOverride(c, "train.lr=2e-3");
  ApplyOverride(c, "train.epochs=4");
  ApplyOverride(c, "model.task=presence");
  ApplyOverride(c, "train.sync_batchnorm=true");
  EXPECT_DOUBLE_EQ(c.train.lr, 2e-3);
  EXPECT_EQ(c.train.epochs, 4);
  EXPECT_EQ(c.model.task, "presence");
  EXPECT_TRUE(c.train.sync_batchnorm);
  EXPECT_THROW(ApplyOverride(c, "train.epochs=four"), Error);
  try {
    ApplyOverride(c, "train.nonsense=1");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.nonsense"), std::string::npos) << e.what();
  }
}

TEST(TrainConfig, CanonicalTextRoundTripsAndHashIgnoresMechanics) {
  TrainConfig c;
  c.data.volume = "v.h5";
  c.train.lr = 0.1;  // not exactly representable: must survive the round trip
  c.model.task = "location";
  TrainConfig back = ParseTrainConfig(CanonicalText(c), "canonical");
  EXPECT_EQ(CanonicalText(back), CanonicalText(c));
  EXPECT_EQ(ConfigHash(back), ConfigHash(c));
  TrainConfig mechanics = c;
  mechanics.train.threads = 3;
  mechanics.output.checkpoint_every_steps = 7;
  EXPECT_EQ(ConfigHash(mechanics), ConfigHash(c));
  TrainConfig other = c;
  other.train.lr = 0.2;
  EXPECT_NE(ConfigHash(other), ConfigHash(c));
}

TEST(TrainConfig, ValidationNamesTheKey) {
  TrainConfig c;
  c.data.volume = "v.h5";
  c.train.schedule = "linear";
  try {
    ValidateTrainConfig(c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.schedule"), std::string::npos) << e.what();
  }
}

TEST(TrainConfig, PrecisionIsCheckedAndTakesPartInTheHash) {
  TrainConfig c;
  c.data.volume = "v.h5";
  TrainConfig bf16 = c;
  ApplyOverride(bf16, "train.precision=bf16");
  EXPECT_EQ(bf16.train.precision, "bf16");
  ValidateTrainConfig(bf16);
  EXPECT_NE(ConfigHash(bf16), ConfigHash(c));  // a resume may not switch precision
  ApplyOverride(c, "train.precision=half");
  try {
    ValidateTrainConfig(c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'half' is not one of auto, fp32, bf16, fp16"), std::string::npos)
        << e.what();
  }
}

TEST(StratifiedSplit, HoldsOutTheFractionOfEachClassDeterministically) {
  std::vector<uint8_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i < 40 ? 1 : 0);
  auto a = StratifiedSplit(labels, 0.3, 9);
  auto b = StratifiedSplit(labels, 0.3, 9);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.validation.size(), 30u);
  int positives = 0;
  for (auto r : a.validation) positives += labels[r];
  EXPECT_EQ(positives, 12);  // 30% of 40
  EXPECT_EQ(a.train.size() + a.validation.size(), 100u);
  EXPECT_NE(StratifiedSplit(labels, 0.3, 10).validation, a.validation);
}

TEST(LearningRate, CosineWithWarmupRisesThenDecaysToZero) {
  TrainConfig c;
  c.train.lr = 1.0;
  c.train.epochs = 10;
  c.train.schedule = "cosine";
  c.train.warmup_epochs = 1;
  EXPECT_DOUBLE_EQ(LearningRateAt(c, 0, 10), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateAt(c, 9, 10), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(c, 10, 10), 1.0);
  EXPECT_NEAR(LearningRateAt(c, 55, 10), 0.5, 1e-12);
  EXPECT_LT(LearningRateAt(c, 99, 10), 0.001);
  c.train.schedule = "constant";
  EXPECT_DOUBLE_EQ(LearningRateAt(c, 55, 10), 1.0);
}

TEST(TrainCommand, UnknownConfigKeyFailsNamingFileAndKey) {
  ScratchDir dir;
  auto config = WriteConfig(dir, dir / "none.h5", "[train]\n");  // duplicate table: TOML error
  auto r = RunAngiotrain({"train", "--config", config});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(config), std::string::npos) << r.output;
  auto config2 = WriteConfig(dir, dir / "none.h5");
  r = RunAngiotrain({"train", "--config", config2, "--set", "model.colour=red"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("model.colour"), std::string::npos) << r.output;
}

// 2 ranks with batch b reach the same weights as 1 rank with batch 2b (BatchNorm frozen, no
// dropout: then the averaged gradient is exactly the global batch's).
TEST(TrainCommand, TwoRanksMatchOneRankWithTwiceTheBatch) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 20);
  auto config = WriteConfig(dir, volume,
                            "");
  const std::vector<std::string> common = {
      "--set", "data.validation_split=0", "--set", "train.epochs=1", "--set", "train.batchnorm=eval",
      "--set", "model.dropout=0", "--set", "model.stochastic_depth=0", "--set", "train.optimizer=sgd",
      "--set", "train.lr=0.05"};
  auto args = [&](const std::string& out, int batch) {
    std::vector<std::string> a = {"train", "--config", config, "--set", "output.dir=" + out, "--set",
                                  "train.batch_size=" + std::to_string(batch)};
    a.insert(a.end(), common.begin(), common.end());
    return a;
  };
  ExpectSucceeded(RunAngiotrain(args(dir / "one", 4), 0));
  ExpectSucceeded(RunAngiotrain(args(dir / "two", 2), 2));
  auto one = LoadCheckpoint(dir / "one/last.pt");
  auto two = LoadCheckpoint(dir / "two/last.pt");
  EXPECT_EQ(one.global_step, 5);  // 20 rows / 4 per step
  EXPECT_EQ(two.global_step, 5);

  TrainConfig initial_config = one.config;
  torch::manual_seed(static_cast<uint64_t>(initial_config.train.seed));
  EfficientNet initial = BuildModel(initial_config, kResolution);
  auto initial_params = initial->named_parameters();

  auto a = State(one), b = State(two);
  ASSERT_EQ(a.size(), b.size());
  double moved = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    const auto& x = a[i].second;
    const auto& y = b[i].second;
    if (!x.is_floating_point()) continue;
    double diff = (x - y).norm().item<double>(), scale = x.norm().item<double>();
    EXPECT_LE(diff, 1e-5 * scale + 1e-12) << a[i].first;
    if (initial_params.contains(a[i].first))
      moved = std::max(moved, (x - initial_params[a[i].first]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-4);  // training did change the weights
}

// A rank killed mid-epoch ends the job within 60 s, the last checkpoint stays intact, and the
// resumed run ends with the uninterrupted run's weights, bit for bit.
TEST(TrainCommand, KilledRankEndsJobAndResumeIsBitExact) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 24);
  auto config = WriteConfig(dir, volume, "");
  // 18 training rows, 2 ranks x 2 -> 4 full steps per epoch, 2 epochs; checkpoints every 2 steps.
  std::vector<std::string> base = {"train", "--config", config, "--set", "output.checkpoint_every_steps=2"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  ExpectSucceeded(RunAngiotrain(with({"--set", "output.dir=" + (dir / "straight")}), 2));

  const auto start = std::chrono::steady_clock::now();
  auto killed = RunAngiotrain(with({"--set", "output.dir=" + (dir / "broken"), "--set", "train.fail_at_step=7"}), 2,
                              120);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_LT(seconds, 60.0);
  auto partial = LoadCheckpoint(dir / "broken/last.pt");  // intact and loadable
  EXPECT_EQ(partial.global_step, 6);                       // the checkpoint before step 7
  EXPECT_EQ(partial.epoch, 1);
  EXPECT_EQ(partial.step, 2);

  ExpectSucceeded(RunAngiotrain(with({"--set", "output.dir=" + (dir / "broken"), "--resume"}), 2));
  auto straight = LoadCheckpoint(dir / "straight/last.pt");
  auto resumed = LoadCheckpoint(dir / "broken/last.pt");
  EXPECT_EQ(resumed.global_step, 8);
  auto a = State(straight), b = State(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

TEST(TrainCommand, ResumeWithADifferentConfigNamesBothHashes) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 12);
  auto config = WriteConfig(dir, volume, "");
  ExpectSucceeded(RunAngiotrain({"train", "--config", config, "--set", "train.epochs=1"}));
  auto r = RunAngiotrain({"train", "--config", config, "--set", "train.epochs=1", "--set", "train.lr=0.5", "--resume"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("config hash"), std::string::npos) << r.output;
}

TEST(TrainCommand, NonFiniteLossStopsEveryRankWithAClearMessage) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 16);
  auto config = WriteConfig(dir, volume, "");
  auto r = RunAngiotrain({"train", "--config", config, "--set", "train.nan_at_step=2"}, 2, 120);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("non-finite training loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("global step 2"), std::string::npos) << r.output;
}

TEST(PredictCommand, WritesTheTemplateRowsInOrderWithProbabilities) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 12);
  auto config = WriteConfig(dir, volume, "");
  ExpectSucceeded(RunAngiotrain({"train", "--config", config, "--set", "train.epochs=1"}));
  // Template: a subset of the patients, in an order that is not the volume's.
  std::string header = "Index,Aneurysm";
  for (const auto& n : LocationNames()) header += "," + n;
  std::string zeros;
  for (int k = 0; k < kNumLocations; ++k) zeros += ",0";
  std::ofstream(dir / "test.csv") << header << "\n1005,0" << zeros << "\n1001,0" << zeros << "\n1010,0" << zeros
                                  << "\n";
  auto r = RunAngiotrain({"predict", "--checkpoint", dir / "run/last.pt", "--input", volume, "--template",
                          dir / "test.csv", "--out", dir / "output.csv"},
                         2);
  ExpectSucceeded(r);
  auto rows = ReadSubmission(dir / "output.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].index, 1005);
  EXPECT_EQ(rows[1].index, 1001);
  EXPECT_EQ(rows[2].index, 1010);
  for (const auto& row : rows) {
    EXPECT_GE(row.aneurysm, 0.0);
    EXPECT_LE(row.aneurysm, 1.0);
  }
  auto probabilities = ReadProbabilities(ProbabilitiesPathFor(dir / "output.csv"));
  EXPECT_EQ(probabilities.size(), 3u);
}

}  // namespace
}  // namespace angiotrain
