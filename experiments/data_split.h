// The validation split of a training volume: a seeded fraction of each Aneurysm class held out,
// the same on every rank and machine.
#pragma once

#include <cstdint>
#include <vector>

namespace angiotrain {

// Both lists are sorted row numbers; a fraction of each class, rounded to nearest, is held out.
struct TrainValidationSplit {
  std::vector<int64_t> train, validation;
};
TrainValidationSplit StratifiedSplit(const std::vector<uint8_t>& aneurysm, double validation_fraction,
                                     uint64_t seed);

}  // namespace angiotrain
