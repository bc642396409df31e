// Sweep planning on hostile input: grids too large to count in 64 bits or to run are refused
// naming their axes and count, a random budget over a huge grid is drawn without enumerating
// it (and small grids draw what they always drew), every trial's config passes train's checks
// before anything trains, string values with quotes, backslashes and newlines reach the trial
// byte for byte through every file the sweep writes, numerically equal values are duplicates,
// and a trial store over an input is refused naming sweep.dir.
#include <gtest/gtest.h>
#include <mpi.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "experiments/sweeps/sweep_spec.h"
#include "experiments/sweeps/sweep_store.h"
#include "experiments/training/train_config.h"
#include "tests/support/test_support.h"
#include "tests/support/test_volume.h"

namespace angiotrain {
namespace {

namespace fs = std::filesystem;
using testing::FileExists;
using testing::RunAngiotrain;
using testing::ScratchDir;

// A basic TOML string written out by hand (not by the code under test).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out + "\"";
}

// A sweep file over a tiny model on DIR/volume.h5 (40 patients, 32 px); `sweep` and `axes` are
// the bodies of [sweep] and [axes]; `store` is sweep.dir (DIR/store when empty).
std::string WriteSweep(const ScratchDir& dir, const std::string& sweep, const std::string& axes,
                       const std::string& name = "sweep.toml", const std::string& store = "") {
  const std::string volume = dir / "volume.h5";
  if (!FileExists(volume)) testing::WriteTestVolume(volume, 40);
  const std::string path = dir / name;
  std::ofstream out(path);
  out << "[sweep]\ndir = " << Quoted(store.empty() ? dir / "store" : store) << "\n" << sweep << "\n"
      << "[base.data]\nvolume = " << Quoted(volume) << "\nvalidation_split = 0.25\nsplit_seed = 3\n"
      << "[base.model]\nvariant = \"b0\"\nwidth_mult = 0.1\ndepth_mult = 0.1\n"
      << "[base.train]\nbatch_size = 5\nseed = 5\nthreads = 1\nepochs = 1\n\n"
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

// "KEY" = [first, first + 1, ..., first + n - 1]
std::string RangeAxis(const std::string& key, int n, int first = 0) {
  std::string out = "\"" + key + "\" = [";
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + std::to_string(first + i);
  return out + "]\n";
}

// 8 axes of 256 values: 2^64 combinations, which wraps a 64-bit count to 0.
const char* kWideKeys[] = {"data.split_seed", "output.checkpoint_every_steps", "train.batch_size", "train.bucket_mb",
                           "train.grad_clip",  "train.seed",                    "train.threads",    "train.weight_decay"};
std::string TwoToTheSixtyFourAxes() {
  std::string axes;
  for (const char* key : kWideKeys) {
    const std::string k = key;
    axes += RangeAxis(k, 256, k == "train.batch_size" || k == "train.bucket_mb" ? 1 : 0);
  }
  return axes;
}

std::vector<std::string> Draw(const SweepPlan& plan) {
  std::vector<std::string> out;
  for (const auto& t : plan.trials) {
    std::string s;
    for (const auto& [k, v] : t.settings) s += (s.empty() ? "" : " ") + v;
    out.push_back(s);
  }
  return out;
}

TEST(SweepPlan, AGridBeyondSixtyFourBitsIsRefusedNamingItsAxesAndItsCount) {
  ScratchDir dir;
  const std::string path = WriteSweep(dir, "", TwoToTheSixtyFourAxes());
  const std::string message = ErrorOf(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("18446744073709551616 combinations"), std::string::npos) << message;
  EXPECT_NE(message.find("1000000"), std::string::npos) << message;  // the limit
  for (const char* key : kWideKeys) EXPECT_NE(message.find(std::string(key) + " (256)"), std::string::npos) << message;
  for (const char* command : {"plan", "run"}) {
    const auto r = RunAngiotrain({"sweep", command, "--config", path});
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("18446744073709551616 combinations"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(FileExists(dir / "store"));
}

TEST(SweepPlan, AGridOverTheTrialLimitIsRefusedBeforeAnyTrialIsPlanned) {
  ScratchDir dir;
  const std::string path = WriteSweep(dir, "", RangeAxis("train.seed", 1001) + RangeAxis("data.split_seed", 1000));
  const std::string message = ErrorOf(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("1001000 combinations of data.split_seed (1000) x train.seed (1001)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("1000000"), std::string::npos) << message;
  EXPECT_NE(message.find("method = \"random\""), std::string::npos) << message;  // what to do instead
}

TEST(SweepPlan, ARandomBudgetOverAHugeGridIsDrawnWithoutEnumeratingIt) {
  ScratchDir dir;
  const std::string trillion = RangeAxis("train.seed", 1000) + RangeAxis("data.split_seed", 1000) +
                               RangeAxis("train.weight_decay", 1000) + RangeAxis("train.threads", 1000);
  for (const std::string& axes : {trillion, TwoToTheSixtyFourAxes()}) {
    const auto draw = [&](int seed) {
      return Draw(PlanSweep(LoadSweepSpec(
          WriteSweep(dir, "method = \"random\"\nbudget = 4\nseed = " + std::to_string(seed), axes))));
    };
    const auto a = draw(1);
    ASSERT_EQ(a.size(), 4u);
    EXPECT_EQ(std::set<std::string>(a.begin(), a.end()).size(), 4u);
    EXPECT_EQ(draw(1), a);
    EXPECT_NE(draw(2), a);
  }
  const SweepSpec spec = LoadSweepSpec(WriteSweep(dir, "method = \"random\"\nbudget = 4", trillion));
  EXPECT_NE(PlanText(spec, PlanSweep(spec)).find("random over 1000000000000 combination(s)"), std::string::npos);
  // A budget over the limit is refused like a grid over it.
  const std::string message = ErrorOf(WriteSweep(dir, "method = \"random\"\nbudget = 1000001", trillion));
  EXPECT_NE(message.find("sweep.budget"), std::string::npos) << message;
  EXPECT_NE(message.find("1000000"), std::string::npos) << message;
}

// The draws of small grids are those of earlier versions, so that a store planned by them
// (plan.json) is still this sweep's plan.
TEST(SweepPlan, RandomDrawsOfSmallGridsAreThoseOfEarlierVersions) {
  ScratchDir dir;
  const std::string axes = "\"train.lr\" = [0.1, 0.01, 0.001, 0.0001]\n\"train.seed\" = [1, 2, 3]\n";
  const auto draw = [&](int seed, int budget) {
    return Draw(PlanSweep(LoadSweepSpec(WriteSweep(
        dir, "method = \"random\"\nbudget = " + std::to_string(budget) + "\nseed = " + std::to_string(seed), axes))));
  };
  // As drawn by the version before the draw stopped holding the whole grid (commit cdee745).
  EXPECT_EQ(draw(1, 5), (std::vector<std::string>{"0.01 1", "0.1 2", "0.0001 1", "0.0001 3", "0.001 2"}));
  EXPECT_EQ(draw(2, 3), (std::vector<std::string>{"0.0001 2", "0.0001 3", "0.01 3"}));
  EXPECT_EQ(draw(0, 12).size(), 12u);
}

TEST(SweepPlan, EveryTrialIsCheckedAsTrainChecksItBeforeAnythingTrains) {
  ScratchDir dir;
  struct Case {
    std::string axes, key, problem;
  };
  const Case cases[] = {
      {"\"model.variant\" = [\"b0\", \"b9\"]\n", "model.variant", "'b9'"},
      {"\"model.dropout\" = [0.2, 1.5]\n", "model.dropout", "[0, 1)"},
      {"\"model.stochastic_depth\" = [1.5]\n", "model.stochastic_depth", "[0, 1]"},
      {"\"model.init\" = [\"torchvision:" + (dir / "missing.pth") + "\"]\n", "model.init", dir / "missing.pth"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteSweep(dir, "", c.axes);
    const std::string message = ErrorOf(path);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(c.key), std::string::npos) << message;
    EXPECT_NE(message.find(c.problem), std::string::npos) << message;
  }
  EXPECT_NE(ErrorOf(WriteSweep(dir, "", cases[0].axes)).find("b0, b1, b2, b3, b4, b5, b6, b7"), std::string::npos);
  // The command stops before any training: no store, a non-zero exit.
  const auto r = RunAngiotrain({"sweep", "run", "--config", WriteSweep(dir, "", cases[0].axes)});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("model.variant"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(dir / "store"));
  // The same check as train's.
  TrainConfig config;
  config.data.volume = dir / "volume.h5";
  config.model.variant = "b9";
  try {
    ValidateTrainConfig(config);
    ADD_FAILURE() << "b9 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.variant"), std::string::npos) << e.what();
  }
}

// File names with each character that TOML quotes or escapes, and one that starts with a newline
// and holds ''' (which a TOML printer may write as a multi-line literal string).
std::vector<std::string> HostileNames() {
  return {"it's.h5", "say \"hi\".h5", "back\\slash.h5", "new\nline.h5", "\nlead'''.h5"};
}

TEST(SweepPlan, StringValuesReachTheTrialConfigsByteForByte) {
  ScratchDir dir;
  std::string axis = "\"data.volume\" = [";
  for (const auto& name : HostileNames()) axis += Quoted(dir / name) + ", ";
  axis += "'" + (dir / "literal\\form.h5") + "']\n";
  const SweepSpec spec = LoadSweepSpec(WriteSweep(dir, "", axis));
  const SweepPlan plan = PlanSweep(spec);
  auto names = HostileNames();
  names.push_back("literal\\form.h5");
  ASSERT_EQ(plan.trials.size(), names.size());
  const auto stored = nlohmann::json::parse(PlanJson(spec, plan));
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(plan.trials[i].config.data.volume, dir / names[i]);
    EXPECT_EQ(plan.trials[i].settings.at(0).second, dir / names[i]);
    EXPECT_EQ(stored["trials"][i]["settings"]["data.volume"], dir / names[i]);
    // The trial's config.toml (the Trainer writes CanonicalText) reads back the same.
    EXPECT_EQ(ParseTrainConfig(CanonicalText(plan.trials[i].config), "config.toml").data.volume, dir / names[i]);
  }
  // An inline [base] table keeps its strings too.
  const std::string init = dir / "\n'''init.pth";
  WriteFileAtomically(init, "");  // only its existence is checked before training
  const std::string base_path = dir / "base.toml";
  std::ofstream(base_path) << "[sweep]\ndir = " << Quoted(dir / "store2") << "\n[base.data]\nvolume = "
                           << Quoted(dir / names[4]) << "\n[base.model]\ninit = " << Quoted("torchvision:" + init)
                           << "\n[axes]\n\"train.lr\" = [0.1]\n";
  TrainConfig base;
  try {
    base = LoadSweepSpec(base_path).base;
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  EXPECT_EQ(base.data.volume, dir / names[4]);
  EXPECT_EQ(base.model.init, "torchvision:" + init);
}

// A real sweep: one trial per volume file whose name holds a quote, a double quote, a backslash
// or a newline; every trial trains, and the name comes back unchanged from the trial's
// config.toml, plan.json, results.json and results.csv.
TEST(SweepRun, VolumeNamesWithQuotesBackslashesAndNewlinesTrainAndRoundTripThroughEveryFile) {
  ScratchDir dir;
  std::string axis = "\"data.volume\" = [";
  for (const auto& name : HostileNames()) {
    testing::WriteTestVolume(dir / name, 40);
    axis += Quoted(dir / name) + ", ";
  }
  axis.resize(axis.size() - 2);
  axis += "]\n";
  const std::string path = WriteSweep(dir, "", axis);
  const auto r = RunAngiotrain({"sweep", "run", "--config", path});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string store = dir / "store";
  const auto plan = nlohmann::json::parse(ReadFile(store + "/plan.json"));
  const auto results = nlohmann::json::parse(ReadFile(store + "/results.json"));
  const std::string csv = ReadFile(store + "/results.csv");
  const auto names = HostileNames();
  ASSERT_EQ(plan["trials"].size(), names.size());
  std::set<std::string> in_results;
  for (const auto& row : results["results"]) {
    EXPECT_EQ(row["state"], "completed") << row.dump();
    in_results.insert(row["settings"]["data.volume"].get<std::string>());
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string volume = dir / names[i];
    const std::string trial = TrialDir(store, plan["trials"][i]["name"].get<std::string>());
    EXPECT_EQ(ReadTrialStatus(trial).state, "completed") << names[i] << ": " << ReadTrialStatus(trial).reason;
    EXPECT_EQ(LoadTrainConfig(trial + "/config.toml", OtherSections::StoredConfig()).data.volume, volume);
    EXPECT_EQ(plan["trials"][i]["settings"]["data.volume"], volume);
    EXPECT_TRUE(in_results.count(volume)) << names[i];
    // results.csv: RFC 4180 quoting where the value holds a double quote or a newline.
    std::string field = volume;
    if (volume.find_first_of("\"\n") != std::string::npos) {
      field = "\"";
      for (char c : volume) field += c == '"' ? std::string("\"\"") : std::string(1, c);
      field += "\"";
    }
    EXPECT_NE(csv.find("," + field + ","), std::string::npos) << names[i] << "\n" << csv;
  }
}

TEST(SweepPlan, NumericallyEqualAxisValuesAreDuplicatesNamingBothSpellings) {
  ScratchDir dir;
  struct Case {
    std::string axes, key, first, second;
  };
  const Case cases[] = {
      {"\"train.lr\" = [1, 1.0]\n", "axes.train.lr", "1", "1.0"},
      {"\"train.lr\" = [0.1, 1e-3, 0.001]\n", "axes.train.lr", "1e-3", "0.001"},
      {"\"train.seed\" = [1, 0x1]\n", "axes.train.seed", "1", "0x1"},
      {"\"train.epochs\" = [2, +2]\n", "axes.train.epochs", "2", "+2"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteSweep(dir, "", c.axes);
    const std::string message = ErrorOf(path);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(c.key), std::string::npos) << message;
    EXPECT_NE(message.find(c.first + " and " + c.second), std::string::npos) << message;
  }
}

TEST(SweepPlan, AStoreOverAnInputIsRefusedNamingSweepDir) {
  ScratchDir dir;
  const std::string other = dir / "notes.txt";
  WriteFileAtomically(other, "keep me\n");
  const std::string base = dir / "base.toml";
  WriteFileAtomically(base, "[data]\nvolume = " + Quoted(dir / "volume.h5") +
                                "\n[model]\nwidth_mult = 0.1\ndepth_mult = 0.1\n[train]\nepochs = 1\nbatch_size = 5\n");
  WriteSweep(dir, "", "\"train.lr\" = [0.1]\n");  // writes the volume
  const auto sweep_over = [&](const std::string& store, const std::string& name) {
    const std::string path = dir / name;
    WriteFileAtomically(path, "base = " + Quoted(base) + "\n[sweep]\ndir = " + Quoted(store) +
                                  "\n[axes]\n\"train.lr\" = [0.1]\n");
    return path;
  };
  struct Case {
    std::string sweep_file, store;
    std::vector<std::string> extra_args;
    std::string expected;
  };
  const std::string self = dir / "self.toml";
  const std::vector<Case> cases = {
      {sweep_over(base, "a.toml"), base, {}, "sweep.dir"},
      {sweep_over(self, "self.toml"), self, {}, "sweep.dir"},
      {sweep_over(other, "c.toml"), other, {}, "sweep.dir"},
      {sweep_over(dir / "store", "d.toml"), dir / "d.toml", {"--dir", dir / "d.toml"}, "--dir"},
      // The store's copy of the sweep file would be the sweep file itself.
      {sweep_over(dir.path(), "sweep.toml"), dir / "sweep.toml", {}, "is the input"},
  };
  for (const Case& c : cases) {
    const std::string before = ReadFile(c.store);
    std::vector<std::string> args = {"sweep", "run", "--config", c.sweep_file};
    args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
    const auto r = RunAngiotrain(args);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.store), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("filesystem error"), std::string::npos) << r.output;
    EXPECT_EQ(ReadFile(c.store), before);
  }
  EXPECT_FALSE(FileExists(dir / "plan.json"));
}

}  // namespace
}  // namespace angiotrain
