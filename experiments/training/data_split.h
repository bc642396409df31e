// The validation split of a training volume, the same on every rank and machine: either a seeded
// fraction of each Aneurysm class held out (data.validation_split), or one fold of a stratified
// k-fold partition (data.folds, data.fold), as scikit-learn's StratifiedKFold(shuffle=True).
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

// The fold (0..folds-1) of every row of a stratified k-fold partition: each class is shuffled by
// `seed` (the same shuffle as StratifiedSplit's) and its rows are dealt to the folds in turn, the
// negatives first and the positives continuing the deal. So every row is in exactly one fold, the
// folds' counts of each class differ by at most one, and so do their sizes. Throws Error when
// folds < 2 or a class present in `aneurysm` has fewer rows than folds (a fold would lack it).
std::vector<int> StratifiedFolds(const std::vector<uint8_t>& aneurysm, int64_t folds, uint64_t seed);

// Fold `fold` of StratifiedFolds as the validation rows, the other folds as the training rows.
TrainValidationSplit StratifiedFoldSplit(const std::vector<uint8_t>& aneurysm, int64_t folds, int64_t fold,
                                         uint64_t seed);

}  // namespace angiotrain
