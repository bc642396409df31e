// The data-parallel trainer, its checkpoints and prediction from a checkpoint (see trainer.h).
#include "experiments/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "datasets/batch_prefetcher.h"
#include "datasets/ingest.h"
#include "datasets/kium_schema.h"
#include "datasets/volume_file.h"
#include "distributed/communicator_factory.h"
#include "distributed/distributed_sampler.h"
#include "distributed/gradient_reducer.h"
#include "distributed/process_context.h"
#include "experiments/metrics.h"
#include "experiments/submission.h"
#include "experiments/threshold_rule.h"
#include "models/autocast.h"
#include "models/weight_import.h"

namespace angiotrain {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr const char* kCheckpointFormat = "angiotrain-checkpoint-1";

// Targets [B, TaskOutputs(task)] in the logits' column order.
torch::Tensor Targets(const VolumeBatch& batch, Task task) {
  switch (task) {
    case Task::kPresence: return batch.aneurysm.unsqueeze(1);
    case Task::kLocation: return batch.locations;
    default: return torch::cat({batch.aneurysm.unsqueeze(1), batch.locations}, 1);
  }
}

torch::Tensor PosWeight(const TrainConfig& config, Task task) {
  if (config.train.location_pos_weight == 1) return torch::Tensor();
  auto w = torch::full({TaskOutputs(task)}, config.train.location_pos_weight, torch::kFloat);
  if (task == Task::kMultitask) w[0] = 1.0;
  if (task == Task::kPresence) w.fill_(1.0);
  return w;
}

void SetBatchNormEval(torch::nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/false))
    if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) m->eval();
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const TrainConfig& c, std::vector<torch::Tensor> params) {
  const auto& t = c.train;
  if (t.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(t.lr).weight_decay(t.weight_decay));
  if (t.optimizer == "adamw")
    return std::make_unique<torch::optim::AdamW>(params,
                                                 torch::optim::AdamWOptions(t.lr).weight_decay(t.weight_decay));
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(t.lr).momentum(0.9).weight_decay(t.weight_decay));
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// The per-step generator seed: distinct per (seed, step, rank) so ranks drop different units.
uint64_t StepSeed(int64_t seed, int64_t global_step, int rank) {
  uint64_t x = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(global_step) * 1000003ull +
               static_cast<uint64_t>(rank) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return x & 0x7FFFFFFFFFFFFFFFull;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string OptionalFixed(const std::optional<double>& v) { return v ? Fixed(*v, 3) : "n/a"; }

nlohmann::json OptionalJson(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

// Logits of `rows` from every rank's shard, gathered on rank 0 (rows and logits in matching
// order); other ranks get empty results. Collective.
struct Gathered {
  std::vector<int64_t> rows;
  torch::Tensor logits;  // [n, K] float32 on CPU (rank 0)
};
Gathered ForwardShards(EfficientNet& model, VolumeReader& reader, const std::vector<int64_t>& rows,
                       Communicator& comm, int64_t batch_size, int outputs, torch::Device device,
                       std::optional<torch::ScalarType> precision) {
  DistributedSampler sampler(static_cast<int64_t>(rows.size()), comm.size(), comm.rank(), batch_size, 0,
                             {false, DistributedSampler::Tail::kUneven});
  sampler.SetEpoch(0);
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> b;
  while (sampler.Next(b)) {
    for (auto& r : b) r = rows[r];
    batches.push_back(b);
  }
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> logits;
  std::vector<int64_t> local_rows;
  {
    BatchPrefetcher prefetcher(&reader, batches, 2);
    VolumeBatch batch;
    while (prefetcher.Next(&batch)) {
      auto x = batch.images.to(device);
      if (device.is_cuda()) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      AutocastScope amp(device.type(), precision);
      logits.push_back(model->forward(x).to(torch::kCPU, torch::kFloat));
      local_rows.insert(local_rows.end(), batch.rows.begin(), batch.rows.end());
    }
  }
  auto local = logits.empty() ? torch::zeros({0, outputs}) : torch::cat(logits, 0);
  auto row_tensor = torch::tensor(local_rows, torch::kLong);
  if (local_rows.empty()) row_tensor = torch::zeros({0}, torch::kLong);
  auto parts = comm.Gather(local.contiguous());
  auto row_parts = comm.Gather(row_tensor);
  Gathered out;
  if (comm.rank() != 0) return out;
  out.logits = torch::cat(parts, 0);
  auto all_rows = torch::cat(row_parts, 0);
  out.rows.assign(all_rows.data_ptr<int64_t>(), all_rows.data_ptr<int64_t>() + all_rows.numel());
  return out;
}

// Per-patient probabilities from a task's logits row: presence and the 21 locations. A location
// model's presence is its most probable location; a presence model's locations are all 0.
PatientPrediction ToPrediction(const float* logits, Task task) {
  auto sigmoid = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  PatientPrediction p;
  int offset = task == Task::kMultitask ? 1 : 0;
  if (HasPresence(task)) p.aneurysm = sigmoid(logits[0]);
  if (HasLocations(task)) {
    double most = 0;
    for (int k = 0; k < kNumLocations; ++k) {
      p.locations[k] = sigmoid(logits[offset + k]);
      most = std::max(most, p.locations[k]);
    }
    if (!HasPresence(task)) p.aneurysm = most;
  }
  return p;
}

struct ValidationMetrics {
  nlohmann::json json;
  std::string line;
  std::string predictions_csv;
};

ValidationMetrics ScoreValidation(const Gathered& g, const VolumeReader& reader, Task task, const TrainConfig& config) {
  ValidationMetrics m;
  const int64_t n = static_cast<int64_t>(g.rows.size());
  const int outputs = TaskOutputs(task);
  auto targets = torch::zeros({n, outputs});
  for (int64_t i = 0; i < n; ++i) {
    int64_t row = g.rows[i];
    int c = 0;
    if (HasPresence(task)) targets[i][c++] = static_cast<float>(reader.aneurysm()[row]);
    if (HasLocations(task))
      for (int k = 0; k < kNumLocations; ++k) targets[i][c++] = static_cast<float>(reader.locations()[row * kNumLocations + k]);
  }
  double loss = BceWithLogitsLoss(g.logits, targets, PosWeight(config, task)).item<double>();
  m.json["val_loss"] = loss;
  m.line = "val loss " + Fixed(loss, 4);

  std::vector<PatientPrediction> preds(n);
  auto logits = g.logits.contiguous();
  for (int64_t i = 0; i < n; ++i) preds[i] = ToPrediction(logits[i].data_ptr<float>(), task);

  std::vector<double> scores(n);
  std::vector<uint8_t> labels(n);
  long correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    scores[i] = preds[i].aneurysm;
    labels[i] = reader.aneurysm()[g.rows[i]];
    correct += (scores[i] > 0.5) == (labels[i] != 0);
  }
  auto auroc = Auroc(scores, labels);
  double accuracy = n ? static_cast<double>(correct) / n : 0;
  m.json["aneurysm_accuracy"] = accuracy;
  m.json["aneurysm_auroc"] = OptionalJson(auroc);
  m.line += "  aneurysm acc " + Fixed(accuracy, 3) + " auroc " + OptionalFixed(auroc);

  if (HasLocations(task)) {
    std::vector<LocationProbabilities> probs(n);
    std::vector<LocationFlags> truth(n);
    for (int64_t i = 0; i < n; ++i) {
      probs[i] = preds[i].locations;
      for (int k = 0; k < kNumLocations; ++k) truth[i][k] = reader.locations()[g.rows[i] * kNumLocations + k];
    }
    auto flags = ThresholdRule::MeanPlusStd(1.0).Apply(probs);
    LocationReport report = ScoreLocations(flags, truth, probs);
    m.json["location_accuracy"] = report.kium_accuracy;
    m.json["no_location_accuracy"] = report.no_location_accuracy;
    m.json["location_macro_auroc"] = OptionalJson(report.macro_auroc);
    nlohmann::json per = nlohmann::json::object();
    for (int k = 0; k < kNumLocations; ++k) {
      const auto& s = report.per_location[k];
      per[LocationNames()[k]] = {{"accuracy", OptionalJson(Accuracy(s.counts))}, {"auroc", OptionalJson(s.auroc)}};
    }
    m.json["per_location"] = per;
    m.line += "  locations acc " + Fixed(report.kium_accuracy, 4) + " (none " +
              Fixed(report.no_location_accuracy, 4) + ") macro auroc " + OptionalFixed(report.macro_auroc);
  }

  std::ostringstream csv;
  csv << "Index,Aneurysm";
  for (const auto& name : LocationNames()) csv << "," << name;
  csv << "\n";
  std::vector<size_t> order(n);
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return g.rows[a] < g.rows[b]; });
  for (size_t i : order) {
    csv << reader.index()[g.rows[i]] << "," << Fixed(preds[i].aneurysm, 6);
    for (int k = 0; k < kNumLocations; ++k) csv << "," << Fixed(preds[i].locations[k], 6);
    csv << "\n";
  }
  m.predictions_csv = csv.str();
  return m;
}

void SaveCheckpoint(const std::string& path, EfficientNet& model, torch::optim::Optimizer& optimizer,
                    const TrainConfig& config, int resolution, int64_t epoch, int64_t step, int64_t global_step) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model->save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("config", c10::IValue(CanonicalText(config)));
  archive.write("config_hash", c10::IValue(ConfigHash(config)));
  archive.write("resolution", c10::IValue(static_cast<int64_t>(resolution)));
  archive.write("epoch", c10::IValue(epoch));
  archive.write("step", c10::IValue(step));
  archive.write("global_step", c10::IValue(global_step));
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  AtomicOutput out(path);
  const std::string target = out.temp_path();
  archive.save_to(target);
  if (InjectedFault("checkpoint-write", 0, global_step)) {
    // Test-only: the write is cut short half way, by a kill or by an error (a full disk).
    std::filesystem::resize_file(target, std::filesystem::file_size(target) / 2);
    MaybeInjectFault("checkpoint-write", 0, global_step);
  }
  out.Commit();
}

struct CheckpointHeader {
  std::string format, config_text, config_hash;
  int64_t resolution = 0, epoch = 0, step = 0, global_step = 0;
};

CheckpointHeader ReadHeader(torch::serialize::InputArchive& archive, const std::string& path) {
  CheckpointHeader h;
  c10::IValue v;
  if (!archive.try_read("format", v) || !v.isString() || v.toStringRef() != kCheckpointFormat)
    throw FileError(path, "not an angiotrain checkpoint (expected format " + std::string(kCheckpointFormat) + ")");
  archive.read("config", v);
  h.config_text = v.toStringRef();
  archive.read("config_hash", v);
  h.config_hash = v.toStringRef();
  archive.read("resolution", v);
  h.resolution = v.toInt();
  archive.read("epoch", v);
  h.epoch = v.toInt();
  archive.read("step", v);
  h.step = v.toInt();
  archive.read("global_step", v);
  h.global_step = v.toInt();
  return h;
}

void LoadArchive(torch::serialize::InputArchive& archive, const std::string& path) {
  if (!std::filesystem::exists(path)) throw FileError(path, "no such checkpoint");
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw FileError(path, std::string("cannot read checkpoint: ") + e.what_without_backtrace());
  }
}

}  // namespace

TrainValidationSplit StratifiedSplit(const std::vector<uint8_t>& aneurysm, double validation_fraction,
                                     uint64_t seed) {
  TrainValidationSplit split;
  for (int cls = 0; cls <= 1; ++cls) {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < aneurysm.size(); ++i)
      if ((aneurysm[i] != 0) == (cls == 1)) rows.push_back(static_cast<int64_t>(i));
    auto perm = SeededPermutation(static_cast<int64_t>(rows.size()), seed, static_cast<uint64_t>(cls));
    auto n_val = static_cast<size_t>(std::llround(validation_fraction * static_cast<double>(rows.size())));
    for (size_t i = 0; i < rows.size(); ++i) (i < n_val ? split.validation : split.train).push_back(rows[perm[i]]);
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

double LearningRateAt(const TrainConfig& config, int64_t global_step, int64_t steps_per_epoch) {
  const double lr = config.train.lr;
  const int64_t total = config.train.epochs * steps_per_epoch;
  const int64_t warmup = static_cast<int64_t>(std::llround(config.train.warmup_epochs * steps_per_epoch));
  if (global_step < warmup) return lr * static_cast<double>(global_step + 1) / static_cast<double>(warmup);
  if (config.train.schedule == "constant") return lr;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, static_cast<double>(global_step - warmup) / static_cast<double>(span));
  return 0.5 * lr * (1.0 + std::cos(M_PI * progress));
}

EfficientNet BuildModel(const TrainConfig& config, int resolution) {
  auto mc = EfficientNetConfig::ForVariant(config.model.variant);
  if (config.model.width_mult > 0) mc.width_mult = config.model.width_mult;
  if (config.model.depth_mult > 0) mc.depth_mult = config.model.depth_mult;
  if (config.model.dropout >= 0) mc.dropout = config.model.dropout;
  if (config.model.stochastic_depth >= 0) mc.stochastic_depth_prob = config.model.stochastic_depth;
  mc.resolution = resolution;
  mc.in_channels = kNumViews;
  mc.num_outputs = TaskOutputs(ParseTask(config.model.task));
  return EfficientNet(mc);
}

TrainSummary Train(const TrainConfig& config) {
  ValidateTrainConfig(config);
  const auto context = ProcessContext::Create(MPI_COMM_WORLD, ParseDeviceRequest(config.train.device));
  CommunicatorOptions comm_options;
  comm_options.backend = ParseBackend(config.train.backend);
  auto comm = MakeCommunicator(context, comm_options);
  const int rank = context.rank, world = context.world_size;
  const bool root = context.is_root();
  if (config.train.threads > 0)
    torch::set_num_threads(static_cast<int>(config.train.threads));
  else if (world > 1)
    torch::set_num_threads(1);  // one core per rank: more threads per rank oversubscribe the node

  VolumeReader reader(config.data.volume, context.comm);
  if (!reader.has_labels())
    throw CollectiveError("data.volume " + config.data.volume + ": has no labels (ingest it with --labels)");
  const Task task = ParseTask(config.model.task);
  const auto split = StratifiedSplit(reader.aneurysm(), config.data.validation_split,
                                     static_cast<uint64_t>(config.data.split_seed));
  if (static_cast<int64_t>(split.train.size()) < world)
    throw CollectiveError("data.volume " + config.data.volume + ": " + std::to_string(split.train.size()) +
                          " training rows, fewer than the " + std::to_string(world) + " ranks");

  torch::manual_seed(static_cast<uint64_t>(config.train.seed));
  EfficientNet model = BuildModel(config, reader.resolution());
  if (!config.model.init.empty() && root) InitializeModel(model, config.model.init);
  model->to(context.device);
  if (context.device.is_cuda()) ToChannelsLast(*model);
  BroadcastModuleState(*model, *comm);
  auto optimizer = MakeOptimizer(config, model->parameters());

  DistributedSampler sampler(static_cast<int64_t>(split.train.size()), world, rank, config.train.batch_size,
                             static_cast<uint64_t>(config.train.seed), {});
  // Full batches only (the tail of each rank's shard is dropped, a different one each epoch):
  // a last batch of one row would break BatchNorm in training mode, and equal batch sizes keep
  // the average over ranks the gradient of the global batch.
  sampler.SetEpoch(0);
  const int64_t steps_per_epoch = static_cast<int64_t>(sampler.shard().size()) / config.train.batch_size;
  if (steps_per_epoch < 1)
    throw CollectiveError("train.batch_size " + std::to_string(config.train.batch_size) + " is larger than the " +
                          std::to_string(sampler.shard().size()) + " training rows of each rank");
  const std::string dir = config.output.dir;
  const std::string checkpoint_path = dir + "/last.pt";

  int64_t start_epoch = 0, start_step = 0;
  if (config.train.resume) {
    torch::serialize::InputArchive archive;
    LoadArchive(archive, checkpoint_path);
    auto header = ReadHeader(archive, checkpoint_path);
    if (header.config_hash != ConfigHash(config))
      throw Error(checkpoint_path + ": made with config hash " + header.config_hash + ", but this config (" +
                  dir + "/config.toml) hashes to " + ConfigHash(config) +
                  ": resume needs the same configuration (only threads, output and checkpoint frequency may change)");
    torch::serialize::InputArchive model_archive, optimizer_archive;
    archive.read("model", model_archive);
    archive.read("optimizer", optimizer_archive);
    model->load(model_archive);
    model->to(context.device);
    optimizer->load(optimizer_archive);
    start_epoch = header.epoch;
    start_step = header.step;
    if (root)
      std::printf("resuming from %s at epoch %lld step %lld (global step %lld)\n", checkpoint_path.c_str(),
                  static_cast<long long>(start_epoch + 1), static_cast<long long>(start_step),
                  static_cast<long long>(header.global_step));
  }

  GradientReducerOptions reducer_options;
  reducer_options.bucket_bytes = static_cast<int64_t>(config.train.bucket_mb * 1024 * 1024);
  GradientReducer reducer(model->parameters(), *comm, reducer_options);

  std::vector<std::string> metric_lines;  // rank 0: metrics.jsonl, kept across resumes
  if (root) {
    std::filesystem::create_directories(dir);
    WriteFileAtomically(dir + "/config.toml", CanonicalText(config));
    if (config.train.resume && std::filesystem::exists(dir + "/metrics.jsonl")) {
      std::istringstream in(ReadFile(dir + "/metrics.jsonl"));
      for (std::string line; std::getline(in, line);)
        if (!line.empty() && nlohmann::json::parse(line).value("epoch", int64_t{0}) <= start_epoch)
          metric_lines.push_back(line);
    }
    std::printf("training %s (%s, %lld parameters) on %lld rows (%lld validation), %d rank(s) x batch %lld, "
                "%lld steps/epoch, %s\n",
                config.model.variant.c_str(), TaskName(task).c_str(), static_cast<long long>(CountParameters(*model)),
                static_cast<long long>(split.train.size()), static_cast<long long>(split.validation.size()), world,
                static_cast<long long>(config.train.batch_size), static_cast<long long>(steps_per_epoch),
                context.Describe().c_str());
    std::fflush(stdout);
  }
  comm->Barrier();  // the output folder exists before anyone writes into it

  // Test-only: ANGIOTRAIN_TRACE_BATCHES=PREFIX writes the volume rows of every training batch of
  // this rank to PREFIX.rankR ("epoch global_step row row ..." per step).
  std::unique_ptr<std::ofstream> trace;
  if (const char* prefix = std::getenv("ANGIOTRAIN_TRACE_BATCHES"))
    trace = std::make_unique<std::ofstream>(std::string(prefix) + ".rank" + std::to_string(rank), std::ios::app);
  const auto pos_weight = PosWeight(config, task);
  const auto precision = ParsePrecision(config.train.precision, context.device);
  TrainSummary summary;
  summary.global_step = start_epoch * steps_per_epoch + start_step;
  auto checkpoint = [&](int64_t epoch, int64_t step) {
    if (world > 1) AverageBatchNormStatistics(*model, *comm);
    if (root) {
      SaveCheckpoint(checkpoint_path, model, *optimizer, config, reader.resolution(), epoch, step,
                     summary.global_step);
      summary.checkpoint = checkpoint_path;
    }
  };

  for (int64_t epoch = start_epoch; epoch < config.train.epochs; ++epoch) {
    sampler.SetEpoch(epoch);
    const int64_t first = epoch == start_epoch ? start_step : 0;
    std::vector<std::vector<int64_t>> batches;
    for (int64_t s = first; s < steps_per_epoch; ++s) {
      auto rows = sampler.Batch(s);
      for (auto& r : rows) r = split.train[r];
      batches.push_back(std::move(rows));
    }
    double loss_sum = 0, epoch_seconds = 0, allreduce_wait = 0, data_wait = 0;
    int64_t steps = 0, samples = 0;
    double lr = 0;
    {
      BatchPrefetcher prefetcher(&reader, batches, 2);
      model->train();
      if (config.train.batchnorm == "eval") SetBatchNormEval(*model);
      VolumeBatch batch;
      for (int64_t s = first; s < steps_per_epoch; ++s) {
        const int64_t g = summary.global_step;
        if (g == config.train.fail_at_step && rank == config.train.fail_rank) {
          std::fprintf(stderr, "rank %d: train.fail_at_step=%lld: killing myself (fault injection)\n", rank,
                       static_cast<long long>(g));
          std::fflush(stderr);
          std::raise(SIGKILL);
        }
        const auto t0 = Clock::now();
        if (!prefetcher.Next(&batch)) throw Error("trainer: the prefetcher ran out of batches");
        if (trace) {
          *trace << epoch + 1 << " " << g;
          for (auto r : batch.rows) *trace << " " << r;
          *trace << "\n" << std::flush;
        }
        torch::manual_seed(StepSeed(config.train.seed, g, rank));
        auto images = batch.images.to(context.device);
        if (context.device.is_cuda()) images = images.contiguous(torch::MemoryFormat::ChannelsLast);
        auto targets = Targets(batch, task).to(context.device);
        optimizer->zero_grad();
        torch::Tensor logits;
        {
          AutocastScope amp(context.device.type(), precision);
          logits = model->forward(images);
        }
        logits = logits.to(torch::kFloat);
        auto loss = BceWithLogitsLoss(logits, targets, pos_weight.defined() ? pos_weight.to(context.device) : pos_weight);
        if (static_cast<double>(g) == config.train.nan_at_step && rank == config.train.fail_rank)
          loss = loss * std::numeric_limits<float>::quiet_NaN();
        loss.backward();
        reducer.Finish();
        allreduce_wait += reducer.last_step().finish_wait_seconds;
        // Every rank learns every rank's loss: a non-finite one stops all ranks at this step.
        auto global_loss = loss.detach().to(torch::kCPU, torch::kDouble).reshape({1}).clone();
        comm->AllReduce(global_loss, ReduceOp::kSum);
        const double mean_loss = global_loss.item<double>() / world;
        if (!std::isfinite(mean_loss))
          throw CollectiveError("non-finite training loss (" + std::to_string(mean_loss) + ") at epoch " +
                                std::to_string(epoch + 1) + " step " + std::to_string(s) + " (global step " +
                                std::to_string(g) + "): stopped before the optimizer step; lower train.lr or set "
                                "train.grad_clip; the last checkpoint in " + dir + " is intact");
        if (config.train.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), config.train.grad_clip);
        lr = LearningRateAt(config, g, steps_per_epoch);
        SetLearningRate(*optimizer, lr);
        optimizer->step();
        if (config.train.sync_batchnorm && world > 1) AverageBatchNormStatistics(*model, *comm);
        loss_sum += mean_loss;
        ++steps;
        samples += static_cast<int64_t>(batch.rows.size()) * world;
        ++summary.global_step;
        ++summary.steps_run;
        epoch_seconds += SecondsSince(t0);
        if (root && steps % 10 == 0) {
          std::printf("  epoch %lld step %lld/%lld loss %.4f\n", static_cast<long long>(epoch + 1),
                      static_cast<long long>(s + 1), static_cast<long long>(steps_per_epoch), loss_sum / steps);
          std::fflush(stdout);
        }
        if (config.output.checkpoint_every_steps > 0 && summary.global_step % config.output.checkpoint_every_steps == 0 &&
            s + 1 < steps_per_epoch)
          checkpoint(epoch, s + 1);
      }
      data_wait = prefetcher.waited_seconds();
    }
    summary.train_seconds += epoch_seconds;
    summary.data_wait_seconds += data_wait;
    summary.allreduce_wait_seconds += allreduce_wait;

    nlohmann::json record;
    std::string line;
    if (world > 1) AverageBatchNormStatistics(*model, *comm);
    if (!split.validation.empty()) {
      auto gathered = ForwardShards(model, reader, split.validation, *comm, config.train.batch_size,
                                    TaskOutputs(task), context.device, precision);
      if (root) {
        auto m = ScoreValidation(gathered, reader, task, config);
        record = m.json;
        line = m.line;
        WriteFileAtomically(dir + "/validation_predictions.csv", m.predictions_csv);
      }
    }
    if (root) {
      const double rate = epoch_seconds > 0 ? samples / epoch_seconds : 0;
      record["epoch"] = epoch + 1;
      record["global_step"] = summary.global_step;
      record["lr"] = lr;
      record["train_loss"] = steps ? loss_sum / steps : 0.0;
      record["train_seconds"] = epoch_seconds;
      record["samples_per_second"] = rate;
      record["data_wait_share"] = epoch_seconds > 0 ? data_wait / epoch_seconds : 0.0;
      record["allreduce_wait_share"] = epoch_seconds > 0 ? allreduce_wait / epoch_seconds : 0.0;
      metric_lines.push_back(record.dump());
      std::string text;
      for (const auto& l : metric_lines) text += l + "\n";
      WriteFileAtomically(dir + "/metrics.jsonl", text);
      std::printf("epoch %lld/%lld  train loss %.4f  %s  %.1f samples/s  (%.0fs)\n",
                  static_cast<long long>(epoch + 1), static_cast<long long>(config.train.epochs),
                  steps ? loss_sum / steps : 0.0, line.c_str(), rate, epoch_seconds);
      std::fflush(stdout);
    }
    checkpoint(epoch + 1, 0);
    ++summary.epochs_run;
  }
  summary.samples_per_second =
      summary.train_seconds > 0 ? static_cast<double>(summary.steps_run * config.train.batch_size * world) / summary.train_seconds
                                : 0;
  comm->Barrier();
  return summary;
}

LoadedCheckpoint LoadCheckpoint(const std::string& path) {
  torch::serialize::InputArchive archive;
  LoadArchive(archive, path);
  auto header = ReadHeader(archive, path);
  LoadedCheckpoint out;
  out.config = ParseTrainConfig(header.config_text, path + " (config)");
  out.config_hash = header.config_hash;
  out.resolution = static_cast<int>(header.resolution);
  out.epoch = header.epoch;
  out.step = header.step;
  out.global_step = header.global_step;
  out.model = BuildModel(out.config, out.resolution);
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  out.model->load(model_archive);
  out.model->eval();
  return out;
}

int64_t Predict(const PredictOptions& options, MPI_Comm comm_handle) {
  const auto rule = ThresholdRule::Parse(options.threshold);
  const auto context = ProcessContext::Create(comm_handle, DeviceRequest::kCpu);
  auto comm = MakeCommunicator(context, {});
  if (context.world_size > 1) torch::set_num_threads(1);
  auto loaded = LoadCheckpoint(options.checkpoint);
  const Task task = ParseTask(loaded.config.model.task);

  std::string volume = options.input;
  std::string temporary;
  if (std::filesystem::is_directory(options.input)) {
    // A K-ium folder: ingest it at the model's resolution into a volume next to the output.
#ifndef ANGIOTRAIN_WITH_OPENCV
    throw Error(options.input + ": is a folder, but this build has no image decoding (OpenCV); "
                "give a volume file made by angiotrain ingest");
#endif
    temporary = options.out + ".input.h5";
    IngestOptions ingest;
    ingest.input_dir = options.input;
    ingest.labels_csv = options.template_path;
    ingest.out_path = temporary;
    ingest.resolution = loaded.resolution;
    ingest.progress = false;
#ifdef ANGIOTRAIN_WITH_OPENCV
    IngestKiumFolder(ingest, context.comm);
#endif
    volume = temporary;
  }
  int64_t patients = 0;
  {
    VolumeReader reader(volume, context.comm);
    if (reader.resolution() != loaded.resolution)
      throw CollectiveError(volume + ": resolution " + std::to_string(reader.resolution()) + ", but the model in " +
                            options.checkpoint + " was trained at " + std::to_string(loaded.resolution));
    std::vector<int64_t> rows(reader.rows());
    for (int64_t i = 0; i < reader.rows(); ++i) rows[i] = i;
    auto gathered = ForwardShards(loaded.model, reader, rows, *comm, options.batch_size, TaskOutputs(task),
                                  torch::kCPU, std::nullopt);
    if (context.is_root()) {
      std::map<int32_t, PatientPrediction> predictions;
      auto logits = gathered.logits.contiguous();
      for (size_t i = 0; i < gathered.rows.size(); ++i)
        predictions[reader.index()[gathered.rows[i]]] =
            ToPrediction(logits[static_cast<int64_t>(i)].data_ptr<float>(), task);
      WriteSubmission(options.template_path, options.out, predictions, rule);
      patients = static_cast<int64_t>(predictions.size());
    }
  }
  comm->Barrier();
  if (!temporary.empty() && context.is_root()) std::filesystem::remove(temporary);
  return patients;
}

}  // namespace angiotrain
