// Which rows of the training set each rank reads, batch by batch: a seeded permutation per epoch,
// split into equal strided shards, so every rank takes the same number of steps.
//
// Epoch e, seed s, N rows, W ranks, rank r, batch B:
//   1. order = SeededPermutation(N, s, e)          (0..N-1 when shuffle is off)
//   2. make the length a multiple of W:
//        kPadByWrapAround: append order[0], order[1], ... until it is (ceil(N/W)*W rows; a row may
//                          then appear twice in an epoch, on different ranks)
//        kDropLast:        drop the tail (floor(N/W)*W rows; which rows are dropped changes with
//                          the epoch when shuffling)
//        kUneven:          leave it (ranks differ by at most one row: for evaluation, where no
//                          collective runs per step; training must not use it)
//   3. rank r takes order[r], order[r+W], order[r+2W], ...
//   4. batches are consecutive slices of B rows of that shard; the last may be shorter, and then
//      has the same length on every rank (except kUneven), or is dropped (full_batches).
// Everything depends only on (N, W, r, B, seed, epoch, options): a run resumed at (epoch, step)
// reads exactly the rows an uninterrupted run would.
#pragma once

#include <cstdint>
#include <vector>

namespace angiotrain {

// A permutation of 0..n-1 that depends only on (n, seed, stream) — the same on every platform
// and standard library (std::shuffle's and the std distributions' outputs are implementation
// defined). Fisher–Yates driven by SplitMix64, with unbiased bounded draws.
std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed, uint64_t stream);

class DistributedSampler {
 public:
  enum class Tail { kPadByWrapAround, kDropLast, kUneven };
  struct Options {
    bool shuffle = true;
    Tail tail = Tail::kPadByWrapAround;
    // Only full batches: the shard's last batch is dropped when shorter than batch_size
    // (training, where a batch of one row breaks BatchNorm and unequal batches would weight
    // the ranks' gradients unequally).
    bool full_batches = false;
  };

  // Throws Error for num_rows < 0, world_size < 1, rank outside [0, world_size), batch_size < 1.
  DistributedSampler(int64_t num_rows, int world_size, int rank, int64_t batch_size, uint64_t seed,
                     Options options);

  // Where a sampler stands: the next batch is batch `step` of epoch `epoch`. Save it in a
  // checkpoint; Restore(state) continues exactly there.
  struct State {
    int64_t epoch = 0;
    int64_t step = 0;
  };

  // Starts epoch `epoch` at step 0.
  void SetEpoch(int64_t epoch);
  void Restore(State state);
  State state() const { return {epoch_, step_}; }

  // This rank's rows for the current epoch, in reading order.
  const std::vector<int64_t>& shard() const { return shard_; }
  // Batches in an epoch; equal on every rank (except Tail::kUneven).
  int64_t steps_per_epoch() const;
  // Rows of batch `step` of the current epoch (any step in [0, steps_per_epoch())).
  std::vector<int64_t> Batch(int64_t step) const;
  // False when the epoch is exhausted; otherwise fills `rows` with the next batch and advances.
  bool Next(std::vector<int64_t>& rows);

 private:
  void BuildShard();

  int64_t num_rows_;
  int world_size_;
  int rank_;
  int64_t batch_size_;
  uint64_t seed_;
  Options options_;
  int64_t epoch_ = 0;
  int64_t step_ = 0;
  std::vector<int64_t> shard_;
};

}  // namespace angiotrain
