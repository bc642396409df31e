// The stratified validation split and k-fold partition (see data_split.h).
#include "experiments/training/data_split.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "distributed/distributed_sampler.h"

namespace angiotrain {

namespace {
// The rows of class `cls` (0: no aneurysm, 1: aneurysm) in the seeded order of that class.
std::vector<int64_t> ShuffledClass(const std::vector<uint8_t>& aneurysm, int cls, uint64_t seed) {
  std::vector<int64_t> rows;
  for (size_t i = 0; i < aneurysm.size(); ++i)
    if ((aneurysm[i] != 0) == (cls == 1)) rows.push_back(static_cast<int64_t>(i));
  const auto perm = SeededPermutation(static_cast<int64_t>(rows.size()), seed, static_cast<uint64_t>(cls));
  std::vector<int64_t> shuffled(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) shuffled[i] = rows[perm[i]];
  return shuffled;
}
}  // namespace

TrainValidationSplit StratifiedSplit(const std::vector<uint8_t>& aneurysm, double validation_fraction,
                                     uint64_t seed) {
  TrainValidationSplit split;
  for (int cls = 0; cls <= 1; ++cls) {
    const auto rows = ShuffledClass(aneurysm, cls, seed);
    auto n_val = static_cast<size_t>(std::llround(validation_fraction * static_cast<double>(rows.size())));
    for (size_t i = 0; i < rows.size(); ++i) (i < n_val ? split.validation : split.train).push_back(rows[i]);
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

std::vector<int> StratifiedFolds(const std::vector<uint8_t>& aneurysm, int64_t folds, uint64_t seed) {
  if (folds < 2) throw Error("data.folds = " + std::to_string(folds) + ": a k-fold partition needs at least 2 folds");
  std::vector<int> fold_of(aneurysm.size(), -1);
  int64_t dealt = 0;  // continues from the negatives into the positives, so fold sizes stay within one
  for (int cls = 0; cls <= 1; ++cls) {
    const auto rows = ShuffledClass(aneurysm, cls, seed);
    if (!rows.empty() && static_cast<int64_t>(rows.size()) < folds)
      throw Error("data.folds = " + std::to_string(folds) + ": only " + std::to_string(rows.size()) +
                  " rows have Aneurysm = " + std::to_string(cls) + ", fewer than the folds (every fold needs one of "
                  "each class; use at most " + std::to_string(rows.size()) + " folds)");
    for (int64_t row : rows) fold_of[static_cast<size_t>(row)] = static_cast<int>(dealt++ % folds);
  }
  return fold_of;
}

TrainValidationSplit StratifiedFoldSplit(const std::vector<uint8_t>& aneurysm, int64_t folds, int64_t fold,
                                         uint64_t seed) {
  if (fold < 0 || fold >= folds)
    throw Error("data.fold = " + std::to_string(fold) + ": must be in 0.." + std::to_string(folds - 1) +
                " (data.folds = " + std::to_string(folds) + ")");
  const auto fold_of = StratifiedFolds(aneurysm, folds, seed);
  TrainValidationSplit split;
  for (size_t i = 0; i < fold_of.size(); ++i)
    (fold_of[i] == fold ? split.validation : split.train).push_back(static_cast<int64_t>(i));
  return split;
}

}  // namespace angiotrain
