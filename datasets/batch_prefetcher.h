// Sharded reading for training: a rank's batches (any lists of rows) read from the volume file
// and turned into float tensors in [0,1] on a background thread, a few batches ahead, so the
// trainer does not wait for the disk when the disk can keep up.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "datasets/volume_file.h"

namespace angiotrain {

struct VolumeBatch {
  std::vector<int64_t> rows;    // rows of the volume file, in batch order
  std::vector<int32_t> index;   // patient indices
  torch::Tensor images;         // float32 [B, 8, R, R], values in [0, 1]
  torch::Tensor aneurysm;       // float32 [B]      (undefined when the file has no labels)
  torch::Tensor locations;      // float32 [B, 21]  (undefined when the file has no labels)
};

// Reads `rows` synchronously (the prefetcher's unit of work; also for evaluation).
VolumeBatch ReadBatch(VolumeReader& reader, const std::vector<int64_t>& rows);

class BatchPrefetcher {
 public:
  // `reader` must outlive the prefetcher and must not be used by another thread meanwhile.
  // `depth`: batches read ahead.
  BatchPrefetcher(VolumeReader* reader, std::vector<std::vector<int64_t>> batches, int depth = 2);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next batch in order; false after the last. Rethrows a read error of the background thread.
  bool Next(VolumeBatch* batch);
  // Total time Next() spent waiting for the background thread (data-loading stall).
  double waited_seconds() const { return waited_seconds_; }

 private:
  void Run();

  VolumeReader* reader_;
  std::vector<std::vector<int64_t>> batches_;
  size_t depth_;
  size_t next_to_return_ = 0;
  std::deque<VolumeBatch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  double waited_seconds_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread thread_;
};

}  // namespace angiotrain
