// k-fold assignment over a prepared dataset's training and validation samples (stratified
// by label), and a prepared dataset whose validation split is one fold: what `flexmoe tune`'s
// cross-validation and `training.cross_fit`'s members train and validate on.
#pragma once

#include <cstdint>
#include <vector>

#include "data_loader/shard.h"
#include "proto/dataset.pb.h"

namespace flexmoe {

// Which data a cross-fitted member sees: `folds` folds keyed by `seed`, fold `fold` as its
// validation split. folds 0: the prepared splits.
struct FoldOfData {
  int folds = 0;
  int fold = 0;
  uint64_t seed = 0;
  bool operator==(const FoldOfData& o) const {
    return folds == o.folds && fold == o.fold && seed == o.seed;
  }
};

// Per sample of `index`: its fold in [0, k), or -1 for the test split. Within each class the
// samples are put in a seeded order and dealt round robin, so fold sizes and class counts
// differ by at most one. Needs the splits and labels only (not the ids). kInvalidArgument
// when there are fewer training and validation samples than folds.
std::vector<int> AssignFolds(const data::DatasetIndex& index, int k, uint64_t seed);

// The summary's per-split counts (samples, per combination, per class) recounted from the
// index's splits, labels and combinations; the split names and sizes of the vectors stay.
void RecountSplits(const data::DatasetIndex& index, data::Summary* summary);

// A copy of `prepared` whose validation split is fold `fold` and whose training split is the
// other folds (`folds` from AssignFolds over its index); the test split and the shards are
// the same.
PreparedDataset WithFoldAsValidation(const PreparedDataset& prepared, const std::vector<int>& folds,
                                     int fold);
// The same for `fold` (folds >= 2, fold in [0, folds); kInvalidArgument otherwise).
PreparedDataset WithFoldAsValidation(const PreparedDataset& prepared, const FoldOfData& fold);

}  // namespace flexmoe
