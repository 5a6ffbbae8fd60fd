// Checkpoints (ARCHITECTURE.md "Formats"): a directory, written atomically, holding the
// parameters as safetensors (readable from Python) and a manifest.json naming which file
// holds which expert, the epoch, the step and the seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace flexmoe {

struct CheckpointInfo {
  int epoch = 0;
  int64_t step = 0;
  uint64_t seed = 0;
  double validation_accuracy = 0;
  int workers = 1;  // the worker count that wrote it (any count can load it)
  std::string config_text;
};

inline constexpr char kCheckpointManifest[] = "manifest.json";
inline constexpr char kCheckpointParameters[] = "model.safetensors";

// Writes the named tensors (float32; expert tensors in the one-process layout [E, ...]) and
// the manifest into `dir`, replacing a previous checkpoint there only once the new one is
// complete.
void SaveCheckpoint(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                    const CheckpointInfo& info, const std::string& dir);
// The same for every named parameter of a one-process model.
void SaveCheckpoint(torch::nn::Module& model, const CheckpointInfo& info, const std::string& dir);

// Loads the parameters saved by SaveCheckpoint into `model`; every parameter must be
// present with its shape (kDataLoss naming the file and tensor otherwise).
CheckpointInfo LoadCheckpoint(torch::nn::Module& model, const std::string& dir);

}  // namespace flexmoe
