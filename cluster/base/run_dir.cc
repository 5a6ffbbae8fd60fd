// The run directory's seed directories and its complete checkpoints.
#include "cluster/base/run_dir.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <utility>

namespace flexmoe {

namespace fs = std::filesystem;

std::vector<uint64_t> RunDir::seeds() const {
  static const std::regex kName(R"(^seed-(\d{1,19})$)");
  std::vector<uint64_t> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (!entry.is_directory(ec) || !std::regex_match(name, match, kName)) continue;
    try {
      found.push_back(std::stoull(match[1].str()));
    } catch (const std::out_of_range&) {
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<std::string> RunDir::CompleteCheckpoints() const {
  return flexmoe::CompleteCheckpoints(checkpoints());
}

std::string RunDir::NewestCheckpoint() const {
  std::vector<std::string> found = CompleteCheckpoints();
  return found.empty() ? std::string() : found.back();
}

std::vector<std::string> CompleteCheckpoints(const std::string& checkpoints_dir) {
  static const std::regex kName(R"(^step-(\d{8,18})$)");
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (!entry.is_directory(ec) || !std::regex_match(name, match, kName)) continue;
    if (!fs::exists(entry.path() / kManifestFile, ec)) continue;
    found.push_back({std::stoll(match[1].str()), entry.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> dirs;
  for (auto& [step, dir] : found) dirs.push_back(std::move(dir));
  return dirs;
}

}  // namespace flexmoe
