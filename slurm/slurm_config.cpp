// The [slurm] schema: loading, --set overrides and the checks on every value (slurm_config.h).
#include "slurm/slurm_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <sstream>
#include <variant>

#include "core/atomic_file.h"
#include "core/error.h"

namespace angiotrain {
namespace {

// One key of the schema, as in experiments/training/train_config.h, plus lists of strings.
struct SlurmField {
  std::string name;  // without "slurm."
  std::variant<std::string*, int64_t*, std::vector<std::string>*> value;
};

std::vector<SlurmField> Fields(SlurmConfig& c) {
  return {{"partition", &c.partition},
          {"account", &c.account},
          {"qos", &c.qos},
          {"job_name", &c.job_name},
          {"nodes", &c.nodes},
          {"gpus_per_node", &c.gpus_per_node},
          {"tasks_per_node", &c.tasks_per_node},
          {"cpus_per_task", &c.cpus_per_task},
          {"mem", &c.mem},
          {"time", &c.time},
          {"output", &c.output},
          {"signal_seconds", &c.signal_seconds},
          {"max_requeues", &c.max_requeues},
          {"array_parallel", &c.array_parallel},
          {"mpi", &c.mpi},
          {"network_interface", &c.network_interface},
          {"extra", &c.extra},
          {"env", &c.env}};
}

SlurmField* Find(std::vector<SlurmField>& fields, const std::string& name) {
  for (auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

std::string TypeName(const SlurmField& f) {
  switch (f.value.index()) {
    case 0: return "a string";
    case 1: return "an integer";
    default: return "an array of strings";
  }
}

bool SetFromNode(SlurmField& f, const toml::node& node) {
  if (auto p = std::get_if<std::string*>(&f.value)) {
    if (!node.is_string()) return false;
    **p = *node.value<std::string>();
  } else if (auto p = std::get_if<int64_t*>(&f.value)) {
    if (!node.is_integer()) return false;
    **p = *node.value<int64_t>();
  } else if (auto p = std::get_if<std::vector<std::string>*>(&f.value)) {
    const toml::array* array = node.as_array();
    if (!array) return false;
    std::vector<std::string> items;
    for (const auto& item : *array) {
      if (!item.is_string()) return false;
      items.push_back(*item.value<std::string>());
    }
    **p = items;
  }
  return true;
}

bool Matches(const std::string& value, const std::string& allowed_punctuation) {
  if (value.empty()) return false;
  for (unsigned char ch : value)
    if (!std::isalnum(ch) && allowed_punctuation.find(static_cast<char>(ch)) == std::string::npos) return false;
  return true;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::vector<std::string> SplitOn(const std::string& s, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, separator)) parts.push_back(part);
  if (!s.empty() && s.back() == separator) parts.push_back("");
  return parts;
}

bool HasControlCharacter(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

}  // namespace

const std::vector<std::string>& AllowedExtraOptions() {
  // Options that change where and when the job runs, never what the script does: the options
  // that the writer sets itself (nodes, tasks, output, signal, requeue, chdir, array, export...)
  // are not here, nor anything that runs a program (--wrap, --prolog) or names a script.
  static const std::vector<std::string> options = {
      "begin",    "comment",  "constraint", "deadline",     "dependency",  "exclude",
      "exclusive", "gres",    "hint",       "licenses",     "mail-type",   "mail-user",
      "mem-per-cpu", "mem-per-gpu", "nice", "nodelist",     "reservation", "switches",
      "tmp",      "wckey"};
  return options;
}

bool IsSbatchWord(const std::string& value) { return Matches(value, "._-/%+:@,="); }

SlurmConfig ParseSlurmConfig(const std::string& toml_text, const std::string& origin) {
  SlurmConfig config;
  toml::table table;
  try {
    table = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin.line;
    throw FileError(origin, "line " + where.str() + ": " + std::string(e.description()));
  }
  const toml::node* section = table.get("slurm");
  if (!section) return config;
  const toml::table* slurm = section->as_table();
  if (!slurm) throw FileError(origin, "'slurm' must be a table ([slurm])");
  auto fields = Fields(config);
  for (auto&& [k, node] : *slurm) {
    const std::string name(k.str());
    SlurmField* f = Find(fields, name);
    if (!f) throw FileError(origin, "unknown key 'slurm." + name + "'");
    if (!SetFromNode(*f, node)) throw FileError(origin, "key 'slurm." + name + "' must be " + TypeName(*f));
  }
  return config;
}

SlurmConfig LoadSlurmConfig(const std::string& path) { return ParseSlurmConfig(ReadFile(path), path); }

bool IsSlurmOverride(const std::string& assignment) { return assignment.rfind("slurm.", 0) == 0; }

void ApplySlurmOverride(SlurmConfig& config, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (!IsSlurmOverride(assignment) || eq == std::string::npos)
    throw Error("--set " + assignment + ": expected slurm.key=value");
  const std::string name = assignment.substr(6, eq - 6);
  std::string text = assignment.substr(eq + 1);
  auto fields = Fields(config);
  SlurmField* f = Find(fields, name);
  if (!f) throw Error("--set: unknown key 'slurm." + name + "'");
  if (auto p = std::get_if<int64_t*>(&f->value)) {
    const bool negative = !text.empty() && text[0] == '-';
    if (!AllDigits(negative ? text.substr(1) : text) || text.size() > 12)
      throw Error("--set: key 'slurm." + name + "' must be an integer, got '" + text + "'");
    **p = std::stoll(text);
    return;
  }
  if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') && text.back() == text.front())
    text = text.substr(1, text.size() - 2);
  if (auto p = std::get_if<std::string*>(&f->value))
    **p = text;
  else
    std::get<std::vector<std::string>*>(f->value)->push_back(text);
}

int64_t TimeLimitSeconds(const std::string& time) {
  if (time.empty()) return 0;
  const auto bad = [&] {
    return Error("'" + time + "' is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)");
  };
  int64_t days = 0;
  std::string clock = time;
  const auto dash = time.find('-');
  if (dash != std::string::npos) {
    if (!AllDigits(time.substr(0, dash)) || dash > 6) throw bad();
    days = std::stoll(time.substr(0, dash));
    clock = time.substr(dash + 1);
  }
  const auto parts = SplitOn(clock, ':');
  if (parts.empty() || parts.size() > 3) throw bad();
  std::vector<int64_t> n;
  for (const auto& p : parts) {
    if (!AllDigits(p) || p.size() > 6) throw bad();
    n.push_back(std::stoll(p));
  }
  if (dash != std::string::npos) {  // D-HH, D-HH:MM, D-HH:MM:SS
    int64_t s = n[0] * 3600 + (n.size() > 1 ? n[1] * 60 : 0) + (n.size() > 2 ? n[2] : 0);
    return days * 86400 + s;
  }
  if (n.size() == 1) return n[0] * 60;           // MM
  if (n.size() == 2) return n[0] * 60 + n[1];    // MM:SS
  return n[0] * 3600 + n[1] * 60 + n[2];         // HH:MM:SS
}

int64_t RanksPerNode(const SlurmConfig& c) {
  if (c.tasks_per_node > 0) return c.tasks_per_node;
  return c.gpus_per_node > 0 ? c.gpus_per_node : 1;
}

void ValidateSlurmConfig(const SlurmConfig& c) {
  auto fail = [](const std::string& key, const std::string& problem) {
    throw Error("config key 'slurm." + key + "': " + problem);
  };
  const std::string word_rule = "may hold only letters, digits and ._-/%+:@,= (it goes into an #SBATCH line)";
  auto word = [&](const std::string& key, const std::string& value, bool optional) {
    if (value.empty() && optional) return;
    if (!IsSbatchWord(value)) fail(key, "'" + value + "' " + word_rule);
  };
  // Names: Slurm's partition, account, QoS and job names are plain words.
  for (auto [key, value] : {std::pair<const char*, const std::string*>{"partition", &c.partition},
                            {"account", &c.account}, {"qos", &c.qos}}) {
    if (!value->empty() && !Matches(*value, "._-,")) fail(key, "'" + *value + "' may hold only letters, digits and ._-,");
  }
  if (!Matches(c.job_name, "._-+")) fail("job_name", "'" + c.job_name + "' may hold only letters, digits and ._-+");
  if (c.nodes < 1 || c.nodes > 100000) fail("nodes", "must be at least 1");
  if (c.gpus_per_node < 0 || c.gpus_per_node > 1024) fail("gpus_per_node", "must be >= 0 (0: a CPU job)");
  if (c.tasks_per_node < 0 || c.tasks_per_node > 100000) fail("tasks_per_node", "must be >= 0 (0: one per GPU)");
  if (c.gpus_per_node > 0 && c.tasks_per_node > 0 && c.tasks_per_node != c.gpus_per_node)
    fail("tasks_per_node", "is " + std::to_string(c.tasks_per_node) + " but gpus_per_node is " +
                               std::to_string(c.gpus_per_node) + ": angiotrain runs one rank per GPU (leave it 0)");
  if (c.cpus_per_task < 1 || c.cpus_per_task > 100000) fail("cpus_per_task", "must be at least 1");
  if (!c.mem.empty()) {
    std::string digits = c.mem;
    if (std::string("KMGTkmgt").find(digits.back()) != std::string::npos) digits.pop_back();
    if (!AllDigits(digits) || digits.size() > 12) fail("mem", "'" + c.mem + "' is not a size like 64G, 512M or 1024");
  }
  int64_t limit = 0;
  try {
    limit = TimeLimitSeconds(c.time);
  } catch (const Error& e) {
    fail("time", e.what());
  }
  word("output", c.output, true);
  if (c.signal_seconds < 1 || c.signal_seconds > 65535) fail("signal_seconds", "must be in [1, 65535]");
  if (limit > 0 && c.signal_seconds >= limit)
    fail("signal_seconds", std::to_string(c.signal_seconds) + " s is not before the time limit (" + c.time +
                               " = " + std::to_string(limit) + " s): the warning would come at the start");
  if (c.max_requeues < 0 || c.max_requeues > 1000) fail("max_requeues", "must be in [0, 1000]");
  if (c.array_parallel < 1 || c.array_parallel > 100000)
    fail("array_parallel", "must be in [1, 100000] (array tasks of a sweep running at once)");
  static const std::vector<std::string> mpi_kinds = {"pmix", "pmix_v3", "pmix_v4", "pmi2"};
  if (std::find(mpi_kinds.begin(), mpi_kinds.end(), c.mpi) == mpi_kinds.end())
    fail("mpi", "'" + c.mpi + "' is not one of pmix, pmix_v3, pmix_v4, pmi2");
  if (!c.network_interface.empty() && !Matches(c.network_interface, "._-,^=:"))
    fail("network_interface", "'" + c.network_interface + "' is not an interface list like ib0 or eth0,eth1");
  const auto& allowed = AllowedExtraOptions();
  for (const auto& option : c.extra) {
    const auto eq = option.find('=');
    const std::string name = option.rfind("--", 0) == 0 ? option.substr(2, eq == std::string::npos ? eq : eq - 2) : "";
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "--" : ", --") + a;
      fail("extra", "'" + option + "' is not an allowed #SBATCH option (allowed: " + list + "; as --name or --name=value)");
    }
    if (eq != std::string::npos && !IsSbatchWord(option.substr(eq + 1)))
      fail("extra", "the value of '" + option + "' " + word_rule);
  }
  for (const auto& entry : c.env) {
    const auto eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    if (eq == std::string::npos || name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) ||
        !Matches(name, "_"))
      fail("env", "'" + entry + "' is not NAME=VALUE with a NAME of letters, digits and _");
    if (name.rfind("SLURM_", 0) == 0) fail("env", "'" + name + "': SLURM_ variables belong to Slurm");
    if (HasControlCharacter(entry)) fail("env", "the value of " + name + " holds a control character (a newline?)");
  }
}

}  // namespace angiotrain
