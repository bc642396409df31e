// Data-parallel training of an EfficientNet task model on a volume file, one process per rank
// (launched by mpirun/srun), with exact resume from checkpoints.
//
// The Trainer is the loop; everything else attaches to it. Its pieces are methods (RunEpoch,
// Validate, WriteCheckpoint) composed by Run(); what happens is reported to TrainingObservers as
// typed records (training_records.h): the console, metrics.jsonl and validation_predictions.csv
// are observers (training_observers.h), and so are sweeps, metric exporters and reports. The
// concepts it composes live in their own files: the split (data_split.h), the task's model,
// targets and predictions (task_model.h), optimizer and schedule (optimization.h), validation
// (validation.h) and the checkpoint format (checkpoint.h).
//
// One step, on every rank: this rank's batch (DistributedSampler over the training rows, full
// batches only, read ahead by a BatchPrefetcher) -> forward -> BCE-with-logits loss -> backward,
// whose gradients the GradientReducer averages over the ranks while backward runs -> Finish()
// -> one small all-reduce of [loss, stop request] -> optional gradient clipping -> learning rate
// of this step -> optimizer step. A NaN or infinite loss on any rank is seen by all ranks at
// the same step and they stop together (CollectiveError), before the optimizer touches the
// weights. A stop request on any rank (RequestStop: a signal, a sweep pruning the trial) is
// likewise seen by all ranks at the same step: that step completes, a checkpoint is written,
// and Run() returns with RunEnd::kStopped; a resume continues exactly there.
//
// Determinism and resume. The torch random generator (dropout, stochastic depth) is reseeded at
// every step from (train.seed, global step, rank), the sampler's order depends only on
// (seed, epoch), and a checkpoint holds the weights, the BatchNorm buffers, the optimizer state
// and the sampler position (epoch, step, global step). So a run interrupted at any point and
// resumed from its last checkpoint goes through exactly the same computations as an
// uninterrupted run with the same seed and world size, and ends with bit-identical weights (on
// the CPU; GPU kernels are not all deterministic). BatchNorm running statistics are per rank
// during an epoch; they are averaged over the ranks before each checkpoint and each validation.
// With train.batchnorm = "sync" every BatchNorm layer normalises with the statistics of the
// global batch (models/batch_norm.h), and the running statistics are the same on every rank.
//
// Validation rows: a stratified fraction (data.validation_split), or with data.folds >= 2 fold
// data.fold of a stratified k-fold partition (experiments/training/data_split.h); validation_split is then
// not used, and the console's first line says which fold is held out.
//
// Outputs in output.dir (rank 0): config.toml (the canonical configuration), last.pt (every
// output.checkpoint_every_steps steps and at every epoch end, after validation), metrics.jsonl,
// validation_predictions.csv.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datasets/volume_file.h"
#include "distributed/communicator_factory.h"
#include "distributed/distributed_sampler.h"
#include "distributed/gradient_reducer.h"
#include "distributed/process_context.h"
#include "experiments/training/data_split.h"
#include "experiments/training/checkpoint.h"
#include "experiments/training/task_model.h"
#include "experiments/evaluation/threshold_rule.h"
#include "experiments/training/train_config.h"
#include "experiments/training/training_records.h"
#include "models/batch_norm.h"

namespace angiotrain {

struct TrainSummary {
  RunEnd end = RunEnd::kCompleted;
  int64_t epochs_run = 0;      // epochs completed by this invocation
  int64_t global_step = 0;     // steps done in the whole run, resumed ones included
  int64_t steps_run = 0;       // steps done by this invocation
  double train_seconds = 0;    // time in training steps (validation and checkpoints excluded)
  double samples_per_second = 0;  // global samples (all ranks) per train second
  double data_wait_seconds = 0;   // this rank's time waiting for the prefetcher
  double allreduce_wait_seconds = 0;  // this rank's time in GradientReducer::Finish waits
  std::string checkpoint;      // the last checkpoint written (rank 0)
  std::vector<EpochRecord> epochs;  // this invocation's epochs, with validation on rank 0
};

class Trainer {
 public:
  // Opens the volume, builds (or restores, with train.resume) the model and optimizer, and
  // prepares output.dir. Collective over context.comm. Throws Error naming the key or file.
  Trainer(const TrainConfig& config, const ProcessContext& context);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Observers are not owned and must outlive Run().
  void AddObserver(TrainingObserver* observer) { observers_.push_back(observer); }
  // Asks every rank to stop at the next step boundary (async-signal-safe: one atomic store).
  void RequestStop() { stop_requested_.store(true); }

  // Trains from where the trainer stands to the last epoch, or to an agreed stop. Collective.
  TrainSummary Run();

  // One epoch from `first_step`; false when it ended early on a stop request (after writing a
  // checkpoint there). Collective.
  bool RunEpoch(int64_t epoch, int64_t first_step, EpochRecord& record);
  // Validation over every rank's shard of the held-out rows (record on rank 0). Collective.
  std::optional<ValidationRecord> Validate();
  // Averages BatchNorm statistics over the ranks and writes last.pt on rank 0. Collective.
  void WriteCheckpoint(int64_t epoch, int64_t step);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // The model being trained (this rank's copy).
  EfficientNet& model() { return model_; }

 private:
  void Notify(const std::function<void(TrainingObserver&)>& call);
  // Copies a flat vector of BatchNormRunningStatistics values into the model.
  void RestoreRunningStatistics(const torch::Tensor& flat);

  TrainConfig config_;
  ProcessContext context_;
  std::unique_ptr<Communicator> comm_;
  // train.batchnorm = "sync" on several ranks: the sum over ranks that every BatchNorm layer
  // uses, on a communicator of its own (distributed/differentiable_all_reduce.h says why).
  std::shared_ptr<ReplicaSum> batch_statistics_;
  std::unique_ptr<VolumeReader> reader_;
  Task task_;
  ThresholdRule rule_;
  TrainValidationSplit split_;
  EfficientNet model_{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<DistributedSampler> sampler_;
  std::unique_ptr<GradientReducer> reducer_;
  torch::Tensor pos_weight_;
  std::optional<torch::ScalarType> precision_;
  std::string checkpoint_path_;
  int64_t steps_per_epoch_ = 0;
  int64_t batch_size_ = 0;  // per rank: train.batch_size, or a resumed run's global batch / ranks
  int64_t start_epoch_ = 0, start_step_ = 0;
  bool resumed_ = false;
  // The epoch in progress from its first step (kept in mid-epoch checkpoints), and what the
  // resumed checkpoint kept of its epoch. so_far_whole_ is false when an older checkpoint kept
  // nothing: the epoch's figures then cover this invocation's steps only.
  EpochSoFar so_far_, resumed_so_far_;
  bool so_far_whole_ = true;
  int64_t samples_run_ = 0;  // global samples of this invocation's steps
  std::atomic<bool> stop_requested_{false};
  bool stop_agreed_ = false;
  std::vector<TrainingObserver*> observers_;
  TrainSummary summary_;
};

// From now on, `signal` asks every running Trainer of this process to stop at the next step
// boundary (RequestStop), with a checkpoint there. For a scheduler's warning signal (SIGUSR1).
void StopTrainingOnSignal(int signal);

// A Trainer with the standard observers (console, metrics.jsonl, validation_predictions.csv,
// the test-only event trace) plus `extra`, run to the end. Collective over context.comm.
TrainSummary Train(const TrainConfig& config, const ProcessContext& context,
                   const std::vector<TrainingObserver*>& extra = {});

}  // namespace angiotrain
