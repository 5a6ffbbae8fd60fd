// Training-state manifest: JSON form and verification (resumable_manifest.h).
#include "trainer/checkpoint/resumable_manifest.h"

#include <cstdio>

#include "cluster/base/error.h"
#include "cluster/base/placement_json.h"

namespace flexmoe {

using Json = nlohmann::json;

std::string ManifestToJsonText(const TrainManifest& m) {
  Json files = Json::array();
  for (const FileEntry& f : m.files) files.push_back(FileEntryToJson(f));
  const TrainProgress& p = m.progress;
  Json json = {
      {"format", kTrainStateFormat},
      {"version", kTrainStateVersion},
      {"step", p.position.global_step},
      {"epoch", p.position.epoch},
      {"step_in_epoch", p.position.step_in_epoch},
      {"seed", m.seed},
      {"world_size", m.world_size},
      {"expert_parallel_degree", m.expert_parallel_degree},
      {"config_hash", m.config_hash},
      {"config_file", kCheckpointConfigFile},
      {"dataset", {{"index_crc32c", m.dataset_index_crc32c}, {"samples", m.dataset_samples}}},
      {"placement", PlacementToJson(m.placement)},
      {"trainer",
       {{"adam_steps", p.adam_steps},
        {"epoch_sums",
         {{"loss", p.epoch.loss},
          {"task_loss", p.epoch.task_loss},
          {"router_loss", p.epoch.router_loss},
          {"dropped_rows_at_start", p.epoch.dropped_rows_at_start}}},
        {"best", {{"score", p.best.score}, {"epoch", p.best.epoch}, {"step", p.best.step}}},
        {"dropped_rows", p.dropped_rows},
        {"metrics_lines", p.metrics_lines}}},
      {"files", files}};
  return SealedManifestText(std::move(json));
}

TrainManifest ManifestFromJson(const Json& json, const std::string& source) {
  TrainManifest m;
  try {
    if (json.at("format").get<std::string>() != kTrainStateFormat) {
      Fail(ErrorCode::kDataLoss, source, ": format '", json.at("format").get<std::string>(),
           "', expected '", kTrainStateFormat, "'");
    }
    if (json.at("version").get<int>() != kTrainStateVersion) {
      Fail(ErrorCode::kDataLoss, source, ": version ", json.at("version").get<int>(),
           " is not supported (this build reads version ", kTrainStateVersion, ")");
    }
    TrainProgress& p = m.progress;
    p.position.global_step = json.at("step").get<int64_t>();
    p.position.epoch = json.at("epoch").get<int>();
    p.position.step_in_epoch = json.at("step_in_epoch").get<int64_t>();
    m.seed = json.at("seed").get<uint64_t>();
    m.world_size = json.at("world_size").get<int>();
    m.expert_parallel_degree = json.at("expert_parallel_degree").get<int>();
    m.config_hash = json.at("config_hash").get<uint32_t>();
    m.dataset_index_crc32c = json.at("dataset").at("index_crc32c").get<uint32_t>();
    m.dataset_samples = json.at("dataset").at("samples").get<uint64_t>();
    m.placement = PlacementFromJson(json.at("placement"), source);
    const Json& t = json.at("trainer");
    p.adam_steps = t.at("adam_steps").get<int64_t>();
    p.epoch.loss = t.at("epoch_sums").at("loss").get<double>();
    p.epoch.task_loss = t.at("epoch_sums").at("task_loss").get<double>();
    p.epoch.router_loss = t.at("epoch_sums").at("router_loss").get<double>();
    p.epoch.dropped_rows_at_start = t.at("epoch_sums").at("dropped_rows_at_start").get<int64_t>();
    p.best.score = t.at("best").at("score").get<double>();
    p.best.epoch = t.at("best").at("epoch").get<int>();
    p.best.step = t.at("best").at("step").get<int64_t>();
    p.dropped_rows = t.at("dropped_rows").get<int64_t>();
    p.metrics_lines = t.at("metrics_lines").get<int64_t>();
    for (const Json& f : json.at("files")) m.files.push_back(FileEntryFromJson(f, source));
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, source, ": ", e.what());
  }
  if (m.world_size < 1 || m.progress.position.global_step < 0) {
    Fail(ErrorCode::kDataLoss, source, ": bad world size or step");
  }
  return m;
}

TrainManifest ReadTrainManifest(const std::string& dir) {
  return ManifestFromJson(ReadManifestJson(dir), dir + "/" + kManifestFile);
}

TrainManifest VerifyTrainCheckpoint(const std::string& dir) {
  TrainManifest manifest = ReadTrainManifest(dir);
  for (const FileEntry& file : manifest.files) {
    if (file.tensors.empty()) {
      ReadVerifiedFile(dir, file);
    } else {
      LoadVerifiedSafetensors(dir, file);
    }
  }
  return manifest;
}

std::string CheckpointDirName(int64_t global_step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(global_step));
  return name;
}

}  // namespace flexmoe
