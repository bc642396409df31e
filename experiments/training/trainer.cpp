// The data-parallel training loop (see trainer.h).
#include "experiments/training/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <limits>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "core/random.h"
#include "datasets/batch_prefetcher.h"
#include "distributed/communicator_factory.h"
#include "distributed/differentiable_all_reduce.h"
#include "experiments/training/checkpoint.h"
#include "experiments/training/optimization.h"
#include "experiments/training/task_model.h"
#include "experiments/training/training_observers.h"
#include "experiments/training/validation.h"

namespace angiotrain {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void SetBatchNormEval(torch::nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/false))
    if (dynamic_cast<SyncableBatchNorm2dImpl*>(m.get())) m->eval();
}

// The per-step generator seed: distinct per (seed, step, rank) so ranks drop different units.
uint64_t StepSeed(int64_t seed, int64_t global_step, int rank) {
  return MixSeed(MixSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(global_step)), static_cast<uint64_t>(rank));
}

// Synchronised BatchNorm's sum over the ranks (models/batch_norm.h), differentiable.
class RankSum : public ReplicaSum {
 public:
  explicit RankSum(std::unique_ptr<Communicator> comm) : comm_(std::move(comm)) {}
  torch::Tensor Sum(const torch::Tensor& local) override { return AllReduceSumWithGradient(local, *comm_); }

 private:
  std::unique_ptr<Communicator> comm_;
};

std::atomic<bool> stop_signalled{false};
void OnStopSignal(int) { stop_signalled.store(true); }

}  // namespace

void StopTrainingOnSignal(int signal) { std::signal(signal, OnStopSignal); }

Trainer::Trainer(const TrainConfig& config, const ProcessContext& context)
    : config_(config), context_(context), rule_(ThresholdRule::Parse(config.evaluation.threshold)) {
  CommunicatorOptions comm_options;
  comm_options.backend = ParseBackend(config_.train.backend);
  comm_ = MakeCommunicator(context_, comm_options);
  const int world = context_.world_size;
  if (config_.train.threads > 0)
    torch::set_num_threads(static_cast<int>(config_.train.threads));
  else if (world > 1)
    torch::set_num_threads(1);  // one core per rank: more threads per rank oversubscribe the node

  const std::string& volume = config_.data.volume;
  reader_ = std::make_unique<VolumeReader>(volume, context_.comm);
  if (!reader_->has_labels())
    throw CollectiveError("data.volume " + volume + ": has no labels (ingest it with --labels)");
  task_ = ParseTask(config_.model.task);
  const auto split_seed = static_cast<uint64_t>(config_.data.split_seed);
  if (config_.data.folds >= 2) {
    try {
      split_ = StratifiedFoldSplit(reader_->aneurysm(), config_.data.folds, config_.data.fold, split_seed);
    } catch (const Error& e) {
      throw CollectiveError("data.volume " + volume + ": " + e.what());
    }
  } else {
    split_ = StratifiedSplit(reader_->aneurysm(), config_.data.validation_split, split_seed);
  }
  if (static_cast<int64_t>(split_.train.size()) < world)
    throw CollectiveError("data.volume " + volume + ": " + std::to_string(split_.train.size()) +
                          " training rows, fewer than the " + std::to_string(world) + " ranks");

  torch::manual_seed(static_cast<uint64_t>(config_.train.seed));
  model_ = PrepareModel(config_, reader_->resolution(), context_.device, context_.is_root());
  MaybeInjectFault("model", context_.rank);
  MaybeInjectFault("broadcast", context_.rank);
  BroadcastModuleState(*model_, *comm_);
  if (BatchNormChoice(config_) == BatchNormMode::kSync && world > 1) {
    batch_statistics_ = std::make_shared<RankSum>(MakeCommunicator(context_, comm_options));
    const int layers = ShareBatchStatistics(*model_, batch_statistics_);
    if (context_.is_root())
      std::printf("BatchNorm: %d layers normalise with the statistics of the global batch (%d ranks)\n", layers, world);
  }
  optimizer_ = MakeOptimizer(config_, model_->parameters());

  const std::string& dir = config_.output.dir;
  checkpoint_path_ = dir + "/last.pt";
  // A resume keeps the checkpoint's global batch. On another number of ranks (a requeued job
  // that got other GPUs) the per-rank batch becomes global / ranks where that divides, and the
  // run continues at the same place in the data (the sampler's strided shards give global step
  // s the rows order[s*G, (s+1)*G) whatever the rank count): not bit-exact, and said so.
  batch_size_ = config_.train.batch_size;
  if (config_.train.resume) {
    const CheckpointHeader saved = ReadCheckpointHeader(checkpoint_path_);
    const int64_t global = saved.world_size * saved.batch_size;
    if (global > 0 && global != batch_size_ * world) {
      if (global % world != 0)
        throw CollectiveError(checkpoint_path_ + ": written by " + std::to_string(saved.world_size) + " ranks x batch " +
                              std::to_string(saved.batch_size) + " (global batch " + std::to_string(global) +
                              "), which " + std::to_string(world) + " ranks cannot share equally; resume on a number "
                              "of ranks that divides " + std::to_string(global));
      batch_size_ = global / world;
      if (context_.is_root())
        std::printf("resume on %d ranks from a checkpoint of %lld ranks: same global batch %lld (%lld per rank), same "
                    "position in the data; not bit-exact (per-rank BatchNorm batches and the reduction order differ)\n",
                    world, static_cast<long long>(saved.world_size), static_cast<long long>(global),
                    static_cast<long long>(batch_size_));
    }
  }

  DistributedSampler::Options sampling;
  sampling.full_batches = true;  // see DistributedSampler::Options
  sampler_ = std::make_unique<DistributedSampler>(static_cast<int64_t>(split_.train.size()), world, context_.rank,
                                                  batch_size_, static_cast<uint64_t>(config_.train.seed), sampling);
  steps_per_epoch_ = sampler_->steps_per_epoch();
  if (steps_per_epoch_ < 1)
    throw CollectiveError("train.batch_size " + std::to_string(batch_size_) + " is larger than the " +
                          std::to_string(sampler_->shard().size()) + " training rows of each rank");
  const std::string fingerprint = VolumeFingerprint(reader_->rows(), reader_->resolution(), reader_->index());
  if (config_.train.resume) {
    auto header = RestoreCheckpoint(checkpoint_path_, *model_, *optimizer_);
    if (header.config_hash != ConfigHash(config_))
      throw Error(checkpoint_path_ + ": made with config hash " + header.config_hash + ", but this config (" + dir +
                  "/config.toml) hashes to " + ConfigHash(config_) + ": resume needs the same configuration (only " +
                  ResumableKeys() + " may change)");
    if (!header.volume_fingerprint.empty() && header.volume_fingerprint != fingerprint)
      throw Error("data.volume " + volume + ": not the volume " + checkpoint_path_ +
                  " was trained on (its rows, resolution or patient indices differ)");
    model_->to(context_.device);
    if (header.rank_statistics.defined() && header.rank_statistics.size(0) == world)
      RestoreRunningStatistics(header.rank_statistics[context_.rank]);
    start_epoch_ = header.epoch;
    start_step_ = header.step;
    resumed_so_far_ = header.so_far;
    so_far_whole_ = start_step_ == 0 || header.so_far.steps == start_step_;
    if (!so_far_whole_ && context_.is_root())
      std::printf("resume: %s keeps no figures of the first %lld steps of epoch %lld (written by an older angiotrain): "
                  "that epoch's train_loss (and samples/s) covers the steps since this resume only\n",
                  checkpoint_path_.c_str(), static_cast<long long>(start_step_), static_cast<long long>(start_epoch_ + 1));
    summary_.global_step = header.global_step;
    summary_.checkpoint = checkpoint_path_;
    resumed_ = true;
  }
  sampler_->Restore({start_epoch_, start_step_});

  GradientReducerOptions reducer_options;
  reducer_options.bucket_bytes = static_cast<int64_t>(config_.train.bucket_mb * 1024 * 1024);
  reducer_ = std::make_unique<GradientReducer>(model_->parameters(), *comm_, reducer_options);
  pos_weight_ = TaskPosWeight(config_, task_);
  if (pos_weight_.defined()) pos_weight_ = pos_weight_.to(context_.device);
  precision_ = TaskPrecision(config_, context_.device);

  if (context_.is_root()) {
    std::filesystem::create_directories(dir);
    RemoveStaleTemporaryFiles(dir);
    WriteFileAtomically(dir + "/config.toml", CanonicalText(config_));
  }
  comm_->Barrier();  // the output folder exists before anyone writes into it
}

Trainer::~Trainer() = default;

void Trainer::RestoreRunningStatistics(const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& t : BatchNormRunningStatistics(*model_)) {
    t.copy_(flat.slice(0, offset, offset + t.numel()).view_as(t));
    offset += t.numel();
  }
}

void Trainer::Notify(const std::function<void(TrainingObserver&)>& call) {
  for (auto* o : observers_) call(*o);
}

bool Trainer::RunEpoch(int64_t epoch, int64_t first_step, EpochRecord& record) {
  const int rank = context_.rank, world = context_.world_size;
  sampler_->Restore({epoch, first_step});
  std::vector<std::vector<int64_t>> batches;
  for (std::vector<int64_t> rows; sampler_->Next(rows);) {
    for (auto& r : rows) r = split_.train[r];
    batches.push_back(std::move(rows));
  }
  // The epoch's figures from its first step: a mid-epoch resume starts from those its checkpoint
  // kept, so that the sum of the losses is the same sum, added in the same order, as without it.
  const bool resuming_here = resumed_ && epoch == start_epoch_ && first_step == start_step_ && first_step > 0;
  so_far_ = resuming_here && so_far_whole_ ? resumed_so_far_ : EpochSoFar{};
  if (!resuming_here) so_far_whole_ = true;
  int64_t steps_here = 0;
  double seconds_here = 0, allreduce_wait = 0;
  record = EpochRecord{};
  record.rank = rank;
  record.epoch = epoch + 1;
  record.epochs = config_.train.epochs;
  BatchPrefetcher prefetcher(reader_.get(), batches, 2);
  model_->train();
  if (BatchNormChoice(config_) == BatchNormMode::kEval) SetBatchNormEval(*model_);
  VolumeBatch batch;
  for (int64_t s = first_step; s < steps_per_epoch_; ++s) {
    const int64_t g = summary_.global_step;
    MaybeInjectFault("train-step", rank, g);
    if (InjectedFault("stop-request", rank, g)) RequestStop();
    const auto t0 = Clock::now();
    const double waited_before = prefetcher.waited_seconds();
    if (!prefetcher.Next(&batch)) throw Error("trainer: the prefetcher ran out of batches");
    torch::manual_seed(StepSeed(config_.train.seed, g, rank));
    auto images = batch.images.to(context_.device);
    auto targets = TaskTargets(batch.aneurysm, batch.locations, task_).to(context_.device);
    optimizer_->zero_grad();
    const auto logits = TaskForward(model_, images, precision_);
    auto loss = BceWithLogitsLoss(logits, targets, pos_weight_);
    if (InjectedFault("loss", rank, g) == FaultAction::kNan) loss = loss * std::numeric_limits<float>::quiet_NaN();
    loss.backward();
    reducer_->Finish();
    const double step_allreduce_wait = reducer_->last_step().finish_wait_seconds;
    // Every rank learns every rank's loss and stop request: a non-finite loss stops all ranks
    // before the optimizer step, a stop request after it, all at this step.
    auto agreed = torch::stack({loss.detach().to(torch::kCPU, torch::kDouble).reshape({}),
                                torch::tensor(stop_requested_.load() || stop_signalled.load() ? 1.0 : 0.0, torch::kDouble)});
    comm_->AllReduce(agreed, ReduceOp::kSum);
    const double mean_loss = agreed[0].item<double>() / world;
    if (!std::isfinite(mean_loss))
      throw CollectiveError("non-finite training loss (" + std::to_string(mean_loss) + ") at epoch " +
                            std::to_string(epoch + 1) + " step " + std::to_string(s) + " (global step " +
                            std::to_string(g) + "): stopped before the optimizer step; lower train.lr or set "
                            "train.grad_clip; the last checkpoint in " + config_.output.dir + " is intact");
    if (config_.train.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), config_.train.grad_clip);
    const double lr = LearningRateAt(config_, g, steps_per_epoch_);
    SetLearningRate(*optimizer_, lr);
    optimizer_->step();
    if (config_.train.sync_batchnorm && world > 1) AverageBatchNormStatistics(*model_, *comm_);
    stop_agreed_ = agreed[1].item<double>() > 0;

    StepRecord step{rank, epoch, s, steps_per_epoch_, g, &batch.rows, mean_loss, lr, SecondsSince(t0),
                    prefetcher.waited_seconds() - waited_before, step_allreduce_wait};
    const int64_t samples = static_cast<int64_t>(batch.rows.size()) * world;
    so_far_.loss_sum += mean_loss;
    ++so_far_.steps;
    so_far_.samples += samples;
    so_far_.train_seconds += step.seconds;
    so_far_.data_wait_seconds += step.data_wait_seconds;
    so_far_.allreduce_wait_seconds += step_allreduce_wait;
    ++steps_here;
    seconds_here += step.seconds;
    allreduce_wait += step_allreduce_wait;
    samples_run_ += samples;
    record.lr = lr;
    ++summary_.global_step;
    ++summary_.steps_run;
    Notify([&](TrainingObserver& o) { o.OnStep(step); });
    const bool last = s + 1 == steps_per_epoch_;
    const int64_t every = config_.output.checkpoint_every_steps;
    if (!last && (stop_agreed_ || (every > 0 && summary_.global_step % every == 0))) WriteCheckpoint(epoch, s + 1);
    if (!last && stop_agreed_) break;
  }
  const double seconds = so_far_.train_seconds;
  record.global_step = summary_.global_step;
  record.steps = so_far_.steps;
  record.samples = so_far_.samples;
  record.train_seconds = seconds;
  record.train_loss = so_far_.steps ? so_far_.loss_sum / so_far_.steps : 0.0;
  record.samples_per_second = seconds > 0 ? so_far_.samples / seconds : 0;
  record.data_wait_share = seconds > 0 ? so_far_.data_wait_seconds / seconds : 0.0;
  record.allreduce_wait_share = seconds > 0 ? so_far_.allreduce_wait_seconds / seconds : 0.0;
  summary_.train_seconds += seconds_here;
  summary_.data_wait_seconds += prefetcher.waited_seconds();
  summary_.allreduce_wait_seconds += allreduce_wait;
  return !(stop_agreed_ && first_step + steps_here < steps_per_epoch_);
}

std::optional<ValidationRecord> Trainer::Validate() {
  if (context_.world_size > 1) AverageBatchNormStatistics(*model_, *comm_);
  if (split_.validation.empty()) return std::nullopt;
  MaybeInjectFault("validation", context_.rank, summary_.global_step);
  auto gathered = ForwardShards(model_, *reader_, split_.validation, *comm_, batch_size_,
                                TaskOutputs(task_), context_.device, precision_);
  if (!context_.is_root()) return std::nullopt;
  return ScoreValidation(gathered, *reader_, task_, pos_weight_.defined() ? pos_weight_.cpu() : pos_weight_, rule_,
                         config_.evaluation.threshold);
}

void Trainer::WriteCheckpoint(int64_t epoch, int64_t step) {
  const auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  // The file holds the ranks' average of the BatchNorm statistics, and each rank's own (which
  // it keeps training with), so that writing a checkpoint does not change the run.
  const auto statistics = BatchNormRunningStatistics(*model_);
  std::vector<torch::Tensor> own_parts;
  for (const auto& t : statistics) own_parts.push_back(t.detach().reshape({-1}).to(torch::kCPU, torch::kFloat));
  const torch::Tensor own = own_parts.empty() ? torch::zeros({0}) : torch::cat(own_parts);
  std::vector<torch::Tensor> every_rank;
  if (context_.world_size > 1) {
    every_rank = comm_->Gather(own.reshape({1, -1}));
    AverageBatchNormStatistics(*model_, *comm_);
  }
  CheckpointRecord record{context_.rank, "", epoch, step, summary_.global_step, 0};
  if (context_.is_root()) {
    CheckpointHeader header;
    header.config_text = CanonicalText(config_);
    header.config_hash = ConfigHash(config_);
    header.volume_fingerprint = VolumeFingerprint(reader_->rows(), reader_->resolution(), reader_->index());
    header.resolution = reader_->resolution();
    header.epoch = epoch;
    header.step = step;
    header.global_step = summary_.global_step;
    header.world_size = context_.world_size;
    header.batch_size = batch_size_;
    if (!every_rank.empty()) header.rank_statistics = torch::cat(every_rank, 0);
    if (step > 0 && so_far_whole_) header.so_far = so_far_;
    SaveCheckpoint(checkpoint_path_, *model_, *optimizer_, header);
    record.path = summary_.checkpoint = checkpoint_path_;
  }
  if (context_.world_size > 1) RestoreRunningStatistics(own);
  record.seconds = SecondsSince(t0);
  Notify([&](TrainingObserver& o) { o.OnCheckpoint(record); });
}

TrainSummary Trainer::Run() {
  RunStartRecord start{&config_, context_.rank, context_.world_size, TaskName(task_), context_.Describe(),
                       CountParameters(*model_), static_cast<int64_t>(split_.train.size()),
                       static_cast<int64_t>(split_.validation.size()), steps_per_epoch_, start_epoch_, start_step_,
                       summary_.global_step, resumed_, checkpoint_path_};
  Notify([&](TrainingObserver& o) { o.OnRunStart(start); });
  for (int64_t epoch = start_epoch_; epoch < config_.train.epochs && summary_.end == RunEnd::kCompleted; ++epoch) {
    EpochRecord record;
    const bool whole = RunEpoch(epoch, epoch == start_epoch_ ? start_step_ : 0, record);
    if (!whole) {
      summary_.end = RunEnd::kStopped;
      break;
    }
    record.validation = Validate();
    Notify([&](TrainingObserver& o) { o.OnEpochEnd(record); });
    WriteCheckpoint(epoch + 1, 0);
    summary_.epochs.push_back(std::move(record));
    ++summary_.epochs_run;
    // A stop requested during the epoch's end (validation, observers) is honoured here, at the
    // boundary, rather than after one more step: the ranks agree on it with one small all-reduce.
    auto asked = torch::tensor(stop_requested_.load() || stop_signalled.load() ? 1.0 : 0.0, torch::kDouble);
    comm_->AllReduce(asked, ReduceOp::kSum);
    if ((stop_agreed_ || asked.item<double>() > 0) && epoch + 1 < config_.train.epochs) summary_.end = RunEnd::kStopped;
  }
  summary_.samples_per_second = summary_.train_seconds > 0 ? samples_run_ / summary_.train_seconds : 0;
  comm_->Barrier();
  RunEndRecord end{context_.rank, summary_.end, summary_.epochs_run, summary_.steps_run, summary_.global_step,
                   summary_.train_seconds, summary_.samples_per_second, summary_.checkpoint};
  Notify([&](TrainingObserver& o) { o.OnRunEnd(end); });
  return summary_;
}

TrainSummary Train(const TrainConfig& config, const ProcessContext& context,
                   const std::vector<TrainingObserver*>& extra) {
  Trainer trainer(config, context);
  const auto standard = StandardObservers(config, context.rank);
  for (const auto& o : standard) trainer.AddObserver(o.get());
  for (auto* o : extra) trainer.AddObserver(o);
  return trainer.Run();
}

}  // namespace angiotrain
