// GradientReducer, BroadcastModuleState, AverageBatchNormStatistics (design in gradient_reducer.h).
#include "distributed/gradient_reducer.h"

#include <chrono>
#include <string>

#include "core/error.h"

namespace angiotrain {
namespace {

// FNV-1a over a description of tensors, to compare structures across ranks cheaply.
uint64_t Fnv1a(const std::string& text) {
  uint64_t hash = 0xCBF29CE484222325ULL;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001B3ULL;
  return hash;
}

std::string ShapeText(const torch::Tensor& t) {
  std::string s = c10::toString(t.scalar_type());
  s += "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? "," : "") + std::to_string(t.size(d));
  return s + "]";
}

// Every rank passes a fingerprint of its structure; throws the same Error on every rank when
// they differ, so no rank goes on alone into a collective the others never issue.
void CheckSameOnAllRanks(Communicator& comm, uint64_t fingerprint, const std::string& what,
                         const std::string& local_description) {
  auto mine = torch::tensor({static_cast<int64_t>(fingerprint)}, torch::kLong);
  std::vector<torch::Tensor> all = comm.AllGather(mine);
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r].item<int64_t>() != all[0].item<int64_t>()) {
      throw Error(what + ": rank " + std::to_string(r) + " has a different structure than rank 0 (this rank, " +
                  std::to_string(comm.rank()) + ", has " + local_description + ")");
    }
  }
}

// Tensors grouped by (dtype, device), each group flattened into one tensor for one collective.
struct TensorGroup {
  torch::ScalarType type;
  torch::Device device;
  std::vector<torch::Tensor> tensors;
  torch::Tensor Flatten() const {
    std::vector<torch::Tensor> flat;
    for (const auto& t : tensors) flat.push_back(t.reshape(-1));
    return torch::cat(flat);
  }
  void Unflatten(const torch::Tensor& flat) {
    int64_t offset = 0;
    for (auto& t : tensors) {
      t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
};

std::vector<TensorGroup> GroupByTypeAndDevice(const std::vector<torch::Tensor>& tensors) {
  std::vector<TensorGroup> groups;
  for (const auto& t : tensors) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const TensorGroup& g) {
      return g.type == t.scalar_type() && g.device == t.device();
    });
    if (it == groups.end()) {
      groups.push_back({t.scalar_type(), t.device(), {}});
      it = groups.end() - 1;
    }
    it->tensors.push_back(t);
  }
  return groups;
}

}  // namespace

// One flat buffer: the gradients of `params` (slots at `offsets`), then one flag per parameter.
struct GradientReducer::Bucket {
  std::vector<size_t> params;          // indices into params_
  int64_t numel = 0;                   // gradient elements (flags follow)
  torch::Tensor flat;
  std::vector<torch::Tensor> slots;    // views of flat, shaped like each parameter
  torch::Tensor flags;                 // view of flat's tail
  size_t pending = 0;                  // gradients not yet arrived this step
  std::unique_ptr<Work> work;
  bool complete = false;               // work seen complete by a Test
};

GradientReducer::GradientReducer(std::vector<torch::Tensor> parameters, Communicator& comm,
                                 GradientReducerOptions options)
    : comm_(comm) {
  if (options.bucket_bytes < 1 || options.first_bucket_bytes < 1) {
    throw Error("GradientReducer: bucket sizes must be positive");
  }
  std::string description;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const torch::Tensor& p = parameters[i];
    if (!p.defined() || !p.requires_grad()) continue;
    if (!p.is_leaf()) throw Error("GradientReducer: parameter " + std::to_string(i) + " is not a leaf tensor");
    if (p.layout() != torch::kStrided) throw Error("GradientReducer: parameter " + std::to_string(i) + " is sparse");
    params_.push_back(p);
    caller_index_.push_back(i);
    description += ShapeText(p) + p.device().str() + ";";
  }
  description += std::to_string(options.bucket_bytes) + "/" + std::to_string(options.first_bucket_bytes);
  CheckSameOnAllRanks(comm_, Fnv1a(description), "GradientReducer",
                      std::to_string(params_.size()) + " parameters to reduce");

  // Fill buckets walking the parameters backwards; one open bucket per (dtype, device).
  bucket_of_.resize(params_.size());
  slot_of_.resize(params_.size());
  std::vector<std::pair<size_t, int64_t>> open;  // (bucket, bytes so far)
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    size_t b = buckets_.size();
    size_t open_index = open.size();
    for (size_t o = 0; o < open.size(); ++o) {
      const torch::Tensor& first = params_[buckets_[open[o].first]->params.front()];
      if (first.scalar_type() == p.scalar_type() && first.device() == p.device()) open_index = o;
    }
    if (open_index == open.size()) {
      buckets_.push_back(std::make_unique<Bucket>());
      open.emplace_back(b, 0);
    } else {
      b = open[open_index].first;
    }
    Bucket& bucket = *buckets_[b];
    slot_of_[k] = bucket.params.size();
    bucket_of_[k] = b;
    bucket.params.push_back(k);
    bucket.numel += p.numel();
    int64_t& bytes = open[open_index].second;
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
    int64_t cap = b == 0 ? options.first_bucket_bytes : options.bucket_bytes;
    if (bytes >= cap) open.erase(open.begin() + static_cast<std::ptrdiff_t>(open_index));
  }
  for (auto& bucket : buckets_) {
    const torch::Tensor& first = params_[bucket->params.front()];
    auto n = static_cast<int64_t>(bucket->params.size());
    bucket->flat = torch::zeros({bucket->numel + n}, first.options().requires_grad(false));
    int64_t offset = 0;
    for (size_t k : bucket->params) {
      bucket->slots.push_back(bucket->flat.narrow(0, offset, params_[k].numel()).view(params_[k].sizes()));
      offset += params_[k].numel();
    }
    bucket->flags = bucket->flat.narrow(0, bucket->numel, n);
    bucket->pending = bucket->params.size();
  }
  arrived_.assign(params_.size(), false);
  step_.gradients_at_launch.assign(buckets_.size(), -1);
  step_.launched_in_finish.assign(buckets_.size(), false);

  for (size_t k = 0; k < params_.size(); ++k) {
    hook_handles_.push_back(params_[k].register_hook([this, k](const at::TensorBase& grad) {
      OnGradient(k, torch::Tensor(grad));
    }));
  }
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < hook_handles_.size(); ++k) params_[k].remove_hook(hook_handles_[k]);
}

std::vector<std::vector<size_t>> GradientReducer::buckets() const {
  std::vector<std::vector<size_t>> result;
  for (const auto& bucket : buckets_) {
    result.emplace_back();
    for (size_t k : bucket->params) result.back().push_back(caller_index_[k]);
  }
  return result;
}

void GradientReducer::OnGradient(size_t index, const torch::Tensor& grad) {
  if (arrived_[index]) {
    throw Error("GradientReducer: parameter " + std::to_string(caller_index_[index]) + " (" +
                ShapeText(params_[index]) + ") received a second gradient before Finish(); call Finish() "
                "after every backward (gradient accumulation across backward calls is not supported)");
  }
  if (grad.defined() && grad.layout() != torch::kStrided) {
    throw Error("GradientReducer: parameter " + std::to_string(caller_index_[index]) + " has a sparse gradient");
  }
  torch::NoGradGuard no_grad;
  arrived_[index] = true;
  ++step_.gradients;
  Bucket& bucket = *buckets_[bucket_of_[index]];
  torch::Tensor& slot = bucket.slots[slot_of_[index]];
  if (grad.defined()) {
    slot.copy_(grad);
  } else {
    slot.zero_();
  }
  if (--bucket.pending == 0) LaunchReadyBuckets();
  // Drive progress of the oldest outstanding all-reduce (Open MPI progresses only inside calls).
  while (next_test_ < next_launch_ && buckets_[next_test_]->work->Test()) {
    buckets_[next_test_]->complete = true;
    ++next_test_;
  }
}

void GradientReducer::LaunchReadyBuckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) Launch(next_launch_++, false);
}

void GradientReducer::Launch(size_t b, bool in_finish) {
  Bucket& bucket = *buckets_[b];
  bucket.flags.fill_(1);
  if (in_finish) {
    for (size_t s = 0; s < bucket.params.size(); ++s) {
      if (arrived_[bucket.params[s]]) continue;
      bucket.slots[s].zero_();
      bucket.flags.narrow(0, static_cast<int64_t>(s), 1).fill_(0);
    }
  }
  step_.gradients_at_launch[b] = step_.gradients;
  step_.launched_in_finish[b] = in_finish;
  bucket.work = comm_.AllReduceAsync(bucket.flat, ReduceOp::kAverage);
}

void GradientReducer::Finish() {
  torch::NoGradGuard no_grad;
  while (next_launch_ < buckets_.size()) Launch(next_launch_++, true);

  auto start = std::chrono::steady_clock::now();
  for (auto& bucket : buckets_) bucket->work->Wait();
  step_.finish_wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  for (size_t k = 0; k < params_.size(); ++k) {
    const Bucket& bucket = *buckets_[bucket_of_[k]];
    const torch::Tensor& average = bucket.slots[slot_of_[k]];
    // A parameter this rank used has a positive averaged flag; only otherwise read the flag
    // (on a GPU that waits for the stream, so avoid it in the common case).
    if (!arrived_[k]) {
      bool used_elsewhere = bucket.flags[static_cast<int64_t>(slot_of_[k])].item<double>() > 0;
      if (!used_elsewhere) continue;
    }
    torch::Tensor& grad = params_[k].mutable_grad();
    if (grad.defined()) {
      grad.copy_(average);
    } else {
      grad = average.clone();
    }
  }

  for (auto& bucket : buckets_) {
    bucket->work.reset();
    bucket->complete = false;
    bucket->pending = bucket->params.size();
  }
  arrived_.assign(params_.size(), false);
  next_launch_ = 0;
  next_test_ = 0;
  last_step_ = step_;
  step_.gradients = 0;
  step_.finish_wait_seconds = 0;
  std::fill(step_.gradients_at_launch.begin(), step_.gradients_at_launch.end(), -1);
  std::fill(step_.launched_in_finish.begin(), step_.launched_in_finish.end(), false);
}

void BroadcastModuleState(torch::nn::Module& module, Communicator& comm, int root) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  std::string description;
  for (const auto& item : module.named_parameters()) {
    tensors.push_back(item.value());
    description += item.key() + ShapeText(item.value()) + ";";
  }
  for (const auto& item : module.named_buffers()) {
    tensors.push_back(item.value());
    description += item.key() + ShapeText(item.value()) + ";";
  }
  CheckSameOnAllRanks(comm, Fnv1a(description), "BroadcastModuleState",
                      std::to_string(tensors.size()) + " parameters and buffers");
  for (auto& group : GroupByTypeAndDevice(tensors)) {
    torch::Tensor flat = group.Flatten();
    comm.Broadcast(flat, root);
    group.Unflatten(flat);
  }
}

namespace {
bool IsRunningStatistic(const std::string& name, const torch::Tensor& value) {
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  const bool is_stat = name == "running_mean" || name == "running_var" || ends_with(name, ".running_mean") ||
                       ends_with(name, ".running_var");
  return is_stat && value.defined() && torch::isFloatingType(value.scalar_type());
}
}  // namespace

std::vector<torch::Tensor> BatchNormRunningStatistics(torch::nn::Module& module) {
  std::vector<torch::Tensor> stats;
  for (const auto& item : module.named_buffers())
    if (IsRunningStatistic(item.key(), item.value())) stats.push_back(item.value());
  return stats;
}

void AverageBatchNormStatistics(torch::nn::Module& module, Communicator& comm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> stats;
  std::string description;
  for (const auto& item : module.named_buffers()) {
    if (!IsRunningStatistic(item.key(), item.value())) continue;
    stats.push_back(item.value());
    description += item.key() + ShapeText(item.value()) + ";";
  }
  CheckSameOnAllRanks(comm, Fnv1a(description), "AverageBatchNormStatistics",
                      std::to_string(stats.size()) + " running statistics");
  for (auto& group : GroupByTypeAndDevice(stats)) {
    torch::Tensor flat = group.Flatten();
    comm.AllReduce(flat, ReduceOp::kAverage);
    group.Unflatten(flat);
  }
}

}  // namespace angiotrain
