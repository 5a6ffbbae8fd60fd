// Checkpoints (ARCHITECTURE.md "Formats"): a directory, written atomically, holding the
// parameters as safetensors (readable from Python) and a manifest.json naming which file
// holds which expert, the epoch, the step and the seed.
#pragma once

#include <cstdint>
#include <string>

namespace torch::nn {
class Module;
}

namespace flexmoe {

struct CheckpointInfo {
  int epoch = 0;
  int64_t step = 0;
  uint64_t seed = 0;
  double validation_accuracy = 0;
  std::string config_text;
};

inline constexpr char kCheckpointManifest[] = "manifest.json";
inline constexpr char kCheckpointParameters[] = "model.safetensors";

// Writes every named parameter of `model` (float32, by its module path) and the manifest
// into `dir`, replacing a previous checkpoint there only once the new one is complete.
void SaveCheckpoint(torch::nn::Module& model, const CheckpointInfo& info, const std::string& dir);

// Loads the parameters saved by SaveCheckpoint into `model`; every parameter must be
// present with its shape (kDataLoss naming the file and tensor otherwise).
CheckpointInfo LoadCheckpoint(torch::nn::Module& model, const std::string& dir);

}  // namespace flexmoe
