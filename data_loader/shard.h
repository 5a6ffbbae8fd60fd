// Prepared-dataset storage: shard files of length-prefixed, CRC32C-checked records and the
// dataset directory (meta.textproto, index.pb, shard-NNNNN.rec) that holds them.
//
// Shard layout: the 8-byte magic "FMSHARD1", then records, each
//   [u32 little-endian payload length][u32 little-endian CRC32C of the payload][payload]
// where the payload is a serialized flexmoe.data.SampleRecord.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cluster/base/atomic_file.h"
#include "cluster/base/file_handles.h"
#include "proto/dataset.pb.h"

namespace flexmoe {

inline constexpr char kShardMagic[] = "FMSHARD1";
inline constexpr size_t kShardMagicSize = 8;
inline constexpr uint32_t kMaxRecordBytes = 256u << 20;
inline constexpr uint32_t kDatasetFormatVersion = 1;

// Appends records to a new shard file (written atomically). Not thread-safe.
class ShardWriter {
 public:
  explicit ShardWriter(const std::string& path);
  // Appends a record; returns its byte offset in the shard.
  uint64_t Append(const data::SampleRecord& record);
  void Commit() { file_.Commit(); }

 private:
  AtomicFile file_;
  std::string scratch_;
};

// Reads records from a shard, sequentially or at an offset. Every record's length and
// checksum are verified; a bad record throws kDataLoss naming the file, the record number
// (sequential reads) and the byte offset.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  // The next record in file order; false at a clean end of file.
  bool Next(data::SampleRecord* record, uint64_t* offset = nullptr);
  // The record at `offset` (from the index).
  void ReadAt(uint64_t offset, data::SampleRecord* record);
  const std::string& path() const { return path_; }

 private:
  // Reads one record at the current position; false at a clean end of file.
  bool ReadRecord(data::SampleRecord* record, const std::string& what);

  std::string path_;
  UniqueFile file_;
  uint64_t position_ = 0;
  uint64_t file_size_ = 0;
  int64_t record_number_ = 0;
  std::string payload_;
};

// A prepared dataset directory opened for reading: its metadata and (unless OpenMeta) its
// index are loaded and checked (format version, index checksum, array lengths); features
// stay on disk.
struct PreparedDataset {
  std::string dir;
  data::DatasetMeta meta;
  data::DatasetIndex index;  // empty after OpenMeta; without ids after OpenForServing

  // Metadata and the whole index.
  static PreparedDataset Open(const std::string& dir);
  // Metadata and the index without the sample ids (what planning and serving batches need:
  // about 24 bytes a sample), read in a stream.
  static PreparedDataset OpenForServing(const std::string& dir);
  // Metadata only (what a worker needs: the shapes, the classes and the split sizes).
  static PreparedDataset OpenMeta(const std::string& dir);
  std::string ShardPath(uint32_t shard) const;
  size_t size() const { return static_cast<size_t>(meta.num_samples()); }
  // Per modality, the number of features.
  std::vector<int> feature_sizes() const;
  // Samples in split s (0 training, 1 validation, 2 testing), from the metadata's summary.
  uint64_t split_size(uint32_t split) const;
};

// File names inside a prepared dataset directory.
inline constexpr char kMetaFile[] = "meta.textproto";
inline constexpr char kIndexFile[] = "index.pb";
inline constexpr char kSummaryFile[] = "summary.json";
inline constexpr char kSplitsFile[] = "splits.json";
std::string ShardFileName(uint32_t shard);

}  // namespace flexmoe
