// k-fold cross-validation over a prepared dataset's training and validation splits: the
// samples of the two splits dealt to k folds, stratified by label, and each fold's
// splits.json (training: the other folds, validation: the fold). Test samples are in no
// fold and in no fold's splits file, so a fold's prepared data holds none of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data_loader/folds.h"  // AssignFolds
#include "proto/dataset.pb.h"

namespace flexmoe {

// Writes fold `fold`'s splits file to `path` (atomically).
void WriteFoldSplits(const data::DatasetIndex& index, const std::vector<int>& folds, int fold,
                     const std::string& path);

}  // namespace flexmoe
