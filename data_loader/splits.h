// Train/validation/test assignment: read from a splits.json file, or a seeded split
// stratified by label.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "proto/config.pb.h"

namespace flexmoe {

inline constexpr uint32_t kNoSplit = 0xFFFFFFFFu;

// Reads {"training": [...], "validation": [...], "testing": [...]} and returns the split
// of every listed id. Ids must be known (`known_ids`) and appear once. Throws
// kInvalidArgument naming the file, the split and the id.
std::unordered_map<std::string, uint32_t> ReadSplitsFile(
    const std::string& path, const std::unordered_map<std::string, uint32_t>& known_ids);

// Assigns splits per class with the configured ratios: within each class the samples are
// shuffled with the seed, then the first round(n * training) go to training, the next
// round(n * validation) to validation, the rest to testing.
std::vector<uint32_t> StratifiedSplit(const std::vector<int32_t>& labels, int num_classes,
                                      const config::SplitRatios& ratios);

}  // namespace flexmoe
