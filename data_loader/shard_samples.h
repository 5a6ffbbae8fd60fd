// A prepared dataset's samples read from its shard files on demand, so that memory is
// bounded by a cache budget rather than by the dataset: each record is read at its index
// offset (one open file per shard, buffered, so that a plan that visits a shard in order
// reads it sequentially), its checksum verified, and its features kept in an LRU cache of
// at most `cache_bytes` (missing modalities take no space). The combination and label of
// every sample come from the index.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "data_loader/samples.h"
#include "data_loader/shard.h"

namespace flexmoe {

struct ShardSamplesStats {
  uint64_t records_read = 0;  // from the shard files
  uint64_t cache_hits = 0;
  uint64_t cached_bytes = 0;
  uint64_t peak_cached_bytes = 0;
};

class ShardSamples : public Samples {
 public:
  // `dataset` (opened with Open or OpenForServing) must outlive this.
  ShardSamples(const PreparedDataset& dataset, uint64_t cache_bytes);
  ~ShardSamples() override;
  ShardSamples(const ShardSamples&) = delete;
  ShardSamples& operator=(const ShardSamples&) = delete;

  const std::vector<int>& feature_sizes() const override { return feature_sizes_; }
  size_t size() const override { return dataset_.size(); }
  int64_t combination(uint32_t i) const override;
  int64_t label(uint32_t i) const override;
  // Throws kDataLoss naming the shard and byte when a record is damaged or does not match
  // its index entry, kInvalidArgument for a sample outside the dataset.
  DecodedBatch Gather(const std::vector<uint32_t>& samples) const override;
  ShardSamplesStats stats() const;

 private:
  struct Entry {
    uint32_t sample = 0;
    std::vector<std::vector<float>> features;  // per modality; empty where missing
    uint64_t bytes = 0;
  };
  using Lru = std::list<Entry>;

  // The sample's features, from the cache or its shard (mutex_ held).
  const Entry& Fetch(uint32_t sample, Entry* scratch) const;
  void Read(uint32_t sample, Entry* entry) const;
  void Insert(Entry entry) const;

  const PreparedDataset& dataset_;
  const uint64_t cache_bytes_;
  std::vector<int> feature_sizes_;
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<ShardReader>> readers_;  // per shard, opened on demand
  mutable Lru lru_;                                            // most recently used first
  mutable std::unordered_map<uint32_t, Lru::iterator> cached_;
  mutable ShardSamplesStats stats_;
  mutable data::SampleRecord record_;
};

}  // namespace flexmoe
