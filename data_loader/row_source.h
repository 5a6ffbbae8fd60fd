// Row sources for dataset preparation: each yields one sample at a time as an id, a label
// text and per-modality values, from layout A (per-modality CSVs) or layout B (a wide CSV).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto/config.pb.h"

namespace flexmoe {

// One input sample. values holds every modality's features back to back (modality m at
// offsets[m]); a missing value is NaN. Bit m of mask is set when modality m is observed.
struct RawRow {
  std::string id;
  std::string label;
  std::vector<double> values;
  uint32_t mask = 0;
  std::string where;  // "FILE:LINE" of the row, for messages
};

// A restartable sequence of rows. Implementations validate as they read and throw
// flexmoe::Error (kInvalidArgument, kNotFound) naming the file and line.
class RowSource {
 public:
  virtual ~RowSource() = default;
  // Starts again from the first row (each preparation pass reads the input once).
  virtual void Rewind() = 0;
  virtual bool Next(RawRow* row) = 0;
  // The same row without its values where the source can tell the mask without them
  // (preparation's first pass needs ids, labels and masks only); values are then unset.
  virtual bool NextWithoutValues(RawRow* row) { return Next(row); }
  // Input bytes read in the current pass.
  virtual uint64_t bytes_read() const = 0;
  // Feature names per modality, in the order of RawRow::values.
  const std::vector<std::vector<std::string>>& feature_names() const { return feature_names_; }
  const std::vector<size_t>& offsets() const { return offsets_; }
  size_t num_values() const { return offsets_.empty() ? 0 : offsets_.back(); }
  // The splits file that comes with the input, or "" when none.
  virtual std::string DefaultSplitsFile() const { return ""; }

 protected:
  void SetFeatureNames(std::vector<std::vector<std::string>> names);

 private:
  std::vector<std::vector<std::string>> feature_names_;
  std::vector<size_t> offsets_;  // M + 1 entries
};

struct RowSourceOptions {
  // Labels may be absent (prediction input): layout B without the label column, layout A
  // with a labels.csv of ids only (header "id"). RawRow::label is then "".
  bool labels_optional = false;
  // Layout B: keep the rows parsed by the first pass in a temporary file (spilled_rows.h),
  // so that the passes after it (prepare's statistics and shards) parse nothing again.
  bool spill = false;
  // Layout B: threads that parse a batch of rows' numbers; 0: the machine's cores, at
  // most 4.
  int parse_threads = 0;
};

// Builds the source for data.layout.
std::unique_ptr<RowSource> MakeRowSource(const config::DataConfig& data,
                                         const RowSourceOptions& options = {});

// True when `text` is a missing value (empty or one of data.missing_values).
bool IsMissing(const std::string_view& text, const config::DataConfig& data);

}  // namespace flexmoe
