// On-demand shard reads with a bounded LRU cache (shard_samples.h).
#include "data_loader/shard_samples.h"

#include <algorithm>
#include <cstring>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// What an entry costs besides its floats: the list node, the map entry, the vectors.
constexpr uint64_t kEntryOverhead = 160;

}  // namespace

ShardSamples::ShardSamples(const PreparedDataset& dataset, uint64_t cache_bytes,
                           size_t max_open_shards)
    : dataset_(dataset),
      cache_bytes_(cache_bytes),
      max_open_shards_(max_open_shards),
      feature_sizes_(dataset.feature_sizes()) {
  if (dataset.index.offset_size() != static_cast<int>(dataset.size())) {
    Fail(ErrorCode::kInvalidArgument, dataset.dir, ": opened without its index");
  }
  if (max_open_shards == 0) {
    Fail(ErrorCode::kInvalidArgument, dataset.dir, ": at least one shard file must be open");
  }
  readers_.resize(dataset.meta.shard_files_size());
  last_use_.assign(readers_.size(), 0);
}

ShardSamples::~ShardSamples() = default;

int64_t ShardSamples::combination(uint32_t i) const { return dataset_.index.combination(i); }

int64_t ShardSamples::label(uint32_t i) const { return dataset_.index.label(i); }

void ShardSamples::Read(uint32_t sample, Entry* entry) const {
  const auto& index = dataset_.index;
  const uint32_t shard = index.shard(sample);
  if (shard >= readers_.size()) dataset_.ShardPath(shard);  // throws naming the shard
  ShardReader& reader = Reader(shard);
  const uint64_t offset = index.offset(sample);
  reader.ReadAt(offset, &record_);
  ++stats_.records_read;
  const int m_count = num_modalities();
  if (record_.features_size() != m_count ||
      record_.combination() != static_cast<uint32_t>(index.combination(sample)) ||
      record_.label() != index.label(sample)) {
    Fail(ErrorCode::kDataLoss, reader.path(), ": record at byte ", offset,
         " does not match index entry ", sample);
  }
  entry->sample = sample;
  entry->features.resize(m_count);
  entry->bytes = kEntryOverhead;
  for (int m = 0; m < m_count; ++m) {
    const std::string& bytes = record_.features(m);
    const size_t want = static_cast<size_t>(feature_sizes_[m]) * sizeof(float);
    if (!bytes.empty() && bytes.size() != want) {
      Fail(ErrorCode::kDataLoss, reader.path(), ": record at byte ", offset, " modality ", m,
           " holds ", bytes.size(), " bytes, expected ", want);
    }
    entry->features[m].resize(bytes.size() / sizeof(float));
    if (!bytes.empty()) std::memcpy(entry->features[m].data(), bytes.data(), bytes.size());
    entry->bytes += bytes.size();
  }
}

ShardReader& ShardSamples::Reader(uint32_t shard) const {
  last_use_[shard] = ++uses_;
  if (readers_[shard] != nullptr) return *readers_[shard];
  if (stats_.open_shards >= max_open_shards_) {
    size_t oldest = shard;
    for (size_t s = 0; s < readers_.size(); ++s) {
      if (readers_[s] != nullptr && (oldest == shard || last_use_[s] < last_use_[oldest])) {
        oldest = s;
      }
    }
    readers_[oldest].reset();
    --stats_.open_shards;
  }
  readers_[shard] = std::make_unique<ShardReader>(dataset_.ShardPath(shard));
  ++stats_.open_shards;
  ++stats_.shard_opens;
  stats_.peak_open_shards = std::max(stats_.peak_open_shards, stats_.open_shards);
  return *readers_[shard];
}

void ShardSamples::Insert(Entry entry) const {
  if (entry.bytes > cache_bytes_) return;
  while (!lru_.empty() && stats_.cached_bytes + entry.bytes > cache_bytes_) {
    stats_.cached_bytes -= lru_.back().bytes;
    cached_.erase(lru_.back().sample);
    lru_.pop_back();
  }
  stats_.cached_bytes += entry.bytes;
  stats_.peak_cached_bytes = std::max(stats_.peak_cached_bytes, stats_.cached_bytes);
  const uint32_t sample = entry.sample;
  lru_.push_front(std::move(entry));
  cached_[sample] = lru_.begin();
}

const ShardSamples::Entry& ShardSamples::Fetch(uint32_t sample, Entry* scratch) const {
  auto it = cached_.find(sample);
  if (it != cached_.end()) {
    ++stats_.cache_hits;
    lru_.splice(lru_.begin(), lru_, it->second);
    return *it->second;
  }
  Read(sample, scratch);
  if (scratch->bytes > cache_bytes_) return *scratch;
  Insert(std::move(*scratch));
  *scratch = Entry();
  return lru_.front();
}

DecodedBatch ShardSamples::Gather(const std::vector<uint32_t>& samples) const {
  const int m_count = num_modalities();
  DecodedBatch batch;
  batch.size = static_cast<int>(samples.size());
  batch.features.resize(m_count);
  for (int m = 0; m < m_count; ++m) batch.features[m].assign(samples.size() * feature_sizes_[m], 0);
  batch.observed.assign(samples.size() * m_count, 0);
  std::lock_guard<std::mutex> lock(mutex_);
  Entry scratch;
  for (size_t b = 0; b < samples.size(); ++b) {
    const uint32_t i = samples[b];
    if (i >= size()) {
      Fail(ErrorCode::kInvalidArgument, dataset_.dir, ": sample ", i, " of ", size());
    }
    const Entry& entry = Fetch(i, &scratch);
    for (int m = 0; m < m_count; ++m) {
      if (entry.features[m].empty()) continue;
      std::memcpy(&batch.features[m][b * feature_sizes_[m]], entry.features[m].data(),
                  entry.features[m].size() * sizeof(float));
      batch.observed[b * m_count + m] = 1;
    }
    batch.combination.push_back(combination(i));
    batch.label.push_back(label(i));
    batch.sample.push_back(i);
  }
  return batch;
}

ShardSamplesStats ShardSamples::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace flexmoe
