// `flexmoe init`: a commented config for a wide CSV (layout B), written from a grouping of
// its columns into modalities (a modalities.json file, or column-name prefixes), so that no
// column list is written by hand. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "proto/config.pb.h"

namespace flexmoe {

struct InitOptions {
  std::string input;  // the wide CSV (plain or gzip)
  // {"modality": ["column", ...], ...} in the modalities' order; or empty and `groups`.
  std::string modalities_json;
  // "NAME=PREFIX[,PREFIX...]": modality NAME holds the columns starting with a prefix.
  std::vector<std::string> groups;
  std::string id_column = "id";
  std::string label_column = "label";
  std::vector<std::string> exclude;  // columns never used as features (leaks, other ids)
  std::string splits_file;           // data.splits_file; empty: a seeded stratified split
  std::string prepared_dir;          // data.prepared_dir; empty: the default
  // The per-feature encoder every modality gets, and whether missing-value indicators are
  // added (the tabular recipe's data options: docs/recipe.md).
  config::EncoderKind encoder = config::PERIODIC;
  bool missing_indicators = true;
};

struct InitResult {
  std::string text;  // the config, commented
  config::Config config;
  int64_t rows = 0;
  std::vector<std::string> unlisted;  // columns excluded because no modality lists them
};

// Reads the CSV's header and rows (ids, labels, which modalities each row has) and writes
// the config. The config is parsed and validated before it is returned. kInvalidArgument
// naming the file, line, column or modality for: a modality column absent from the header,
// a column in two modalities, a prefix that matches nothing, an empty or missing id or
// label column, a label column of more than 64 classes, a modality no row observes.
InitResult InitConfig(const InitOptions& options);

}  // namespace flexmoe
