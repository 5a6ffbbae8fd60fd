// Fold assignment and a prepared dataset with one fold as its validation split (folds.h).
#include "data_loader/folds.h"

#include <glog/logging.h>

#include <algorithm>
#include <map>
#include <utility>

#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"

namespace flexmoe {

std::vector<int> AssignFolds(const data::DatasetIndex& index, int k, uint64_t seed) {
  std::vector<int> folds(index.split_size(), -1);
  std::map<int32_t, std::vector<std::pair<uint64_t, int>>> by_class;
  uint64_t state = seed ^ 0xF01D5ull;
  for (int i = 0; i < index.split_size(); ++i) {
    const uint64_t key = SplitMix64(&state);  // drawn for every sample: test ones too
    if (index.split(i) > 1) continue;
    by_class[index.label(i)].push_back({key, i});
  }
  int next = 0;  // continues across classes, so the small folds are not always the same
  for (auto& [label, members] : by_class) {
    std::sort(members.begin(), members.end());
    for (const auto& [key, i] : members) folds[i] = next++ % k;
  }
  int64_t in_folds = 0;
  for (int f : folds) in_folds += f >= 0;
  if (k < 2 || in_folds < k) {
    Fail(ErrorCode::kInvalidArgument, "cross-validation: ", in_folds,
         " training and validation samples cannot make ", k, " folds (at least 2)");
  }
  return folds;
}

void RecountSplits(const data::DatasetIndex& index, data::Summary* summary) {
  for (auto& split : *summary->mutable_splits()) {
    split.set_samples(0);
    std::fill(split.mutable_per_combination()->begin(), split.mutable_per_combination()->end(), 0);
    std::fill(split.mutable_per_class()->begin(), split.mutable_per_class()->end(), 0);
  }
  for (int i = 0; i < index.split_size(); ++i) {
    auto* split = summary->mutable_splits(static_cast<int>(index.split(i)));
    split->set_samples(split->samples() + 1);
    split->set_per_combination(index.combination(i),
                               split->per_combination(index.combination(i)) + 1);
    split->set_per_class(index.label(i), split->per_class(index.label(i)) + 1);
  }
}

PreparedDataset WithFoldAsValidation(const PreparedDataset& prepared, const std::vector<int>& folds,
                                     int fold) {
  PreparedDataset out = prepared;
  CHECK_EQ(folds.size(), static_cast<size_t>(out.index.split_size()));
  for (size_t i = 0; i < folds.size(); ++i) {
    if (folds[i] >= 0) out.index.set_split(static_cast<int>(i), folds[i] == fold ? 1u : 0u);
  }
  RecountSplits(out.index, out.meta.mutable_summary());
  return out;
}

PreparedDataset WithFoldAsValidation(const PreparedDataset& prepared, const FoldOfData& fold) {
  if (fold.folds < 2 || fold.fold < 0 || fold.fold >= fold.folds) {
    Fail(ErrorCode::kInvalidArgument, "cross-validation: fold ", fold.fold, " of ", fold.folds);
  }
  return WithFoldAsValidation(prepared, AssignFolds(prepared.index, fold.folds, fold.seed),
                              fold.fold);
}

}  // namespace flexmoe
