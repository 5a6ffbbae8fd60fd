// A best-parameters export (run.dir/checkpoint/, trainer/checkpoint/best_export.h) loaded for
// scoring: its config, the dataset metadata it was trained on (feature layout, the preprocessing
// fitted at preparation, class and combination names), the model in evaluation mode and
// the calibration fitted on the validation split.
#pragma once

#include <string>
#include <vector>

#include "proto/config.pb.h"
#include "proto/dataset.pb.h"
#include "trainer/checkpoint/best_export.h"
#include "trainer/model/model.h"

namespace flexmoe {

struct LoadedModel {
  std::string dir;
  config::Config config;
  data::DatasetMeta dataset;
  CheckpointInfo info;
  FlexMoeModel model{nullptr};
  // Added to the model's logits before any scoring: the correction of the prior shift of
  // the class weights it was trained with (empty without them; trainer/train/calibration.h).
  std::vector<double> logit_offset;

  int num_classes() const { return dataset.num_classes(); }
  int num_modalities() const { return dataset.modalities_size(); }
  std::vector<int> feature_sizes() const;
  std::vector<std::string> class_names() const;
  std::vector<std::string> modality_names() const;
  std::vector<std::string> combination_names() const;
  // Whether combination c had samples in the training split: the bank entries of one that
  // had none were never trained (the attribution does not use them).
  bool trained_on(int combination) const;
};

// Loads the export in `dir` (its files verified, trainer/checkpoint/best_export.h). The dataset
// metadata comes from the export, or, for exports written before it was stored there,
// from the config's data.prepared_dir. kNotFound / kDataLoss / kInvalidArgument naming the
// file.
LoadedModel LoadModel(const std::string& dir);

// The export directories named by `path`: `path` itself when it holds a manifest, else
// path/checkpoint, else every path/seed-*/checkpoint (a run of several seeds), sorted.
// kNotFound when there is none.
std::vector<std::string> FindExports(const std::string& path);

// Refuses (kInvalidArgument naming both exports) an ensemble member whose feature layout
// or classes differ from the first member's.
void CheckSameLayout(const LoadedModel& first, const LoadedModel& member);

}  // namespace flexmoe
