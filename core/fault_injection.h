// Test-only fault injection: lets a test make one rank fail at a named point of a command, the
// way a real fault would (a SIGKILL, an error thrown, a write cut short), without a special build
// and without keys in the user's configuration.
//
// The test sets ANGIOTRAIN_FAULT to one or more faults separated by ';', each a comma-separated
// list of key=value:
//   point=NAME    where it fires (the code names its points: "train-step", "checkpoint-write", ...)
//   rank=R        the rank it fires on (default 0)
//   step=S        for points that have a step (the global training step): only at that step
//   action=A      "kill" (SIGKILL, default), "error" (throws Error), "nan" (the point decides what
//                 a non-finite value means there)
// Unset, the variable costs one getenv at start-up and nothing per step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace angiotrain {

enum class FaultAction { kKill, kError, kNan };

// The action injected at `point` on `rank` (at `step` when the point has one), if any.
std::optional<FaultAction> InjectedFault(const std::string& point, int rank, int64_t step = -1);

// Replaces the faults read from ANGIOTRAIN_FAULT (in-process tests; "" clears them).
void SetFaultsForTesting(const std::string& spec);

// Fires the fault at `point` if one is injected there: kill -> SIGKILL of this process (after a
// line on stderr), error -> throws Error naming the point. Returns the kNan action to the caller
// (the only one it cannot carry out itself) as true.
bool MaybeInjectFault(const std::string& point, int rank, int64_t step = -1);

}  // namespace angiotrain
