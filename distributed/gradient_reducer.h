// Data-parallel gradient averaging in the manner of PyTorch DDP: gradients are packed into
// buckets whose all-reduce starts during backward, as soon as the bucket is complete; plus the
// start-of-training broadcast of the model state and the BatchNorm statistics option.
//
// Design
// ------
// Why buckets. One all-reduce per parameter tensor pays the collective's latency hundreds of
// times a step (EfficientNet-B0 has ~210 tensors, many of a few hundred floats); one all-reduce
// of everything after backward pays it once but cannot overlap with backward at all. Buckets of
// a few MB sit between: few collectives, and all but the last can run while backward is still
// computing the gradients of earlier layers.
//
// Which parameters share a bucket. Backward produces gradients roughly in reverse order of the
// forward pass, i.e. in reverse order of Module::parameters(). So buckets are filled walking the
// parameter list backwards: bucket 0 holds the last layers (whose gradients arrive first),
// the last bucket the first layers. A bucket is closed when it reaches `bucket_bytes` (a tensor
// is never split, so a bucket may be larger, and one big tensor may be a bucket on its own).
// The first bucket is capped at `first_bucket_bytes` (1 MiB) instead so that the first
// all-reduce starts early: with a single 25 MB bucket, a 21 MB model such as B0 would get no
// overlap at all. A bucket holds one dtype on one device (it is one flat tensor).
//
// When an all-reduce starts. Each parameter gets an autograd hook (Tensor::register_hook on the
// leaf). LibTorch runs a leaf's hooks just before its AccumulateGrad node, with the gradient
// already summed over every use of the parameter in the graph: the hook fires once per backward
// with the parameter's final gradient for this backward. The hook copies it into the parameter's
// slot of its bucket's flat buffer; when a bucket has all its gradients, its average over the
// ranks is started with Communicator::AllReduceAsync. Buckets are launched strictly in bucket
// order (a complete bucket waits for its predecessors): every rank must issue the same
// collectives in the same order, and hook order is not guaranteed to match across ranks, bucket
// order is. Each hook also tests the oldest outstanding all-reduce, which is what makes Open MPI
// progress a non-blocking collective while backward computes.
//
// After backward. Finish() launches any bucket still incomplete (see unused parameters), waits
// for all of them, and writes each parameter's averaged gradient into its .grad — replacing what
// backward accumulated there. The hook returns the gradient unchanged, so .grad holds the local
// gradient in between; only after Finish() does it hold the average. The optimizer step follows.
// The average is over ranks: with equal per-rank batches and a loss that is a mean over the
// batch, it is the gradient of the mean loss over the whole global batch, exactly what one
// process would compute on the concatenated batch (up to floating-point rounding).
//
// Unused parameters. A parameter that did not take part in this rank's forward gets no hook
// call, so its bucket can only be launched in Finish(), with zeros in that slot (the rank's
// gradient of its loss with respect to that parameter is zero). Next to the gradients, each
// bucket carries one flag per parameter, 1 if this rank produced its gradient, and the flags are
// averaged with them. After Finish():
//   - used on at least one rank: .grad = average over all ranks (zeros from the others);
//   - used on no rank: .grad is left as it was (undefined if it was), as in a single process,
//     so optimizers skip the parameter exactly as they would without data parallelism.
// Buckets after an incomplete one lose their overlap (they launch in Finish, in order).
//
// Contract. Every rank builds the reducer with the same parameter list (checked: the
// constructor throws the same Error on every rank if shapes or dtypes differ), calls backward
// once and then Finish() once per step, and in the same steps. A second gradient for a
// parameter before Finish() (two backward calls, gradient accumulation) throws Error from the
// hook. Frozen parameters (requires_grad false) are left out. Zero the gradients every step
// (optimizer.zero_grad()), as usual. After an exception the reducer must not be used again.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace angiotrain {

struct GradientReducerOptions {
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t first_bucket_bytes = int64_t{1} << 20;
};

class GradientReducer {
 public:
  // Registers a hook on every parameter that requires grad. `comm` must outlive the reducer.
  // Collective over `comm` (checks that all ranks have the same parameters).
  GradientReducer(std::vector<torch::Tensor> parameters, Communicator& comm,
                  GradientReducerOptions options = {});
  // Removes the hooks.
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Call once after each backward: waits for every bucket and writes the averaged gradients
  // into .grad (see "After backward" and "Unused parameters" above).
  void Finish();

  // The buckets in launch order, each as indices into the constructor's parameter list.
  std::vector<std::vector<size_t>> buckets() const;

  // What happened in the last completed step (after Finish); for tests and the benchmark.
  struct StepStats {
    int gradients = 0;                       // hooks that fired
    std::vector<int> gradients_at_launch;    // per bucket: gradients arrived when it was launched
    std::vector<bool> launched_in_finish;    // per bucket: launched by Finish, not during backward
    double finish_wait_seconds = 0;          // time Finish blocked waiting for all-reduces
  };
  const StepStats& last_step() const { return last_step_; }

 private:
  struct Bucket;
  void OnGradient(size_t index, const torch::Tensor& grad);
  void LaunchReadyBuckets();
  void Launch(size_t bucket, bool in_finish);

  Communicator& comm_;
  std::vector<torch::Tensor> params_;       // those that require grad, in the caller's order
  std::vector<size_t> caller_index_;        // params_[i] is parameters[caller_index_[i]]
  std::vector<unsigned> hook_handles_;
  std::vector<size_t> bucket_of_;           // params_[i] lives in buckets_[bucket_of_[i]]
  std::vector<size_t> slot_of_;             // ... at position slot_of_[i] of that bucket
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<bool> arrived_;               // this step
  size_t next_launch_ = 0;                  // buckets before it are launched this step
  size_t next_test_ = 0;                    // oldest launched bucket not seen complete
  StepStats step_, last_step_;
};

// Copies every parameter and buffer of `module` on rank `root` into the same tensors on every
// other rank (one broadcast per dtype and device). Call once before training, so that every rank
// starts from the same weights and BatchNorm statistics whatever its seed. Collective; every rank
// must pass a module of the same structure (checked: each rank throws the same Error otherwise).
void BroadcastModuleState(torch::nn::Module& module, Communicator& comm, int root = 0);

// BatchNorm statistics. By default they are per rank: in training mode each rank normalises with
// the mean and variance of its own batch (b rows, not the global W·b) and updates its own
// running_mean/running_var, which therefore drift apart slightly between ranks (they start
// equal after BroadcastModuleState).
//
// The option is AverageBatchNormStatistics: called after every optimizer step, it replaces each
// BatchNorm running_mean and running_var (buffers named so, found recursively) by its average
// over the ranks, so all ranks hold the same running statistics — the ones that eval mode,
// validation and the checkpoint use. The running mean then equals, up to rounding, what one
// process training on the global batch would hold (the update is linear and the global batch
// mean is the mean of equal-sized shard means). The running variance is the mean of the
// per-rank batch variances: it leaves out the spread between the ranks' means, and each rank's
// unbiased correction is n/(n-1) for its n values per channel rather than Wn/(Wn-1), so it only
// approximates the single-process value (closely when batches are large and well mixed).
// Normalisation during training still uses per-rank batch statistics: this is not SyncBatchNorm.
// num_batches_tracked is left alone (every rank counts the same steps). Collective.
void AverageBatchNormStatistics(torch::nn::Module& module, Communicator& comm);

// The floating-point running_mean and running_var buffers of `module` (found recursively), in
// the module's buffer order: what AverageBatchNormStatistics averages.
std::vector<torch::Tensor> BatchNormRunningStatistics(torch::nn::Module& module);

}  // namespace angiotrain
