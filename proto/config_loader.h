// Loading a job config: protobuf text format, `--set path=value` overrides, defaults made
// explicit, and validation whose errors name the file, the line and the field.
#pragma once

#include <string>
#include <vector>

#include "proto/config.pb.h"

namespace flexmoe {

// Reads `path`, applies `overrides` ("data.modalities[0].scaling=MINMAX", in order),
// fills every default and validates. Throws flexmoe::Error (kNotFound, kInvalidArgument)
// with "FILE:LINE: field F: problem" messages.
config::Config LoadConfig(const std::string& path, const std::vector<std::string>& overrides);

// Parses config text (no file); `name` is used in messages.
config::Config ParseConfig(const std::string& text, const std::string& name,
                           const std::vector<std::string>& overrides);

// Parses protobuf text into `message` (any message type, e.g. tune's search space);
// kInvalidArgument "NAME:LINE:COLUMN: problem" on a syntax error or an unknown field.
void ParseTextMessage(const std::string& text, const std::string& name,
                      google::protobuf::Message* message);

// The config in text format, every field shown.
std::string ConfigToText(const config::Config& config);

// Number of non-empty modality combinations, 2^M - 1.
// How a layout-A modality file is read, from its name: .npy, .h5ad/.h5/.hdf5, else CSV.
enum class ArrayFormat { kCsv, kNpy, kHdf5 };
ArrayFormat ArrayFormatOf(const std::string& file);

inline int NumCombinations(int num_modalities) { return (1 << num_modalities) - 1; }

}  // namespace flexmoe
