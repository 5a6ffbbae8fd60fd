// Reading and preprocessing rows to score (prediction_input.h).
#include "inference/prediction_input.h"

#include <filesystem>

#include "cluster/base/error.h"
#include "data_loader/combinations.h"
#include "data_loader/feature_stats.h"
#include "data_loader/prepare.h"

namespace flexmoe {

PredictionInput::PredictionInput(const LoadedModel& model, const std::string& path,
                                 bool labels_required)
    : model_(model), data_(model.config.data()), labels_required_(labels_required) {
  if (!std::filesystem::exists(path)) {
    Fail(ErrorCode::kNotFound, path, ": no such file or directory (--input)");
  }
  data_.set_input(path);
  data_.set_layout(std::filesystem::is_directory(path) ? config::DataConfig::PER_MODALITY_CSV
                                                       : config::DataConfig::WIDE_CSV);
  if (data_.layout() == config::DataConfig::WIDE_CSV) {
    // A model trained on layout A has no column map: its features' own names are the columns.
    for (int m = 0; m < data_.modalities_size(); ++m) {
      config::Modality* modality = data_.mutable_modalities(m);
      if (modality->columns_size() > 0) continue;
      const auto& fit = model.dataset.modalities(m);
      for (int j = 0; j < InputFeatures(fit); ++j) modality->add_columns(fit.feature_names(j));
    }
  }
  RowSourceOptions options;
  options.labels_optional = !labels_required;
  source_ = MakeRowSource(data_, options);
  CheckLayout();
  Combinations combinations(model.num_modalities());
  combination_of_mask_.assign(1u << model.num_modalities(), -1);
  for (int c = 0; c < combinations.size(); ++c) combination_of_mask_[combinations.Mask(c)] = c;
}

void PredictionInput::CheckLayout() const {
  for (int m = 0; m < model_.num_modalities(); ++m) {
    const auto& trained = model_.dataset.modalities(m);
    const auto& got = source_->feature_names()[m];
    std::string where =
        data_.layout() == config::DataConfig::PER_MODALITY_CSV
            ? (std::filesystem::path(data_.input()) / data_.modalities(m).file()).string()
            : data_.input();
    const int inputs = InputFeatures(trained);
    for (int j = 0; j < std::max<int>(inputs, got.size()); ++j) {
      if (j < inputs && j < static_cast<int>(got.size()) && trained.feature_names(j) == got[j]) {
        continue;
      }
      const std::string want = j < inputs ? trained.feature_names(j) : "";
      Fail(ErrorCode::kInvalidArgument, where, ":1: modality '", trained.name(), "' feature ",
           j + 1, ": ", j < static_cast<int>(got.size()) ? "column '" + got[j] + "'" : "no column",
           " where the model was trained on ",
           want.empty() ? "no further feature" : "'" + want + "'", " (the model has ", inputs,
           " input features in this modality, the input ", got.size(), ")");
    }
  }
}

bool PredictionInput::Next(int max_rows, InputBatch* out) {
  *out = InputBatch();
  const int m_count = model_.num_modalities();
  const std::vector<int> sizes = model_.feature_sizes();
  DecodedBatch& batch = out->batch;
  batch.features.resize(m_count);
  const auto& offsets = source_->offsets();
  while (static_cast<int>(out->ids.size()) < max_rows && source_->Next(&row_)) {
    if (!seen_.emplace(row_.id).second) {
      Fail(ErrorCode::kInvalidArgument, row_.where, ": duplicate id '", row_.id, "'");
    }
    int label = 0;
    if (labels_required_) label = ParseLabel(row_, data_);
    out->ids.push_back(row_.id);
    out->has_modality.push_back(row_.mask != 0);
    if (row_.mask == 0) continue;
    for (int m = 0; m < m_count; ++m) {
      std::vector<float>& f = batch.features[m];
      const size_t at = f.size();
      f.resize(at + sizes[m], 0.0f);
      const bool observed = row_.mask & (1u << m);
      if (observed)
        PreprocessModality(model_.dataset.modalities(m), &row_.values[offsets[m]], &f[at]);
      batch.observed.push_back(observed ? 1 : 0);
    }
    batch.combination.push_back(combination_of_mask_[row_.mask]);
    batch.label.push_back(label);
    batch.sample.push_back(static_cast<int64_t>(out->ids.size() - 1));
    ++batch.size;
  }
  return !out->ids.empty();
}

}  // namespace flexmoe
