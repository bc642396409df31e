// Per-epoch validation evidence and the best-epoch checkpoint (see epoch_evidence.h).
#include "experiments/training/epoch_evidence.h"

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/volume_file.h"
#include "experiments/evaluation/submission.h"

namespace angiotrain {

namespace fs = std::filesystem;

LabelsByIndex LoadLabelsByIndex(const std::string& volume_path) {
  VolumeReader reader(volume_path, MPI_COMM_SELF);
  LabelsByIndex labels;
  if (!reader.has_labels()) return labels;
  for (int64_t r = 0; r < reader.rows(); ++r) {
    PatientLabels& l = labels[reader.index()[r]];
    l.aneurysm = reader.aneurysm()[r];
    for (int k = 0; k < kNumLocations; ++k) l.locations[k] = reader.locations()[r * kNumLocations + k];
  }
  return labels;
}

std::string EpochPredictionsPath(const std::string& dir, int64_t epoch) {
  char name[32];
  std::snprintf(name, sizeof name, "epoch_%03lld.csv", static_cast<long long>(epoch));
  return dir + "/validation/" + name;
}

std::string ValidationTruthPath(const std::string& dir) { return dir + "/validation/truth.csv"; }

std::string ThresholdsPathFor(const std::string& checkpoint_path) {
  const std::string ext = ".pt";
  std::string stem = checkpoint_path;
  if (stem.size() > ext.size() && stem.compare(stem.size() - ext.size(), ext.size(), ext) == 0)
    stem.resize(stem.size() - ext.size());
  return stem + ".thresholds.json";
}

void ReadEpochEvidence(const std::string& dir, int64_t epoch, ThresholdInputs* inputs, ThresholdLabels* labels) {
  const std::string predictions_path = EpochPredictionsPath(dir, epoch), truth_path = ValidationTruthPath(dir);
  const auto predictions = ReadProbabilities(predictions_path);
  const auto truth = ReadProbabilities(truth_path);
  std::map<int32_t, const PatientPrediction*> by_index;
  for (const auto& row : truth) by_index[row.index] = &row.prediction;
  *inputs = {};
  *labels = {};
  for (const auto& row : predictions) {
    auto it = by_index.find(row.index);
    if (it == by_index.end())
      throw FileError(predictions_path, "Index " + std::to_string(row.index) + " has no labels in " + truth_path);
    inputs->presence.push_back(row.prediction.aneurysm);
    inputs->locations.push_back(row.prediction.locations);
    labels->presence.push_back(it->second->aneurysm > 0.5);
    LocationFlags flags{};
    for (int k = 0; k < kNumLocations; ++k) flags[k] = it->second->locations[k] > 0.5;
    labels->locations.push_back(flags);
  }
}

std::vector<int64_t> StoredEpochs(const std::string& dir) {
  std::vector<int64_t> epochs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir + "/validation", ec)) {
    long long e = 0;
    char tail = 0;
    if (std::sscanf(entry.path().filename().c_str(), "epoch_%lld.cs%c", &e, &tail) == 2 && tail == 'v')
      epochs.push_back(e);
  }
  std::sort(epochs.begin(), epochs.end());
  return epochs;
}

EpochEvidenceWriter::EpochEvidenceWriter(std::string dir, LabelsByIndex labels, Objective objective, ThresholdRule rule)
    : dir_(std::move(dir)), labels_(std::move(labels)), objective_(objective), rule_(std::move(rule)) {}

void EpochEvidenceWriter::OnRunStart(const RunStartRecord& r) {
  if (r.rank != 0) return;
  fs::create_directories(dir_ + "/validation");
  if (!r.resumed) {
    // A fresh run: no evidence of an earlier run in this folder may pass for ours.
    for (int64_t e : StoredEpochs(dir_)) fs::remove(EpochPredictionsPath(dir_, e));
    for (const char* name : {"best.pt", "best.json", "best.thresholds.json", "last.thresholds.json"})
      fs::remove(dir_ + "/" + name);
    return;
  }
  // A resume: the epochs already done are on disk; rebuild the best epoch from them, and finish
  // what an interruption between last.pt and this observer's files may have left undone.
  for (int64_t e : StoredEpochs(dir_)) {
    if (e > r.start_epoch) continue;
    ThresholdInputs inputs;
    ThresholdLabels labels;
    ReadEpochEvidence(dir_, e, &inputs, &labels);
    objectives_[e] = ScoreEvidence(inputs, labels, rule_).Value(objective_);
    if (best_epoch_ == 0 || Better(objectives_[e], best_value_)) best_epoch_ = e, best_value_ = objectives_[e];
    if (e == r.start_epoch && r.start_step == 0)
      WriteFileAtomically(ThresholdsPathFor(r.checkpoint_path), LearntThresholdsJson(e, inputs, labels));
  }
  int64_t recorded = 0;
  if (fs::exists(dir_ + "/best.json")) recorded = nlohmann::json::parse(ReadFile(dir_ + "/best.json")).value("epoch", 0);
  if (best_epoch_ != recorded && best_epoch_ == r.start_epoch && r.start_step == 0)
    CommitBest(best_epoch_, best_value_, r.checkpoint_path);
}

void EpochEvidenceWriter::OnEpochEnd(const EpochRecord& r) {
  if (r.rank != 0 || !r.validation) return;
  const ValidationRecord& v = *r.validation;
  ThresholdInputs inputs;
  ThresholdLabels labels;
  std::vector<PatientPrediction> truth;
  for (size_t i = 0; i < v.indices.size(); ++i) {
    auto it = labels_.find(v.indices[i]);
    if (it == labels_.end()) throw Error(dir_ + ": validation patient " + std::to_string(v.indices[i]) + " has no labels");
    inputs.presence.push_back(v.predictions[i].aneurysm);
    inputs.locations.push_back(v.predictions[i].locations);
    labels.presence.push_back(it->second.aneurysm);
    labels.locations.push_back(it->second.locations);
    PatientPrediction t;
    t.aneurysm = it->second.aneurysm;
    for (int k = 0; k < kNumLocations; ++k) t.locations[k] = it->second.locations[k];
    truth.push_back(t);
  }
  WriteFileAtomically(ValidationTruthPath(dir_), ProbabilitiesCsvText(CanonicalHeader(), v.indices, truth));
  WriteFileAtomically(EpochPredictionsPath(dir_, r.epoch), ProbabilitiesCsvText(CanonicalHeader(), v.indices, v.predictions));
  const auto value = ScoreEvidence(inputs, labels, rule_).Value(objective_);
  objectives_[r.epoch] = value;
  pending_epoch_ = r.epoch;
  pending_thresholds_ = LearntThresholdsJson(r.epoch, inputs, labels);
  pending_best_ = best_epoch_ == 0 || Better(value, best_value_);
  if (pending_best_) best_epoch_ = r.epoch, best_value_ = value;
}

void EpochEvidenceWriter::OnCheckpoint(const CheckpointRecord& r) {
  // The checkpoint written right after epoch E's end holds (epoch E, step 0).
  if (r.rank != 0 || pending_epoch_ == 0 || r.epoch != pending_epoch_ || r.step != 0) return;
  WriteFileAtomically(ThresholdsPathFor(r.path), pending_thresholds_);
  if (pending_best_) CommitBest(pending_epoch_, best_value_, r.path);
  pending_epoch_ = 0;
}

void EpochEvidenceWriter::CommitBest(int64_t epoch, const std::optional<double>& value, const std::string& checkpoint) {
  const std::string best = dir_ + "/best.pt";
  {
    AtomicOutput out(best);
    fs::copy_file(checkpoint, out.temp_path(), fs::copy_options::overwrite_existing);
    out.Commit();
  }
  const std::string thresholds = ThresholdsPathFor(checkpoint);
  if (fs::exists(thresholds)) WriteFileAtomically(ThresholdsPathFor(best), ReadFile(thresholds));
  nlohmann::ordered_json j;
  j["epoch"] = epoch;
  j["objective"] = ChoiceName(ObjectiveChoices(), objective_);
  j["rule"] = rule_.ToString();
  j["value"] = value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json();
  WriteFileAtomically(dir_ + "/best.json", j.dump() + "\n");
}

}  // namespace angiotrain
