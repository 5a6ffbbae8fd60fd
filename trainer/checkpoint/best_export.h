// The best-parameters export, run.dir/checkpoint/ (what eval and predict read): the model's
// parameters in the one-process layout (every expert, [E, ...] per sparse layer) as
// model.safetensors, and a manifest.json with the file's size, CRC32C and tensors, the
// epoch, the step, the seed and the config. Written atomically (a temporary directory,
// fsynced, renamed). Training-state checkpoints, which a run resumes from, are
// trainer/checkpoint/resumable_checkpoint.h.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proto/dataset.pb.h"
#include "trainer/checkpoint/checkpoint_files.h"
#include "trainer/model/parameter_groups.h"

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
  // The calibration fitted on the validation split (trainer/train/calibration.h): softmax of
  // the prior-corrected log-probabilities / temperature + calibration_bias (1 and empty:
  // none fitted).
  double temperature = 1;
  std::vector<double> calibration_bias;
  // The prepared dataset's metadata (text format): the feature layout, the preprocessing
  // fitted at preparation and the class and combination names, so that predict needs
  // nothing but the export. Empty in exports written before it was added.
  std::string dataset_text;
};

inline constexpr char kCheckpointParameters[] = "model.safetensors";
inline constexpr char kParametersFormat[] = "flexmoe-checkpoint";
inline constexpr int kParametersVersion = 2;

// The dataset metadata as stored in an export (text format, shard list left out).
std::string DatasetMetaText(const data::DatasetMeta& meta);
// Parses CheckpointInfo::dataset_text (kDataLoss naming `source` when it does not parse).
data::DatasetMeta ParseDatasetMetaText(const std::string& text, const std::string& source);

// Writes the parameters (float32; expert tensors gathered into the one-process layout
// [E, ...], their group naming the layer) and the manifest into `dir`, replacing a previous
// export there only once the new one is complete.
void SaveCheckpoint(const std::vector<ModelParameter>& parameters, const CheckpointInfo& info,
                    const std::string& dir);

// The export's manifest: its fields and its file list (kNotFound / kDataLoss naming it).
struct ParametersManifest {
  CheckpointInfo info;
  std::vector<FileEntry> files;
};
ParametersManifest ReadParametersManifest(const std::string& dir);

// Loads the parameters saved by SaveCheckpoint into `model` after verifying the file's
// size and CRC32C; every parameter must be present with its shape (kNotFound, kDataLoss or
// kInvalidArgument naming the file and tensor otherwise).
CheckpointInfo LoadCheckpoint(torch::nn::Module& model, const std::string& dir);

}  // namespace flexmoe
