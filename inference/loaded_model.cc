// Loading an export for scoring (loaded_model.h).
#include "inference/loaded_model.h"

#include <torch/utils.h>

#include <algorithm>
#include <filesystem>

#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "data_loader/combinations.h"
#include "data_loader/shard.h"
#include "proto/config_loader.h"
#include "trainer/train/calibration.h"

namespace flexmoe {

std::vector<int> LoadedModel::feature_sizes() const {
  std::vector<int> sizes;
  for (const auto& m : dataset.modalities()) sizes.push_back(m.feature_names_size());
  return sizes;
}

std::vector<std::string> LoadedModel::class_names() const {
  return {dataset.class_names().begin(), dataset.class_names().end()};
}

std::vector<std::string> LoadedModel::modality_names() const {
  std::vector<std::string> names;
  for (const auto& m : dataset.modalities()) names.push_back(m.name());
  return names;
}

std::vector<std::string> LoadedModel::combination_names() const {
  std::vector<std::string> names;
  Combinations combinations(num_modalities());
  for (int c = 0; c < combinations.size(); ++c) {
    names.push_back(combinations.Name(c, modality_names()));
  }
  return names;
}

bool LoadedModel::trained_on(int combination) const {
  const auto& splits = dataset.summary().splits();
  if (splits.empty()) return true;  // no summary recorded: assume it was
  const auto& counts = splits[0].per_combination();
  return combination < counts.size() && counts[combination] > 0;
}

LoadedModel LoadModel(const std::string& dir) {
  LoadedModel loaded;
  loaded.dir = dir;
  const std::string manifest = dir + "/" + kManifestFile;
  ParametersManifest parameters = ReadParametersManifest(dir);
  loaded.info = parameters.info;
  if (loaded.info.config_text.empty()) {
    Fail(ErrorCode::kDataLoss, manifest, ": no config recorded");
  }
  loaded.config = ParseConfig(loaded.info.config_text, manifest + " (config)", {});
  if (!loaded.info.dataset_text.empty()) {
    loaded.dataset = ParseDatasetMetaText(loaded.info.dataset_text, manifest);
  } else {
    loaded.dataset = PreparedDataset::OpenMeta(loaded.config.data().prepared_dir()).meta;
  }
  if (loaded.dataset.modalities_size() != loaded.config.data().modalities_size()) {
    Fail(ErrorCode::kDataLoss, manifest, ": the dataset has ", loaded.dataset.modalities_size(),
         " modalities, the config ", loaded.config.data().modalities_size());
  }
  ModelShape shape{
      loaded.feature_sizes(),
      loaded.num_classes(),
      {loaded.config.data().modalities().begin(), loaded.config.data().modalities().end()},
      VolumeVoxels(loaded.dataset),
      BinEdges(loaded.dataset)};
  torch::manual_seed(static_cast<int64_t>(loaded.info.seed));
  loaded.model = FlexMoeModel(loaded.config.model(), shape, static_cast<int64_t>(loaded.info.seed));
  LoadCheckpoint(*loaded.model, dir);
  const auto& weights = loaded.config.training().class_weights();
  loaded.logit_offset = PriorCorrection({weights.begin(), weights.end()});
  loaded.model->eval();
  return loaded;
}

std::vector<std::string> FindExports(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(path) / kManifestFile)) return {path};
  // The run's own export, or else its seeds' in the order of their numbers.
  const RunDir run(path);
  if (fs::exists(fs::path(run.export_dir()) / kManifestFile)) return {run.export_dir()};
  std::vector<std::string> found;
  for (uint64_t seed : run.seeds()) {
    if (fs::exists(fs::path(run.seed(seed).export_dir()) / kManifestFile)) {
      found.push_back(run.seed(seed).export_dir());
    }
  }
  if (found.empty()) {
    Fail(ErrorCode::kNotFound, path, ": no checkpoint (neither ", kManifestFile,
         ", checkpoint/ nor seed-*/checkpoint/)");
  }
  return found;
}

void CheckSameLayout(const LoadedModel& first, const LoadedModel& member) {
  auto fail = [&](const std::string& what) {
    Fail(ErrorCode::kInvalidArgument, member.dir, ": ", what, " differ from ", first.dir,
         "'s; an ensemble's members must be trained on the same features and classes");
  };
  if (member.class_names() != first.class_names()) fail("the classes");
  if (member.num_modalities() != first.num_modalities()) fail("the modalities");
  for (int m = 0; m < first.num_modalities(); ++m) {
    const auto& a = first.dataset.modalities(m);
    const auto& b = member.dataset.modalities(m);
    if (a.name() != b.name() || !std::equal(a.feature_names().begin(), a.feature_names().end(),
                                            b.feature_names().begin(), b.feature_names().end())) {
      fail("modality " + std::to_string(m) + "'s features");
    }
    auto same = [](const auto& x, const auto& y) {
      return std::equal(x.begin(), x.end(), y.begin(), y.end());
    };
    if (!same(a.fill(), b.fill()) || !same(a.offset(), b.offset()) || !same(a.scale(), b.scale())) {
      fail("modality " + std::to_string(m) + "'s preprocessing (fill, offset, scale)");
    }
  }
}

}  // namespace flexmoe
