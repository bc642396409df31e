// Sweep files: parsing, checking and planning (see sweep_spec.h).
#include "experiments/sweeps/sweep_spec.h"

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <set>
#include <sstream>
#include <tuple>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/random.h"
#include "datasets/volume_file.h"
#include "experiments/training/data_split.h"
#include "experiments/sweeps/sweep_store.h"
#include "experiments/evaluation/threshold_rule.h"

namespace angiotrain {

const ChoiceTable<SweepMethod>& SweepMethodChoices() {
  static const ChoiceTable<SweepMethod> table = {
      {"grid", SweepMethod::kGrid}, {"random", SweepMethod::kRandom}, {"halving", SweepMethod::kHalving}};
  return table;
}

namespace {

const char* kThresholdsAxis = "thresholds";
const char* kEpochsAxis = "train.epochs";

std::string NodeText(const toml::node& node) {
  if (node.is_floating_point()) {
    // The shortest decimal form that reads back to the same double ("0.005", not 0.0050000000000000001).
    const double v = *node.value<double>();
    char buf[40];
    for (int precision = 1; precision <= 17; ++precision) {
      std::snprintf(buf, sizeof buf, "%.*g", precision, v);
      if (std::strtod(buf, nullptr) == v) break;
    }
    std::string text = buf;
    if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // stays a TOML float
    return text;
  }
  std::ostringstream out;
  node.visit([&](auto&& v) { out << v; });
  return out.str();
}

// The value as shown in tables: strings without their quotes.
std::string DisplayValue(const std::string& toml_text) {
  if (toml_text.size() >= 2 && toml_text.front() == '"' && toml_text.back() == '"')
    return toml_text.substr(1, toml_text.size() - 2);
  return toml_text;
}

bool FitsField(const ConfigField& f, const toml::node& node) {
  switch (f.value.index()) {
    case 0: return node.is_string();
    case 1: return node.is_integer();
    case 2: return node.is_number();
    default: return node.is_boolean();
  }
}

const char* FieldTypeName(const ConfigField& f) {
  switch (f.value.index()) {
    case 0: return "a string";
    case 1: return "an integer";
    case 2: return "a number";
    default: return "true or false";
  }
}

struct Reader {
  std::string path;
  Error Fail(const std::string& key, const std::string& problem) const {
    return FileError(path, "key '" + key + "': " + problem);
  }

  void ReadSweepTable(const toml::table& t, SweepSpec& spec) const {
    for (auto&& [k, node] : t) {
      const std::string key = "sweep." + std::string(k.str());
      auto text = [&]() -> std::string {
        if (!node.is_string()) throw Fail(key, "must be a string");
        return *node.value<std::string>();
      };
      auto integer = [&]() -> int64_t {
        if (!node.is_integer()) throw Fail(key, "must be an integer");
        return *node.value<int64_t>();
      };
      if (k == "method") {
        const std::string name = text();
        auto m = FindChoice(SweepMethodChoices(), name);
        if (!m) throw Fail(key, NotAChoice(name, ChoiceNames(SweepMethodChoices())));
        spec.method = *m;
      } else if (k == "objective") {
        const std::string name = text();
        auto o = FindChoice(ObjectiveChoices(), name);
        if (!o) throw Fail(key, NotAChoice(name, ChoiceNames(ObjectiveChoices())));
        spec.objective = *o;
      } else if (k == "dir") {
        spec.dir = text();
        if (spec.dir.empty()) throw Fail(key, "must name a folder");
      } else if (k == "budget") {
        spec.budget = integer();
        if (spec.budget < 1) throw Fail(key, "must be at least 1");
      } else if (k == "seed") {
        spec.seed = integer();
      } else if (k == "eta") {
        spec.eta = integer();
        if (spec.eta < 2) throw Fail(key, "must be at least 2");
      } else if (k == "cross_validation") {
        spec.cross_validation = integer();
        if (spec.cross_validation < 2) throw Fail(key, "must be at least 2 (the number of folds of each trial)");
      } else {
        throw Fail(key, "unknown key (expected method, objective, dir, budget, seed, eta or cross_validation)");
      }
    }
  }

  // The training sections, and [metrics] for the sweep's endpoint; [slurm] is read by `sweep run --slurm`.
  void ReadBase(const toml::node& node, SweepSpec& spec) const {
    OtherSections others;
    others.fields = MetricsFields(spec.metrics);
    others.skipped_tables = {"slurm"};
    if (node.is_string()) {
      std::filesystem::path base = *node.value<std::string>();
      if (base.is_relative()) base = std::filesystem::path(path).parent_path() / base;
      spec.base = LoadTrainConfig(base.string(), others);
    } else if (const toml::table* t = node.as_table()) {
      std::ostringstream text;
      text << *t;
      spec.base = ParseTrainConfig(text.str(), path + " [base]", others);
    } else {
      throw Fail("base", "must be a config file path or a [base] table");
    }
  }

  void ReadAxis(const std::string& key, const toml::node& node, SweepSpec& spec) const {
    const toml::array* values = node.as_array();
    if (!values) throw Fail("axes." + key, "must be a list of values");
    if (values->empty()) throw Fail("axes." + key, "is empty: list at least one value");
    const std::string where = "axes." + key;
    if (key == kThresholdsAxis || key == "evaluation.threshold") {
      if (!spec.thresholds.empty()) throw Fail(where, "a second thresholds axis");
      for (const auto& v : *values) {
        if (!v.is_string()) throw Fail(where, "value " + NodeText(v) + " must be a string (a threshold rule)");
        try {
          spec.thresholds.push_back(ThresholdRule::Parse(*v.value<std::string>()).ToString());
        } catch (const Error& e) {
          throw Fail(where, e.what());
        }
      }
      std::set<std::string> unique(spec.thresholds.begin(), spec.thresholds.end());
      if (unique.size() != spec.thresholds.size()) throw Fail(where, "lists a rule twice");
      return;
    }
    TrainConfig probe;
    auto fields = Fields(probe);
    auto f = std::find_if(fields.begin(), fields.end(), [&](const ConfigField& c) { return c.key == key; });
    if (f == fields.end())
      throw Fail(where, "unknown key: '" + key + "' is not a train config key (axes take keys such as train.lr, "
                        "model.variant, train.epochs, or thresholds)");
    if (key == "output.dir" || key == "train.resume")
      throw Fail(where, "cannot be an axis: the sweep sets it for each trial");
    SweepAxis axis{key, {}};
    for (const auto& v : *values) {
      if (!FitsField(*f, v)) throw Fail(where, "value " + NodeText(v) + " must be " + FieldTypeName(*f));
      axis.values.push_back(NodeText(v));
    }
    std::set<std::string> unique(axis.values.begin(), axis.values.end());
    if (unique.size() != axis.values.size()) throw Fail(where, "lists a value twice");
    if (key == kEpochsAxis) {
      for (const auto& v : *values) {
        if (*v.value<int64_t>() < 1) throw Fail(where, "epoch counts must be at least 1");
        spec.epochs.push_back(*v.value<int64_t>());
      }
      std::sort(spec.epochs.begin(), spec.epochs.end());
      return;
    }
    spec.axes.push_back(axis);
  }

  void ReadAxes(const toml::table& t, const std::string& prefix, SweepSpec& spec) const {
    for (auto&& [k, node] : t) {
      const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (const toml::table* sub = node.as_table()) {
        ReadAxes(*sub, key, spec);
        continue;
      }
      ReadAxis(key, node, spec);
    }
  }
};

void Apply(TrainConfig& config, const std::string& key, const std::string& toml_text) {
  ApplyOverride(config, key + "=" + toml_text);
}

std::string Join(const std::vector<int64_t>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + std::to_string(v[i]);
  return out;
}

}  // namespace

SweepSpec ParseSweepSpec(const std::string& text, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw FileError(path, "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  Reader reader{path};
  SweepSpec spec;
  spec.path = path;
  spec.dir = "out/sweep";
  bool has_base = false, has_axes = false;
  for (auto&& [k, node] : table) {
    if (k == "sweep") {
      if (!node.is_table()) throw reader.Fail("sweep", "must be a table ([sweep])");
      reader.ReadSweepTable(*node.as_table(), spec);
    } else if (k == "base") {
      reader.ReadBase(node, spec);
      has_base = true;
    } else if (k == "axes") {
      if (!node.is_table()) throw reader.Fail("axes", "must be a table ([axes])");
      reader.ReadAxes(*node.as_table(), "", spec);
      has_axes = true;
    } else if (k == "slurm") {
      // [slurm]: its own schema, read by `sweep run --slurm` (slurm/slurm_config.h).
    } else {
      throw reader.Fail(std::string(k.str()), "unknown key (a sweep file has [sweep], base, [axes] and [slurm])");
    }
  }
  if (!has_base) throw reader.Fail("base", "is required: a train config path, or a [base] table");
  if (!has_axes) throw reader.Fail("axes", "is required: at least one axis");
  if (spec.method == SweepMethod::kRandom && spec.budget < 1)
    throw reader.Fail("sweep.budget", "is required with method = \"random\" (how many combinations to draw)");
  if (spec.method == SweepMethod::kHalving && spec.epochs.size() < 2)
    throw reader.Fail("axes.train.epochs", "halving needs at least two epoch counts (its rungs)");
  if (const int64_t k = spec.cross_validation; k >= 2) {
    const std::string kfold = "cross_validation = " + std::to_string(k);
    if (spec.method == SweepMethod::kHalving)
      throw reader.Fail("sweep.cross_validation", "not with method = \"halving\" (a rung would have to wait for "
                                                  "every fold of a trial); use grid or random");
    for (const auto& axis : spec.axes)
      if (axis.key == "data.fold" || axis.key == "data.folds")
        throw reader.Fail("axes." + axis.key, "cannot be an axis with sweep." + kfold + ", which trains every fold "
                                              "of each trial (for a trial per fold, set data.folds in the base "
                                              "config and drop cross_validation)");
    if (spec.base.data.folds >= 2 && spec.base.data.folds != k)
      throw reader.Fail("sweep.cross_validation", std::to_string(k) + " folds, but the base config sets data.folds = " +
                                                  std::to_string(spec.base.data.folds));
  }
  try {
    ValidateMetricsConfig(spec.metrics);
  } catch (const Error& e) {
    throw FileError(path, std::string("base: ") + e.what());
  }
  SweepPlan plan = PlanSweep(spec);
  std::set<std::tuple<std::string, int64_t, int64_t>> partitions;  // k-fold partitions checked on their volume
  for (const PlannedTrial& trial : plan.trials) {
    std::string settings;
    for (const auto& [key, value] : trial.settings) settings += (settings.empty() ? "" : ", ") + key + "=" + value;
    try {
      ValidateTrainConfig(trial.config);
    } catch (const Error& e) {
      throw FileError(path, "trial " + trial.name + (settings.empty() ? "" : " (" + settings + ")") + ": " + e.what());
    }
    try {
      const auto& d = trial.config.data;
      if (partitions.insert({d.volume, d.folds, d.split_seed}).second) CheckFoldsOnVolume(trial.config);
    } catch (const Error& e) {
      throw FileError(path, "trial " + trial.name + (settings.empty() ? "" : " (" + settings + ")") + ": " + e.what());
    }
    if (spec.method == SweepMethod::kHalving && ScheduleChoice(trial.config) != ScheduleKind::kConstant)
      throw reader.Fail("sweep.method", "halving compares trials at epoch rungs, which needs train.schedule = "
                                        "constant (trial " + trial.name + " uses " + trial.config.train.schedule + ")");
  }
  return spec;
}

SweepSpec LoadSweepSpec(const std::string& path) { return ParseSweepSpec(ReadFile(path), path); }

void CheckFoldsOnVolume(const TrainConfig& config) {
  const auto& d = config.data;
  if (d.folds < 2 || !std::filesystem::exists(d.volume)) return;
  try {
    StratifiedFolds(VolumeReader(d.volume, MPI_COMM_SELF).aneurysm(), d.folds, static_cast<uint64_t>(d.split_seed));
  } catch (const Error& e) {
    throw Error("data.volume " + d.volume + ": " + e.what());
  }
}

int64_t SweepPlan::Evaluations() const {
  int64_t n = 0;
  for (const auto& t : trials) n += static_cast<int64_t>(t.epochs.size() * thresholds.size());
  return n;
}

std::vector<TrainConfig> PlannedTrial::Runs() const {
  if (folds < 2) return {config};
  std::vector<TrainConfig> runs;
  for (int64_t k = 0; k < folds; ++k) {
    TrainConfig run = config;
    run.data.folds = folds;
    run.data.fold = k;
    run.output.dir = FoldDir(config.output.dir, k);
    runs.push_back(std::move(run));
  }
  return runs;
}

namespace {
int64_t RunsOf(const PlannedTrial& t) { return t.folds >= 2 ? t.folds : 1; }
}  // namespace

int64_t SweepPlan::TrainingRuns() const {
  int64_t n = 0;
  for (const auto& t : trials) n += RunsOf(t);
  return n;
}

int64_t SweepPlan::TrainedEpochs() const {
  int64_t n = 0;
  for (const auto& t : trials) n += t.config.train.epochs * RunsOf(t);
  return n;
}

int64_t SweepPlan::SeparateEpochs() const {
  int64_t n = 0;
  for (const auto& t : trials) n += std::accumulate(t.epochs.begin(), t.epochs.end(), int64_t{0}) * RunsOf(t);
  return n * static_cast<int64_t>(thresholds.size());
}

SweepPlan PlanSweep(const SweepSpec& spec) {
  SweepPlan plan;
  plan.thresholds = spec.thresholds.empty() ? std::vector<std::string>{ThresholdRule::Parse(spec.base.evaluation.threshold).ToString()}
                                            : spec.thresholds;
  const std::vector<int64_t> epochs = spec.epochs.empty() ? std::vector<int64_t>{spec.base.train.epochs} : spec.epochs;
  int64_t combinations = 1;
  for (const auto& axis : spec.axes) combinations *= static_cast<int64_t>(axis.values.size());
  plan.combinations = combinations;
  std::vector<int64_t> chosen(static_cast<size_t>(combinations));
  std::iota(chosen.begin(), chosen.end(), int64_t{0});
  if (spec.budget > 0 && spec.method != SweepMethod::kGrid && spec.budget < combinations) {
    // A seeded partial Fisher-Yates shuffle: the first `budget` of a random order.
    SplitMix64 rng(MixSeed(static_cast<uint64_t>(spec.seed), 0x5eedULL));
    for (int64_t i = 0; i < spec.budget; ++i)
      std::swap(chosen[i], chosen[i + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(combinations - i)))]);
    chosen.resize(static_cast<size_t>(spec.budget));
  }
  int separate_cosine = 0;
  for (int64_t c : chosen) {
    TrainConfig config = spec.base;
    std::vector<std::pair<std::string, std::string>> settings;
    int64_t rest = c;
    for (size_t a = spec.axes.size(); a-- > 0;) {
      const auto& axis = spec.axes[a];
      const auto& value = axis.values[static_cast<size_t>(rest % static_cast<int64_t>(axis.values.size()))];
      rest /= static_cast<int64_t>(axis.values.size());
      Apply(config, axis.key, value);
      settings.insert(settings.begin(), {axis.key, DisplayValue(value)});
    }
    config.train.resume = false;
    if (spec.cross_validation >= 2) {
      config.data.folds = spec.cross_validation;
      config.data.fold = 0;
    }
    config.evaluation.objective = ChoiceName(ObjectiveChoices(), spec.objective);
    config.evaluation.threshold = plan.thresholds.front();
    auto schedule = FindChoice(ScheduleChoices(), config.train.schedule);
    const bool free_epochs = !schedule || *schedule == ScheduleKind::kConstant || epochs.size() == 1;
    std::vector<std::vector<int64_t>> groups;
    if (free_epochs) {
      groups.push_back(epochs);
    } else {
      for (int64_t e : epochs) groups.push_back({e});
      ++separate_cosine;
    }
    for (const auto& group : groups) {
      PlannedTrial t;
      t.id = static_cast<int>(plan.trials.size());
      char name[16];
      std::snprintf(name, sizeof name, "t%04d", t.id);
      t.name = name;
      t.settings = settings;
      t.config = config;
      t.config.train.epochs = group.back();
      t.config.output.dir = spec.dir + "/trials/" + t.name;
      t.epochs = group;
      t.folds = spec.cross_validation >= 2 ? spec.cross_validation : 0;
      plan.trials.push_back(std::move(t));
    }
  }
  if (separate_cosine > 0)
    plan.notes.push_back("train.schedule = cosine depends on train.epochs: " + std::to_string(separate_cosine) +
                         " combination(s) train each epoch count (" + Join(epochs, ", ") + ") separately");
  return plan;
}

std::string PlanText(const SweepSpec& spec, const SweepPlan& plan) {
  std::ostringstream out;
  std::string axes;
  for (const auto& a : spec.axes) axes += (axes.empty() ? "" : " x ") + a.key + " (" + std::to_string(a.values.size()) + ")";
  out << "sweep " << spec.path << ": " << ChoiceName(SweepMethodChoices(), spec.method) << " over "
      << plan.combinations << " combination(s)" << (axes.empty() ? "" : " of " + axes) << ", objective "
      << ChoiceName(ObjectiveChoices(), spec.objective) << ", store " << spec.dir << "\n";
  if (spec.method == SweepMethod::kRandom)
    out << "  random draw of " << std::min<int64_t>(spec.budget, plan.combinations) << " with seed " << spec.seed << "\n";
  if (spec.method == SweepMethod::kHalving)
    out << "  successive halving: rungs at epochs " << Join(spec.epochs, ", ") << ", keep the best 1/" << spec.eta
        << " at each\n";
  if (spec.epochs.size() > 1)
    out << "  epochs " << Join(spec.epochs, ", ")
        << (plan.notes.empty() ? ": free (constant schedule): a trial trains to the largest and is evaluated at each"
                               : ": see the note below")
        << "\n";
  std::string rules;
  for (const auto& r : plan.thresholds) rules += (rules.empty() ? "" : ", ") + r;
  out << "  thresholds " << rules << ": free (evaluated on each epoch's stored validation predictions)\n";
  const int64_t k = spec.cross_validation;
  if (k >= 2)
    out << "  cross-validation: " << k << " stratified folds (data.split_seed " << spec.base.data.split_seed
        << "): each trial trains one run per fold and is scored by the mean of the folds' objectives (and their sd)\n";
  for (const auto& note : plan.notes) out << "  note: " << note << "\n";
  if (k >= 2)
    out << "trials: " << plan.trials.size() << ", training runs: " << plan.TrainingRuns() << " (" << k
        << " per trial, one per fold)\n";
  else
    out << "trials (training runs): " << plan.trials.size() << "\n";
  for (const auto& t : plan.trials) {
    out << "  " << t.name;
    for (const auto& [key, v] : t.settings) out << "  " << key << "=" << v;
    out << "  trains " << (t.folds >= 2 ? std::to_string(t.folds) + " x " : "") << t.config.train.epochs
        << " epoch(s)" << (t.folds >= 2 ? " (folds 0.." + std::to_string(t.folds - 1) + ")" : "")
        << ", evaluated at " << Join(t.epochs, " ") << "\n";
  }
  out << "evaluations (result rows): " << plan.Evaluations() << "\n";
  out << "cost: " << plan.TrainedEpochs() << " training epoch(s)" << (spec.method == SweepMethod::kHalving ? " at most" : "")
      << (k >= 2 ? " in " + std::to_string(plan.TrainingRuns()) + " training runs" : std::string())
      << "; training every (combination, epochs, threshold" << (k >= 2 ? ", fold" : "") << ") separately would take "
      << plan.SeparateEpochs() << "\n";
  return out.str();
}

std::string PlanJson(const SweepSpec& spec, const SweepPlan& plan) {
  nlohmann::ordered_json j;
  j["method"] = ChoiceName(SweepMethodChoices(), spec.method);
  j["objective"] = ChoiceName(ObjectiveChoices(), spec.objective);
  j["eta"] = spec.eta;
  if (spec.cross_validation >= 2) j["cross_validation"] = spec.cross_validation;  // absent: one run per trial
  j["thresholds"] = plan.thresholds;
  j["notes"] = plan.notes;
  j["trials"] = nlohmann::ordered_json::array();
  for (const auto& t : plan.trials) {
    nlohmann::ordered_json trial;
    trial["name"] = t.name;
    trial["settings"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : t.settings) trial["settings"][k] = v;
    trial["train_epochs"] = t.config.train.epochs;
    trial["epochs"] = t.epochs;
    trial["config_hash"] = ConfigHash(t.config);
    j["trials"].push_back(trial);
  }
  return j.dump(1) + "\n";
}

}  // namespace angiotrain
