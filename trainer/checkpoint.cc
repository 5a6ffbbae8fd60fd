// The best-parameters export as safetensors plus a JSON manifest (checkpoint.h).
#include "trainer/checkpoint.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "trainer/checkpoint_files.h"
#include "trainer/safetensors.h"

namespace flexmoe {

void SaveCheckpoint(const std::vector<ModelParameter>& parameters, const CheckpointInfo& info,
                    const std::string& dir) {
  AtomicDirectory out(dir);
  SafetensorsWriter writer;
  FileEntry file;
  file.name = kCheckpointParameters;
  nlohmann::json experts = nlohmann::json::array();
  for (const ModelParameter& p : parameters) {
    at::Tensor t = p.tensor.detach().to(at::kCPU, at::kFloat).contiguous();
    TensorEntry entry = TensorEntry::Of(p.name, p.name, "parameter");
    entry.shape.assign(t.sizes().begin(), t.sizes().end());
    entry.layer = p.group.is_expert() ? p.group.layer : -1;
    writer.Add(p.name, SafetensorsDtype::kF32, entry.shape, t.data_ptr<float>(),
               t.numel() * sizeof(float));
    file.tensors.push_back(entry);
    if (p.group.is_expert()) {
      // Grouped weights: expert e is row e of each of the layer's tensors.
      for (int64_t e = 0; e < t.size(0); ++e) {
        experts.push_back({{"layer", p.group.layer},
                           {"expert", e},
                           {"tensor", p.name},
                           {"file", kCheckpointParameters},
                           {"row", e}});
      }
    }
  }
  writer.SetMetadata("format", kParametersFormat);
  SafetensorsWriter::Written written = writer.Write(out.StagingPath(kCheckpointParameters));
  file.bytes = written.bytes;
  file.crc32c = written.crc32c;
  nlohmann::json manifest = {{"format", kParametersFormat},
                             {"version", kParametersVersion},
                             {"epoch", info.epoch},
                             {"step", info.step},
                             {"seed", info.seed},
                             {"workers", info.workers},
                             {"validation_accuracy", info.validation_accuracy},
                             {"files", {FileEntryToJson(file)}},
                             {"experts", experts},
                             {"config", info.config_text}};
  WriteFileAtomically(out.StagingPath(kCheckpointManifest), SealedManifestText(manifest));
  out.Commit();
}

CheckpointInfo LoadCheckpoint(torch::nn::Module& model, const std::string& dir) {
  const std::string manifest_path = dir + "/" + kCheckpointManifest;
  nlohmann::json manifest = ReadManifestJson(dir);
  CheckpointInfo info;
  std::vector<FileEntry> files;
  try {
    if (manifest.at("format").get<std::string>() != kParametersFormat ||
        manifest.at("version").get<int>() != kParametersVersion) {
      Fail(ErrorCode::kDataLoss, manifest_path, ": not a ", kParametersFormat, " version ",
           kParametersVersion, " manifest");
    }
    info.epoch = manifest.at("epoch").get<int>();
    info.step = manifest.at("step").get<int64_t>();
    info.seed = manifest.at("seed").get<uint64_t>();
    info.workers = manifest.value("workers", 1);
    info.validation_accuracy = manifest.value("validation_accuracy", 0.0);
    info.config_text = manifest.value("config", "");
    for (const auto& f : manifest.at("files")) files.push_back(FileEntryFromJson(f, manifest_path));
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kDataLoss, manifest_path, ": ", e.what());
  }
  if (files.size() != 1 || files[0].name != kCheckpointParameters) {
    Fail(ErrorCode::kDataLoss, manifest_path, ": expected one file, ", kCheckpointParameters);
  }
  SafetensorsFile file = LoadVerifiedSafetensors(dir, files[0]);
  for (auto& item : model.named_parameters()) {
    at::Tensor& p = item.value();
    std::vector<int64_t> shape(p.sizes().begin(), p.sizes().end());
    at::Tensor loaded = at::empty(shape, at::kFloat);
    file.CopyTo(item.key(), SafetensorsDtype::kF32, shape, loaded.data_ptr<float>(),
                loaded.numel() * sizeof(float));
    at::NoGradGuard no_grad;
    p.copy_(loaded);
  }
  return info;
}

}  // namespace flexmoe
