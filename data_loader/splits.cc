// splits.json reading and the seeded stratified split.
#include "data_loader/splits.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"

namespace flexmoe {

const char* SplitName(uint32_t split) {
  static const char* kNames[] = {"training", "validation", "testing"};
  return split < kNumSplits ? kNames[split] : "none";
}

uint32_t SplitNamed(const std::string& name) {
  if (name == "test") return 2;
  for (uint32_t s = 0; s < kNumSplits; ++s) {
    if (name == SplitName(s)) return s;
  }
  return kNoSplit;
}

std::string SplitsJson(size_t n, const std::function<const std::string&(size_t)>& id,
                       const std::function<uint32_t(size_t)>& split) {
  nlohmann::json json;
  for (uint32_t s = 0; s < kNumSplits; ++s) json[SplitName(s)] = nlohmann::json::array();
  for (size_t i = 0; i < n; ++i) {
    const uint32_t s = split(i);
    if (s < kNumSplits) json[SplitName(s)].push_back(id(i));
  }
  return json.dump() + "\n";
}

std::unordered_map<std::string, uint32_t> ReadSplitsFile(
    const std::string& path, const std::unordered_map<std::string, uint32_t>& known_ids) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(ReadFile(path));
  } catch (const nlohmann::json::parse_error& e) {
    Fail(ErrorCode::kInvalidArgument, path, ": invalid JSON: ", e.what());
  }
  if (!json.is_object()) Fail(ErrorCode::kInvalidArgument, path, ": expected a JSON object");
  std::unordered_map<std::string, uint32_t> split_of;
  for (const auto& [key, value] : json.items()) {
    const uint32_t split = key == "test" ? kNoSplit : SplitNamed(key);
    if (split == kNoSplit) {
      Fail(ErrorCode::kInvalidArgument, path, ": unknown split '", key,
           "' (expected training, validation, testing)");
    }
    if (!value.is_array()) Fail(ErrorCode::kInvalidArgument, path, ": '", key, "' is not a list");
    for (const auto& item : value) {
      std::string id;
      if (item.is_string()) {
        id = item.get<std::string>();
      } else if (item.is_number_integer()) {
        id = std::to_string(item.get<int64_t>());
      } else {
        Fail(ErrorCode::kInvalidArgument, path, ": '", key, "' holds ", item.dump(), ", not an id");
      }
      if (!known_ids.count(id)) {
        Fail(ErrorCode::kInvalidArgument, path, ": id '", id, "' in '", key,
             "' is not among the labelled samples");
      }
      auto [it, fresh] = split_of.emplace(id, split);
      if (!fresh) {
        Fail(ErrorCode::kInvalidArgument, path, ": id '", id, "' appears in '",
             SplitName(it->second), "' and in '", key, "'");
      }
    }
  }
  return split_of;
}

std::vector<uint32_t> StratifiedSplit(const std::vector<int32_t>& labels, int num_classes,
                                      const config::SplitRatios& ratios) {
  std::vector<uint32_t> split(labels.size(), 2);
  uint64_t state = ratios.seed();
  for (int c = 0; c < num_classes; ++c) {
    std::vector<size_t> members;
    for (size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] == c) members.push_back(i);
    }
    for (size_t i = members.size(); i > 1; --i) {
      size_t j = SplitMix64(&state) % i;
      std::swap(members[i - 1], members[j]);
    }
    size_t n = members.size();
    size_t train = static_cast<size_t>(std::llround(n * ratios.training()));
    size_t val = std::min(n - train, static_cast<size_t>(std::llround(n * ratios.validation())));
    for (size_t i = 0; i < n; ++i) split[members[i]] = i < train ? 0 : (i < train + val ? 1 : 2);
  }
  return split;
}

}  // namespace flexmoe
