// Shard record framing and the prepared-dataset directory reader (see shard.h).
#include "data_loader/shard.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/wire_format_lite.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

namespace flexmoe {
namespace {

void PutU32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint32_t GetU32(const unsigned char* in) {
  return uint32_t{in[0]} | (uint32_t{in[1]} << 8) | (uint32_t{in[2]} << 16) |
         (uint32_t{in[3]} << 24);
}

}  // namespace

std::string ShardFileName(uint32_t shard) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard-%05u.rec", shard);
  return name;
}

ShardWriter::ShardWriter(const std::string& path) : file_(path) {
  file_.Write(kShardMagic, kShardMagicSize);
}

uint64_t ShardWriter::Append(const data::SampleRecord& record) {
  uint64_t offset = file_.size();
  scratch_.clear();
  record.SerializeToString(&scratch_);
  char header[8];
  PutU32(header, static_cast<uint32_t>(scratch_.size()));
  PutU32(header + 4, Crc32c(scratch_.data(), scratch_.size()));
  file_.Write(header, sizeof(header));
  file_.Write(scratch_.data(), scratch_.size());
  return offset;
}

ShardReader::ShardReader(const std::string& path) : path_(path) {
  file_.reset(std::fopen(path.c_str(), "rb"));
  if (file_ == nullptr) Fail(ErrorCode::kNotFound, path, ": cannot open: ", std::strerror(errno));
  off_t end = -1;
  if (::fseeko(file_.get(), 0, SEEK_END) != 0 || (end = ::ftello(file_.get())) < 0 ||
      ::fseeko(file_.get(), 0, SEEK_SET) != 0) {
    Fail(ErrorCode::kDataLoss, path, ": cannot seek: ", std::strerror(errno));
  }
  file_size_ = static_cast<uint64_t>(end);
  char magic[kShardMagicSize];
  if (std::fread(magic, 1, kShardMagicSize, file_.get()) != kShardMagicSize ||
      std::memcmp(magic, kShardMagic, kShardMagicSize) != 0) {
    Fail(ErrorCode::kDataLoss, path, ": not a flexmoe shard (bad magic)");
  }
  position_ = kShardMagicSize;
}

ShardReader::~ShardReader() = default;

bool ShardReader::ReadRecord(data::SampleRecord* record, const std::string& what) {
  uint64_t start = position_;
  if (start == file_size_) return false;
  unsigned char header[8];
  if (file_size_ - start < sizeof(header) || std::fread(header, 1, 8, file_.get()) != 8) {
    Fail(ErrorCode::kDataLoss, path_, ": ", what, " at byte ", start, ": truncated record header");
  }
  uint32_t length = GetU32(header);
  uint32_t crc = GetU32(header + 4);
  if (length > kMaxRecordBytes) {
    Fail(ErrorCode::kDataLoss, path_, ": ", what, " at byte ", start, ": length ", length,
         " exceeds the limit of ", kMaxRecordBytes);
  }
  if (file_size_ - start - 8 < length) {
    Fail(ErrorCode::kDataLoss, path_, ": ", what, " at byte ", start, ": truncated (needs ", length,
         " bytes, ", file_size_ - start - 8, " left)");
  }
  payload_.resize(length);
  if (length > 0 && std::fread(payload_.data(), 1, length, file_.get()) != length) {
    Fail(ErrorCode::kDataLoss, path_, ": ", what, " at byte ", start, ": short read");
  }
  if (Crc32c(payload_.data(), length) != crc) {
    Fail(ErrorCode::kDataLoss, path_, ": ", what, " at byte ", start, ": checksum mismatch");
  }
  if (!record->ParseFromString(payload_)) {
    Fail(ErrorCode::kDataLoss, path_, ": ", what, " at byte ", start, ": unreadable record");
  }
  position_ = start + 8 + length;
  return true;
}

bool ShardReader::Next(data::SampleRecord* record, uint64_t* offset) {
  if (offset != nullptr) *offset = position_;
  bool more = ReadRecord(record, "record " + std::to_string(record_number_));
  if (more) ++record_number_;
  return more;
}

void ShardReader::ReadAt(uint64_t offset, data::SampleRecord* record) {
  if (offset < kShardMagicSize || offset >= file_size_) {
    Fail(ErrorCode::kDataLoss, path_, ": record offset ", offset, " outside the file");
  }
  if (::fseeko(file_.get(), static_cast<off_t>(offset), SEEK_SET) != 0) {
    Fail(ErrorCode::kDataLoss, path_, ": cannot seek to byte ", offset, ": ", std::strerror(errno));
  }
  position_ = offset;
  if (!ReadRecord(record, "record")) {
    Fail(ErrorCode::kDataLoss, path_, ": no record at byte ", offset);
  }
}

PreparedDataset PreparedDataset::OpenMeta(const std::string& dir) {
  PreparedDataset dataset;
  dataset.dir = dir;
  std::string meta_path = dir + "/" + kMetaFile;
  std::string meta_text = ReadFile(meta_path);
  if (!google::protobuf::TextFormat::ParseFromString(meta_text, &dataset.meta)) {
    Fail(ErrorCode::kDataLoss, meta_path, ": unreadable dataset metadata");
  }
  if (dataset.meta.format_version() != kDatasetFormatVersion) {
    Fail(ErrorCode::kDataLoss, meta_path, ": format version ", dataset.meta.format_version(),
         ", this build reads ", kDatasetFormatVersion, "; prepare the dataset again");
  }
  return dataset;
}

namespace {

// The index's CRC32C, read in 1 MB pieces.
uint32_t FileCrc32c(const std::string& path) {
  const UniqueFile file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) Fail(ErrorCode::kNotFound, path, ": cannot open: ", std::strerror(errno));
  std::vector<char> buffer(1 << 20);
  uint32_t crc = 0;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    crc = Crc32c(buffer.data(), n, crc);
  }
  if (std::ferror(file.get())) Fail(ErrorCode::kDataLoss, path, ": read error");
  return crc;
}

// Appends one varint value of index field `field` (packed or not) to `index`.
void AddIndexValue(data::DatasetIndex* index, int field, uint64_t v) {
  switch (field) {
    case 2:
      index->add_split(static_cast<uint32_t>(v));
      break;
    case 3:
      index->add_combination(static_cast<uint32_t>(v));
      break;
    case 4:
      index->add_label(static_cast<int32_t>(v));
      break;
    case 5:
      index->add_shard(static_cast<uint32_t>(v));
      break;
    case 6:
      index->add_offset(v);
      break;
    default:
      break;
  }
}

// The index without its ids: the file is streamed field by field, the ids skipped, so that
// no copy of them is ever held.
bool ParseIndexWithoutIds(const std::string& path, int samples, data::DatasetIndex* index) {
  // Exactly the capacity the metadata says: growing by doubling would hold up to twice it.
  index->mutable_split()->Reserve(samples);
  index->mutable_combination()->Reserve(samples);
  index->mutable_label()->Reserve(samples);
  index->mutable_shard()->Reserve(samples);
  index->mutable_offset()->Reserve(samples);
  namespace io = google::protobuf::io;
  using google::protobuf::internal::WireFormatLite;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) Fail(ErrorCode::kNotFound, path, ": cannot open: ", std::strerror(errno));
  io::FileInputStream file(fd, 1 << 20);
  file.SetCloseOnDelete(true);
  io::CodedInputStream in(&file);
  in.SetTotalBytesLimit(std::numeric_limits<int>::max());
  while (const uint32_t tag = in.ReadTag()) {
    const int field = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    const auto type = WireFormatLite::GetTagWireType(tag);
    uint64_t v;
    if (field >= 2 && field <= 6 && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&v)) return false;
      AddIndexValue(index, field, v);
    } else if (field >= 2 && field <= 6 && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t length;
      if (!in.ReadVarint32(&length)) return false;
      const auto limit = in.PushLimit(static_cast<int>(length));
      while (in.BytesUntilLimit() > 0) {
        if (!in.ReadVarint64(&v)) return false;
        AddIndexValue(index, field, v);
      }
      in.PopLimit(limit);
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

PreparedDataset OpenWithIndex(const std::string& dir, bool ids) {
  PreparedDataset dataset = PreparedDataset::OpenMeta(dir);
  std::string index_path = dir + "/" + kIndexFile;
  if (FileCrc32c(index_path) != dataset.meta.index_crc32c()) {
    Fail(ErrorCode::kDataLoss, index_path, ": checksum mismatch with ", kMetaFile);
  }
  const bool parsed =
      ids ? dataset.index.ParseFromString(ReadFile(index_path))
          : ParseIndexWithoutIds(index_path, static_cast<int>(dataset.meta.num_samples()),
                                 &dataset.index);
  if (!parsed) Fail(ErrorCode::kDataLoss, index_path, ": unreadable index");
  const auto& index = dataset.index;
  const int n = static_cast<int>(dataset.meta.num_samples());
  if ((ids && index.id_size() != n) || index.split_size() != n || index.combination_size() != n ||
      index.label_size() != n || index.shard_size() != n || index.offset_size() != n) {
    Fail(ErrorCode::kDataLoss, index_path, ": index arrays disagree in length");
  }
  return dataset;
}

}  // namespace

PreparedDataset PreparedDataset::Open(const std::string& dir) { return OpenWithIndex(dir, true); }

PreparedDataset PreparedDataset::OpenForServing(const std::string& dir) {
  return OpenWithIndex(dir, false);
}

std::vector<int> PreparedDataset::feature_sizes() const {
  std::vector<int> sizes;
  for (const auto& modality : meta.modalities()) sizes.push_back(modality.feature_names_size());
  return sizes;
}

uint64_t PreparedDataset::split_size(uint32_t split) const {
  const auto& splits = meta.summary().splits();
  return split < static_cast<uint32_t>(splits.size()) ? splits[split].samples() : 0;
}

std::string PreparedDataset::ShardPath(uint32_t shard) const {
  if (shard >= static_cast<uint32_t>(meta.shard_files_size())) {
    Fail(ErrorCode::kDataLoss, dir, ": index names shard ", shard, " of ", meta.shard_files_size());
  }
  return dir + "/" + meta.shard_files(shard);
}

}  // namespace flexmoe
