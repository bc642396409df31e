// ANGIOTRAIN_FAULT parsing and firing. See fault_injection.h.
#include "core/fault_injection.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace angiotrain {
namespace {

struct Fault {
  std::string point;
  int rank = 0;
  int64_t step = -1;
  FaultAction action = FaultAction::kKill;
};

std::vector<Fault> ParseFaults(const char* text) {
  std::vector<Fault> faults;
  if (!text) return faults;
  std::stringstream all(text);
  for (std::string item; std::getline(all, item, ';');) {
    if (item.empty()) continue;
    Fault f;
    std::stringstream fields(item);
    for (std::string field; std::getline(fields, field, ',');) {
      const auto eq = field.find('=');
      const std::string key = field.substr(0, eq), value = eq == std::string::npos ? "" : field.substr(eq + 1);
      if (key == "point") {
        f.point = value;
      } else if (key == "rank") {
        f.rank = std::atoi(value.c_str());
      } else if (key == "step") {
        f.step = std::atoll(value.c_str());
      } else if (key == "action" && (value == "kill" || value == "error" || value == "nan")) {
        f.action = value == "kill" ? FaultAction::kKill : value == "error" ? FaultAction::kError : FaultAction::kNan;
      } else {
        throw Error("ANGIOTRAIN_FAULT: '" + field + "' is not point=NAME, rank=R, step=S or action=kill|error|nan");
      }
    }
    if (f.point.empty()) throw Error("ANGIOTRAIN_FAULT: '" + item + "' names no point=");
    faults.push_back(f);
  }
  return faults;
}

std::vector<Fault>& Faults() {
  static std::vector<Fault> faults = ParseFaults(std::getenv("ANGIOTRAIN_FAULT"));
  return faults;
}

}  // namespace

void SetFaultsForTesting(const std::string& spec) { Faults() = ParseFaults(spec.c_str()); }

std::optional<FaultAction> InjectedFault(const std::string& point, int rank, int64_t step) {
  for (const auto& f : Faults())
    if (f.point == point && f.rank == rank && (f.step < 0 || f.step == step)) return f.action;
  return std::nullopt;
}

bool MaybeInjectFault(const std::string& point, int rank, int64_t step) {
  const auto action = InjectedFault(point, rank, step);
  if (!action) return false;
  const std::string where = point + " on rank " + std::to_string(rank) +
                            (step >= 0 ? " at step " + std::to_string(step) : std::string());
  switch (*action) {
    case FaultAction::kKill:
      std::fprintf(stderr, "ANGIOTRAIN_FAULT: killing this process at %s\n", where.c_str());
      std::fflush(stderr);
      std::raise(SIGKILL);
      return false;
    case FaultAction::kError:
      throw Error("ANGIOTRAIN_FAULT: injected error at " + where);
    case FaultAction::kNan:
      return true;
  }
  return false;
}

}  // namespace angiotrain
