// What the training loop tells the world: typed records of a run's start, every step, every
// epoch end (with its validation), every checkpoint and the run's end, delivered to observers.
// The console progress, metrics.jsonl and validation_predictions.csv are observers
// (training_observers.h); sweeps, Prometheus, Slurm and reports attach the same way, never by
// editing the loop. Every rank calls its observers with its own records (`rank`); validation
// figures exist on rank 0 only, where the predictions are gathered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/evaluation/metrics.h"
#include "experiments/evaluation/submission.h"
#include "experiments/training/train_config.h"

namespace angiotrain {

struct RunStartRecord {
  const TrainConfig* config = nullptr;
  int rank = 0, world_size = 1;
  std::string task, device;       // "multitask", "rank 0/2 (local 0/2) on cpu"
  int64_t parameters = 0;
  int64_t train_rows = 0, validation_rows = 0;
  int64_t steps_per_epoch = 0;
  int64_t start_epoch = 0, start_step = 0, start_global_step = 0;  // where this invocation starts
  bool resumed = false;
  std::string checkpoint_path;    // resumed from / written to
};

struct StepRecord {
  int rank = 0;
  int64_t epoch = 0;              // 0-based
  int64_t step = 0;               // 0-based within the epoch
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;        // 0-based index of this step in the whole run
  const std::vector<int64_t>* rows = nullptr;  // this rank's volume rows of the batch
  double loss = 0;                // mean over the ranks of their batch losses
  double lr = 0;
  double seconds = 0;             // this rank's wall time of the step
  double data_wait_seconds = 0;   // of which waiting for the prefetcher
  double allreduce_wait_seconds = 0;  // of which waiting for gradient buckets
};

// Validation over every rank's shard of the held-out rows, scored on rank 0.
struct ValidationRecord {
  double loss = 0;
  double aneurysm_accuracy = 0;        // presence threshold 0.5
  std::optional<double> aneurysm_auroc;
  std::string threshold_rule;          // evaluation.threshold
  std::optional<LocationReport> locations;  // tasks with locations
  std::vector<int32_t> indices;        // patients, ascending
  std::vector<PatientPrediction> predictions;  // in the order of `indices`
};

struct EpochRecord {
  int rank = 0;
  int64_t epoch = 0;              // 1-based: the epoch just completed
  int64_t epochs = 0;
  int64_t global_step = 0;        // steps done in the whole run
  // The epoch's figures over all its steps, those before a mid-epoch resume included (they are
  // kept in the checkpoint; one older than that keeps none, and they cover the steps since it).
  int64_t steps = 0;              // steps of this epoch
  int64_t samples = 0;            // global samples (all ranks) of those steps
  double lr = 0;                  // of the last step
  double train_loss = 0;          // mean of the steps' losses
  double train_seconds = 0;       // in training steps (validation and checkpoints excluded; rank 0's before a resume)
  double samples_per_second = 0;  // global samples per train second
  double data_wait_share = 0, allreduce_wait_share = 0;  // of train_seconds
  std::optional<ValidationRecord> validation;  // rank 0, when there is a validation split
};

struct CheckpointRecord {
  int rank = 0;
  std::string path;               // on rank 0; empty elsewhere
  int64_t epoch = 0, step = 0, global_step = 0;  // where a resume continues
  double seconds = 0;
};

enum class RunEnd { kCompleted, kStopped };
std::string RunEndName(RunEnd end);

struct RunEndRecord {
  int rank = 0;
  RunEnd reason = RunEnd::kCompleted;
  int64_t epochs_run = 0, steps_run = 0, global_step = 0;
  double train_seconds = 0, samples_per_second = 0;
  std::string checkpoint;         // the last checkpoint written (rank 0)
};

// Receives the records of a run. Called on the training thread between steps: keep it cheap,
// and never run collectives from an observer (ranks may be called at different moments).
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void OnRunStart(const RunStartRecord&) {}
  virtual void OnStep(const StepRecord&) {}
  virtual void OnEpochEnd(const EpochRecord&) {}
  virtual void OnCheckpoint(const CheckpointRecord&) {}
  virtual void OnRunEnd(const RunEndRecord&) {}
};

}  // namespace angiotrain
