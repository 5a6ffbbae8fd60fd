// The manifest of a training-state checkpoint, run.dir/checkpoints/step-<8 digits>/
// manifest.json (docs/checkpoints.md): step and position, seed, world size, the expert
// placement, the config's computation hash, the dataset it was trained on, the trainer's
// scalars, and every file with its size, CRC32C and tensors. Written last, after every
// file it lists: a directory without a manifest is never read. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/base/expert_placement.h"
#include "cluster/base/run_dir.h"  // CompleteCheckpoints
#include "trainer/checkpoint/checkpoint_files.h"
#include "trainer/checkpoint/train_progress.h"

namespace flexmoe {

inline constexpr char kTrainStateFormat[] = "flexmoe-train-state";
inline constexpr int kTrainStateVersion = 1;
inline constexpr char kCheckpointConfigFile[] = "config.textproto";

struct TrainManifest {
  uint64_t seed = 0;
  int world_size = 1;
  int expert_parallel_degree = 1;
  uint32_t config_hash = 0;  // ComputationHash of the config (proto/config_compare.h)
  uint32_t dataset_index_crc32c = 0;
  uint64_t dataset_samples = 0;
  PlacementMap placement;
  TrainProgress progress;
  std::vector<FileEntry> files;

  int64_t step() const { return progress.position.global_step; }
};

std::string ManifestToJsonText(const TrainManifest& manifest);
// Parses and checks a manifest; `source` names it in errors (kDataLoss).
TrainManifest ManifestFromJson(const nlohmann::json& json, const std::string& source);

// Reads dir's manifest and verifies every listed file's size, CRC32C and (safetensors)
// tensor list. Throws kNotFound / kDataLoss naming the file at fault.
TrainManifest VerifyTrainCheckpoint(const std::string& dir);
// Reads dir's manifest without reading the files.
TrainManifest ReadTrainManifest(const std::string& dir);

// "step-00000123".
std::string CheckpointDirName(int64_t global_step);

}  // namespace flexmoe
