// What a batch is gathered from: samples with features, an observed mask, a combination and
// a label. Two kinds: a dataset decoded in memory (DecodedDataset, for input that is already
// in memory) and a prepared dataset read from its shards on demand (ShardSamples).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "data_loader/decoded_batch.h"

namespace flexmoe {

class Samples {
 public:
  virtual ~Samples() = default;
  virtual const std::vector<int>& feature_sizes() const = 0;
  int num_modalities() const { return static_cast<int>(feature_sizes().size()); }
  virtual size_t size() const = 0;
  virtual int64_t combination(uint32_t i) const = 0;
  virtual int64_t label(uint32_t i) const = 0;
  // The given samples as a batch (missing modalities as zeros, observed 0). Thread-safe.
  virtual DecodedBatch Gather(const std::vector<uint32_t>& samples) const = 0;
};

}  // namespace flexmoe
