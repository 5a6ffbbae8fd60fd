// A prepared dataset's samples read from its shard files on demand, so that memory is
// bounded by a cache budget rather than by the dataset: each record is read at its index
// offset (through a buffered reader per shard, so that a plan that visits a shard in order
// reads it sequentially; at most `max_open_shards` of them open at once, the least recently
// used closed first, so a dataset of 10M samples does not need thousands of descriptors),
// its checksum verified, and its features kept in an LRU cache of
// at most `cache_bytes` (missing modalities take no space). The combination and label of
// every sample come from the index.
//
// Threading: Gather may run on several threads at once (the loader builds batches on a
// pool). The cache's lock is held only to look up, insert and hand out readers, never
// across a disk read: each reader is used by one thread at a time, and a shard wanted by
// two threads at once gets a second reader (open files stay at most max_open_shards plus
// the threads reading).
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
  uint64_t open_shards = 0;  // shard files open now
  uint64_t peak_open_shards = 0;
  uint64_t shard_opens = 0;  // times a shard file was opened
};

// Shard files a ShardSamples keeps open at most, unless told otherwise.
inline constexpr size_t kDefaultMaxOpenShards = 64;

class ShardSamples : public Samples {
 public:
  // `dataset` (opened with Open or OpenForServing) must outlive this.
  // kInvalidArgument when max_open_shards is 0.
  ShardSamples(const PreparedDataset& dataset, uint64_t cache_bytes,
               size_t max_open_shards = kDefaultMaxOpenShards);
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

  // Copies the cached samples of `samples` into `batch` (mutex_ held); returns the
  // positions in `samples` of the others.
  std::vector<size_t> CopyCached(const std::vector<uint32_t>& samples, DecodedBatch* batch) const;
  // Reads `sample` from its shard with `reader` (no lock held).
  void Read(uint32_t sample, ShardReader& reader, Entry* entry) const;
  // An idle reader of `shard`, or a new one (closing the least recently used idle reader
  // when max_open_shards_ are open); the caller owns it until Return.
  std::unique_ptr<ShardReader> Borrow(uint32_t shard) const;
  void Return(uint32_t shard, std::unique_ptr<ShardReader> reader) const;
  void Insert(Entry entry) const;  // mutex_ held
  void CopyInto(const Entry& entry, size_t b, DecodedBatch* batch) const;

  const PreparedDataset& dataset_;
  const uint64_t cache_bytes_;
  const size_t max_open_shards_;
  std::vector<int> feature_sizes_;
  mutable std::mutex mutex_;
  // Idle readers, per shard (opened on demand; at most one is kept idle per shard).
  mutable std::vector<std::unique_ptr<ShardReader>> readers_;
  mutable std::vector<uint64_t> last_use_;  // per shard, a use counter
  mutable uint64_t uses_ = 0;
  mutable Lru lru_;  // most recently used first
  mutable std::unordered_map<uint32_t, Lru::iterator> cached_;
  mutable ShardSamplesStats stats_;
};

}  // namespace flexmoe
