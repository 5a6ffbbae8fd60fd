// Rows to score, read in batches: a layout-A directory or a wide CSV (plain or gzip),
// through the training config's layout and column map, checked against the trained
// feature layout (every modality's columns, by name and order), with the preprocessing
// fitted at preparation applied unchanged. A wide CSV scored by a model trained on layout A
// names its columns by the trained feature names. A wide CSV streams (memory holds one batch and
// the ids seen, for the duplicate check); layout A holds its per-modality tables, as
// preparation does.
#pragma once

#include <memory>
#include <memory_resource>
#include <string>
#include <unordered_set>
#include <vector>

#include "data_loader/decoded_dataset.h"
#include "data_loader/row_source.h"
#include "inference/loaded_model.h"

namespace flexmoe {

struct InputBatch {
  std::vector<std::string> ids;       // every row read, in input order
  std::vector<uint8_t> has_modality;  // per row: 0 when it has no modality at all
  DecodedBatch batch;                 // the rows with a modality, in input order
};

class PredictionInput {
 public:
  // `path`: a directory (layout A) or a CSV file (layout B). With `labels_required` every
  // row must carry a label (evaluation); otherwise labels are optional and ignored.
  // Throws kInvalidArgument / kNotFound naming the file, line and column.
  PredictionInput(const LoadedModel& model, const std::string& path, bool labels_required);

  // Reads up to `max_rows` rows into *out (cleared first); false when none was left.
  // Throws on a bad row (duplicate id, non-numeric value, ragged row, bad label).
  bool Next(int max_rows, InputBatch* out);

  const std::string& path() const { return data_.input(); }

 private:
  void CheckLayout() const;

  const LoadedModel& model_;
  config::DataConfig data_;
  bool labels_required_;
  std::unique_ptr<RowSource> source_;
  // The ids seen, for the duplicate check, allocated in large blocks of their own: one small
  // allocation per row amid the batches' tensors fragments the heap so that its size grows
  // with the rows (measured: 447 MB for 10,000 rows, 1.7 GB for 80,000).
  std::pmr::monotonic_buffer_resource id_memory_{1 << 16};
  std::pmr::unordered_set<std::pmr::string> seen_{&id_memory_};
  RawRow row_;
  std::vector<int> combination_of_mask_;
};

}  // namespace flexmoe
