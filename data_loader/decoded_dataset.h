// Samples decoded into memory: per modality a row-major float matrix (zeros where the
// modality is missing), the observed mask, combinations and labels. Holds the whole input:
// for input rows already in memory (eval and predict --input) and for tests; training and
// the loaders read prepared data with ShardSamples (shard_samples.h), in bounded memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data_loader/samples.h"
#include "data_loader/shard.h"

namespace flexmoe {

class DecodedDataset : public Samples {
 public:
  // Reads every record of the dataset, verifying checksums (kDataLoss on a bad record).
  explicit DecodedDataset(const PreparedDataset& dataset);
  // The rows of one batch as a dataset (input read for evaluation); sample i is row i.
  DecodedDataset(const DecodedBatch& rows, std::vector<int> feature_sizes);

  const std::vector<int>& feature_sizes() const override { return feature_sizes_; }
  size_t size() const override { return combination_.size(); }
  int64_t combination(uint32_t i) const override { return combination_[i]; }
  int64_t label(uint32_t i) const override { return label_[i]; }
  DecodedBatch Gather(const std::vector<uint32_t>& samples) const override;

 private:
  std::vector<int> feature_sizes_;
  std::vector<std::vector<float>> features_;  // per modality, [N * F_m]
  std::vector<uint8_t> observed_;             // [N * M]
  std::vector<int64_t> combination_;
  std::vector<int64_t> label_;
};

}  // namespace flexmoe
