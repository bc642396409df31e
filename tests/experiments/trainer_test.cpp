// The trainer through the real binary: data-parallel equivalence (2 ranks x b == 1 rank x 2b),
// a killed rank ends the job and the run resumes bit-exactly, the NaN guard, config errors, and
// predict writing the template's rows. Tiny models (width 0.1, depth 0.1) on 32 px volumes.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include "core/csv.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "experiments/evaluation/submission.h"
#include "experiments/training/train_config.h"
#include "experiments/training/checkpoint.h"
#include "experiments/training/data_split.h"
#include "experiments/training/optimization.h"
#include "experiments/training/task_model.h"
#include "experiments/training/trainer.h"
#include "tests/support/test_support.h"
#include "tests/support/test_volume.h"

namespace angiotrain {
namespace {

using testing::RunAngiotrain;
using testing::ScratchDir;

constexpr int kResolution = 32;

std::string WriteVolume(const std::string& path, int patients, uint32_t seed = 7) {
  return testing::WriteTestVolume(path, patients, seed);
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

// The stratified k-fold partition on odd counts: every row in exactly one fold, each fold's count
// of each class and its size within one of the others', the same for a seed and another for
// another seed; too many folds for a class is refused naming data.folds.
TEST(StratifiedFolds, PartitionEveryRowOnceWithBalancedClassesBySeed) {
  for (const auto& [rows, positives] : {std::pair<int, int>{23, 9}, {31, 16}, {17, 5}}) {
    std::vector<uint8_t> labels(rows, 0);
    for (int i = 0; i < positives; ++i) labels[(i * 7) % rows] = 1;  // scattered, not a prefix
    for (int64_t k = 2; k <= 5; ++k) {
      SCOPED_TRACE(std::to_string(rows) + " rows, " + std::to_string(positives) + " positives, " + std::to_string(k) +
                   " folds");
      const auto fold_of = StratifiedFolds(labels, k, 4);
      ASSERT_EQ(fold_of.size(), labels.size());
      std::vector<int> per_class[2] = {std::vector<int>(k), std::vector<int>(k)};
      for (size_t r = 0; r < fold_of.size(); ++r) {
        ASSERT_GE(fold_of[r], 0);
        ASSERT_LT(fold_of[r], k);
        ++per_class[labels[r]][fold_of[r]];
      }
      std::vector<int> sizes(k);
      for (int64_t f = 0; f < k; ++f) sizes[f] = per_class[0][f] + per_class[1][f];
      for (const auto* counts : {&per_class[0], &per_class[1], &sizes})
        EXPECT_LE(*std::max_element(counts->begin(), counts->end()) - *std::min_element(counts->begin(), counts->end()),
                  1);
      // Fold f's split holds out exactly fold f's rows and trains on all the others.
      std::vector<int> held_out(rows, 0);
      for (int64_t f = 0; f < k; ++f) {
        const auto split = StratifiedFoldSplit(labels, k, f, 4);
        EXPECT_EQ(split.train.size() + split.validation.size(), static_cast<size_t>(rows));
        for (int64_t r : split.validation) {
          EXPECT_EQ(fold_of[r], f) << "row " << r;
          ++held_out[r];
        }
        for (int64_t r : split.train) EXPECT_NE(fold_of[r], f) << "row " << r;
      }
      EXPECT_EQ(held_out, std::vector<int>(rows, 1));  // each row validated in exactly one fold
      EXPECT_EQ(StratifiedFolds(labels, k, 4), fold_of);
      EXPECT_NE(StratifiedFolds(labels, k, 5), fold_of);
    }
  }
  std::vector<uint8_t> three_positives(12, 0);
  three_positives[1] = three_positives[5] = three_positives[9] = 1;
  EXPECT_NO_THROW(StratifiedFolds(three_positives, 3, 0));
  for (int64_t k : {1, 4}) {
    try {
      StratifiedFolds(three_positives, k, 0);
      ADD_FAILURE() << k << " folds: no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("data.folds = " + std::to_string(k)), std::string::npos) << e.what();
    }
  }
}

// data.fold must name a fold of data.folds; the keys leave the hash of a single-split config as
// it was (its checkpoints still resume) and take part in it when used.
TEST(TrainConfig, FoldKeysAreCheckedAndHashedOnlyWhenUsed) {
  TrainConfig c;
  c.data.volume = "v.h5";
  const std::string single_split_hash = ConfigHash(c);
  EXPECT_EQ(CanonicalText(c, true).find("fold"), std::string::npos);
  EXPECT_NE(CanonicalText(c).find("folds = 0"), std::string::npos);  // config.toml lists every key
  for (const auto& [folds, fold, key] : {std::tuple<int64_t, int64_t, const char*>{3, 3, "data.fold"},
                                         {0, 1, "data.fold"},
                                         {4, -1, "data.fold"},
                                         {-2, 0, "data.folds"}}) {
    TrainConfig bad = c;
    bad.data.folds = folds;
    bad.data.fold = fold;
    try {
      ValidateTrainConfig(bad);
      ADD_FAILURE() << folds << "/" << fold << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("config key '") + key + "'"), std::string::npos) << e.what();
    }
  }
  TrainConfig k_fold = c;
  ApplyOverride(k_fold, "data.folds=3");
  ValidateTrainConfig(k_fold);
  EXPECT_NE(ConfigHash(k_fold), single_split_hash);
  TrainConfig other_fold = k_fold;
  ApplyOverride(other_fold, "data.fold=2");
  ValidateTrainConfig(other_fold);
  EXPECT_NE(ConfigHash(other_fold), ConfigHash(k_fold));
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

// 2 ranks with batch b reach the same weights (and BatchNorm statistics) as 1 rank with batch
// 2b when BatchNorm does not see the per-rank batch: frozen ("eval") or synchronised over the
// ranks ("sync"); no dropout: then the averaged gradient is exactly the global batch's. "eval"
// computes each sample exactly as one process does, so the difference is the reduction order's;
// "sync" computes the statistics another way than torch's kernel, and on these 2-sample batches
// (1x1 maps in the last stages) SGD amplifies float rounding with the learning rate (measured:
// the largest difference is 3e-4 of the largest weight change at lr 1e-3, 8% at 1e-2), so it
// trains at 1e-3 (and its running statistics, which integrate those differences, are compared
// at 10 times the tolerance, relative). With "batch" (per-rank statistics) the difference is
// hundreds of times the change itself. The gradients themselves are compared in
// SyncableBatchNorm2d.TwoRanksWithBatchBGiveTheGradientsOfOneProcessWithBatch2B.
struct RankEquivalenceCase {
  std::string batchnorm;
  std::string lr;
  double tolerance;  // of the largest weight change
};

class TwoRanksMatchOneRank : public ::testing::TestWithParam<RankEquivalenceCase> {};

TEST_P(TwoRanksMatchOneRank, WithTwiceTheBatch) {
  const RankEquivalenceCase& c = GetParam();
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 20);
  auto config = WriteConfig(dir, volume, "");
  const std::vector<std::string> common = {
      "--set", "data.validation_split=0", "--set", "train.epochs=1", "--set", "train.batchnorm=" + c.batchnorm,
      "--set", "model.dropout=0", "--set", "model.stochastic_depth=0", "--set", "train.optimizer=sgd",
      "--set", "train.lr=" + c.lr};
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
  double moved = 0, differ = 0;
  std::string where;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    const auto& x = a[i].second;
    const auto& y = b[i].second;
    if (!x.is_floating_point()) continue;
    if (!initial_params.contains(a[i].first)) {  // BatchNorm running statistics, relative
      EXPECT_LE((x - y).abs().max().item<double>(), 10 * c.tolerance * x.abs().max().item<double>() + 1e-6)
          << a[i].first;
      continue;
    }
    if (const double d = (x - y).abs().max().item<double>(); d > differ) {
      differ = d;
      where = a[i].first;
    }
    moved = std::max(moved, (x - initial_params[a[i].first]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-3);  // training did change the weights
  EXPECT_LE(differ, c.tolerance * moved) << "largest difference at " << where;
}

INSTANTIATE_TEST_SUITE_P(TrainCommand, TwoRanksMatchOneRank,
                         ::testing::Values(RankEquivalenceCase{"eval", "0.05", 1e-5},
                                           RankEquivalenceCase{"sync", "0.001", 2e-3}),
                         [](const ::testing::TestParamInfo<RankEquivalenceCase>& info) {
                           return info.param.batchnorm;
                         });

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
  auto killed = RunAngiotrain(with({"--set", "output.dir=" + (dir / "broken")}), 2, 120,
                              {"ANGIOTRAIN_FAULT=point=train-step,rank=1,step=7,action=kill"});
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
  TrainConfig original = LoadTrainConfig(config);
  ApplyOverride(original, "train.epochs=1");
  TrainConfig changed = original;
  ApplyOverride(changed, "train.lr=0.5");
  ASSERT_NE(ConfigHash(original), ConfigHash(changed));
  EXPECT_NE(r.output.find("config hash " + ConfigHash(original)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(ConfigHash(changed)), std::string::npos) << r.output;
}

// The NaN guard with checkpoints on: the stop comes before the optimizer step, so the last
// checkpoint (the end of epoch 1, global step 2) holds exactly the weights of a run that ends
// there, and no later checkpoint is written.
TEST(TrainCommand, NonFiniteLossStopsEveryRankWithAClearMessage) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 16);
  auto config = WriteConfig(dir, volume, "");
  // 12 training rows, 2 ranks x 3: 2 steps per epoch; a checkpoint after every step.
  const std::vector<std::string> common = {"train", "--config", config, "--set", "train.batch_size=3", "--set",
                                           "output.checkpoint_every_steps=1"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = common;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  auto r = RunAngiotrain(with({"--set", "output.dir=" + (dir / "nan")}), 2, 120,
                         {"ANGIOTRAIN_FAULT=point=loss,rank=1,step=2,action=nan"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("non-finite training loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("global step 2"), std::string::npos) << r.output;
  ExpectSucceeded(
      RunAngiotrain(with({"--set", "train.epochs=1", "--set", "output.dir=" + (dir / "clean")}), 2, 120));

  auto stopped = LoadCheckpoint(dir / "nan/last.pt");
  auto clean = LoadCheckpoint(dir / "clean/last.pt");
  EXPECT_EQ(stopped.global_step, 2);
  EXPECT_EQ(stopped.epoch, 1);
  EXPECT_EQ(stopped.step, 0);
  auto a = State(stopped), b = State(clean);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    if (a[i].second.is_floating_point()) {
      EXPECT_TRUE(torch::isfinite(a[i].second).all().item<bool>()) << a[i].first;
    }
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

// In the process, through the Trainer: the weights after a non-finite loss are those of the
// last finite step (the optimizer never saw the NaN gradients).
TEST(Trainer, NonFiniteLossLeavesTheWeightsOfTheLastFiniteStep) {
  ScratchDir dir;
  TrainConfig config = LoadTrainConfig(WriteConfig(dir, WriteVolume(dir / "v.h5", 16), ""));
  ValidateTrainConfig(config);
  SetFaultsForTesting("point=loss,rank=0,step=3,action=nan");
  struct WeightsAfterEachStep : TrainingObserver {
    Trainer* trainer = nullptr;
    std::vector<torch::Tensor> last;
    void OnStep(const StepRecord&) override {
      last.clear();
      for (const auto& p : trainer->model()->parameters()) last.push_back(p.detach().clone());
    }
  } observer;
  const auto context = ProcessContext::Create(MPI_COMM_WORLD, DeviceRequest::kCpu);
  Trainer trainer(config, context);
  observer.trainer = &trainer;
  trainer.AddObserver(&observer);
  EXPECT_THROW(trainer.Run(), CollectiveError);
  SetFaultsForTesting("");
  const auto now = trainer.model()->parameters();
  ASSERT_EQ(now.size(), observer.last.size());
  for (size_t i = 0; i < now.size(); ++i) EXPECT_TRUE(torch::equal(now[i], observer.last[i])) << "parameter " << i;
}

// A checkpoint write cut short half way, by a kill of the writing rank or by a failing write
// (a full disk), leaves the previous last.pt loadable at its old step.
TEST(TrainCommand, InterruptedCheckpointWriteKeepsThePreviousCheckpoint) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 16);
  auto config = WriteConfig(dir, volume, "");
  // 12 training rows, 1 rank x 2: 6 steps per epoch; checkpoints at global steps 2, 4, 6.
  for (const std::string action : {"kill", "error"}) {
    SCOPED_TRACE(action);
    const std::string out = dir / ("run-" + action);
    auto r = RunAngiotrain({"train", "--config", config, "--set", "output.checkpoint_every_steps=2", "--set",
                            "output.dir=" + out},
                           0, 120,
                           {"ANGIOTRAIN_FAULT=point=checkpoint-write,rank=0,step=4,action=" + action});
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("checkpoint-write"), std::string::npos) << r.output;
    auto kept = LoadCheckpoint(out + "/last.pt");
    EXPECT_EQ(kept.global_step, 2);
    EXPECT_EQ(kept.epoch, 0);
    EXPECT_EQ(kept.step, 2);
  }
}

// The events of each rank from ANGIOTRAIN_TRACE_EVENTS files, without the rows of the steps.
std::vector<std::vector<std::string>> TracedEvents(const std::string& prefix, int ranks) {
  std::vector<std::vector<std::string>> events(ranks);
  for (int r = 0; r < ranks; ++r) {
    std::ifstream in(prefix + ".rank" + std::to_string(r));
    EXPECT_TRUE(in.good()) << prefix << ".rank" << r;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("step ", 0) == 0) {  // "step EPOCH STEP GLOBAL rows...": keep the first four words
        std::istringstream fields(line);
        std::string w[4];
        fields >> w[0] >> w[1] >> w[2] >> w[3];
        line = w[0] + " " + w[1] + " " + w[2] + " " + w[3];
      }
      events[r].push_back(line);
    }
  }
  return events;
}

// Observers see the run start, every step in order, every epoch end and checkpoint, and the end,
// on every rank alike; a stop request on one rank stops all ranks after the same step with a
// checkpoint there, and the resumed run ends with the uninterrupted run's weights, bit for bit.
TEST(TrainCommand, ObserversSeeEveryStepAndAStopOnOneRankStopsAllRanksAtTheSameStep) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 24);
  auto config = WriteConfig(dir, volume, "");
  // 18 training rows, 2 ranks x 2: 4 full steps per epoch, 2 epochs.
  auto run = [&](const std::string& out, std::vector<std::string> env, bool resume) {
    env.push_back("ANGIOTRAIN_TRACE_EVENTS=" + (dir / out));
    std::vector<std::string> args = {"train", "--config", config, "--set", "output.dir=" + (dir / out)};
    if (resume) args.push_back("--resume");
    return RunAngiotrain(args, 2, 120, env);
  };
  ExpectSucceeded(run("straight", {}, false));
  std::vector<std::string> expected = {"start 0 0 0"};
  for (int g = 0; g < 8; ++g) {
    expected.push_back("step " + std::to_string(g / 4) + " " + std::to_string(g % 4) + " " + std::to_string(g));
    if (g % 4 == 3) {
      expected.push_back("epoch " + std::to_string(g / 4 + 1) + " " + std::to_string(g + 1));
      expected.push_back("checkpoint " + std::to_string(g / 4 + 1) + " 0 " + std::to_string(g + 1));
    }
  }
  expected.push_back("end completed 8");
  auto straight_events = TracedEvents(dir / "straight", 2);
  EXPECT_EQ(straight_events[0], expected);
  EXPECT_EQ(straight_events[1], expected);

  auto stopped = run("stopped", {"ANGIOTRAIN_FAULT=point=stop-request,rank=1,step=5"}, false);
  ExpectSucceeded(stopped);
  EXPECT_NE(stopped.output.find("stopped after 6 steps"), std::string::npos) << stopped.output;
  std::vector<std::string> until_stop(expected.begin(), expected.begin() + 9);  // through step 1 1 5
  until_stop.push_back("checkpoint 1 2 6");
  until_stop.push_back("end stopped 6");
  auto stopped_events = TracedEvents(dir / "stopped", 2);
  EXPECT_EQ(stopped_events[0], until_stop);
  EXPECT_EQ(stopped_events[1], until_stop);
  auto at_stop = LoadCheckpoint(dir / "stopped/last.pt");
  EXPECT_EQ(at_stop.global_step, 6);
  EXPECT_EQ(at_stop.epoch, 1);
  EXPECT_EQ(at_stop.step, 2);

  ExpectSucceeded(run("stopped", {}, true));
  auto a = State(LoadCheckpoint(dir / "straight/last.pt")), b = State(LoadCheckpoint(dir / "stopped/last.pt"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

// The "step" events of ANGIOTRAIN_TRACE_EVENTS files, all ranks: epoch, global step, rows.
struct TracedStep {
  int epoch = 0;
  int64_t global_step = 0;
  std::vector<int64_t> rows;
};
std::vector<TracedStep> TracedSteps(const std::string& prefix, int ranks) {
  std::vector<TracedStep> steps;
  for (int r = 0; r < ranks; ++r) {
    std::ifstream in(prefix + ".rank" + std::to_string(r));
    EXPECT_TRUE(in.good()) << prefix << ".rank" << r;
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      std::string event;
      TracedStep t;
      int64_t step = 0, row = 0;
      fields >> event >> t.epoch >> step >> t.global_step;
      if (event != "step") continue;
      while (fields >> row) t.rows.push_back(row);
      steps.push_back(std::move(t));
    }
  }
  return steps;
}

// Rows of each global step, over all ranks.
std::map<int64_t, std::set<int64_t>> RowsByStep(const std::string& prefix, int ranks) {
  std::map<int64_t, std::set<int64_t>> rows;
  for (const auto& t : TracedSteps(prefix, ranks)) rows[t.global_step].insert(t.rows.begin(), t.rows.end());
  return rows;
}

// A run stopped on 2 ranks x 2 resumes on 1 rank with the same global batch (4 per rank) at the
// same place in the data, and says that this resume is not bit-exact; 3 ranks cannot share a
// global batch of 4 and are refused before anything is written.
TEST(TrainCommand, ResumeOnAnotherNumberOfRanksKeepsTheGlobalBatchAndThePlaceInTheData) {
  ScratchDir dir;
  auto volume = WriteVolume(dir / "v.h5", 24);
  auto config = WriteConfig(dir, volume, "");
  auto run = [&](const std::string& out, int ranks, std::vector<std::string> env, bool resume) {
    env.push_back("ANGIOTRAIN_TRACE_EVENTS=" + (dir / (out + (resume ? "-resumed" : ""))));
    std::vector<std::string> args = {"train", "--config", config, "--set", "output.dir=" + (dir / out)};
    if (resume) args.push_back("--resume");
    return RunAngiotrain(args, ranks, 120, env);
  };
  ExpectSucceeded(run("straight", 2, {}, false));
  ExpectSucceeded(run("moved", 2, {"ANGIOTRAIN_FAULT=point=stop-request,rank=1,step=5"}, false));
  const auto refused = run("moved", 3, {}, true);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("cannot share equally"), std::string::npos) << refused.output;
  auto resumed = run("moved", 0, {}, true);
  ExpectSucceeded(resumed);
  EXPECT_NE(resumed.output.find("resume on 1 ranks from a checkpoint of 2 ranks: same global batch 4 (4 per rank)"),
            std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("not bit-exact"), std::string::npos) << resumed.output;
  const auto straight = RowsByStep(dir / "straight", 2), after = RowsByStep(dir / "moved-resumed", 1);
  ASSERT_EQ(after.size(), 2u);  // global steps 6 and 7
  for (const auto& [step, rows] : after) {
    EXPECT_EQ(rows.size(), 4u) << "global step " << step;
    EXPECT_EQ(rows, straight.at(step)) << "global step " << step;
  }
  EXPECT_EQ(LoadCheckpoint(dir / "moved/last.pt").global_step, 8);
}

// Which rows each rank trained on, by epoch.
std::map<int, std::vector<int64_t>> TracedRows(const std::string& prefix, int ranks) {
  std::map<int, std::vector<int64_t>> rows;
  for (const auto& t : TracedSteps(prefix, ranks)) rows[t.epoch].insert(rows[t.epoch].end(), t.rows.begin(), t.rows.end());
  return rows;
}

// No validation row ever reaches a training batch (1 and 2 ranks); validation_predictions.csv
// holds exactly the validation patients, a stratified quarter of each class; metrics.jsonl has
// one line per epoch with its documented fields, and its validation loss is the one of the
// probabilities in validation_predictions.csv.
TEST(TrainCommand, ValidationRowsStayOutOfTrainingAndOutputsDescribeThem) {
  ScratchDir dir;
  const int patients = 24;
  auto volume = WriteVolume(dir / "v.h5", patients);
  auto config = WriteConfig(dir, volume, "");
  for (int ranks : {1, 2}) {
    SCOPED_TRACE(std::to_string(ranks) + " rank(s)");
    const std::string out = dir / ("run" + std::to_string(ranks));
    const std::string trace = dir / ("trace" + std::to_string(ranks));
    ExpectSucceeded(RunAngiotrain({"train", "--config", config, "--set", "output.dir=" + out}, ranks, 120,
                                  {"ANGIOTRAIN_TRACE_EVENTS=" + trace}));

    // The validation patients, as the run reports them.
    CsvTable predictions = ReadCsv(out + "/validation_predictions.csv");
    std::set<int32_t> validation;
    int positives = 0;
    for (const auto& row : predictions.rows) {
      const int32_t index = std::stoi(row[predictions.Column("Index")]);
      EXPECT_TRUE(validation.insert(index).second) << "Index " << index << " twice";
      positives += (index - 1000) % 2;  // WriteVolume: odd rows are positive
    }
    EXPECT_EQ(validation.size(), 6u);  // a quarter of 12 negatives and 12 positives
    EXPECT_EQ(positives, 3);

    // Every epoch trains on 18 rows less the dropped tails, none of them a validation patient.
    auto trained = TracedRows(trace, ranks);
    ASSERT_EQ(trained.size(), 2u);
    for (const auto& [epoch, rows] : trained) {
      EXPECT_EQ(rows.size(), ranks == 1 ? 18u : 16u) << "epoch " << epoch;
      std::set<int64_t> distinct(rows.begin(), rows.end());
      EXPECT_EQ(distinct.size(), rows.size()) << "epoch " << epoch;
      for (int64_t row : rows) {
        ASSERT_GE(row, 0);
        ASSERT_LT(row, patients);
        EXPECT_EQ(validation.count(1000 + static_cast<int32_t>(row)), 0u) << "validation row " << row << " trained";
      }
    }

    // metrics.jsonl: one line per epoch, in order, with the documented fields.
    std::ifstream in(out + "/metrics.jsonl");
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(lines.size(), 2u);
    const int64_t steps_per_epoch = ranks == 1 ? 9 : 4;
    for (size_t e = 0; e < lines.size(); ++e) {
      const auto& m = lines[e];
      for (const char* field : {"epoch", "global_step", "lr", "train_loss", "train_seconds", "samples_per_second",
                                "data_wait_share", "allreduce_wait_share", "val_loss", "aneurysm_accuracy",
                                "aneurysm_auroc", "location_accuracy", "no_location_accuracy",
                                "location_macro_auroc", "per_location"})
        EXPECT_TRUE(m.contains(field)) << "epoch " << e + 1 << " lacks " << field;
      EXPECT_EQ(m.value("epoch", 0), static_cast<int>(e + 1));
      EXPECT_EQ(m.value("global_step", int64_t{0}), steps_per_epoch * static_cast<int64_t>(e + 1));
      EXPECT_DOUBLE_EQ(m.value("lr", 0.0), 1e-3);
      EXPECT_EQ(m["per_location"].size(), static_cast<size_t>(kNumLocations));
    }
    // The last line's validation figures are those of the written probabilities (6 digits).
    VolumeReader reader(volume, MPI_COMM_SELF);
    double bce = 0;
    for (const auto& row : predictions.rows) {
      const int64_t volume_row = std::stoi(row[predictions.Column("Index")]) - 1000;
      auto term = [&](const std::string& column, int truth) {
        const double p = std::stod(row[predictions.Column(column)]);
        bce -= truth ? std::log(p) : std::log1p(-p);
      };
      term("Aneurysm", reader.aneurysm()[volume_row]);
      for (int k = 0; k < kNumLocations; ++k)
        term(LocationNames()[k], reader.locations()[volume_row * kNumLocations + k]);
    }
    bce /= 6.0 * (1 + kNumLocations);
    EXPECT_NEAR(lines.back().value("val_loss", -1.0), bce, 1e-3);
    const double aneurysm_accuracy = lines.back().value("aneurysm_accuracy", -1.0);
    int correct = 0;
    for (const auto& row : predictions.rows) {
      const int32_t index = std::stoi(row[predictions.Column("Index")]);
      const double p = std::stod(row[predictions.Column("Aneurysm")]);
      correct += (p > 0.5) == ((index - 1000) % 2 == 1);
    }
    EXPECT_DOUBLE_EQ(aneurysm_accuracy, correct / 6.0);
  }
}

// With data.folds = 3 and data.fold = 1, validation_predictions.csv holds exactly fold 1's
// patients of the stratified partition, and every training step draws from the other folds
// only, all of them trained each epoch. Too many folds for the volume, or a fold outside them,
// stops the command before it writes anything, naming the key.
TEST(TrainCommand, KFoldRunValidatesItsFoldAndTrainsOnTheOthers) {
  ScratchDir dir;
  const int patients = 24;
  auto volume = WriteVolume(dir / "v.h5", patients);
  auto config = WriteConfig(dir, volume, "");
  const std::string out = dir / "fold1", trace = dir / "trace";
  const auto r = RunAngiotrain({"train", "--config", config, "--set", "output.dir=" + out, "--set", "data.folds=3",
                                "--set", "data.fold=1", "--set", "train.epochs=1"},
                               0, 120, {"ANGIOTRAIN_TRACE_EVENTS=" + trace});
  ExpectSucceeded(r);
  EXPECT_NE(r.output.find("(8 validation: fold 1 of a stratified 3-fold partition)"), std::string::npos) << r.output;

  VolumeReader reader(volume, MPI_COMM_SELF);
  const auto fold_of = StratifiedFolds(reader.aneurysm(), 3, 3);  // WriteConfig: split_seed = 3
  std::set<int32_t> fold1, validated;
  for (int row = 0; row < patients; ++row)
    if (fold_of[row] == 1) fold1.insert(reader.index()[row]);
  CsvTable predictions = ReadCsv(out + "/validation_predictions.csv");
  for (const auto& row : predictions.rows) validated.insert(std::stoi(row[predictions.Column("Index")]));
  EXPECT_EQ(predictions.rows.size(), fold1.size());
  EXPECT_EQ(validated, fold1);

  std::multiset<int64_t> trained;
  for (const auto& step : TracedSteps(trace, 1)) trained.insert(step.rows.begin(), step.rows.end());
  std::multiset<int64_t> other_folds;
  for (int row = 0; row < patients; ++row)
    if (fold_of[row] != 1) other_folds.insert(row);
  EXPECT_EQ(trained, other_folds);  // 16 rows, batch 2: each other-fold row once, no fold 1 row

  for (const auto& [set, key] : {std::pair<std::string, std::string>{"data.folds=13", "data.folds = 13"},
                                 {"data.fold=3", "data.fold"}}) {
    const std::string refused_dir = dir / ("refused-" + set);
    const auto refused = RunAngiotrain({"train", "--config", config, "--set", "output.dir=" + refused_dir, "--set",
                                        "data.folds=3", "--set", set});
    EXPECT_NE(refused.exit_code, 0) << set;
    EXPECT_NE(refused.output.find(key), std::string::npos) << refused.output;
    EXPECT_FALSE(testing::FileExists(refused_dir)) << set;
  }
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

// predict's probabilities for each patient are the checkpoint's model applied to that patient's
// row of the volume, on 1 and 2 ranks (whose shards are gathered in a different order).
TEST(PredictCommand, ProbabilitiesAreTheCheckpointModelAppliedToEachPatientsRow) {
  ScratchDir dir;
  const int patients = 11;
  auto volume = WriteVolume(dir / "v.h5", patients);
  auto config = WriteConfig(dir, volume, "");
  ExpectSucceeded(RunAngiotrain({"train", "--config", config, "--set", "train.epochs=1"}));

  auto loaded = LoadCheckpoint(dir / "run/last.pt");
  VolumeReader reader(volume, MPI_COMM_SELF);
  std::vector<int64_t> rows(patients);
  for (int i = 0; i < patients; ++i) rows[i] = i;
  std::vector<uint8_t> raw;
  reader.ReadImages(rows, &raw);
  auto images = torch::from_blob(raw.data(), {patients, kNumViews, kResolution, kResolution}, torch::kUInt8)
                    .to(torch::kFloat32)
                    .div_(255.0);
  // A few steps leave the BatchNorm running statistics near their initial values, and the model
  // then answers almost the same to every patient in eval mode. Set them to these patients'
  // statistics (one batch, momentum 1) and save that checkpoint, so that patients differ.
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    for (const auto& m : loaded.model->modules(false))
      if (auto* bn = dynamic_cast<SyncableBatchNorm2dImpl*>(m.get())) bn->options.momentum(1.0);
    loaded.model->train();
    loaded.model->forward(images);
    loaded.model->eval();
    expected = torch::sigmoid(loaded.model->forward(images).to(torch::kDouble));  // [n, 22]
    torch::optim::SGD optimizer(loaded.model->parameters(), torch::optim::SGDOptions(0.1));
    CheckpointHeader header;
    header.config_text = CanonicalText(loaded.config);
    header.config_hash = loaded.config_hash;
    header.resolution = kResolution;
    SaveCheckpoint(dir / "calibrated.pt", *loaded.model, optimizer, header);
  }
  // Patients' probabilities differ by far more than the tolerance, so a mix-up cannot pass.
  for (int i = 0; i < patients; ++i)
    for (int j = i + 1; j < patients; ++j)
      ASSERT_GT((expected[i] - expected[j]).abs().max().item<double>(), 1e-4) << "patients " << i << ", " << j;

  std::string header = "Index,Aneurysm";
  for (const auto& n : LocationNames()) header += "," + n;
  std::string text = header + "\n";
  for (int p : {7, 0, 10, 3, 4, 1, 9, 2, 8, 5, 6}) {
    text += std::to_string(1000 + p) + ",0";
    for (int k = 0; k < kNumLocations; ++k) text += ",0";
    text += "\n";
  }
  std::ofstream(dir / "test.csv") << text;
  for (int ranks : {1, 2}) {
    SCOPED_TRACE(std::to_string(ranks) + " rank(s)");
    const std::string out = dir / ("output" + std::to_string(ranks) + ".csv");
    ExpectSucceeded(RunAngiotrain({"predict", "--checkpoint", dir / "calibrated.pt", "--input", volume,
                                   "--template", dir / "test.csv", "--out", out},
                                  ranks));
    auto submission = ReadSubmission(out);
    auto probabilities = ReadProbabilities(ProbabilitiesPathFor(out));
    ASSERT_EQ(submission.size(), static_cast<size_t>(patients));
    ASSERT_EQ(probabilities.size(), static_cast<size_t>(patients));
    for (int i = 0; i < patients; ++i) {
      const int64_t row = probabilities[i].index - 1000;
      ASSERT_EQ(submission[i].index, probabilities[i].index);
      EXPECT_NEAR(submission[i].aneurysm, expected[row][0].item<double>(), 1e-5) << "Index " << submission[i].index;
      EXPECT_NEAR(probabilities[i].prediction.aneurysm, expected[row][0].item<double>(), 1e-5);
      for (int k = 0; k < kNumLocations; ++k)
        EXPECT_NEAR(probabilities[i].prediction.locations[k], expected[row][1 + k].item<double>(), 1e-5)
            << "Index " << submission[i].index << " " << LocationNames()[k];
    }
  }
}


}  // namespace
}  // namespace angiotrain
