// The file list every checkpoint manifest carries (docs/checkpoints.md): each file with
// its size, CRC32C and the tensors it holds, and the checks that refuse a missing,
// truncated or corrupted file by name. Torch-free.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/base/run_dir.h"  // kManifestFile
#include "trainer/checkpoint/safetensors.h"

namespace flexmoe {

// One tensor of a checkpoint file. `role` says what it is: "parameter", "exp_avg",
// "exp_avg_sq" (Adam's moments of `parameter`), "best" (the best epoch's value of
// `parameter`) or "average" (its moving average, training.average_epochs). Expert tensors name
// their sparse layer and global expert id; replicated ones have layer = expert = -1.
struct TensorEntry {
  std::string name;       // the tensor's key in the safetensors file
  std::string parameter;  // the model parameter it belongs to (expert: the grouped tensor)
  std::string role = "parameter";
  std::string dtype = "F32";
  std::vector<int64_t> shape;
  int layer = -1;
  int64_t expert = -1;

  static TensorEntry Of(std::string name, std::string parameter, std::string role) {
    TensorEntry entry;
    entry.name = std::move(name);
    entry.parameter = std::move(parameter);
    entry.role = std::move(role);
    return entry;
  }
};

struct FileEntry {
  std::string name;  // relative to the checkpoint directory
  int rank = 0;      // the world rank that wrote it
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
  std::vector<TensorEntry> tensors;  // empty for files that hold no tensors
};

nlohmann::json FileEntryToJson(const FileEntry& file);
// Throws kDataLoss naming `source` (the manifest) when a field is missing or of the wrong type.
FileEntry FileEntryFromJson(const nlohmann::json& json, const std::string& source);

// Checks dir/file.name against the entry: kNotFound when it is missing, kDataLoss when its
// size or CRC32C differ ("<path>: 1234 bytes, the manifest says 2048 (truncated?)").
// Returns the file's bytes.
std::string ReadVerifiedFile(const std::string& dir, const FileEntry& file);
// ReadVerifiedFile, then parses it as safetensors and checks that it holds exactly the
// entry's tensors with their dtypes and shapes (kDataLoss naming the file and tensor).
SafetensorsFile LoadVerifiedSafetensors(const std::string& dir, const FileEntry& file);

// A manifest's text with its own CRC32C ("manifest_crc32c": over the text without that
// member), so that a changed byte anywhere in it is noticed.
std::string SealedManifestText(nlohmann::json manifest);
// The manifest JSON of `dir`, its CRC32C checked: kNotFound without one, kDataLoss when it
// does not parse or its CRC32C differs.
nlohmann::json ReadManifestJson(const std::string& dir);

}  // namespace flexmoe
