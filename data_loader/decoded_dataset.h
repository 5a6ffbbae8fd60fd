// A prepared dataset decoded into memory: per modality a row-major float matrix (zeros where
// the modality is missing), the observed mask, combinations and labels. Used by in-process
// training and by the loader server to assemble batches without re-reading shards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data_loader/shard.h"

namespace flexmoe {

struct DecodedBatch {
  int size = 0;
  std::vector<std::vector<float>> features;  // per modality, [size * features(m)]
  std::vector<uint8_t> observed;             // [size * M]
  std::vector<int64_t> combination;          // [size]
  std::vector<int64_t> label;                // [size]
  std::vector<int64_t> sample;               // [size], index into the dataset
  // [size]: 1, or 0 for a padding repeat that must not count in the loss. Empty means all 1.
  std::vector<float> weight;
  // The whole global batch's (every worker's slice) weight per label: entry c sums `weight`
  // over its samples of label c. The loss denominator, known without a collective. Empty
  // when the source does not know the global batch.
  std::vector<double> global_label_weight;
};

class DecodedDataset {
 public:
  // Reads every record of the dataset, verifying checksums (kDataLoss on a bad record).
  explicit DecodedDataset(const PreparedDataset& dataset);
  // The rows of one batch as a dataset (input read for evaluation); sample i is row i.
  DecodedDataset(const DecodedBatch& rows, std::vector<int> feature_sizes);

  int num_modalities() const { return static_cast<int>(feature_sizes_.size()); }
  const std::vector<int>& feature_sizes() const { return feature_sizes_; }
  size_t size() const { return combination_.size(); }
  int64_t combination(uint32_t i) const { return combination_[i]; }
  int64_t label(uint32_t i) const { return label_[i]; }
  // Gathers the given samples into a batch.
  DecodedBatch Gather(const std::vector<uint32_t>& samples) const;

 private:
  std::vector<int> feature_sizes_;
  std::vector<std::vector<float>> features_;  // per modality, [N * F_m]
  std::vector<uint8_t> observed_;             // [N * M]
  std::vector<int64_t> combination_;
  std::vector<int64_t> label_;
};

}  // namespace flexmoe
