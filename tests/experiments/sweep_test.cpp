// Sweeps: bad sweep files stop before training naming the file, key and problem; grid, random and
// halving expansion; free epoch and threshold axes (one training run per combination of the
// other axes under a constant schedule, one per epoch count under cosine); a sweep killed
// mid-trial and rerun ends with the same results table; a failing trial is recorded while the
// others finish; halving prunes by the rule; f1 thresholds learnt on validation are applied
// unchanged by predict; k-fold cross-validation, per trial or as an axis. Tiny models (width and
// depth 0.1) on 32 px volumes, one rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <tuple>

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "experiments/training/epoch_evidence.h"
#include "experiments/evaluation/submission.h"
#include "experiments/monitoring/metrics_config.h"
#include "experiments/sweeps/sweep_spec.h"
#include "experiments/sweeps/sweep_store.h"
#include "experiments/evaluation/threshold_rule.h"
#include "experiments/training/train_config.h"
#include "tests/support/test_support.h"

namespace angiotrain {
namespace {

using testing::FileExists;
using testing::ListDir;
using testing::RunAngiotrain;
using testing::ScratchDir;

// 40 patients, 32 px: noise, and for positives a bright 4x4 mark in view 0 whose place says the
// location (one of the first 4), so presence and location are both learnable.
std::string WriteSweepVolume(const std::string& path) {
  const int n = 40, r = 32;
  std::mt19937 rng(11);
  std::vector<uint8_t> images(static_cast<size_t>(n) * kNumViews * r * r);
  std::vector<int32_t> index(n);
  std::vector<uint8_t> aneurysm(n), locations(static_cast<size_t>(n) * kNumLocations);
  for (auto& v : images) v = static_cast<uint8_t>(rng() % 100);
  for (int p = 0; p < n; ++p) {
    index[p] = 2000 + p;
    aneurysm[p] = p % 2;
    if (!aneurysm[p]) continue;
    const int loc = static_cast<int>(rng() % 4);
    locations[static_cast<size_t>(p) * kNumLocations + loc] = 1;
    for (int dy = 0; dy < 4; ++dy)
      for (int dx = 0; dx < 4; ++dx)
        images[(static_cast<size_t>(p) * kNumViews * r + 4 + dy + 8 * loc) * r + 6 + dx] = 255;
  }
  VolumeProvenance provenance;
  provenance.source = "sweep_test";
  VolumeWriter writer(path, MPI_COMM_SELF, n, r, true, provenance);
  writer.WriteRows(0, images, index, aneurysm, locations);
  writer.Commit(n, 0);
  return path;
}

// A sweep file over a tiny model; `sweep` and `axes` are the bodies of [sweep] and [axes].
std::string WriteSweep(const ScratchDir& dir, const std::string& sweep, const std::string& axes,
                       const std::string& base_extra = "", const std::string& name = "sweep.toml",
                       const std::string& data_extra = "") {
  const std::string volume = dir / "volume.h5";
  if (!FileExists(volume)) WriteSweepVolume(volume);
  const std::string path = dir / name;
  std::ofstream out(path);
  out << "[sweep]\ndir = \"" << (dir / "store") << "\"\n" << sweep << "\n"
      << "[base.data]\nvolume = \"" << volume << "\"\nvalidation_split = 0.25\nsplit_seed = 3\n" << data_extra
      << "[base.model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
      << "[base.train]\nbatch_size = 5\nseed = 5\nthreads = 1\n" << base_extra << "\n"
      << "[axes]\n" << axes;
  return path;
}

std::string ErrorOf(const std::string& path) {
  try {
    LoadSweepSpec(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(SweepSpec, BadFilesNameTheFileTheKeyAndTheProblem) {
  ScratchDir dir;
  struct Case {
    std::string axes, key, problem;
  };
  const Case cases[] = {
      {"\"train.lrr\" = [0.1]\n", "axes.train.lrr", "unknown key"},
      {"\"train.lr\" = []\n", "axes.train.lr", "is empty"},
      {"\"train.lr\" = [\"fast\"]\n", "axes.train.lr", "must be a number"},
      {"\"train.epochs\" = [1.5]\n", "axes.train.epochs", "must be an integer"},
      {"\"model.variant\" = [3]\n", "axes.model.variant", "must be a string"},
      {"thresholds = [\"f1\", \"median\"]\n", "axes.thresholds", "threshold rule 'median': unknown rule"},
      {"\"output.dir\" = [\"x\"]\n", "axes.output.dir", "cannot be an axis"},
      {"\"train.lr\" = [-1.0]\n", "train.lr", "must be positive"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteSweep(dir, "", c.axes);
    const std::string message = ErrorOf(path);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(c.key), std::string::npos) << message;
    EXPECT_NE(message.find(c.problem), std::string::npos) << message;
  }
  EXPECT_NE(ErrorOf(WriteSweep(dir, "method = \"bayes\"", "\"train.lr\" = [0.1]\n")).find("sweep.method"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WriteSweep(dir, "method = \"random\"", "\"train.lr\" = [0.1]\n")).find("sweep.budget"),
            std::string::npos);
  EXPECT_NE(ErrorOf(WriteSweep(dir, "method = \"halving\"", "\"train.lr\" = [0.1]\n")).find("rungs"),
            std::string::npos);
  // The command stops before any training: no store.
  const auto r = RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "", "\"train.lrr\" = [0.1]\n")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("axes.train.lrr"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(dir / "store"));
}

TEST(SweepSpec, GridExpandsEveryCombinationInOrder) {
  ScratchDir dir;
  const SweepSpec spec =
      LoadSweepSpec(WriteSweep(dir, "", "\"train.lr\" = [0.1, 0.01]\n\"model.variant\" = [\"b0\", \"b1\", \"b2\"]\n"));
  const SweepPlan plan = PlanSweep(spec);
  ASSERT_EQ(plan.trials.size(), 6u);
  std::set<std::string> seen;
  for (const auto& t : plan.trials) {
    ASSERT_EQ(t.settings.size(), 2u);
    seen.insert(t.settings[0].second + "/" + t.settings[1].second);
    EXPECT_EQ(t.config.output.dir, spec.dir + "/trials/" + t.name);
  }
  EXPECT_EQ(seen.size(), 6u);
  // Axes in key order (model.variant, train.lr), the last varying fastest.
  EXPECT_EQ(plan.trials[0].settings[0].first, "model.variant");
  EXPECT_EQ(plan.trials[1].config.model.variant, "b0");
  EXPECT_DOUBLE_EQ(plan.trials[1].config.train.lr, 0.01);
  EXPECT_EQ(plan.trials[2].config.model.variant, "b1");
  EXPECT_DOUBLE_EQ(plan.trials[2].config.train.lr, 0.1);
}

TEST(SweepSpec, RandomDrawsTheBudgetFromTheGridBySeed) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.1, 0.01, 0.001, 0.0001]\n\"train.seed\" = [1, 2, 3]\n";
  const auto draw = [&](int seed) {
    const auto plan = PlanSweep(LoadSweepSpec(
        WriteSweep(dir, "method = \"random\"\nbudget = 5\nseed = " + std::to_string(seed), axes)));
    std::vector<std::string> out;
    for (const auto& t : plan.trials) out.push_back(t.settings[0].second + "/" + t.settings[1].second);
    return out;
  };
  const auto a = draw(1);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(std::set<std::string>(a.begin(), a.end()).size(), 5u);  // without repeats
  EXPECT_EQ(draw(1), a);
  EXPECT_NE(draw(2), a);
}

TEST(SweepSpec, FreeEpochAndThresholdAxesCostOneRunPerCombinationUnlessCosine) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.01, 0.001]\n\"train.epochs\" = [3, 1, 2]\n"
                           "thresholds = [\"mean+1std\", \"fixed:0.5\", \"f1\", \"youden\"]\n";
  const SweepPlan constant = PlanSweep(LoadSweepSpec(WriteSweep(dir, "", axes)));
  ASSERT_EQ(constant.trials.size(), 2u);
  for (const auto& t : constant.trials) {
    EXPECT_EQ(t.config.train.epochs, 3);
    EXPECT_EQ(t.epochs, (std::vector<int64_t>{1, 2, 3}));
  }
  EXPECT_EQ(constant.Evaluations(), 2 * 3 * 4);
  EXPECT_EQ(constant.TrainedEpochs(), 6);
  const SweepSpec cosine_spec = LoadSweepSpec(WriteSweep(dir, "", axes, "schedule = \"cosine\"\n"));
  const SweepPlan cosine = PlanSweep(cosine_spec);
  ASSERT_EQ(cosine.trials.size(), 6u);
  EXPECT_EQ(cosine.Evaluations(), 2 * 3 * 4);
  EXPECT_EQ(cosine.TrainedEpochs(), 2 * (1 + 2 + 3));
  EXPECT_NE(PlanText(cosine_spec, cosine).find("cosine depends on train.epochs"), std::string::npos);
}

TEST(SweepSpec, HalvingUsesTheEpochCountsAsRungsAndNeedsAConstantSchedule) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.01, 0.001, 0.0001]\n\"train.epochs\" = [1, 2, 4]\n";
  const SweepSpec spec = LoadSweepSpec(WriteSweep(dir, "method = \"halving\"\neta = 3", axes));
  const SweepPlan plan = PlanSweep(spec);
  ASSERT_EQ(plan.trials.size(), 3u);
  EXPECT_EQ(plan.trials[0].epochs, (std::vector<int64_t>{1, 2, 4}));
  EXPECT_NE(PlanText(spec, plan).find("rungs at epochs 1, 2, 4"), std::string::npos);
  const std::string message = ErrorOf(WriteSweep(dir, "method = \"halving\"", axes, "schedule = \"cosine\"\n"));
  EXPECT_NE(message.find("train.schedule = constant"), std::string::npos) << message;
}

// sweep.cross_validation = K: every trial is K training runs, one per fold (data.folds = K,
// data.fold = k, in the trial's fold_k), and the plan counts and says so; data.fold as an axis
// (data.folds set) makes each fold a trial of its own. What cannot be meant is refused before
// anything is trained, naming the file and the key: one fold, halving, a fold axis beside
// cross_validation, a base that sets other folds, a fold without folds, more folds than the
// volume's 20 rows of each class.
TEST(SweepSpec, CrossValidationPlansOneRunPerFoldAndRefusesWhatItCannotMean) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.01, 0.001]\n\"train.epochs\" = [1, 2]\nthresholds = [\"fixed:0.5\", \"f1\"]\n";
  const SweepSpec spec = LoadSweepSpec(WriteSweep(dir, "cross_validation = 3", axes));
  const SweepPlan plan = PlanSweep(spec);
  ASSERT_EQ(plan.trials.size(), 2u);
  EXPECT_EQ(plan.TrainingRuns(), 2 * 3);
  EXPECT_EQ(plan.TrainedEpochs(), 2 * 3 * 2);
  EXPECT_EQ(plan.Evaluations(), 2 * 2 * 2);
  const auto runs = plan.trials[1].Runs();
  ASSERT_EQ(runs.size(), 3u);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(runs[k].data.folds, 3);
    EXPECT_EQ(runs[k].data.fold, k);
    EXPECT_EQ(runs[k].output.dir, FoldDir(plan.trials[1].config.output.dir, k));
    EXPECT_DOUBLE_EQ(runs[k].train.lr, 0.001);
    EXPECT_EQ(runs[k].train.epochs, 2);
    EXPECT_NO_THROW(ValidateTrainConfig(runs[k]));
  }
  const std::string text = PlanText(spec, plan);
  EXPECT_NE(text.find("trials: 2, training runs: 6 (3 per trial, one per fold)"), std::string::npos) << text;
  EXPECT_NE(text.find("trains 3 x 2 epoch(s) (folds 0..2)"), std::string::npos) << text;

  const SweepPlan fold_axis = PlanSweep(LoadSweepSpec(WriteSweep(dir, "", "\"data.fold\" = [0, 1, 2]\n", "", "axis.toml",
                                                                 "folds = 3\n")));
  ASSERT_EQ(fold_axis.trials.size(), 3u);
  EXPECT_EQ(fold_axis.TrainingRuns(), 3);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_EQ(fold_axis.trials[k].config.data.folds, 3);
    EXPECT_EQ(fold_axis.trials[k].config.data.fold, k);
  }

  struct Case {
    std::string sweep, axes, data, key, problem;
  };
  const Case cases[] = {
      {"cross_validation = 1", "\"train.lr\" = [0.1]\n", "", "sweep.cross_validation", "at least 2"},
      {"method = \"halving\"\ncross_validation = 2", "\"train.epochs\" = [1, 2]\n", "", "sweep.cross_validation",
       "halving"},
      {"cross_validation = 2", "\"data.fold\" = [0, 1]\n", "folds = 2\n", "axes.data.fold", "cannot be an axis"},
      {"cross_validation = 2", "\"train.lr\" = [0.1]\n", "folds = 3\n", "sweep.cross_validation", "data.folds = 3"},
      {"", "\"data.fold\" = [0, 1]\n", "", "data.fold", "needs data.folds >= 2"},
      {"cross_validation = 21", "\"train.lr\" = [0.1]\n", "", "data.folds = 21", "only 20 rows"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteSweep(dir, c.sweep, c.axes, "", "bad.toml", c.data);
    const std::string message = ErrorOf(path);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(c.key), std::string::npos) << message;
    EXPECT_NE(message.find(c.problem), std::string::npos) << message;
  }
  const auto r = RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "cross_validation = 21", "\"train.lr\" = [0.1]\n")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("data.folds = 21"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(dir / "store"));
}

int CountTrainings(const std::string& store) {
  int runs = 0;
  for (const auto& name : ListDir(store + "/trials")) runs += FileExists(store + "/trials/" + name + "/config.toml");
  return runs;
}

int CountLines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

TEST(SweepRun, ThreeEpochCountsAndFourRulesTrainOncePerLearningRate) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.01, 0.001]\n\"train.epochs\" = [1, 2, 3]\n"
                           "thresholds = [\"mean+1std\", \"fixed:0.5\", \"f1\", \"gate:youden\"]\n";
  const auto r = RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "", axes)}, 0, 600);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string store = dir / "store";
  EXPECT_EQ(CountTrainings(store), 2);
  for (const char* t : {"t0000", "t0001"}) {
    const std::string trial = store + "/trials/" + t;
    EXPECT_EQ(CountLines(trial + "/metrics.jsonl"), 3) << t;  // trained once, to 3 epochs
    EXPECT_EQ(ReadTrialStatus(trial).state, "completed");
    for (int e = 1; e <= 3; ++e) EXPECT_TRUE(FileExists(EpochPredictionsPath(trial, e))) << t << " " << e;
    EXPECT_TRUE(FileExists(trial + "/best.pt"));
    EXPECT_TRUE(FileExists(trial + "/best.thresholds.json"));
  }
  EXPECT_EQ(CountLines(store + "/results.csv"), 1 + 2 * 3 * 4);
  EXPECT_NE(r.output.find("rank  trial"), std::string::npos) << r.output;
  // The results are ranked by the objective (presence AUROC), best first.
  const auto rows = CollectResults(store);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_FALSE(Better(rows[i].objective, rows[i - 1].objective)) << i;
}

TEST(SweepRun, CosineTrainsEachEpochCountSeparately) {
  ScratchDir dir;
  const std::string axes = "\"train.epochs\" = [1, 2]\nthresholds = [\"fixed:0.5\", \"f1\"]\n";
  const auto r =
      RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "", axes, "schedule = \"cosine\"\n")}, 0, 600);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string store = dir / "store";
  EXPECT_EQ(CountTrainings(store), 2);
  EXPECT_EQ(CountLines(store + "/trials/t0000/metrics.jsonl"), 1);
  EXPECT_EQ(CountLines(store + "/trials/t0001/metrics.jsonl"), 2);
  EXPECT_EQ(CountLines(store + "/results.csv"), 1 + 2 * 2);
}

TEST(SweepRun, KilledMidTrialAndRerunEndsWithTheSameResults) {
  const std::string axes = "\"train.lr\" = [0.01, 0.002]\n\"train.epochs\" = [1, 2]\n"
                           "thresholds = [\"fixed:0.5\", \"youden\"]\n";
  // 6 steps an epoch; checkpoints every 4 steps and at epoch ends.
  const std::string every = "[base.output]\ncheckpoint_every_steps = 4\n";
  ScratchDir whole, killed;
  ASSERT_EQ(RunAngiotrain({"sweep", "run", "--config", WriteSweep(whole, "", axes, every)}, 0, 600).exit_code, 0);
  // Trial 1 is killed at its 11th step (global step 10, in the second epoch), after the
  // mid-epoch checkpoint of global step 8: the rerun resumes there.
  const std::string config = WriteSweep(killed, "", axes, every);
  const auto first =
      RunAngiotrain({"sweep", "run", "--config", config}, 0, 600, {"ANGIOTRAIN_FAULT=point=sweep-trial-1,step=10,action=kill"});
  ASSERT_NE(first.exit_code, 0) << first.output;
  EXPECT_EQ(ReadTrialStatus(killed / "store/trials/t0000").state, "completed");
  EXPECT_EQ(ReadTrialStatus(killed / "store/trials/t0001").state, "running");
  EXPECT_EQ(ReadTrialStatus(killed / "store/trials/t0001").epochs_done, 1);
  EXPECT_FALSE(FileExists(killed / "store/results.csv"));
  const auto second = RunAngiotrain({"sweep", "run", "--config", config}, 0, 600);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("t0001 (2 of 2) train.lr=0.002: resuming"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("t0000 (1 of 2)"), std::string::npos) << second.output;  // skipped
  EXPECT_NE(second.output.find("(global step 8)"), std::string::npos) << second.output;
  EXPECT_EQ(ReadFile(killed / "store/results.csv"), ReadFile(whole / "store/results.csv"));
}

// sweep.cross_validation = 2 with free epochs and thresholds: the trial trains 2 runs, one per
// fold, whose validation patients split the volume; killed in fold 1 and run again, it skips
// fold 0 and resumes fold 1 from its checkpoint. Each result's objective is the mean of the two
// folds' objectives recomputed from their stored predictions, with their sd, in results.csv,
// results.json and `sweep status`.
TEST(SweepRun, CrossValidationTrainsEachFoldAndScoresTheMeanOfTheFolds) {
  ScratchDir dir;
  const std::string axes = "\"train.epochs\" = [1, 2]\nthresholds = [\"fixed:0.5\", \"f1\"]\n";
  const std::string config = WriteSweep(dir, "cross_validation = 2\nobjective = \"kium\"", axes, "lr = 0.01\n");
  // 20 training rows a fold, batch 5: 4 steps an epoch. Fold 1 is killed at global step 5 (its
  // second epoch), after the checkpoint of its first.
  const auto first = RunAngiotrain({"sweep", "run", "--config", config}, 0, 600,
                                   {"ANGIOTRAIN_FAULT=point=sweep-trial-0-fold-1,step=5,action=kill"});
  ASSERT_NE(first.exit_code, 0) << first.output;
  const std::string store = dir / "store", trial = store + "/trials/t0000";
  EXPECT_EQ(ReadTrialStatus(FoldDir(trial, 0)).state, "completed");
  EXPECT_EQ(ReadTrialStatus(FoldDir(trial, 1)).state, "running");
  EXPECT_EQ(ReadTrialStatus(FoldDir(trial, 1)).epochs_done, 1);
  EXPECT_EQ(ReadTrialStatus(trial).state, "running");
  const auto second = RunAngiotrain({"sweep", "run", "--config", config}, 0, 600);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("fold_0 (1 of 2): completed, skipped"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("fold_1 (2 of 2): resuming from its checkpoint"), std::string::npos) << second.output;
  EXPECT_EQ(ReadTrialStatus(trial).state, "completed");

  // Two training runs, one per fold; their validation patients split the 40 of the volume.
  EXPECT_FALSE(FileExists(trial + "/config.toml"));
  std::multiset<int32_t> validated;
  for (int64_t k = 0; k < 2; ++k) {
    const std::string fold = FoldDir(trial, k);
    const TrainConfig c = LoadTrainConfig(fold + "/config.toml");
    EXPECT_EQ(c.data.folds, 2);
    EXPECT_EQ(c.data.fold, k);
    EXPECT_EQ(CountLines(fold + "/metrics.jsonl"), 2) << fold;
    for (const auto& row : ReadProbabilities(ValidationTruthPath(fold))) validated.insert(row.index);
  }
  EXPECT_EQ(validated.size(), 40u);
  EXPECT_EQ(std::set<int32_t>(validated.begin(), validated.end()).size(), 40u);

  const StoredPlan plan = ReadStoredPlan(store);
  EXPECT_EQ(plan.cross_validation, 2);
  const auto rows = CollectResults(store);
  ASSERT_EQ(rows.size(), 2u * 2u);
  for (const ResultRow& row : rows) {
    SCOPED_TRACE(std::to_string(row.epochs) + " epochs, " + row.threshold);
    std::vector<double> per_fold;
    for (int64_t k = 0; k < 2; ++k) {
      ThresholdInputs inputs;
      ThresholdLabels labels;
      ReadEpochEvidence(FoldDir(trial, k), row.epochs, &inputs, &labels);
      const auto v = ScoreEvidence(inputs, labels, ThresholdRule::Parse(row.threshold)).Value(plan.objective);
      ASSERT_TRUE(v.has_value());
      per_fold.push_back(*v);
    }
    ASSERT_TRUE(row.objective.has_value());
    EXPECT_DOUBLE_EQ(*row.objective, (per_fold[0] + per_fold[1]) / 2);
    ASSERT_TRUE(row.objective_sd.has_value());
    EXPECT_NEAR(*row.objective_sd, std::abs(per_fold[0] - per_fold[1]) / 2, 1e-12);
    ASSERT_EQ(row.fold_objectives.size(), 2u);
    EXPECT_EQ(*row.fold_objectives[0], per_fold[0]);
    EXPECT_EQ(*row.fold_objectives[1], per_fold[1]);
  }
  const std::string csv = ReadFile(store + "/results.csv");
  EXPECT_NE(csv.find(",objective,objective_sd,objective_fold_0,objective_fold_1,"), std::string::npos) << csv;
  EXPECT_EQ(CountLines(store + "/results.csv"), 1 + 2 * 2);
  const auto json = nlohmann::json::parse(ReadFile(store + "/results.json"));
  EXPECT_EQ(json.value("cross_validation", 0), 2);
  EXPECT_DOUBLE_EQ(json["results"][0]["objective_sd"].get<double>(), *rows[0].objective_sd);
  EXPECT_EQ(json["results"][0]["fold_objectives"].size(), 2u);
  const auto status = RunAngiotrain({"sweep", "status", store});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("kium  fold_sd"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("t0000  completed    2/2"), std::string::npos) << status.output;
}

TEST(SweepRun, AFailingTrialIsRecordedAndTheOthersFinish) {
  ScratchDir dir;
  const auto r = RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "", "\"train.lr\" = [0.01, 0.005, 0.001]\n",
                                                                        "epochs = 1\n")},
                               0, 600, {"ANGIOTRAIN_FAULT=point=sweep-trial,step=1,action=error"});
  ASSERT_EQ(r.exit_code, 1) << r.output;  // after the others finished (sweep_run_test.cpp: the exit status)
  const std::string store = dir / "store";
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0000").state, "completed");
  const TrialStatus failed = ReadTrialStatus(store + "/trials/t0001");
  EXPECT_EQ(failed.state, "failed");
  EXPECT_NE(failed.reason.find("sweep-trial"), std::string::npos) << failed.reason;
  EXPECT_EQ(ReadTrialStatus(store + "/trials/t0002").state, "completed");
  const auto rows = CollectResults(store);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows.back().trial, "t0001");  // failed rows rank last
  EXPECT_EQ(rows.back().state, "failed");
  // A rerun skips every finished trial, the failed one included.
  const auto again = RunAngiotrain({"sweep", "run", "--config", dir / "sweep.toml", "--allow-failures"}, 0, 600);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("starting"), std::string::npos) << again.output;
}

TEST(SweepRun, HalvingStopsTrialsOutsideTheBestFractionAtEachRung) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.005, 0.02, 0.0001, 0.00001]\n\"train.epochs\" = [1, 2]\n";
  const auto r = RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "method = \"halving\"\neta = 4", axes)},
                               0, 600);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string store = dir / "store";
  const StoredPlan plan = ReadStoredPlan(store);
  std::vector<std::optional<double>> at_rung;
  int pruned = 0;
  for (size_t i = 0; i < plan.trials.size(); ++i) {
    const std::string trial = TrialDir(store, plan.trials[i].name);
    at_rung.push_back(TrialObjectiveAt(trial, 1, plan.thresholds, plan.objective));
    // Expected: continue when fewer than ceil((i + 1) / 2) earlier trials are at least as good.
    int better = 0;
    for (size_t j = 0; j < i; ++j) better += !Better(at_rung[i], at_rung[j]);
    const bool expect_pruned = better >= static_cast<int>((i + 4) / 4);  // ceil((i + 1) / eta)
    const TrialStatus s = ReadTrialStatus(trial);
    EXPECT_EQ(s.state, expect_pruned ? "pruned" : "completed") << plan.trials[i].name;
    EXPECT_EQ(FileExists(EpochPredictionsPath(trial, 2)), !expect_pruned) << plan.trials[i].name;
    pruned += expect_pruned;
  }
  EXPECT_EQ(ReadTrialStatus(TrialDir(store, "t0000")).state, "completed");  // the first always continues
  EXPECT_GE(pruned, 1);  // on this machine: t0001..t0003 all rank below t0000 at epoch 1
  EXPECT_EQ(CountLines(store + "/results.csv"), 1 + 4 + (4 - pruned));
}

TEST(SweepRun, F1ThresholdsLearntOnValidationArePredictedUnchanged) {
  ScratchDir dir;
  const auto r = RunAngiotrain(
      {"sweep", "run", "--config", WriteSweep(dir, "", "thresholds = [\"f1\"]\n", "epochs = 2\nlr = 0.01\n")}, 0, 600);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string trial = dir / "store/trials/t0000";
  // A template of every patient of the volume (most were not in validation: the "test" set here).
  std::string csv = "Index,Aneurysm";
  for (const auto& name : LocationNames()) csv += "," + name;
  csv += "\n";
  for (int p = 0; p < 40; ++p) {
    csv += std::to_string(2000 + p) + ",0";
    for (int k = 0; k < kNumLocations; ++k) csv += ",0";
    csv += "\n";
  }
  WriteFileAtomically(dir / "test.csv", csv);
  const auto predict = RunAngiotrain({"predict", "--checkpoint", trial + "/best.pt", "--input", dir / "volume.h5",
                                      "--template", dir / "test.csv", "--out", dir / "output.csv", "--threshold", "f1"});
  ASSERT_EQ(predict.exit_code, 0) << predict.output;
  const ThresholdRule f1 = WithLearntFromFile(ThresholdRule::F1(), trial + "/best.thresholds.json");
  ThresholdInputs inputs;
  for (const auto& row : ReadProbabilities(dir / "output.probabilities.csv"))
    inputs.locations.push_back(row.prediction.locations);
  const auto expected = f1.Apply(inputs);
  const auto written = ReadSubmission(dir / "output.csv");
  ASSERT_EQ(written.size(), expected.size());
  for (size_t i = 0; i < written.size(); ++i) EXPECT_EQ(written[i].locations, expected[i]) << i;
  // A thresholds file of another epoch than the checkpoint's is refused.
  const auto mismatch = RunAngiotrain({"predict", "--checkpoint", trial + "/last.pt", "--input", dir / "volume.h5",
                                       "--template", dir / "test.csv", "--out", dir / "o2.csv", "--threshold", "f1",
                                       "--thresholds", dir / "missing.json"});
  EXPECT_NE(mismatch.exit_code, 0);
  EXPECT_NE(mismatch.output.find("missing.json"), std::string::npos) << mismatch.output;
}

std::string Preset(const std::string& name) { return std::string(ANGIOTRAIN_SOURCE_DIR) + "/experiments/configs/" + name; }

TEST(Presets, ReferenceListsEveryKeyWithItsDefault) {
  TrainConfig defaults;
  defaults.data.volume = "out/train.h5";
  // The training sections and [metrics] (declared by monitoring), as `train` assembles them.
  MetricsConfig metrics, default_metrics;
  OtherSections others;
  others.fields = MetricsFields(metrics);
  const TrainConfig reference = LoadTrainConfig(Preset("reference.toml"), others);
  EXPECT_EQ(CanonicalText(reference), CanonicalText(defaults));
  EXPECT_EQ(MetricsConfigText(metrics), MetricsConfigText(default_metrics));
  const std::string text = ReadFile(Preset("reference.toml"));
  std::vector<ConfigField> fields = Fields(defaults);
  for (const auto& field : MetricsFields(default_metrics)) fields.push_back(field);
  for (const auto& field : fields) {
    const std::string name = field.key.substr(field.key.find('.') + 1);
    EXPECT_NE(text.find("\n" + name + " = "), std::string::npos) << field.key << " is not in reference.toml";
  }
}

TEST(Presets, PaperRunsAreTheSeedsSettings) {
  for (const auto& [name, task, epochs] : {std::tuple<const char*, const char*, int>{"paper-presence.toml", "presence", 10},
                                          {"paper-location.toml", "location", 7}}) {
    const TrainConfig c = LoadTrainConfig(Preset(name));
    ValidateTrainConfig(c);
    EXPECT_EQ(c.model.variant, "b0") << name;
    EXPECT_EQ(c.model.task, task) << name;
    EXPECT_EQ(c.train.epochs, epochs) << name;
    EXPECT_EQ(c.train.batch_size, 8) << name;
    EXPECT_DOUBLE_EQ(c.train.lr, 1e-4) << name;
    EXPECT_EQ(c.train.optimizer, "adam") << name;
    EXPECT_EQ(c.train.schedule, "constant") << name;
    EXPECT_DOUBLE_EQ(c.data.validation_split, 0.3) << name;
    EXPECT_EQ(c.evaluation.threshold, "mean+1std") << name;
  }
}

TEST(Presets, QuickstartSweepTrainsTwiceForFortyTwoResults) {
  const SweepSpec spec = LoadSweepSpec(Preset("quickstart-sweep.toml"));
  const SweepPlan plan = PlanSweep(spec);
  EXPECT_EQ(plan.trials.size(), 2u);
  EXPECT_EQ(plan.Evaluations(), 2 * 3 * 7);
  EXPECT_EQ(plan.TrainedEpochs(), 12);
}

}  // namespace
}  // namespace angiotrain
