// Dataset preparation (`flexmoe prepare`): input CSVs to a prepared dataset directory of
// shards, index, metadata and summary. Preprocessing is fitted on the training split only.
//
// Three passes over the input: (1) ids, labels and observed modalities, validated, giving
// the index and the splits; (2) feature statistics over the training split; (3) filled
// and scaled features written to shards. Memory holds the index, not the features
// (layout A holds its per-modality tables). Output is built in a temporary directory and
// renamed into place, so a failure leaves any previous output intact.
#pragma once

#include <iosfwd>
#include <string>

#include "data_loader/splits.h"  // SplitName, kNumSplits
#include "proto/config.pb.h"
#include "proto/dataset.pb.h"

namespace flexmoe {

struct PrepareResult {
  data::DatasetMeta meta;
  uint64_t input_bytes = 0;  // bytes of CSV text read in one pass
  double seconds = 0;
};

// Prepares data.input into `out_dir`. Throws flexmoe::Error on bad input; `progress`
// (may be null) receives a line per pass.
PrepareResult PrepareDataset(const config::Config& config, const std::string& out_dir,
                             std::ostream* progress);

// The human-readable summary: samples per split, per combination and per class, and
// the dropped rows with their reasons.
std::string FormatSummary(const data::DatasetMeta& meta);

struct RawRow;
// The class id of a row's label text: one of data.class_names, or an integer in
// [0, num_classes). kInvalidArgument naming the row's file and line otherwise.
int32_t ParseLabel(const RawRow& row, const config::DataConfig& data);

}  // namespace flexmoe
