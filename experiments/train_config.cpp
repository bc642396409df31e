// The training configuration schema, its TOML loading, --set overrides, checks and hash.
#include "experiments/train_config.h"

#include <toml++/toml.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace angiotrain {

std::vector<ConfigField> Fields(TrainConfig& c) {
  return {
      {"data.volume", &c.data.volume},
      {"data.validation_split", &c.data.validation_split},
      {"data.split_seed", &c.data.split_seed},
      {"model.variant", &c.model.variant},
      {"model.width_mult", &c.model.width_mult},
      {"model.depth_mult", &c.model.depth_mult},
      {"model.task", &c.model.task},
      {"model.init", &c.model.init},
      {"model.dropout", &c.model.dropout},
      {"model.stochastic_depth", &c.model.stochastic_depth},
      {"train.epochs", &c.train.epochs},
      {"train.batch_size", &c.train.batch_size},
      {"train.lr", &c.train.lr},
      {"train.optimizer", &c.train.optimizer},
      {"train.weight_decay", &c.train.weight_decay},
      {"train.schedule", &c.train.schedule},
      {"train.warmup_epochs", &c.train.warmup_epochs},
      {"train.grad_clip", &c.train.grad_clip},
      {"train.seed", &c.train.seed},
      {"train.bucket_mb", &c.train.bucket_mb},
      {"train.sync_batchnorm", &c.train.sync_batchnorm},
      {"train.batchnorm", &c.train.batchnorm},
      {"train.location_pos_weight", &c.train.location_pos_weight},
      {"train.threads", &c.train.threads, false},
      {"train.backend", &c.train.backend, false},
      {"train.device", &c.train.device, false},
      {"train.precision", &c.train.precision},
      {"train.resume", &c.train.resume, false},
      {"train.fail_at_step", &c.train.fail_at_step, false},
      {"train.fail_rank", &c.train.fail_rank, false},
      {"train.nan_at_step", &c.train.nan_at_step, false},
      {"output.dir", &c.output.dir, false},
      {"output.checkpoint_every_steps", &c.output.checkpoint_every_steps, false},
  };
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

void Walk(const toml::table& table, const std::string& prefix, std::vector<ConfigField>& fields,
          const std::string& origin) {
  for (auto&& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      if (!prefix.empty()) throw FileError(origin, "unknown key '" + key + "' (nested tables are not in the schema)");
      Walk(*sub, key, fields, origin);
      continue;
    }
    ConfigField* f = FindField(fields, key);
    if (!f) throw FileError(origin, "unknown key '" + key + "'");
    if (!SetFromNode(*f, node)) throw FileError(origin, "key '" + key + "' must be " + TypeName(*f));
  }
}

std::string FormatValue(const ConfigField& f) {
  if (auto p = std::get_if<std::string*>(&f.value)) {
    std::ostringstream out;
    out << toml::value<std::string>(**p);  // quoted and escaped as TOML
    return out.str();
  }
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

TrainConfig ParseTrainConfig(const std::string& text, const std::string& origin) {
  TrainConfig config;
  toml::table table;
  try {
    table = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin.line;
    throw FileError(origin, "line " + where.str() + ": " + std::string(e.description()));
  }
  auto fields = Fields(config);
  Walk(table, "", fields, origin);
  return config;
}

TrainConfig LoadTrainConfig(const std::string& path) { return ParseTrainConfig(ReadFile(path), path); }

void ApplyOverride(TrainConfig& config, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--set " + assignment + ": expected section.key=value");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  auto fields = Fields(config);
  ConfigField* f = FindField(fields, key);
  if (!f) throw Error("--set: unknown key '" + key + "'");
  if (auto p = std::get_if<std::string*>(&f->value)) {
    if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') && text.back() == text.front())
      text = text.substr(1, text.size() - 2);
    **p = text;
    return;
  }
  // Parse the value as TOML so that the typing rules are the file's.
  toml::table t;
  try {
    t = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    throw Error("--set: key '" + key + "' must be " + TypeName(*f) + ", got '" + text + "'");
  }
  if (!SetFromNode(*f, *t.get("v")))
    throw Error("--set: key '" + key + "' must be " + TypeName(*f) + ", got '" + text + "'");
}

void ValidateTrainConfig(const TrainConfig& c) {
  auto fail = [](const std::string& key, const std::string& problem) {
    throw Error("config key '" + key + "': " + problem);
  };
  auto one_of = [&](const std::string& key, const std::string& v, std::initializer_list<const char*> choices) {
    std::string list;
    for (const char* choice : choices) {
      if (v == choice) return;
      list += (list.empty() ? "" : ", ") + std::string(choice);
    }
    fail(key, "'" + v + "' is not one of " + list);
  };
  if (c.data.volume.empty()) fail("data.volume", "is required (a volume file made by angiotrain ingest)");
  if (!(c.data.validation_split >= 0 && c.data.validation_split < 1)) fail("data.validation_split", "must be in [0, 1)");
  one_of("model.task", c.model.task, {"presence", "location", "multitask"});
  if (c.model.width_mult < 0 || c.model.depth_mult < 0) fail("model.width_mult", "multipliers must be >= 0");
  if (c.train.epochs < 1) fail("train.epochs", "must be at least 1");
  if (c.train.batch_size < 1) fail("train.batch_size", "must be at least 1");
  if (!(c.train.lr > 0)) fail("train.lr", "must be positive");
  one_of("train.optimizer", c.train.optimizer, {"adam", "adamw", "sgd"});
  one_of("train.schedule", c.train.schedule, {"constant", "cosine"});
  one_of("train.batchnorm", c.train.batchnorm, {"batch", "eval"});
  one_of("train.backend", c.train.backend, {"auto", "mpi", "nccl"});
  one_of("train.device", c.train.device, {"auto", "cpu", "cuda"});
  one_of("train.precision", c.train.precision, {"auto", "fp32", "bf16", "fp16"});
  if (c.train.warmup_epochs < 0) fail("train.warmup_epochs", "must be >= 0");
  if (c.train.grad_clip < 0) fail("train.grad_clip", "must be >= 0");
  if (!(c.train.bucket_mb > 0)) fail("train.bucket_mb", "must be positive");
  if (c.train.threads < 0) fail("train.threads", "must be >= 0");
  if (c.output.dir.empty()) fail("output.dir", "is required");
  if (c.output.checkpoint_every_steps < 0) fail("output.checkpoint_every_steps", "must be >= 0");
}

std::string CanonicalText(const TrainConfig& config, bool hashed_only) {
  TrainConfig copy = config;
  std::string out, section;
  for (const auto& f : Fields(copy)) {
    if (hashed_only && !f.hashed) continue;
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
