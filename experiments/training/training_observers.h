// The observers every `angiotrain train` run has: the console progress and the two files of
// output.dir that describe a run (metrics.jsonl, validation_predictions.csv), plus a test-only
// event trace. Each is one writer of one artifact (see training_records.h).
#pragma once

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "experiments/training/training_records.h"

namespace angiotrain {

// Rank 0: the run's first line, a loss line every `every` steps, one line per epoch (training
// loss, validation figures, throughput), on stdout.
class ConsoleProgress : public TrainingObserver {
 public:
  explicit ConsoleProgress(int64_t every = 10) : every_(every) {}
  void OnRunStart(const RunStartRecord& r) override;
  void OnStep(const StepRecord& r) override;
  void OnEpochEnd(const EpochRecord& r) override;

 private:
  int64_t every_;
  double loss_sum_ = 0;
  int64_t steps_ = 0;
  std::string model_;
};

// Rank 0: output.dir/metrics.jsonl, one JSON object per epoch (README "Training" lists the
// fields), rewritten atomically at each epoch end. On a resume it keeps the lines of the epochs
// that the checkpoint includes.
class MetricsJsonlWriter : public TrainingObserver {
 public:
  explicit MetricsJsonlWriter(std::string path) : path_(std::move(path)) {}
  void OnRunStart(const RunStartRecord& r) override;
  void OnEpochEnd(const EpochRecord& r) override;

 private:
  std::string path_;
  std::vector<std::string> lines_;
};

// Rank 0: output.dir/validation_predictions.csv, the last validation's probabilities
// (Index, Aneurysm, the 21 locations; patients ascending).
class ValidationPredictionsWriter : public TrainingObserver {
 public:
  explicit ValidationPredictionsWriter(std::string path) : path_(std::move(path)) {}
  void OnEpochEnd(const EpochRecord& r) override;

 private:
  std::string path_;
};

// Test-only: with ANGIOTRAIN_TRACE_EVENTS=PREFIX set, every rank appends its events to
// PREFIX.rankR, one line each: "start EPOCH STEP GLOBAL", "step EPOCH STEP GLOBAL row row ...",
// "epoch EPOCH GLOBAL", "checkpoint EPOCH STEP GLOBAL", "end REASON GLOBAL".
// Returns nullptr when the variable is not set.
std::unique_ptr<TrainingObserver> EventTraceFromEnvironment(int rank);

// The observers above as every run has them (console, metrics.jsonl and
// validation_predictions.csv in config.output.dir, the trace when asked for), owned: for code
// that builds its own Trainer (a sweep trial, which needs the Trainer to prune it).
std::vector<std::unique_ptr<TrainingObserver>> StandardObservers(const TrainConfig& config, int rank);

}  // namespace angiotrain
