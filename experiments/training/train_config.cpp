// The training configuration schema, its TOML loading, --set overrides, checks and hash.
#include "experiments/training/train_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "distributed/communicator_factory.h"
#include "distributed/process_context.h"
#include "experiments/evaluation/objective.h"
#include "experiments/evaluation/threshold_rule.h"
#include "models/autocast.h"
#include "models/efficientnet.h"
#include "models/heads.h"

namespace angiotrain {

std::vector<ConfigField> Fields(TrainConfig& c) {
  return {
      {"data.volume", &c.data.volume, false},
      {"data.validation_split", &c.data.validation_split},
      {"data.split_seed", &c.data.split_seed},
      {"data.folds", &c.data.folds, true, {}, true},
      {"data.fold", &c.data.fold, true, {}, true},
      {"model.variant", &c.model.variant},
      {"model.width_mult", &c.model.width_mult},
      {"model.depth_mult", &c.model.depth_mult},
      {"model.task", &c.model.task, true, ChoiceNames(TaskChoices())},
      {"model.init", &c.model.init},
      {"model.dropout", &c.model.dropout},
      {"model.stochastic_depth", &c.model.stochastic_depth},
      {"train.epochs", &c.train.epochs},
      {"train.batch_size", &c.train.batch_size},
      {"train.lr", &c.train.lr},
      {"train.optimizer", &c.train.optimizer, true, ChoiceNames(OptimizerChoices())},
      {"train.weight_decay", &c.train.weight_decay},
      {"train.schedule", &c.train.schedule, true, ChoiceNames(ScheduleChoices())},
      {"train.warmup_epochs", &c.train.warmup_epochs},
      {"train.grad_clip", &c.train.grad_clip},
      {"train.seed", &c.train.seed},
      {"train.bucket_mb", &c.train.bucket_mb},
      {"train.sync_batchnorm", &c.train.sync_batchnorm},
      {"train.batchnorm", &c.train.batchnorm, true, ChoiceNames(BatchNormChoices())},
      {"train.location_pos_weight", &c.train.location_pos_weight},
      {"train.threads", &c.train.threads, false},
      {"train.backend", &c.train.backend, false, ChoiceNames(BackendChoices())},
      {"train.device", &c.train.device, false, ChoiceNames(DeviceChoices())},
      {"train.precision", &c.train.precision, true, ChoiceNames(PrecisionChoices())},
      {"train.resume", &c.train.resume, false},
      {"evaluation.threshold", &c.evaluation.threshold, false},
      {"evaluation.objective", &c.evaluation.objective, false, ChoiceNames(ObjectiveChoices())},
      {"output.dir", &c.output.dir, false},
      {"output.checkpoint_every_steps", &c.output.checkpoint_every_steps, false},
  };
}

std::string ResumableKeys() {
  TrainConfig c;
  std::vector<std::string> keys;
  for (const auto& f : Fields(c))
    if (!f.hashed) keys.push_back(f.key);
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) out += (i == 0 ? "" : i + 1 == keys.size() ? " and " : ", ") + keys[i];
  return out;
}

const ChoiceTable<OptimizerKind>& OptimizerChoices() {
  static const ChoiceTable<OptimizerKind> table = {
      {"adam", OptimizerKind::kAdam}, {"adamw", OptimizerKind::kAdamW}, {"sgd", OptimizerKind::kSgd}};
  return table;
}
const ChoiceTable<ScheduleKind>& ScheduleChoices() {
  static const ChoiceTable<ScheduleKind> table = {{"constant", ScheduleKind::kConstant},
                                                  {"cosine", ScheduleKind::kCosine}};
  return table;
}
const ChoiceTable<BatchNormMode>& BatchNormChoices() {
  static const ChoiceTable<BatchNormMode> table = {
      {"batch", BatchNormMode::kBatch}, {"sync", BatchNormMode::kSync}, {"eval", BatchNormMode::kEval}};
  return table;
}

namespace {
template <class E>
E Chosen(const ChoiceTable<E>& table, const std::string& key, const std::string& name) {
  if (auto v = FindChoice(table, name)) return *v;
  throw Error("config key '" + key + "': " + NotAChoice(name, ChoiceNames(table)));
}
}  // namespace

OptimizerKind OptimizerChoice(const TrainConfig& c) { return Chosen(OptimizerChoices(), "train.optimizer", c.train.optimizer); }
ScheduleKind ScheduleChoice(const TrainConfig& c) { return Chosen(ScheduleChoices(), "train.schedule", c.train.schedule); }
BatchNormMode BatchNormChoice(const TrainConfig& c) {
  return Chosen(BatchNormChoices(), "train.batchnorm", c.train.batchnorm);
}

namespace {

ConfigField* FindField(std::vector<ConfigField>& fields, const std::string& key) {
  for (auto& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

std::string TypeName(const ConfigField& f) {
  switch (f.value.index()) {
    case 0: return "a string";
    case 1: return "an integer";
    case 2: return "a number";
    default: return "true or false";
  }
}

// Sets one field from a TOML node; false when the node's type does not fit.
bool SetFromNode(ConfigField& f, const toml::node& node) {
  if (auto p = std::get_if<std::string*>(&f.value)) {
    if (!node.is_string()) return false;
    **p = *node.value<std::string>();
  } else if (auto p = std::get_if<int64_t*>(&f.value)) {
    if (!node.is_integer()) return false;
    **p = *node.value<int64_t>();
  } else if (auto p = std::get_if<double*>(&f.value)) {
    if (!node.is_number()) return false;  // 1 and 1.0 both fine for a real
    **p = *node.value<double>();
  } else if (auto p = std::get_if<bool*>(&f.value)) {
    if (!node.is_boolean()) return false;
    **p = *node.value<bool>();
  }
  return true;
}

// The training room's own tables; OtherSections says what to do with every other one.
bool IsTrainingSection(const std::string& table) {
  TrainConfig c;
  for (const auto& f : Fields(c))
    if (f.key.compare(0, table.size() + 1, table + ".") == 0) return true;
  return false;
}

void Walk(const toml::table& table, const std::string& prefix, std::vector<ConfigField>& fields,
          const OtherSections& others, const std::string& origin) {
  for (auto&& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      if (!prefix.empty()) throw FileError(origin, "unknown key '" + key + "' (nested tables are not in the schema)");
      const auto& skipped = others.skipped_tables;
      if (std::find(skipped.begin(), skipped.end(), key) != skipped.end()) continue;
      if (others.ignore_other_tables && !IsTrainingSection(key)) continue;
      Walk(*sub, key, fields, others, origin);
      continue;
    }
    ConfigField* f = FindField(fields, key);
    if (!f) throw FileError(origin, "unknown key '" + key + "'");
    if (!SetFromNode(*f, node)) throw FileError(origin, "key '" + key + "' must be " + TypeName(*f));
  }
}

// The training fields of `config` followed by the other sections' (which point elsewhere).
std::vector<ConfigField> AllFields(TrainConfig& config, const OtherSections& others) {
  auto fields = Fields(config);
  fields.insert(fields.end(), others.fields.begin(), others.fields.end());
  return fields;
}

// Parses the TOML text of a value into `f`; false when it is not a value of the field's type.
bool SetFromText(ConfigField& f, const std::string& toml_text) {
  toml::table t;
  try {
    t = toml::parse("v = " + toml_text);
  } catch (const toml::parse_error&) {
    return false;
  }
  return t.size() == 1 && t.get("v") && SetFromNode(f, *t.get("v"));
}

std::string FormatValue(const ConfigField& f) {
  if (auto p = std::get_if<std::string*>(&f.value)) return TomlQuoted(**p);
  if (auto p = std::get_if<int64_t*>(&f.value)) return std::to_string(**p);
  if (auto p = std::get_if<double*>(&f.value)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", **p);
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // stays a TOML float
    return s;
  }
  return *std::get<bool*>(f.value) ? "true" : "false";
}

}  // namespace

OtherSections OtherSections::StoredConfig() {
  OtherSections stored;
  stored.ignore_other_tables = true;
  return stored;
}

TrainConfig ParseTrainConfig(const std::string& text, const std::string& origin, const OtherSections& others) {
  TrainConfig config;
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin.line;
    throw FileError(origin, "line " + where.str() + ": " + std::string(e.description()));
  }
  auto fields = AllFields(config, others);
  Walk(table, "", fields, others, origin);
  return config;
}

TrainConfig LoadTrainConfig(const std::string& path, const OtherSections& others) {
  return ParseTrainConfig(ReadFile(path), path, others);
}

void ApplyOverride(TrainConfig& config, const std::string& assignment, const OtherSections& others) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--set " + assignment + ": expected section.key=value");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  auto fields = AllFields(config, others);
  ConfigField* f = FindField(fields, key);
  if (!f) throw Error("--set: unknown key '" + key + "'");
  if (auto p = std::get_if<std::string*>(&f->value)) {
    if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') && text.back() == text.front())
      text = text.substr(1, text.size() - 2);
    **p = text;
    return;
  }
  // Parse the value as TOML so that the typing rules are the file's.
  if (!SetFromText(*f, text)) throw Error("--set: key '" + key + "' must be " + TypeName(*f) + ", got '" + text + "'");
}

void ApplyTomlValue(TrainConfig& config, const std::string& key, const std::string& toml_text) {
  auto fields = Fields(config);
  ConfigField* f = FindField(fields, key);
  if (!f) throw Error("unknown key '" + key + "'");
  if (!SetFromText(*f, toml_text)) throw Error("key '" + key + "' must be " + TypeName(*f) + ", got " + toml_text);
}

std::string TomlQuoted(const std::string& text) {
  // toml++'s own form where it reads back: the canonical texts, and so the config hashes that
  // existing checkpoints and sweep stores hold, are made of it.
  std::ostringstream printed;
  printed << toml::value<std::string>(text);
  try {
    if (toml::parse("v = " + printed.str())["v"].value<std::string>() == text) return printed.str();
  } catch (const toml::parse_error&) {
  }
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {  // TOML allows no other control character unescaped
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string TorchvisionInitFile(const TrainConfig& config) {
  static const std::string prefix = "torchvision:";
  const std::string& init = config.model.init;
  return init.compare(0, prefix.size(), prefix) == 0 ? init.substr(prefix.size()) : std::string();
}

void ValidateTrainConfig(const TrainConfig& config) {
  const TrainConfig& c = config;
  auto fail = [](const std::string& key, const std::string& problem) {
    throw Error("config key '" + key + "': " + problem);
  };
  TrainConfig copy = config;
  for (const auto& f : Fields(copy)) {
    if (auto p = std::get_if<double*>(&f.value); p && !std::isfinite(**p)) fail(f.key, "must be a finite number");
    if (f.choices.empty()) continue;
    const std::string& v = **std::get_if<std::string*>(&f.value);
    if (std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) fail(f.key, NotAChoice(v, f.choices));
  }
  if (c.data.volume.empty()) fail("data.volume", "is required (a volume file made by angiotrain ingest)");
  if (!c.model.init.empty() && c.model.init != "random" && c.model.init.rfind("torchvision:", 0) != 0)
    fail("model.init", "'" + c.model.init + "' is not \"\", \"random\" or \"torchvision:PATH\"");
  if (!(c.data.validation_split >= 0 && c.data.validation_split < 1)) fail("data.validation_split", "must be in [0, 1)");
  if (c.data.folds < 0) fail("data.folds", "must be 0 or 1 (the single split) or at least 2 (stratified k-fold)");
  if (c.data.fold < 0) fail("data.fold", "must be >= 0");
  if (c.data.folds < 2 && c.data.fold != 0)
    fail("data.fold", std::to_string(c.data.fold) + " needs data.folds >= 2 (k-fold is off: data.folds = " +
                          std::to_string(c.data.folds) + ")");
  if (c.data.folds >= 2 && c.data.fold >= c.data.folds)
    fail("data.fold", std::to_string(c.data.fold) + " is not a fold of data.folds = " + std::to_string(c.data.folds) +
                          " (folds are numbered 0.." + std::to_string(c.data.folds - 1) + ")");
  try {
    EfficientNetConfig::ForVariant(c.model.variant);
  } catch (const Error& e) {
    fail("model.variant", e.what());
  }
  if (c.model.width_mult < 0 || c.model.depth_mult < 0) fail("model.width_mult", "multipliers must be >= 0");
  if (c.model.dropout >= 1) fail("model.dropout", "must be in [0, 1), or negative for the variant's");
  if (c.model.stochastic_depth > 1) fail("model.stochastic_depth", "must be in [0, 1], or negative for the variant's");
  if (c.train.epochs < 1) fail("train.epochs", "must be at least 1");
  if (c.train.batch_size < 1) fail("train.batch_size", "must be at least 1");
  if (!(c.train.lr > 0)) fail("train.lr", "must be positive");
  if (c.train.warmup_epochs < 0) fail("train.warmup_epochs", "must be >= 0");
  if (c.train.grad_clip < 0) fail("train.grad_clip", "must be >= 0");
  if (!(c.train.bucket_mb > 0)) fail("train.bucket_mb", "must be positive");
  if (c.train.threads < 0) fail("train.threads", "must be >= 0");
  try {
    ThresholdRule::Parse(c.evaluation.threshold);
  } catch (const Error& e) {
    fail("evaluation.threshold", e.what());
  }
  if (c.output.dir.empty()) fail("output.dir", "is required");
  if (c.output.checkpoint_every_steps < 0) fail("output.checkpoint_every_steps", "must be >= 0");
}

namespace {
// The fields as sections; `defaults` (the same keys at their defaults) drops the hashed_unless_default
// keys that are at their default, for the hash.
std::string FieldsText(const std::vector<ConfigField>& fields, bool hashed_only,
                       const std::vector<ConfigField>* defaults) {
  std::string out, section;
  for (size_t i = 0; i < fields.size(); ++i) {
    const ConfigField& f = fields[i];
    if (hashed_only && !f.hashed) continue;
    if (hashed_only && defaults && f.hashed_unless_default && FormatValue(f) == FormatValue((*defaults)[i])) continue;
    auto dot = f.key.find('.');
    std::string s = f.key.substr(0, dot);
    if (s != section) {
      out += (section.empty() ? "" : "\n") + ("[" + s + "]\n");
      section = s;
    }
    out += f.key.substr(dot + 1) + " = " + FormatValue(f) + "\n";
  }
  return out;
}
}  // namespace

std::string SectionsText(const std::vector<ConfigField>& fields) { return FieldsText(fields, false, nullptr); }

std::string CanonicalText(const TrainConfig& config, bool hashed_only) {
  TrainConfig copy = config, defaults;
  const auto default_fields = Fields(defaults);
  return FieldsText(Fields(copy), hashed_only, &default_fields);
}

std::string ConfigHash(const TrainConfig& config) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : CanonicalText(config, true)) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace angiotrain
