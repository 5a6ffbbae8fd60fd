// Writing and restoring sharded training-state checkpoints (resumable_checkpoint.h).
#include "trainer/checkpoint/resumable_checkpoint.h"

#include <ATen/ATen.h>
#include <glog/logging.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/comm/gather_bytes.h"
#include "proto/config_compare.h"
#include "proto/config_loader.h"
#include "trainer/checkpoint/tensor_files.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr char kReplicatedFile[] = "replicated.safetensors";

// The key of a tensor in a checkpoint file: the parameter name for parameters, the role
// and the name otherwise ("exp_avg/head0.weight"); expert rows carry their global id
// before the last name component ("layer0.moe.experts.5.w1").
std::string TensorName(const std::string& role, const std::string& parameter, int64_t expert) {
  std::string name = parameter;
  if (expert >= 0) {
    const size_t dot = parameter.rfind('.');
    name = parameter.substr(0, dot + 1) + std::to_string(expert) + "." + parameter.substr(dot + 1);
  }
  return role == "parameter" ? name : role + "/" + name;
}

// Every tensor of `state` in one group kind (replicated, or experts) as it is stored: the
// parameters, their Adam moments, best values and moving average, expert rows one by one (views of
// the live tensors, so that loading copies into them).
std::vector<std::pair<TensorEntry, at::Tensor>> StateTensors(const TrainState& state,
                                                             bool experts) {
  std::vector<std::pair<std::string, const std::vector<at::Tensor>*>> roles = {
      {"exp_avg", &state.exp_avg}, {"exp_avg_sq", &state.exp_avg_sq}};
  if (!state.best.empty()) roles.push_back({"best", &state.best});
  if (!state.average.empty()) roles.push_back({"average", &state.average});
  std::vector<std::pair<TensorEntry, at::Tensor>> out;
  for (size_t r = 0; r <= roles.size(); ++r) {
    const std::string role = r == 0 ? "parameter" : roles[r - 1].first;
    for (size_t i = 0; i < state.parameters.size(); ++i) {
      const ModelParameter& p = state.parameters[i];
      if (p.group.is_expert() != experts) continue;
      const at::Tensor& value = r == 0 ? p.tensor : (*roles[r - 1].second)[i];
      if (!experts) {
        out.push_back({TensorEntry::Of(TensorName(role, p.name, -1), p.name, role), value});
        continue;
      }
      for (size_t row = 0; row < p.group.experts.size(); ++row) {
        const int64_t e = p.group.experts[row];
        TensorEntry entry = TensorEntry::Of(TensorName(role, p.name, e), p.name, role);
        entry.layer = p.group.layer;
        entry.expert = e;
        out.push_back({std::move(entry), value[static_cast<int64_t>(row)]});
      }
    }
  }
  return out;
}

}  // namespace

TrainCheckpointer::TrainCheckpointer(CheckpointContext context, std::string checkpoints_dir)
    : context_(std::move(context)), dir_(std::move(checkpoints_dir)) {}

int TrainCheckpointer::rank() const {
  return context_.world != nullptr ? context_.world->rank() : 0;
}

void TrainCheckpointer::Done() {
  ++operations_;
  const CheckpointFault& f = context_.fault;
  if (f.checkpoint == saves_ && f.point == operations_ && f.rank == rank()) ::raise(SIGKILL);
}

FileEntry TrainCheckpointer::WriteReplicated(const TrainState& state, const std::string& staging) {
  FileEntry file = WriteTensorFile(StateTensors(state, false), staging, kReplicatedFile, rank(),
                                   kTrainStateFormat);
  Done();
  return file;
}

FileEntry TrainCheckpointer::WriteExperts(const TrainState& state, const std::string& staging) {
  std::vector<std::pair<TensorEntry, at::Tensor>> tensors = StateTensors(state, true);
  if (tensors.empty()) return FileEntry();
  char name[64];
  std::snprintf(name, sizeof(name), "experts-rank-%05d.safetensors", rank());
  FileEntry file = WriteTensorFile(tensors, staging, name, rank(), kTrainStateFormat);
  Done();
  return file;
}

void TrainCheckpointer::WriteManifest(const TrainState& state, const std::string& staging,
                                      std::vector<FileEntry> files) {
  AtomicFile config(staging + "/" + kCheckpointConfigFile);
  config.Write(context_.config_text);
  config.Commit();
  Done();
  FileEntry config_entry;
  config_entry.name = kCheckpointConfigFile;
  config_entry.bytes = config.size();
  config_entry.crc32c = config.crc32c();
  files.push_back(config_entry);

  TrainManifest manifest;
  manifest.seed = state.seed;
  manifest.world_size = context_.world != nullptr ? context_.world->size() : 1;
  manifest.expert_parallel_degree = context_.expert_parallel_degree;
  manifest.config_hash = context_.config_hash;
  manifest.dataset_index_crc32c = context_.dataset_index_crc32c;
  manifest.dataset_samples = context_.dataset_samples;
  manifest.placement = *context_.placement;
  manifest.progress = state.progress;
  manifest.files = std::move(files);
  WriteFileAtomically(staging + "/" + kManifestFile, ManifestToJsonText(manifest));
  Done();
}

void TrainCheckpointer::Prune() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    // Staging directories of writes that died, and directories a commit moved aside.
    if (name.rfind(".tmp-", 0) == 0 || name.find(".old-") != std::string::npos) {
      fs::remove_all(entry.path(), ec);
    }
  }
  if (context_.keep_last <= 0) return;
  std::vector<std::string> complete = CompleteCheckpoints(dir_);
  for (size_t i = 0; i + context_.keep_last < complete.size(); ++i) {
    fs::remove_all(complete[i], ec);
  }
}

std::string TrainCheckpointer::Save(const TrainState& state) {
  ++saves_;
  operations_ = 0;
  const std::string name = CheckpointDirName(state.progress.position.global_step);
  const std::string final_dir = dir_ + "/" + name;
  const std::string staging = dir_ + "/.tmp-" + name;
  // Rank 0 makes the staging directory. A complete checkpoint of this step exists only when
  // the run resumed from it: the state is the same, so it is kept as it is.
  std::unique_ptr<AtomicDirectory> out;
  int64_t exists = 0;
  RunOnRankZero(context_.world, [&] {
    fs::create_directories(dir_);
    exists = fs::exists(final_dir + "/" + kManifestFile) ? 1 : 0;
    if (!exists) out = std::make_unique<AtomicDirectory>(final_dir, staging);
  });
  if (context_.world != nullptr && context_.world->size() > 1) {
    at::Tensor flag = at::tensor({exists}, at::kLong);
    context_.world->Broadcast(flag, 0);
    exists = flag[0].item<int64_t>();
  }
  if (exists != 0) return final_dir;

  // Each rank writes its files, and reports them (or its error) to rank 0.
  Json report = {{"files", Json::array()}, {"error", ""}};
  try {
    if (rank() == 0) report["files"].push_back(FileEntryToJson(WriteReplicated(state, staging)));
    if (context_.saves_experts) {
      FileEntry experts = WriteExperts(state, staging);
      if (!experts.name.empty()) report["files"].push_back(FileEntryToJson(experts));
    }
  } catch (const std::exception& e) {
    report["error"] = e.what();
  }
  std::vector<std::string> reports = {report.dump()};
  if (context_.world != nullptr && context_.world->size() > 1) {
    reports = GatherBytes(*context_.world, reports[0], 0);
  }
  // Rank 0 writes the config and the manifest, then renames the directory into place.
  RunOnRankZero(context_.world, [&] {
    std::vector<FileEntry> files;
    for (size_t r = 0; r < reports.size(); ++r) {
      Json j = Json::parse(reports[r]);
      if (!j["error"].get<std::string>().empty()) {
        Fail(ErrorCode::kInternal, "checkpoint ", final_dir, " not written: rank ", r, ": ",
             j["error"].get<std::string>());
      }
      for (const Json& f : j["files"]) files.push_back(FileEntryFromJson(f, "rank report"));
    }
    WriteManifest(state, staging, std::move(files));
    out->Commit();
    Done();
    Prune();
    Done();
  });
  if (context_.fault.checkpoint == saves_ && context_.fault.point == 0 &&
      context_.fault.rank == rank()) {
    ::raise(SIGKILL);
  }
  return final_dir;
}

TrainManifest TrainCheckpointer::Verify(const std::string& dir) {
  RunOnRankZero(context_.world, [&] { VerifyTrainCheckpoint(dir); });
  return ReadTrainManifest(dir);
}

int TrainCheckpointer::SetAsideLaterThan(int64_t step) {
  int moved = 0;
  RunOnRankZero(context_.world, [&] {
    for (const std::string& dir : CompleteCheckpoints(dir_)) {
      const int64_t later = ReadTrainManifest(dir).step();
      if (later <= step) continue;
      std::string aside = dir_ + "/abandoned-" + fs::path(dir).filename().string();
      for (int n = 1; fs::exists(aside); ++n) {
        aside = dir_ + "/abandoned-" + fs::path(dir).filename().string() + "-" + std::to_string(n);
      }
      fs::rename(dir, aside);
      LOG(WARNING) << "checkpoint " << dir << " is later than the one resumed from; moved to "
                   << aside;
      ++moved;
    }
    if (moved > 0) SyncDirectory(dir_);
  });
  return moved;
}

TrainManifest TrainCheckpointer::Load(const std::string& dir, TrainState* state) {
  TrainManifest manifest = ReadTrainManifest(dir);
  const std::string source = dir + "/" + kManifestFile;
  for (const auto& [layer, placement] : context_.placement->layers) {
    auto it = manifest.placement.layers.find(layer);
    if (it == manifest.placement.layers.end() ||
        it->second.num_experts() != placement.num_experts()) {
      Fail(ErrorCode::kInvalidArgument, source, ": sparse layer ", layer, " has ",
           it == manifest.placement.layers.end() ? 0 : it->second.num_experts(),
           " experts in the checkpoint, the model has ", placement.num_experts());
    }
  }
  const bool with_best = manifest.progress.best.epoch >= 0;
  state->best.clear();
  if (with_best) {
    for (const ModelParameter& p : state->parameters)
      state->best.push_back(at::empty_like(p.tensor));
  }

  // Which file holds each tensor, and what this rank needs from which file.
  std::map<std::string, size_t> file_of;
  for (size_t f = 0; f < manifest.files.size(); ++f) {
    for (const TensorEntry& t : manifest.files[f].tensors) file_of[t.name] = f;
  }
  std::map<size_t, std::vector<std::pair<std::string, at::Tensor>>> wanted;
  for (bool experts : {false, true}) {
    for (auto& [entry, target] : StateTensors(*state, experts)) {
      auto it = file_of.find(entry.name);
      if (it == file_of.end()) {
        Fail(ErrorCode::kInvalidArgument, source, ": no tensor ", entry.name,
             " (the checkpoint does not fit this model)");
      }
      wanted[it->second].push_back({entry.name, target});
    }
  }
  for (auto& [f, targets] : wanted) {
    SafetensorsFile file = LoadVerifiedSafetensors(dir, manifest.files[f]);
    for (auto& [name, target] : targets) CopyTensorInto(file, name, target);
  }
  state->seed = manifest.seed;
  state->progress = manifest.progress;
  return manifest;
}

void CheckResumable(const std::string& dir, const TrainManifest& manifest,
                    const ResumeTarget& target) {
  const config::Config& config = *target.config;
  const std::string config_path = dir + "/" + kCheckpointConfigFile;
  config::Config saved = ParseConfig(ReadFile(config_path), config_path, {});
  std::string difference = FirstComputationDifference(saved, config);
  if (!difference.empty()) {
    Fail(ErrorCode::kInvalidArgument, dir,
         ": the config changed since this checkpoint: ", difference,
         " (only training.epochs, training.device, training.precision and the checkpoint, ",
         "metrics, run, cluster and synth settings may change)");
  }
  if (manifest.config_hash != ComputationHash(saved)) {
    Fail(ErrorCode::kDataLoss, dir, "/", kManifestFile, ": config hash ", manifest.config_hash,
         " does not match ", config_path);
  }
  if (manifest.dataset_index_crc32c != target.dataset_index_crc32c ||
      manifest.dataset_samples != target.dataset_samples) {
    Fail(ErrorCode::kInvalidArgument, dir, ": written for another dataset (",
         manifest.dataset_samples, " samples, index CRC32C ", manifest.dataset_index_crc32c,
         ") than ", target.prepared_dir, " (", target.dataset_samples, " samples, index CRC32C ",
         target.dataset_index_crc32c, ")");
  }
  if (manifest.seed != target.seed) {
    Fail(ErrorCode::kInvalidArgument, dir, ": written by the run of seed ", manifest.seed,
         ", not seed ", target.seed);
  }
  const TrainPosition& at = manifest.progress.position;
  const int epochs = config.training().epochs();
  if (at.epoch > epochs || (at.epoch == epochs && at.step_in_epoch > 0)) {
    Fail(ErrorCode::kInvalidArgument, dir, ": taken in epoch ", at.epoch + 1, " (step ",
         at.step_in_epoch, "), beyond training.epochs (", epochs, ")");
  }
}

}  // namespace flexmoe
