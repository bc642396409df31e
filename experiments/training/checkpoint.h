// The checkpoint file (output.dir/last.pt): weights, BatchNorm buffers, optimizer state, where
// training stands (epoch, step within it, global step, the epoch's figures so far), the canonical
// configuration with its hash, and a fingerprint of the training volume's content. Written under
// a temporary name and renamed, so an interrupted write leaves the previous checkpoint intact.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "experiments/training/train_config.h"
#include "models/efficientnet.h"

namespace angiotrain {

// The figures of the epoch in progress up to a mid-epoch checkpoint, from its first step: what
// the epoch's record (training_records.h) is computed from, so that a resumed epoch reports the
// whole epoch's train_loss, bit for bit, as the run without the interruption does. Times are rank
// 0's. steps == 0: none kept (an epoch boundary, or a file older than these figures).
struct EpochSoFar {
  int64_t steps = 0, samples = 0;  // steps, and global samples (all ranks) in them
  double loss_sum = 0;             // of the steps' losses (mean over the ranks), in step order
  double train_seconds = 0, data_wait_seconds = 0, allreduce_wait_seconds = 0;
};

struct CheckpointHeader {
  std::string config_text, config_hash;
  std::string volume_fingerprint;  // VolumeFingerprint of data.volume ("" in older files)
  int64_t resolution = 0;
  int64_t epoch = 0, step = 0, global_step = 0;  // where training continues
  int64_t world_size = 0, batch_size = 0;        // ranks and per-rank batch that wrote it (0: older file)
  // [world size, n]: each rank's own BatchNorm running statistics (BatchNormRunningStatistics,
  // flattened) when a checkpoint is written mid-epoch; the model holds their average. A resume
  // on as many ranks gives each rank its own back, so a checkpoint never changes the run.
  torch::Tensor rank_statistics;
  EpochSoFar so_far;  // mid-epoch: the epoch's figures up to `step`
};

// Writes `path` atomically (rank 0's job; not collective).
void SaveCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                    const CheckpointHeader& header);

// Reads the header and loads the weights and optimizer state into `model` and `optimizer`.
// Throws Error naming the file when it is missing, not a checkpoint, or does not fit.
CheckpointHeader RestoreCheckpoint(const std::string& path, torch::nn::Module& model,
                                   torch::optim::Optimizer& optimizer);

// The header alone (no weights are read into anything). Throws Error naming the file.
CheckpointHeader ReadCheckpointHeader(const std::string& path);

// A checkpoint's contents as a usable model.
struct LoadedCheckpoint {
  TrainConfig config;
  std::string config_hash;
  int resolution = 0;
  int64_t epoch = 0, step = 0, global_step = 0;  // where training would continue
  EfficientNet model{nullptr};                  // on the CPU, in eval mode
};
LoadedCheckpoint LoadCheckpoint(const std::string& path);

// What identifies a volume's content for a resume, wherever the file lies: its rows, resolution
// and patient indices (a 16-hex-digit hash).
std::string VolumeFingerprint(int64_t rows, int resolution, const std::vector<int32_t>& index);

}  // namespace angiotrain
