// The best-parameters export as safetensors plus a JSON manifest (best_export.h).
#include "trainer/checkpoint/best_export.h"

#include <ATen/ATen.h>
#include <google/protobuf/text_format.h>
#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "trainer/checkpoint/checkpoint_files.h"
#include "trainer/checkpoint/safetensors.h"
#include "trainer/checkpoint/tensor_files.h"

namespace flexmoe {

std::string DatasetMetaText(const data::DatasetMeta& meta) {
  data::DatasetMeta copy = meta;
  copy.clear_shard_files();
  std::string text;
  google::protobuf::TextFormat::PrintToString(copy, &text);
  return text;
}

data::DatasetMeta ParseDatasetMetaText(const std::string& text, const std::string& source) {
  data::DatasetMeta meta;
  if (!google::protobuf::TextFormat::ParseFromString(text, &meta)) {
    Fail(ErrorCode::kDataLoss, source, ": the dataset metadata does not parse");
  }
  return meta;
}

void SaveCheckpoint(const std::vector<ModelParameter>& parameters, const CheckpointInfo& info,
                    const std::string& dir) {
  AtomicDirectory out(dir);
  std::vector<std::pair<TensorEntry, at::Tensor>> tensors;
  nlohmann::json experts = nlohmann::json::array();
  for (const ModelParameter& p : parameters) {
    TensorEntry entry = TensorEntry::Of(p.name, p.name, "parameter");
    entry.layer = p.group.is_expert() ? p.group.layer : -1;
    tensors.push_back({entry, p.tensor});
    if (!p.group.is_expert()) continue;
    // Grouped weights: expert e is row e of each of the layer's tensors.
    for (int64_t e = 0; e < p.tensor.size(0); ++e) {
      experts.push_back({{"layer", p.group.layer},
                         {"expert", e},
                         {"tensor", p.name},
                         {"file", kCheckpointParameters},
                         {"row", e}});
    }
  }
  const FileEntry file =
      WriteTensorFile(tensors, out.staging(), kCheckpointParameters, 0, kParametersFormat);
  nlohmann::json manifest = {{"format", kParametersFormat},
                             {"version", kParametersVersion},
                             {"epoch", info.epoch},
                             {"step", info.step},
                             {"seed", info.seed},
                             {"workers", info.workers},
                             {"validation_accuracy", info.validation_accuracy},
                             {"temperature", info.temperature},
                             {"calibration_bias", info.calibration_bias},
                             {"dataset", info.dataset_text},
                             {"files", {FileEntryToJson(file)}},
                             {"experts", experts},
                             {"config", info.config_text}};
  WriteFileAtomically(out.StagingPath(kManifestFile), SealedManifestText(manifest));
  out.Commit();
}

ParametersManifest ReadParametersManifest(const std::string& dir) {
  const std::string manifest_path = dir + "/" + kManifestFile;
  nlohmann::json manifest = ReadManifestJson(dir);
  ParametersManifest m;
  try {
    if (manifest.at("format").get<std::string>() != kParametersFormat ||
        manifest.at("version").get<int>() != kParametersVersion) {
      Fail(ErrorCode::kDataLoss, manifest_path, ": not a ", kParametersFormat, " version ",
           kParametersVersion, " manifest");
    }
    m.info.epoch = manifest.at("epoch").get<int>();
    m.info.step = manifest.at("step").get<int64_t>();
    m.info.seed = manifest.at("seed").get<uint64_t>();
    m.info.workers = manifest.value("workers", 1);
    m.info.validation_accuracy = manifest.value("validation_accuracy", 0.0);
    m.info.config_text = manifest.value("config", "");
    m.info.temperature = manifest.value("temperature", 1.0);
    m.info.calibration_bias = manifest.value("calibration_bias", std::vector<double>());
    m.info.dataset_text = manifest.value("dataset", "");
    for (const auto& f : manifest.at("files")) {
      m.files.push_back(FileEntryFromJson(f, manifest_path));
    }
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kDataLoss, manifest_path, ": ", e.what());
  }
  if (m.files.size() != 1 || m.files[0].name != kCheckpointParameters) {
    Fail(ErrorCode::kDataLoss, manifest_path, ": expected one file, ", kCheckpointParameters);
  }
  return m;
}

CheckpointInfo LoadCheckpoint(torch::nn::Module& model, const std::string& dir) {
  ParametersManifest manifest = ReadParametersManifest(dir);
  SafetensorsFile file = LoadVerifiedSafetensors(dir, manifest.files[0]);
  for (auto& item : model.named_parameters()) CopyTensorInto(file, item.key(), item.value());
  return manifest.info;
}

}  // namespace flexmoe
