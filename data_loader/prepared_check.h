// Prepared data that matches its config: a prepared dataset records the data section it was
// prepared from (DatasetMeta.data), and everything that reads one (train, the workers and
// loaders, eval, tune) compares it with its own config's data section.
#pragma once

#include <string>

#include "data_loader/shard.h"
#include "proto/config.pb.h"

namespace flexmoe {

// Why the dataset prepared in `dir` (its metadata `meta`) is not what `data` asks for, as
// "field data.scaling: STANDARD when prepared, NO_SCALING in the config"; empty when it is.
std::string PreparedMismatch(const data::DatasetMeta& meta, const config::DataConfig& data);

// What of a prepared dataset to load (PreparedDataset's Open, OpenForServing, OpenMeta).
enum class PreparedParts { kAll, kServing, kMeta };

// Opens data.prepared_dir (`parts` of it) for a job configured by `data`. Throws kNotFound when
// there is no prepared dataset (naming `prepare_hint`, the command that makes one) and
// kInvalidArgument when it was prepared from another data section, naming the field and both
// values.
PreparedDataset OpenPreparedFor(const config::DataConfig& data, const std::string& prepare_hint,
                                PreparedParts parts = PreparedParts::kAll);

}  // namespace flexmoe
