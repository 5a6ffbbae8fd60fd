// The folds' splits files (folds.h).
#include "tune/folds.h"

#include "cluster/base/atomic_file.h"
#include "data_loader/splits.h"

namespace flexmoe {

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
