// Console progress, metrics.jsonl, validation_predictions.csv and the test-only event trace
// (see training_observers.h).
#include "experiments/training/training_observers.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "experiments/evaluation/evaluation.h"

namespace angiotrain {
namespace {

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string OptionalFixed(const std::optional<double>& v) { return v ? Fixed(*v, 3) : "n/a"; }
nlohmann::ordered_json OptionalJson(const std::optional<double>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json();
}

// "val loss 0.1234  aneurysm acc 0.900 auroc 0.950  locations acc 0.9700 (none 0.9600) macro auroc 0.800"
std::string ValidationLine(const ValidationRecord& v) {
  std::string line = "val loss " + Fixed(v.loss, 4) + "  aneurysm acc " + Fixed(v.aneurysm_accuracy, 3) +
                     " auroc " + OptionalFixed(v.aneurysm_auroc);
  if (v.locations)
    line += "  locations acc " + Fixed(v.locations->kium_accuracy, 4) + " (none " +
            Fixed(v.locations->no_location_accuracy, 4) + ") macro auroc " + OptionalFixed(v.locations->macro_auroc);
  return line;
}

}  // namespace

std::string RunEndName(RunEnd end) { return end == RunEnd::kStopped ? "stopped" : "completed"; }

void ConsoleProgress::OnRunStart(const RunStartRecord& r) {
  if (r.rank != 0) return;
  const auto& c = *r.config;
  if (r.resumed)
    std::printf("resuming from %s at epoch %lld step %lld (global step %lld)\n", r.checkpoint_path.c_str(),
                static_cast<long long>(r.start_epoch + 1), static_cast<long long>(r.start_step),
                static_cast<long long>(r.start_global_step));
  const std::string fold = c.data.folds >= 2 ? ": fold " + std::to_string(c.data.fold) + " of a stratified " +
                                                    std::to_string(c.data.folds) + "-fold partition"
                                              : "";
  std::printf("training %s (%s, %lld parameters) on %lld rows (%lld validation%s), %d rank(s) x batch %lld, "
              "%lld steps/epoch, %s\n",
              c.model.variant.c_str(), r.task.c_str(), static_cast<long long>(r.parameters),
              static_cast<long long>(r.train_rows), static_cast<long long>(r.validation_rows), fold.c_str(), r.world_size,
              static_cast<long long>(c.train.batch_size), static_cast<long long>(r.steps_per_epoch), r.device.c_str());
  std::fflush(stdout);
}

void ConsoleProgress::OnStep(const StepRecord& r) {
  if (r.rank != 0) return;
  if (r.step == 0 || steps_ == 0) loss_sum_ = 0, steps_ = 0;
  loss_sum_ += r.loss;
  if (++steps_ % every_ == 0) {
    std::printf("  epoch %lld step %lld/%lld loss %.4f\n", static_cast<long long>(r.epoch + 1),
                static_cast<long long>(r.step + 1), static_cast<long long>(r.steps_per_epoch), loss_sum_ / steps_);
    std::fflush(stdout);
  }
}

void ConsoleProgress::OnEpochEnd(const EpochRecord& r) {
  steps_ = 0;
  if (r.rank != 0) return;
  std::printf("epoch %lld/%lld  train loss %.4f  %s  %.1f samples/s  (%.0fs)\n", static_cast<long long>(r.epoch),
              static_cast<long long>(r.epochs), r.train_loss, r.validation ? ValidationLine(*r.validation).c_str() : "",
              r.samples_per_second, r.train_seconds);
  std::fflush(stdout);
}

void MetricsJsonlWriter::OnRunStart(const RunStartRecord& r) {
  if (r.rank != 0 || !r.resumed || !std::filesystem::exists(path_)) return;
  std::istringstream in(ReadFile(path_));
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && nlohmann::json::parse(line).value("epoch", int64_t{0}) <= r.start_epoch)
      lines_.push_back(line);
}

void MetricsJsonlWriter::OnEpochEnd(const EpochRecord& r) {
  if (r.rank != 0) return;
  nlohmann::ordered_json j;
  if (const auto& v = r.validation) {
    j["val_loss"] = v->loss;
    j["aneurysm_accuracy"] = v->aneurysm_accuracy;
    j["aneurysm_auroc"] = OptionalJson(v->aneurysm_auroc);
    if (v->locations) {
      j["threshold_rule"] = v->threshold_rule;
      j["location_accuracy"] = v->locations->kium_accuracy;
      j["no_location_accuracy"] = v->locations->no_location_accuracy;
      j["location_macro_auroc"] = OptionalJson(v->locations->macro_auroc);
      j["per_location"] = PerLocationJson(*v->locations, true);
    }
  }
  j["epoch"] = r.epoch;
  j["global_step"] = r.global_step;
  j["lr"] = r.lr;
  j["train_loss"] = r.train_loss;
  j["train_seconds"] = r.train_seconds;
  j["samples_per_second"] = r.samples_per_second;
  j["data_wait_share"] = r.data_wait_share;
  j["allreduce_wait_share"] = r.allreduce_wait_share;
  lines_.push_back(j.dump());
  std::string text;
  for (const auto& l : lines_) text += l + "\n";
  WriteFileAtomically(path_, text);
}

void ValidationPredictionsWriter::OnEpochEnd(const EpochRecord& r) {
  if (r.rank != 0 || !r.validation) return;
  WriteFileAtomically(path_, ProbabilitiesCsvText(CanonicalHeader(), r.validation->indices, r.validation->predictions));
}

namespace {

class EventTrace : public TrainingObserver {
 public:
  explicit EventTrace(const std::string& path) : out_(path, std::ios::app) {}
  void OnRunStart(const RunStartRecord& r) override {
    Line("start " + std::to_string(r.start_epoch) + " " + std::to_string(r.start_step) + " " +
         std::to_string(r.start_global_step));
  }
  void OnStep(const StepRecord& r) override {
    std::string line = "step " + std::to_string(r.epoch) + " " + std::to_string(r.step) + " " +
                       std::to_string(r.global_step);
    for (int64_t row : *r.rows) line += " " + std::to_string(row);
    Line(line);
  }
  void OnEpochEnd(const EpochRecord& r) override {
    Line("epoch " + std::to_string(r.epoch) + " " + std::to_string(r.global_step));
  }
  void OnCheckpoint(const CheckpointRecord& r) override {
    Line("checkpoint " + std::to_string(r.epoch) + " " + std::to_string(r.step) + " " + std::to_string(r.global_step));
  }
  void OnRunEnd(const RunEndRecord& r) override {
    Line("end " + RunEndName(r.reason) + " " + std::to_string(r.global_step));
  }

 private:
  void Line(const std::string& text) { out_ << text << "\n" << std::flush; }
  std::ofstream out_;
};

}  // namespace

std::unique_ptr<TrainingObserver> EventTraceFromEnvironment(int rank) {
  const char* prefix = std::getenv("ANGIOTRAIN_TRACE_EVENTS");
  if (!prefix || !*prefix) return nullptr;
  return std::make_unique<EventTrace>(std::string(prefix) + ".rank" + std::to_string(rank));
}

std::vector<std::unique_ptr<TrainingObserver>> StandardObservers(const TrainConfig& config, int rank) {
  std::vector<std::unique_ptr<TrainingObserver>> observers;
  observers.push_back(std::make_unique<ConsoleProgress>());
  observers.push_back(std::make_unique<MetricsJsonlWriter>(config.output.dir + "/metrics.jsonl"));
  observers.push_back(std::make_unique<ValidationPredictionsWriter>(config.output.dir + "/validation_predictions.csv"));
  if (auto trace = EventTraceFromEnvironment(rank)) observers.push_back(std::move(trace));
  return observers;
}

}  // namespace angiotrain
