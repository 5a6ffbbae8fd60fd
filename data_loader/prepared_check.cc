// The prepared data's recorded data section against the config's (prepared_check.h).
#include "data_loader/prepared_check.h"

#include <filesystem>

#include "cluster/base/error.h"
#include "proto/config_compare.h"

namespace flexmoe {

std::string PreparedMismatch(const data::DatasetMeta& meta, const config::DataConfig& data) {
  if (!meta.has_data()) {
    return "it was prepared by an earlier flexmoe, which did not record its data section";
  }
  return FirstDataDifference(meta.data(), data);
}

PreparedDataset OpenPreparedFor(const config::DataConfig& data, const std::string& prepare_hint,
                                PreparedParts parts) {
  const std::string& dir = data.prepared_dir();
  if (!std::filesystem::exists(dir + "/" + kMetaFile)) {
    Fail(ErrorCode::kNotFound, dir,
         ": no prepared dataset (config field data.prepared_dir); run: ", prepare_hint);
  }
  PreparedDataset prepared = PreparedDataset::OpenMeta(dir);
  const std::string mismatch = PreparedMismatch(prepared.meta, data);
  if (!mismatch.empty()) {
    Fail(ErrorCode::kInvalidArgument, dir,
         ": prepared from another data section than the config's (", mismatch,
         "); run: ", prepare_hint);
  }
  if (parts == PreparedParts::kAll) return PreparedDataset::Open(dir);
  if (parts == PreparedParts::kServing) return PreparedDataset::OpenForServing(dir);
  return prepared;
}

}  // namespace flexmoe
