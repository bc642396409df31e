// Data-parallel training of an EfficientNet task model on a volume file, one process per rank
// (launched by mpirun/srun), with exact resume from checkpoints; and prediction from a checkpoint.
//
// One step, on every rank: this rank's batch (DistributedSampler over the training rows,
// read ahead by a BatchPrefetcher) -> forward -> BCE-with-logits loss -> backward, whose
// gradients the GradientReducer averages over the ranks while backward runs -> Finish() ->
// optional gradient clipping -> learning rate of this step -> optimizer step. The loss of every
// rank is summed with one small all-reduce per step: a NaN or infinite loss on any rank is then
// seen by all ranks at the same step and they stop together (CollectiveError), before the
// optimizer touches the weights.
//
// Determinism and resume. The torch random generator (dropout, stochastic depth) is reseeded at
// every step from (train.seed, global step, rank), the sampler's order depends only on
// (seed, epoch), and a checkpoint holds the weights, the BatchNorm buffers, the optimizer state
// and the sampler position (epoch, step). So a run interrupted at any point and resumed from
// its last checkpoint goes through exactly the same computations as an uninterrupted run with
// the same seed and world size, and ends with bit-identical weights (on the CPU; GPU kernels are
// not all deterministic). BatchNorm running statistics are per rank during an epoch; they are
// averaged over the ranks before each checkpoint and each validation, so every rank holds the
// statistics the checkpoint holds.
//
// Checkpoints: output.dir/last.pt, written by rank 0 under a temporary name and renamed, so a
// run killed while writing leaves the previous complete checkpoint intact. Written every
// output.checkpoint_every_steps steps and at the end of every epoch (after validation).
//
// Outputs in output.dir (rank 0): config.toml (the canonical configuration), last.pt,
// metrics.jsonl (one JSON object per epoch), validation_predictions.csv (the last epoch's
// validation probabilities).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "experiments/train_config.h"
#include "models/efficientnet.h"
#include "models/heads.h"

namespace angiotrain {

// The validation split: a seeded fraction of each Aneurysm class (rounded to nearest), the same
// on every rank and machine. Both lists are sorted row numbers.
struct TrainValidationSplit {
  std::vector<int64_t> train, validation;
};
TrainValidationSplit StratifiedSplit(const std::vector<uint8_t>& aneurysm, double validation_fraction,
                                     uint64_t seed);

// The learning rate at `global_step` (0-based) of a run of `total_steps`: linear warm-up over
// warmup_steps from lr/warmup_steps to lr, then constant or cosine decay to 0 at total_steps.
double LearningRateAt(const TrainConfig& config, int64_t global_step, int64_t steps_per_epoch);

// The network the config describes, for images of `in_channels` views (8) and `resolution`.
EfficientNet BuildModel(const TrainConfig& config, int resolution);

struct TrainSummary {
  int64_t epochs_run = 0;      // epochs completed by this invocation
  int64_t global_step = 0;     // steps done in the whole run, resumed ones included
  int64_t steps_run = 0;       // steps done by this invocation
  double train_seconds = 0;    // time in training steps (validation and checkpoints excluded)
  double samples_per_second = 0;  // global samples (all ranks) per train second
  double data_wait_seconds = 0;   // this rank's time waiting for the prefetcher
  double allreduce_wait_seconds = 0;  // this rank's time in GradientReducer::Finish waits
  std::string checkpoint;      // the last checkpoint written
};

// Runs the training the config describes over MPI_COMM_WORLD (collective: every rank calls it
// with the same config). Throws Error (or CollectiveError when every rank agrees on it).
TrainSummary Train(const TrainConfig& config);

// A checkpoint's contents as a usable model.
struct LoadedCheckpoint {
  TrainConfig config;
  std::string config_hash;
  int resolution = 0;
  int64_t epoch = 0, step = 0, global_step = 0;  // where training would continue
  EfficientNet model{nullptr};                  // on the CPU, in eval mode
};
LoadedCheckpoint LoadCheckpoint(const std::string& path);

struct PredictOptions {
  std::string checkpoint;
  std::string input;          // a volume file, or a K-ium folder (ingested to a temporary volume)
  std::string template_path;  // test.csv: rows and column order of the submission
  std::string out;            // output.csv (the probabilities sidecar goes next to it)
  std::string threshold = "mean+1std";
  int64_t batch_size = 16;
};
// Runs the checkpoint's model over the input (each rank a shard, gathered on rank 0) and writes
// the submission (experiments/submission.h). Collective over `comm`. Returns the patients scored.
int64_t Predict(const PredictOptions& options, MPI_Comm comm);

}  // namespace angiotrain
