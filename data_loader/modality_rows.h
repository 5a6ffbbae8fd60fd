// One layout-A modality's rows keyed by subject id, read one at a time so that preparing a
// dataset holds its ids, not its values: a CSV is parsed once into a temporary binary file
// (doubles, read back with pread), a .npy or HDF5 matrix is read in place
// (data_loader/array_files.h). Every id must be one of labels.csv's.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data_loader/array_files.h"
#include "proto/config.pb.h"

namespace flexmoe {

class ModalityRows {
 public:
  // Modality m of `data`. Throws kInvalidArgument naming the file and line (or row) for bad
  // input and for an id not in `labelled` (the ids of `labels_path`).
  ModalityRows(const config::DataConfig& data, int m,
               const std::unordered_set<std::string>& labelled, const std::string& labels_path);
  const std::vector<std::string>& names() const { return matrix_->names(); }
  size_t width() const { return matrix_->cols(); }
  // Copies the row of `id` into out[0, width()); false when the modality has none for it.
  bool Read(const std::string& id, double* out);
  bool Has(const std::string& id) const { return row_of_.count(id) > 0; }
  // Bytes of the modality's file.
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  std::unique_ptr<ArrayMatrix> matrix_;
  std::unordered_map<std::string, size_t> row_of_;
  uint64_t file_bytes_ = 0;
};

}  // namespace flexmoe
