// A small phantom dataset, its volume and a trained run, made through the real binary for the
// tests of export, explain and report (each test process makes its own: seconds at 64 px).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace angiotrain::testing {

struct PhantomRunOptions {
  int patients = 16;
  int resolution = 64;  // ingest side (the volume's R)
  int synth_resolution = 0;  // phantom image side; 0: resolution
  int test_patients = 0;     // data/test_set, not ingested
  int epochs = 1;
  std::string model = "width_mult = 0.1\ndepth_mult = 0.1\n";  // [model] keys besides variant/task
  std::string train = "batch_size = 4\nlr = 1e-3\n";          // [train] keys besides epochs/seed
  std::string synth_options;                                  // e.g. "--aneurysm-size 3,5"
  int ranks = 0;                                              // 0: no mpirun
  bool run_training = true;                                   // false: data and volume only
};

struct PhantomRun {
  std::string data;    // synth output (train_set/ with train.csv and annotations.json)
  std::string volume;  // train_set ingested with labels
  std::string config;  // the TOML file trained with
  std::string run;     // output.dir (last.pt, metrics.jsonl, validation_predictions.csv, config.toml)
};

// Writes everything under `dir`; fails the calling test (fatally) when a step fails.
inline void MakePhantomRun(const ScratchDir& dir, const PhantomRunOptions& o, PhantomRun* out) {
  out->data = dir / "data";
  out->volume = dir / "volume.h5";
  out->config = dir / "config.toml";
  out->run = dir / "run";
  std::vector<std::string> synth = {"synth", "--out", out->data, "--patients", std::to_string(o.patients), "--seed",
                                    "3", "--resolution", std::to_string(o.synth_resolution ? o.synth_resolution : o.resolution),
                                    "--test-patients", std::to_string(o.test_patients), "--quiet"};
  std::string options = o.synth_options;
  for (size_t at = 0; at < options.size();) {
    size_t end = options.find(' ', at);
    if (end == std::string::npos) end = options.size();
    if (end > at) synth.push_back(options.substr(at, end - at));
    at = end + 1;
  }
  CommandResult r = RunAngiotrain(synth);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunAngiotrain({"ingest", "--input", out->data + "/train_set", "--labels", out->data + "/train_set/train.csv",
                     "--out", out->volume, "--resolution", std::to_string(o.resolution), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  {
    std::ofstream f(out->config);
    f << "[data]\nvolume = \"" << out->volume << "\"\nvalidation_split = 0.25\nsplit_seed = 1\n"
      << "[model]\nvariant = \"b0\"\ntask = \"multitask\"\n" << o.model
      << "[train]\nepochs = " << o.epochs << "\nseed = 1\n" << o.train
      << "[output]\ndir = \"" << out->run << "\"\n";
  }
  if (!o.run_training) return;
  r = RunAngiotrain({"train", "--config", out->config}, o.ranks, 1800);
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace angiotrain::testing
