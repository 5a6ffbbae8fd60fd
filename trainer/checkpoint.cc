// Saving and loading checkpoints as safetensors plus a JSON manifest (checkpoint.h).
#include "trainer/checkpoint.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "trainer/safetensors.h"

namespace flexmoe {

void SaveCheckpoint(torch::nn::Module& model, const CheckpointInfo& info, const std::string& dir) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model.named_parameters()) tensors.push_back({item.key(), item.value()});
  SaveCheckpoint(tensors, info, dir);
}

void SaveCheckpoint(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                    const CheckpointInfo& info, const std::string& dir) {
  AtomicDirectory out(dir);
  SafetensorsWriter writer;
  nlohmann::json experts = nlohmann::json::array();
  static const std::regex kExpertTensor(R"(^layer(\d+)\.moe\.experts\.(w1|b1|w2|b2)$)");
  for (const auto& [name, value] : tensors) {
    at::Tensor t = value.detach().to(at::kFloat).contiguous();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    writer.Add(name, SafetensorsDtype::kF32, shape, t.data_ptr<float>(), t.numel() * sizeof(float));
    std::smatch match;
    if (std::regex_match(name, match, kExpertTensor) && match[2] == "w1") {
      // Grouped weights: expert e is row e of each of the layer's four tensors.
      std::string prefix = "layer" + match[1].str() + ".moe.experts.";
      for (int64_t e = 0; e < t.size(0); ++e) {
        experts.push_back(
            {{"layer", std::stoi(match[1])},
             {"expert", e},
             {"file", kCheckpointParameters},
             {"row", e},
             {"tensors", {prefix + "w1", prefix + "b1", prefix + "w2", prefix + "b2"}}});
      }
    }
  }
  writer.SetMetadata("format", "flexmoe-checkpoint-v1");
  writer.Write(out.StagingPath(kCheckpointParameters));
  nlohmann::json manifest = {{"format", "flexmoe-checkpoint"},
                             {"version", 1},
                             {"epoch", info.epoch},
                             {"step", info.step},
                             {"seed", info.seed},
                             {"workers", info.workers},
                             {"validation_accuracy", info.validation_accuracy},
                             {"files", {kCheckpointParameters}},
                             {"experts", experts},
                             {"config", info.config_text}};
  WriteFileAtomically(out.StagingPath(kCheckpointManifest), manifest.dump(2) + "\n");
  out.Commit();
}

CheckpointInfo LoadCheckpoint(torch::nn::Module& model, const std::string& dir) {
  std::string manifest_path = dir + "/" + kCheckpointManifest;
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(ReadFile(manifest_path));
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kDataLoss, manifest_path, ": invalid manifest: ", e.what());
  }
  SafetensorsFile file = SafetensorsFile::Load(dir + "/" + kCheckpointParameters);
  for (auto& item : model.named_parameters()) {
    at::Tensor& p = item.value();
    std::vector<int64_t> shape(p.sizes().begin(), p.sizes().end());
    at::Tensor loaded = at::empty(shape, at::kFloat);
    file.CopyTo(item.key(), SafetensorsDtype::kF32, shape, loaded.data_ptr<float>(),
                loaded.numel() * sizeof(float));
    at::NoGradGuard no_grad;
    p.copy_(loaded);
  }
  CheckpointInfo info;
  try {
    info.epoch = manifest.at("epoch").get<int>();
    info.step = manifest.at("step").get<int64_t>();
    info.seed = manifest.at("seed").get<uint64_t>();
    info.validation_accuracy = manifest.value("validation_accuracy", 0.0);
    info.config_text = manifest.value("config", "");
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kDataLoss, manifest_path, ": ", e.what());
  }
  return info;
}

}  // namespace flexmoe
