// DistributedSampler and SeededPermutation (see distributed_sampler.h for the exact rule).
#include "distributed/distributed_sampler.h"

#include <numeric>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/random.h"

namespace angiotrain {

std::vector<int64_t> SeededPermutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  // Different streams start far apart: (seed, stream) -> state through two bijective mixes,
  // so (s, e) and (s, e+1) are not shifted copies of one sequence.
  SplitMix64 rng(Mix64(seed ^ Mix64(stream + 0x632BE59BD9B4E019ULL)));
  for (int64_t i = n - 1; i > 0; --i) {
    auto j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

DistributedSampler::DistributedSampler(int64_t num_rows, int world_size, int rank, int64_t batch_size,
                                       uint64_t seed, Options options)
    : num_rows_(num_rows),
      world_size_(world_size),
      rank_(rank),
      batch_size_(batch_size),
      seed_(seed),
      options_(options) {
  if (num_rows < 0) throw Error("DistributedSampler: num_rows " + std::to_string(num_rows) + " is negative");
  if (world_size < 1) throw Error("DistributedSampler: world size " + std::to_string(world_size) + " < 1");
  if (rank < 0 || rank >= world_size) {
    throw Error("DistributedSampler: rank " + std::to_string(rank) + " outside [0, " +
                std::to_string(world_size) + ")");
  }
  if (batch_size < 1) throw Error("DistributedSampler: batch size " + std::to_string(batch_size) + " < 1");
  BuildShard();
}

void DistributedSampler::SetEpoch(int64_t epoch) { Restore({epoch, 0}); }

void DistributedSampler::Restore(State state) {
  if (state.epoch < 0) throw Error("DistributedSampler: epoch " + std::to_string(state.epoch) + " is negative");
  if (state.epoch != epoch_) {
    epoch_ = state.epoch;
    BuildShard();
  }
  if (state.step < 0 || state.step > steps_per_epoch()) {
    throw Error("DistributedSampler: step " + std::to_string(state.step) + " outside [0, " +
                std::to_string(steps_per_epoch()) + "] for epoch " + std::to_string(state.epoch));
  }
  step_ = state.step;
}

void DistributedSampler::BuildShard() {
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = SeededPermutation(num_rows_, seed_, static_cast<uint64_t>(epoch_));
  } else {
    order.resize(static_cast<size_t>(num_rows_));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  int64_t total = num_rows_;
  if (options_.tail == Tail::kPadByWrapAround) {
    total = (num_rows_ + world_size_ - 1) / world_size_ * world_size_;
  } else if (options_.tail == Tail::kDropLast) {
    total = num_rows_ / world_size_ * world_size_;
  }
  shard_.clear();
  if (num_rows_ == 0) return;
  for (int64_t i = rank_; i < total; i += world_size_) shard_.push_back(order[i % num_rows_]);
}

int64_t DistributedSampler::steps_per_epoch() const {
  const auto rows = static_cast<int64_t>(shard_.size());
  return options_.full_batches ? rows / batch_size_ : (rows + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> DistributedSampler::Batch(int64_t step) const {
  if (step < 0 || step >= steps_per_epoch()) {
    throw Error("DistributedSampler: batch " + std::to_string(step) + " outside [0, " +
                std::to_string(steps_per_epoch()) + ")");
  }
  auto begin = shard_.begin() + step * batch_size_;
  auto end = shard_.begin() + std::min<int64_t>((step + 1) * batch_size_, static_cast<int64_t>(shard_.size()));
  return std::vector<int64_t>(begin, end);
}

bool DistributedSampler::Next(std::vector<int64_t>& rows) {
  if (step_ >= steps_per_epoch()) return false;
  rows = Batch(step_++);
  return true;
}

}  // namespace angiotrain
