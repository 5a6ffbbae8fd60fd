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

void ShardSamples::Read(uint32_t sample, ShardReader& reader, Entry* entry) const {
  const auto& index = dataset_.index;
  const uint64_t offset = index.offset(sample);
  data::SampleRecord record;
  reader.ReadAt(offset, &record);
  const int m_count = num_modalities();
  if (record.features_size() != m_count ||
      record.combination() != static_cast<uint32_t>(index.combination(sample)) ||
      record.label() != index.label(sample)) {
    Fail(ErrorCode::kDataLoss, reader.path(), ": record at byte ", offset,
         " does not match index entry ", sample);
  }
  entry->sample = sample;
  entry->features.resize(m_count);
  entry->bytes = kEntryOverhead;
  for (int m = 0; m < m_count; ++m) {
    const std::string& bytes = record.features(m);
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

std::unique_ptr<ShardReader> ShardSamples::Borrow(uint32_t shard) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last_use_[shard] = ++uses_;
    if (readers_[shard] != nullptr) return std::move(readers_[shard]);
    if (stats_.open_shards >= max_open_shards_) {
      // The least recently used idle reader goes (one in use by another thread stays).
      size_t oldest = readers_.size();
      for (size_t s = 0; s < readers_.size(); ++s) {
        if (readers_[s] != nullptr &&
            (oldest == readers_.size() || last_use_[s] < last_use_[oldest])) {
          oldest = s;
        }
      }
      if (oldest < readers_.size()) {
        readers_[oldest].reset();
        --stats_.open_shards;
      }
    }
    ++stats_.open_shards;
    ++stats_.shard_opens;
    stats_.peak_open_shards = std::max(stats_.peak_open_shards, stats_.open_shards);
  }
  try {
    return std::make_unique<ShardReader>(dataset_.ShardPath(shard));
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    --stats_.open_shards;
    throw;
  }
}

void ShardSamples::Return(uint32_t shard, std::unique_ptr<ShardReader> reader) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (readers_[shard] == nullptr && stats_.open_shards <= max_open_shards_) {
    readers_[shard] = std::move(reader);
    return;
  }
  reader.reset();  // another thread's reader of this shard is kept, or too many are open
  --stats_.open_shards;
}

void ShardSamples::Insert(Entry entry) const {
  if (entry.bytes > cache_bytes_ || cached_.count(entry.sample) != 0) return;
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

void ShardSamples::CopyInto(const Entry& entry, size_t b, DecodedBatch* batch) const {
  const int m_count = num_modalities();
  for (int m = 0; m < m_count; ++m) {
    if (entry.features[m].empty()) continue;
    std::memcpy(&batch->features[m][b * feature_sizes_[m]], entry.features[m].data(),
                entry.features[m].size() * sizeof(float));
    batch->observed[b * m_count + m] = 1;
  }
}

std::vector<size_t> ShardSamples::CopyCached(const std::vector<uint32_t>& samples,
                                             DecodedBatch* batch) const {
  std::vector<size_t> missing;
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t b = 0; b < samples.size(); ++b) {
    auto it = cached_.find(samples[b]);
    if (it == cached_.end()) {
      missing.push_back(b);
      continue;
    }
    ++stats_.cache_hits;
    lru_.splice(lru_.begin(), lru_, it->second);
    CopyInto(*it->second, b, batch);
  }
  return missing;
}

DecodedBatch ShardSamples::Gather(const std::vector<uint32_t>& samples) const {
  const int m_count = num_modalities();
  DecodedBatch batch;
  batch.size = static_cast<int>(samples.size());
  batch.features.resize(m_count);
  for (int m = 0; m < m_count; ++m) batch.features[m].assign(samples.size() * feature_sizes_[m], 0);
  batch.observed.assign(samples.size() * m_count, 0);
  for (uint32_t i : samples) {
    if (i >= size()) {
      Fail(ErrorCode::kInvalidArgument, dataset_.dir, ": sample ", i, " of ", size());
    }
    const uint32_t shard = dataset_.index.shard(i);
    if (shard >= readers_.size()) dataset_.ShardPath(shard);  // throws naming the shard
    batch.combination.push_back(combination(i));
    batch.label.push_back(label(i));
    batch.sample.push_back(i);
  }
  // The misses are read without the lock, in sample order, one borrowed reader per shard
  // run (a plan that visits a shard in order reads it sequentially).
  std::vector<Entry> read;
  const std::vector<size_t> missing = CopyCached(samples, &batch);
  for (size_t k = 0; k < missing.size();) {
    const uint32_t shard = dataset_.index.shard(samples[missing[k]]);
    std::unique_ptr<ShardReader> reader = Borrow(shard);
    try {
      for (; k < missing.size() && dataset_.index.shard(samples[missing[k]]) == shard; ++k) {
        read.emplace_back();
        Read(samples[missing[k]], *reader, &read.back());
        CopyInto(read.back(), missing[k], &batch);
      }
    } catch (...) {
      Return(shard, std::move(reader));  // it reads at an offset: usable again
      throw;
    }
    Return(shard, std::move(reader));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.records_read += read.size();
  for (Entry& entry : read) Insert(std::move(entry));
  return batch;
}

ShardSamplesStats ShardSamples::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace flexmoe
