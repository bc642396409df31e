// Sweep files: parsing, checking and planning (see sweep_spec.h).
#include "experiments/sweeps/sweep_spec.h"

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/path_checks.h"
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

// An axis value as TOML text: strings as TomlQuoted (which reads back byte for byte), numbers
// and booleans as NodeText.
std::string ValueText(const toml::node& node) {
  return node.is_string() ? TomlQuoted(*node.value<std::string>()) : NodeText(node);
}

// The value as the plan, plan.json and the results show it: a string as its bytes, any other
// value as its TOML text.
std::string SettingValue(const std::string& toml_text) {
  if (toml_text.empty() || (toml_text.front() != '"' && toml_text.front() != '\'')) return toml_text;
  return *toml::parse("v = " + toml_text)["v"].value<std::string>();
}

// What makes two values of a field the same setting: the number (1 and 1.0, 1e-3 and 0.001,
// 0x1 and 1 are one value), the string's bytes, the boolean.
std::string SameValueKey(const ConfigField& f, const toml::node& node) {
  if (f.value.index() == 2) {
    char buf[40];
    const double v = *node.value<double>();
    std::snprintf(buf, sizeof buf, "%.17g", v == 0 ? 0.0 : v);  // -0.0 is 0.0
    return buf;
  }
  if (node.is_string()) return *node.value<std::string>();
  if (node.is_integer()) return std::to_string(*node.value<int64_t>());
  return NodeText(node);
}

// The [base] table as config text for ParseTrainConfig, strings as TomlQuoted (see ValueText).
void TableText(const toml::table& table, const std::string& header, std::string& out) {
  std::vector<std::pair<std::string, const toml::table*>> sections;
  for (auto&& [k, node] : table) {
    const std::string key = TomlQuoted(std::string(k.str()));
    if (const toml::table* sub = node.as_table()) {
      sections.emplace_back(header.empty() ? key : header + "." + key, sub);
      continue;
    }
    std::ostringstream value;
    if (node.is_string() || node.is_floating_point())
      value << ValueText(node);
    else
      node.visit([&](auto&& v) { value << v; });
    out += key + " = " + value.str() + "\n";
  }
  for (const auto& [name, sub] : sections) {
    out += "[" + name + "]\n";
    TableText(*sub, name, out);
  }
}

// "KEY (N) x KEY (N) ...", as the plan prints the axes.
std::string AxesText(const std::vector<SweepAxis>& axes) {
  std::string out;
  for (const auto& a : axes) out += (out.empty() ? "" : " x ") + a.key + " (" + std::to_string(a.values.size()) + ")";
  return out;
}

// The number of combinations of the axes, exactly: in decimal, and as an integer when it fits in
// 64 bits (a product of axis sizes can exceed any fixed width).
struct GridCount {
  std::string decimal;
  std::optional<uint64_t> value;
};
GridCount CountCombinations(const std::vector<SweepAxis>& axes) {
  std::vector<uint64_t> digits{1};  // base 10, least significant first
  uint64_t value = 1;
  bool fits = true;
  for (const auto& axis : axes) {
    const uint64_t n = axis.values.size();
    fits = fits && !__builtin_mul_overflow(value, n, &value);
    uint64_t carry = 0;
    for (uint64_t& d : digits) {
      carry += d * n;
      d = carry % 10;
      carry /= 10;
    }
    for (; carry > 0; carry /= 10) digits.push_back(carry % 10);
  }
  GridCount count;
  for (auto d = digits.rbegin(); d != digits.rend(); ++d) count.decimal += static_cast<char>('0' + *d);
  if (fits) count.value = value;
  return count;
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
  std::vector<std::string> lines;  // of the sweep file, for the spelling of values in messages
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

  // A value as the file spells it ("1e-3", "0x1"), or as TOML when its place cannot be told.
  std::string Spelling(const toml::node& node) const {
    const toml::source_region& s = node.source();
    if (s.begin.line == s.end.line && s.begin.line >= 1 && s.begin.line <= lines.size()) {
      const std::string& line = lines[s.begin.line - 1];
      const bool ascii = std::all_of(line.begin(), line.end(), [](unsigned char c) { return c < 0x80; });
      if (ascii && s.begin.column >= 1 && s.end.column > s.begin.column && s.end.column - 1 <= line.size())
        return line.substr(s.begin.column - 1, s.end.column - s.begin.column);
    }
    return NodeText(node);
  }

  // The training sections, and [metrics] for the sweep's endpoint; [slurm] is read by `sweep run --slurm`.
  void ReadBase(const toml::node& node, SweepSpec& spec) const {
    OtherSections others;
    others.fields = MetricsFields(spec.metrics);
    others.skipped_tables = {"slurm"};
    if (node.is_string()) {
      std::filesystem::path base = *node.value<std::string>();
      if (base.is_relative()) base = std::filesystem::path(path).parent_path() / base;
      spec.base_path = base.string();
      spec.base = LoadTrainConfig(spec.base_path, others);
    } else if (const toml::table* t = node.as_table()) {
      std::string text;
      TableText(*t, "", text);
      spec.base = ParseTrainConfig(text, path + " [base]", others);
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
    std::map<std::string, const toml::node*> seen;  // by SameValueKey: a repeat would be a second identical trial
    for (const auto& v : *values) {
      if (!FitsField(*f, v)) throw Fail(where, "value " + NodeText(v) + " must be " + FieldTypeName(*f));
      auto [first, fresh] = seen.emplace(SameValueKey(*f, v), &v);
      if (!fresh)
        throw Fail(where, "lists a value twice: " + Spelling(*first->second) + " and " + Spelling(v) +
                              " are the same " + (f->value.index() == 0 ? "string" : "value") +
                              " (each value is a trial)");
      axis.values.push_back(ValueText(v));
    }
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
  Reader reader{path, {}};
  for (std::istringstream lines(text); !lines.eof();) std::getline(lines, reader.lines.emplace_back());
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
  // PlanSweep reads the base's rule (the trials' rule when there is no thresholds axis): a bad one
  // is named by its key here, not by the parser's bare message.
  try {
    ThresholdRule::Parse(spec.base.evaluation.threshold);
  } catch (const Error& e) {
    throw reader.Fail("base.evaluation.threshold", e.what());
  }
  SweepPlan plan = PlanSweep(spec);
  std::set<std::tuple<std::string, int64_t, int64_t>> partitions;  // k-fold partitions checked on their volume
  std::set<std::string> init_files;                                 // model.init files found
  for (const PlannedTrial& trial : plan.trials) {
    std::string settings;
    for (const auto& [key, value] : trial.settings) settings += (settings.empty() ? "" : ", ") + key + "=" + value;
    try {
      // train's checks: the values, then the model.init file (data.volume may be made later:
      // its folds are checked below when it exists, and the trial names it when it does not).
      ValidateTrainConfig(trial.config);
      const std::string file = TorchvisionInitFile(trial.config);
      if (!file.empty() && init_files.insert(file).second)
        RequireFile(file, "a torchvision state_dict saved by torch.save (model.init)");
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
  const GridCount count = CountCombinations(spec.axes);
  plan.combinations = count.decimal;
  const bool fits_limit = count.value && *count.value <= static_cast<uint64_t>(kMaxSweepTrials);
  const bool draws = spec.budget > 0 && spec.method != SweepMethod::kGrid &&
                     (!count.value || static_cast<uint64_t>(spec.budget) < *count.value);
  const std::string limit = std::to_string(kMaxSweepTrials) + " combinations a sweep plans (kMaxSweepTrials)";
  if (draws && spec.budget > kMaxSweepTrials)
    throw FileError(spec.path, "key 'sweep.budget': " + std::to_string(spec.budget) + " is more than the limit of " +
                                   limit);
  if (!draws && !fits_limit)
    throw FileError(spec.path, "key 'axes': the grid has " + count.decimal + " combinations of " + AxesText(spec.axes) +
                                   ", more than the limit of " + limit + "; draw some of them with method = "
                                   "\"random\" and a budget, or list fewer values");
  // Each planned combination as the index of its value on every axis (the last axis varies
  // fastest in the grid's order).
  const auto decode = [&](uint64_t c) {
    std::vector<size_t> digits(spec.axes.size());
    for (size_t a = spec.axes.size(); a-- > 0;) {
      const uint64_t n = spec.axes[a].values.size();
      digits[a] = static_cast<size_t>(c % n);
      c /= n;
    }
    return digits;
  };
  std::vector<std::vector<size_t>> chosen;
  if (!draws) {
    for (uint64_t c = 0; c < *count.value; ++c) chosen.push_back(decode(c));
  } else if (count.value) {
    // The first `budget` of a seeded Fisher-Yates shuffle of 0..n-1, keeping only the positions
    // that a swap has changed: the same draw as shuffling the whole grid, without holding it.
    SplitMix64 rng(MixSeed(static_cast<uint64_t>(spec.seed), 0x5eedULL));
    const uint64_t n = *count.value;
    std::unordered_map<uint64_t, uint64_t> moved;
    const auto at = [&](uint64_t p) {
      auto it = moved.find(p);
      return it == moved.end() ? p : it->second;
    };
    for (uint64_t i = 0; i < static_cast<uint64_t>(spec.budget); ++i) {
      const uint64_t j = i + rng.Below(n - i);
      const uint64_t drawn = at(j);
      moved[j] = at(i);  // position i is never read again
      moved.erase(i);
      chosen.push_back(decode(drawn));
    }
  } else {
    // More than 2^64 combinations: a value drawn on each axis, again until the combination is new.
    SplitMix64 rng(MixSeed(static_cast<uint64_t>(spec.seed), 0x5eedULL));
    std::set<std::vector<size_t>> seen;
    while (chosen.size() < static_cast<size_t>(spec.budget)) {
      std::vector<size_t> digits(spec.axes.size());
      for (size_t a = 0; a < spec.axes.size(); ++a) digits[a] = static_cast<size_t>(rng.Below(spec.axes[a].values.size()));
      if (seen.insert(digits).second) chosen.push_back(std::move(digits));
    }
  }
  plan.drawn = static_cast<int64_t>(chosen.size());
  int separate_cosine = 0;
  for (const auto& digits : chosen) {
    TrainConfig config = spec.base;
    std::vector<std::pair<std::string, std::string>> settings;
    for (size_t a = 0; a < spec.axes.size(); ++a) {
      const auto& axis = spec.axes[a];
      const auto& value = axis.values[digits[a]];
      ApplyTomlValue(config, axis.key, value);
      settings.emplace_back(axis.key, SettingValue(value));
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
  const std::string axes = AxesText(spec.axes);
  out << "sweep " << spec.path << ": " << ChoiceName(SweepMethodChoices(), spec.method) << " over "
      << plan.combinations << " combination(s)" << (axes.empty() ? "" : " of " + axes) << ", objective "
      << ChoiceName(ObjectiveChoices(), spec.objective) << ", store " << spec.dir << "\n";
  if (spec.method == SweepMethod::kRandom)
    out << "  random draw of " << plan.drawn << " with seed " << spec.seed << "\n";
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

void CheckSweepDir(const SweepSpec& spec, bool from_command_line) {
  namespace fs = std::filesystem;
  const std::string& dir = spec.dir;
  const std::string where = from_command_line ? "--dir " + dir : spec.path + ": key 'sweep.dir': " + dir;
  // The inputs: the sweep file, the base config, and every volume and model.init file that a
  // trial can read (the base's and an axis's values).
  std::vector<std::string> inputs = {spec.path, spec.base_path, spec.base.data.volume, TorchvisionInitFile(spec.base)};
  for (const auto& axis : spec.axes) {
    if (axis.key != "data.volume" && axis.key != "model.init") continue;
    for (const auto& value : axis.values) {
      TrainConfig probe;
      ApplyTomlValue(probe, axis.key, value);
      inputs.push_back(axis.key == "data.volume" ? probe.data.volume : TorchvisionInitFile(probe));
    }
  }
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    std::string which = "a file";
    for (const auto& input : inputs)
      if (!input.empty() && fs::equivalent(dir, input, ec)) which = "the input " + input;
    throw Error(where + ": is " + which + ", expected a folder for the sweep's trial store (or none yet); give "
                "the sweep another " + (from_command_line ? "--dir" : "sweep.dir"));
  }
  try {
    for (const char* name : {"plan.json", "sweep.toml", "results.csv", "results.json", "report.html"})
      RefuseOutputOverInput(dir + "/" + name, inputs);
    // Everything under trials/ is the trials' output.
    std::error_code trials_ec;
    const fs::path trials = fs::weakly_canonical(fs::path(dir) / "trials", trials_ec);
    for (const auto& input : inputs) {
      if (input.empty() || trials_ec) continue;
      std::error_code input_ec;
      const fs::path relative = fs::weakly_canonical(input, input_ec).lexically_relative(trials);
      if (!input_ec && !relative.empty() && *relative.begin() != "..")
        throw Error(input + ": is inside the trial folders " + (fs::path(dir) / "trials").string() +
                    ", which are the sweep's output");
    }
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
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
