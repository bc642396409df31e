// The checkpoint format (see checkpoint.h).
#include "experiments/training/checkpoint.h"

#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "experiments/training/optimization.h"
#include "experiments/training/task_model.h"

namespace angiotrain {
namespace {

// Format 2 keys the optimizer state by parameter position (optimization.h); format 1 (LibTorch's
// own optimizer archive, keyed by tensor addresses) is still read for its weights.
constexpr const char* kCheckpointFormat = "angiotrain-checkpoint-2";
constexpr const char* kCheckpointFormat1 = "angiotrain-checkpoint-1";

void LoadArchive(torch::serialize::InputArchive& archive, const std::string& path) {
  if (std::filesystem::is_directory(path)) throw FileError(path, "is a folder, expected a checkpoint file");
  if (!std::filesystem::exists(path)) throw FileError(path, "no such checkpoint");
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw FileError(path, std::string("cannot read checkpoint: ") + e.what_without_backtrace());
  }
}

CheckpointHeader ReadHeader(torch::serialize::InputArchive& archive, const std::string& path) {
  CheckpointHeader h;
  c10::IValue v;
  if (!archive.try_read("format", v) || !v.isString() ||
      (v.toStringRef() != kCheckpointFormat && v.toStringRef() != kCheckpointFormat1))
    throw FileError(path, "not an angiotrain checkpoint (expected format " + std::string(kCheckpointFormat) + ")");
  auto text = [&](const char* key) {
    archive.read(key, v);
    return v.toStringRef();
  };
  auto integer = [&](const char* key) {
    archive.read(key, v);
    return v.toInt();
  };
  h.config_text = text("config");
  h.config_hash = text("config_hash");
  h.resolution = integer("resolution");
  h.epoch = integer("epoch");
  h.step = integer("step");
  h.global_step = integer("global_step");
  if (archive.try_read("volume_fingerprint", v) && v.isString()) h.volume_fingerprint = v.toStringRef();
  if (archive.try_read("world_size", v) && v.isInt()) h.world_size = v.toInt();
  if (archive.try_read("batch_size", v) && v.isInt()) h.batch_size = v.toInt();
  torch::Tensor statistics;
  if (archive.try_read("rank_statistics", statistics)) h.rank_statistics = statistics;
  // The epoch's figures so far (absent at an epoch boundary and in older files: none kept).
  if (archive.try_read("epoch_steps", v) && v.isInt()) {
    auto number = [&](const char* key) {
      if (!archive.try_read(key, v) || !v.isDouble()) throw FileError(path, std::string("has epoch_steps but no ") + key);
      return v.toDouble();
    };
    h.so_far.steps = v.toInt();
    h.so_far.loss_sum = number("epoch_loss_sum");
    h.so_far.train_seconds = number("epoch_train_seconds");
    h.so_far.data_wait_seconds = number("epoch_data_wait_seconds");
    h.so_far.allreduce_wait_seconds = number("epoch_allreduce_wait_seconds");
    h.so_far.samples = integer("epoch_samples");
  }
  return h;
}

}  // namespace

void SaveCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                    const CheckpointHeader& h) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model.save(model_archive);
  SaveOptimizerState(optimizer, optimizer_archive);
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("config", c10::IValue(h.config_text));
  archive.write("config_hash", c10::IValue(h.config_hash));
  archive.write("resolution", c10::IValue(h.resolution));
  archive.write("epoch", c10::IValue(h.epoch));
  archive.write("step", c10::IValue(h.step));
  archive.write("global_step", c10::IValue(h.global_step));
  archive.write("volume_fingerprint", c10::IValue(h.volume_fingerprint));
  archive.write("world_size", c10::IValue(h.world_size));
  archive.write("batch_size", c10::IValue(h.batch_size));
  if (h.rank_statistics.defined()) archive.write("rank_statistics", h.rank_statistics);
  if (h.so_far.steps > 0) {
    archive.write("epoch_steps", c10::IValue(h.so_far.steps));
    archive.write("epoch_samples", c10::IValue(h.so_far.samples));
    archive.write("epoch_loss_sum", c10::IValue(h.so_far.loss_sum));
    archive.write("epoch_train_seconds", c10::IValue(h.so_far.train_seconds));
    archive.write("epoch_data_wait_seconds", c10::IValue(h.so_far.data_wait_seconds));
    archive.write("epoch_allreduce_wait_seconds", c10::IValue(h.so_far.allreduce_wait_seconds));
  }
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  AtomicOutput out(path);
  const std::string target = out.temp_path();
  archive.save_to(target);
  if (InjectedFault("checkpoint-write", 0, h.global_step)) {
    // Test-only: the write is cut short half way, by a kill or by an error (a full disk).
    std::filesystem::resize_file(target, std::filesystem::file_size(target) / 2);
    MaybeInjectFault("checkpoint-write", 0, h.global_step);
  }
  out.Commit();
}

CheckpointHeader RestoreCheckpoint(const std::string& path, torch::nn::Module& model,
                                   torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive, model_archive, optimizer_archive;
  LoadArchive(archive, path);
  CheckpointHeader header = ReadHeader(archive, path);
  c10::IValue format;
  archive.read("format", format);
  if (format.toStringRef() != kCheckpointFormat)
    throw FileError(path, "written by an older angiotrain (" + format.toStringRef() +
                              "): it can be used by predict, but not resumed");
  archive.read("model", model_archive);
  archive.read("optimizer", optimizer_archive);
  model.load(model_archive);
  LoadOptimizerState(optimizer, optimizer_archive, path);
  return header;
}

CheckpointHeader ReadCheckpointHeader(const std::string& path) {
  torch::serialize::InputArchive archive;
  LoadArchive(archive, path);
  return ReadHeader(archive, path);
}

LoadedCheckpoint LoadCheckpoint(const std::string& path) {
  torch::serialize::InputArchive archive;
  LoadArchive(archive, path);
  auto header = ReadHeader(archive, path);
  LoadedCheckpoint out;
  out.config = ParseTrainConfig(header.config_text, path + " (config)", OtherSections::StoredConfig());
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

std::string VolumeFingerprint(int64_t rows, int resolution, const std::vector<int32_t>& index) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the numbers' bytes
  auto mix = [&](uint64_t value) {
    for (int b = 0; b < 8; ++b) {
      h ^= (value >> (8 * b)) & 0xFF;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<uint64_t>(rows));
  mix(static_cast<uint64_t>(resolution));
  for (int32_t i : index) mix(static_cast<uint64_t>(static_cast<uint32_t>(i)));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace angiotrain
