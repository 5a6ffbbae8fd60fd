// Train/validation/test assignment: read from a splits.json file, or a seeded split
// stratified by label.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "proto/config.pb.h"

namespace flexmoe {

inline constexpr uint32_t kNoSplit = 0xFFFFFFFFu;
inline constexpr uint32_t kNumSplits = 3;

// The one table of split names, in index order: "training", "validation", "testing"
// ("none" past them).
const char* SplitName(uint32_t split);
// The split of a name ("test" names testing too); kNoSplit for any other.
uint32_t SplitNamed(const std::string& name);

// A splits file's text for n samples: {"training": [ids], "validation": [...],
// "testing": [...]} (every split present, empty or not; samples of kNoSplit left out).
// The one writer of splits.json (prepare, synth, tune's folds).
std::string SplitsJson(size_t n, const std::function<const std::string&(size_t)>& id,
                       const std::function<uint32_t(size_t)>& split);

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
