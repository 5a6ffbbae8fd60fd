// Decoding every shard record into per-modality matrices, and batch gathering.
#include "data_loader/decoded_dataset.h"

#include <cstring>

#include "cluster/base/error.h"

namespace flexmoe {

DecodedDataset::DecodedDataset(const PreparedDataset& dataset) {
  const int m_count = dataset.meta.modalities_size();
  const size_t n = dataset.size();
  for (const auto& modality : dataset.meta.modalities()) {
    feature_sizes_.push_back(modality.feature_names_size());
  }
  features_.resize(m_count);
  for (int m = 0; m < m_count; ++m) features_[m].assign(n * feature_sizes_[m], 0.0f);
  observed_.assign(n * m_count, 0);
  combination_.resize(n);
  label_.resize(n);
  // Records are read shard by shard in file order; the index maps them to positions.
  std::vector<std::vector<std::pair<uint64_t, uint32_t>>> by_shard(dataset.meta.shard_files_size());
  for (size_t i = 0; i < n; ++i) {
    by_shard.at(dataset.index.shard(i))
        .push_back({dataset.index.offset(i), static_cast<uint32_t>(i)});
  }
  data::SampleRecord record;
  for (size_t s = 0; s < by_shard.size(); ++s) {
    ShardReader reader(dataset.ShardPath(static_cast<uint32_t>(s)));
    for (const auto& [offset, i] : by_shard[s]) {
      reader.ReadAt(offset, &record);
      if (record.id() != dataset.index.id(i) || record.features_size() != m_count) {
        Fail(ErrorCode::kDataLoss, reader.path(), ": record at byte ", offset,
             " does not match index entry ", i, " ('", dataset.index.id(i), "')");
      }
      combination_[i] = dataset.index.combination(i);
      label_[i] = dataset.index.label(i);
      for (int m = 0; m < m_count; ++m) {
        const std::string& bytes = record.features(m);
        if (bytes.empty()) continue;
        if (bytes.size() != feature_sizes_[m] * sizeof(float)) {
          Fail(ErrorCode::kDataLoss, reader.path(), ": record at byte ", offset, " modality ", m,
               " holds ", bytes.size(), " bytes, expected ", feature_sizes_[m] * sizeof(float));
        }
        std::memcpy(&features_[m][i * feature_sizes_[m]], bytes.data(), bytes.size());
        observed_[i * m_count + m] = 1;
      }
    }
  }
}

DecodedDataset::DecodedDataset(const DecodedBatch& rows, std::vector<int> feature_sizes)
    : feature_sizes_(std::move(feature_sizes)),
      features_(rows.features),
      observed_(rows.observed),
      combination_(rows.combination),
      label_(rows.label) {
  const size_t m_count = feature_sizes_.size();
  bool ok = features_.size() == m_count && observed_.size() == rows.size * m_count &&
            combination_.size() == static_cast<size_t>(rows.size) &&
            label_.size() == static_cast<size_t>(rows.size);
  for (size_t m = 0; ok && m < m_count; ++m) {
    ok = features_[m].size() == static_cast<size_t>(rows.size) * feature_sizes_[m];
  }
  if (!ok) Fail(ErrorCode::kInvalidArgument, "DecodedDataset: the batch's arrays disagree in size");
}

DecodedBatch DecodedDataset::Gather(const std::vector<uint32_t>& samples) const {
  const int m_count = num_modalities();
  DecodedBatch batch;
  batch.size = static_cast<int>(samples.size());
  batch.features.resize(m_count);
  for (int m = 0; m < m_count; ++m) batch.features[m].resize(samples.size() * feature_sizes_[m]);
  batch.observed.resize(samples.size() * m_count);
  for (size_t b = 0; b < samples.size(); ++b) {
    uint32_t i = samples[b];
    for (int m = 0; m < m_count; ++m) {
      const float* src = &features_[m][static_cast<size_t>(i) * feature_sizes_[m]];
      std::memcpy(&batch.features[m][b * feature_sizes_[m]], src,
                  feature_sizes_[m] * sizeof(float));
      batch.observed[b * m_count + m] = observed_[static_cast<size_t>(i) * m_count + m];
    }
    batch.combination.push_back(combination_[i]);
    batch.label.push_back(label_[i]);
    batch.sample.push_back(i);
  }
  return batch;
}

}  // namespace flexmoe
