// Fold assignment and the folds' splits files (folds.h).
#include "tune/folds.h"

#include <algorithm>
#include <map>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"
#include "data_loader/splits.h"

namespace flexmoe {

std::vector<int> AssignFolds(const data::DatasetIndex& index, int k, uint64_t seed) {
  std::vector<int> folds(index.id_size(), -1);
  std::map<int32_t, std::vector<std::pair<uint64_t, int>>> by_class;
  uint64_t state = seed ^ 0xF01D5ull;
  for (int i = 0; i < index.id_size(); ++i) {
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
  if (in_folds < k) {
    Fail(ErrorCode::kInvalidArgument, "tune: ", in_folds,
         " training and validation samples cannot make ", k, " folds");
  }
  return folds;
}

void WriteFoldSplits(const data::DatasetIndex& index, const std::vector<int>& folds, int fold,
                     const std::string& path) {
  // Samples outside the folds (the test split) are left out of the file.
  const std::string text = SplitsJson(
      index.id_size(), [&](size_t i) -> const std::string& { return index.id(i); },
      [&](size_t i) { return folds[i] < 0       ? kNoSplit
                             : folds[i] == fold ? 1u
                                                : 0u; });
  WriteFileAtomically(path, text);
}

}  // namespace flexmoe
