// Background batch reading. See batch_prefetcher.h.
#include "datasets/batch_prefetcher.h"

#include <chrono>

namespace angiotrain {

VolumeBatch ReadBatch(VolumeReader& reader, const std::vector<int64_t>& rows) {
  VolumeBatch b;
  b.rows = rows;
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t r = reader.resolution();
  std::vector<uint8_t> raw;
  reader.ReadImages(rows, &raw);
  b.images = torch::from_blob(raw.data(), {n, kNumViews, r, r}, torch::kUInt8).to(torch::kFloat32).div_(255.0);
  for (int64_t row : rows) b.index.push_back(reader.index()[row]);
  if (reader.has_labels()) {
    b.aneurysm = torch::empty({n}, torch::kFloat32);
    b.locations = torch::empty({n, kNumLocations}, torch::kFloat32);
    auto a = b.aneurysm.accessor<float, 1>();
    auto l = b.locations.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) {
      a[i] = reader.aneurysm()[rows[i]];
      for (int k = 0; k < kNumLocations; ++k) l[i][k] = reader.locations()[rows[i] * kNumLocations + k];
    }
  }
  return b;
}

BatchPrefetcher::BatchPrefetcher(VolumeReader* reader, std::vector<std::vector<int64_t>> batches, int depth)
    : reader_(reader), batches_(std::move(batches)), depth_(depth < 1 ? 1 : depth) {
  thread_ = std::thread([this] { Run(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BatchPrefetcher::Run() {
  try {
    for (size_t i = 0; i < batches_.size(); ++i) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || ready_.size() < depth_; });
        if (stop_) return;
      }
      VolumeBatch b = ReadBatch(*reader_, batches_[i]);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.push_back(std::move(b));
      }
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  changed_.notify_all();
}

bool BatchPrefetcher::Next(VolumeBatch* batch) {
  if (next_to_return_ >= batches_.size()) return false;
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || error_; });
  waited_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (ready_.empty() && error_) std::rethrow_exception(error_);
  *batch = std::move(ready_.front());
  ready_.pop_front();
  ++next_to_return_;
  lock.unlock();
  changed_.notify_all();
  return true;
}

}  // namespace angiotrain
