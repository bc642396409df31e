// The stratified validation split (see data_split.h).
#include "experiments/data_split.h"

#include <algorithm>
#include <cmath>

#include "distributed/distributed_sampler.h"

namespace angiotrain {

TrainValidationSplit StratifiedSplit(const std::vector<uint8_t>& aneurysm, double validation_fraction,
                                     uint64_t seed) {
  TrainValidationSplit split;
  for (int cls = 0; cls <= 1; ++cls) {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < aneurysm.size(); ++i)
      if ((aneurysm[i] != 0) == (cls == 1)) rows.push_back(static_cast<int64_t>(i));
    auto perm = SeededPermutation(static_cast<int64_t>(rows.size()), seed, static_cast<uint64_t>(cls));
    auto n_val = static_cast<size_t>(std::llround(validation_fraction * static_cast<double>(rows.size())));
    for (size_t i = 0; i < rows.size(); ++i) (i < n_val ? split.validation : split.train).push_back(rows[perm[i]]);
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

}  // namespace angiotrain
