// inspect-checkpoint (inspect_command.h).
#include "launch/inspect_command.h"

#include <filesystem>
#include <iostream>
#include <string>

#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "launch/cli/args.h"
#include "trainer/checkpoint/best_export.h"
#include "trainer/checkpoint/checkpoint_files.h"
#include "trainer/checkpoint/resumable_manifest.h"

namespace flexmoe {
namespace {

std::string Shape(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

void PrintFiles(const std::vector<FileEntry>& files) {
  size_t tensors = 0;
  for (const FileEntry& f : files) {
    std::cout << "file " << f.name << ": " << f.bytes << " bytes, CRC32C " << f.crc32c
              << ", written by rank " << f.rank << ", " << f.tensors.size() << " tensors\n";
    for (const TensorEntry& t : f.tensors) {
      std::cout << "  " << t.name << " " << t.dtype << " " << Shape(t.shape) << " (" << t.role;
      if (t.layer >= 0) std::cout << ", layer " << t.layer;
      if (t.expert >= 0) std::cout << ", expert " << t.expert;
      std::cout << ")\n";
    }
    tensors += f.tensors.size();
  }
  std::cout << "verified: " << files.size() << " files, " << tensors
            << " tensors; every size and CRC32C matches the manifest\n";
}

void InspectTrainState(const std::string& dir) {
  TrainManifest m = VerifyTrainCheckpoint(dir);
  const TrainProgress& p = m.progress;
  std::cout << "training-state checkpoint " << dir << "\n"
            << "step " << p.position.global_step << " (epoch " << p.position.epoch << ", step "
            << p.position.step_in_epoch << " of it), seed " << m.seed << "\n"
            << "world size " << m.world_size << ", expert-parallel degree "
            << m.expert_parallel_degree << ", config hash " << m.config_hash << "\n"
            << "dataset: " << m.dataset_samples << " samples, index CRC32C "
            << m.dataset_index_crc32c << "\n"
            << "best epoch " << p.best.epoch << " (score " << p.best.score << "), Adam steps "
            << p.adam_steps << "\n";
  for (const auto& [layer, placement] : m.placement.layers) {
    std::cout << "placement, sparse layer " << layer << ":";
    for (int r = 0; r < m.placement.ranks; ++r) {
      std::cout << " rank " << r << " [";
      std::vector<int64_t> experts = placement.LocalExperts(r);
      for (size_t i = 0; i < experts.size(); ++i) std::cout << (i > 0 ? " " : "") << experts[i];
      std::cout << "]";
    }
    std::cout << "\n";
  }
  PrintFiles(m.files);
}

void InspectParameters(const std::string& dir) {
  ParametersManifest m = ReadParametersManifest(dir);
  for (const FileEntry& f : m.files) LoadVerifiedSafetensors(dir, f);
  std::cout << "best-parameters export " << dir << "\n"
            << "epoch " << m.info.epoch << ", step " << m.info.step << ", seed " << m.info.seed
            << ", written by " << m.info.workers << " workers\n";
  PrintFiles(m.files);
}

}  // namespace

int InspectCheckpointCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  if (args.positional.size() != 1) {
    Fail(ErrorCode::kInvalidArgument, "inspect-checkpoint: usage: flexmoe inspect-checkpoint DIR");
  }
  const std::string dir = args.positional[0];
  if (!std::filesystem::exists(dir + "/" + kManifestFile) &&
      std::filesystem::is_directory(RunDir(dir).checkpoints())) {
    const std::string newest = RunDir(dir).NewestCheckpoint();
    Fail(ErrorCode::kNotFound, dir, " is a run directory; name one of its checkpoints",
         newest.empty() ? std::string(" (it has none)") : ", e.g. " + newest);
  }
  nlohmann::json manifest = ReadManifestJson(dir);
  const std::string format = manifest.value("format", "");
  if (format == kTrainStateFormat) {
    InspectTrainState(dir);
  } else if (format == kParametersFormat) {
    InspectParameters(dir);
  } else {
    Fail(ErrorCode::kDataLoss, dir, "/", kManifestFile, ": unknown format '", format, "'");
  }
  return 0;
}

}  // namespace flexmoe
