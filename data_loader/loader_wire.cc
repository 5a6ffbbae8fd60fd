// Encoding and checking loader frames (loader_wire.h).
#include "data_loader/loader_wire.h"

#include <cstring>

#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "loader frames carry floats as little-endian bytes; add byte swapping");

namespace flexmoe {
namespace {

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint16_t GetU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t GetU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// Fills the header of `frame` (whose body follows the header) after the body is written.
void FinishHeader(loader::FrameType type, size_t meta_length, std::string* frame) {
  auto* p = reinterpret_cast<uint8_t*>(frame->data());
  const size_t body = frame->size() - kFrameHeaderSize;
  PutU32(p, kLoaderMagic);
  PutU16(p + 4, kLoaderProtocolVersion);
  PutU16(p + 6, static_cast<uint16_t>(type));
  PutU32(p + 8, static_cast<uint32_t>(body));
  PutU32(p + 12, static_cast<uint32_t>(meta_length));
  PutU32(p + 16, Crc32c(p + kFrameHeaderSize, body));
}

}  // namespace

std::string EncodeFrame(loader::FrameType type, const google::protobuf::MessageLite& meta,
                        std::string_view raw) {
  const size_t meta_length = meta.ByteSizeLong();
  std::string frame(kFrameHeaderSize + meta_length + raw.size(), '\0');
  meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(&frame[kFrameHeaderSize]));
  if (!raw.empty()) std::memcpy(&frame[kFrameHeaderSize + meta_length], raw.data(), raw.size());
  FinishHeader(type, meta_length, &frame);
  return frame;
}

FrameHeader ParseFrameHeader(const uint8_t (&bytes)[kFrameHeaderSize], uint32_t max_frame_bytes) {
  if (GetU32(bytes) != kLoaderMagic) {
    Fail(ErrorCode::kInvalidArgument, "frame: bad magic 0x", std::hex, GetU32(bytes),
         " (not a flexmoe loader frame)");
  }
  const uint16_t version = GetU16(bytes + 4);
  if (version != kLoaderProtocolVersion) {
    Fail(ErrorCode::kInvalidArgument, "frame: protocol version ", version, ", expected ",
         kLoaderProtocolVersion);
  }
  FrameHeader header;
  const uint16_t type = GetU16(bytes + 6);
  if (type == loader::FRAME_UNKNOWN || !loader::FrameType_IsValid(type)) {
    Fail(ErrorCode::kInvalidArgument, "frame: unknown type ", type);
  }
  header.type = static_cast<loader::FrameType>(type);
  header.length = GetU32(bytes + 8);
  header.meta_length = GetU32(bytes + 12);
  header.crc = GetU32(bytes + 16);
  if (static_cast<uint64_t>(header.length) + kFrameHeaderSize > max_frame_bytes) {
    Fail(ErrorCode::kInvalidArgument, "frame: ", header.length, " body bytes exceed the limit of ",
         max_frame_bytes, " bytes per frame (cluster.max_frame_bytes)");
  }
  if (header.meta_length > header.length) {
    Fail(ErrorCode::kInvalidArgument, "frame: meta length ", header.meta_length,
         " exceeds body length ", header.length);
  }
  return header;
}

std::string_view ParseFrameBody(const FrameHeader& header, const std::string& body,
                                google::protobuf::MessageLite* meta) {
  if (body.size() != header.length) {
    Fail(ErrorCode::kInvalidArgument, "frame: body of ", body.size(), " bytes, header says ",
         header.length);
  }
  const uint32_t crc = Crc32c(body.data(), body.size());
  if (crc != header.crc) {
    Fail(ErrorCode::kDataLoss, "frame: checksum mismatch (type ",
         loader::FrameType_Name(header.type), ", ", body.size(), " bytes)");
  }
  if (!meta->ParseFromArray(body.data(), static_cast<int>(header.meta_length))) {
    Fail(ErrorCode::kInvalidArgument, "frame: unparsable ", loader::FrameType_Name(header.type),
         " message");
  }
  return std::string_view(body).substr(header.meta_length);
}

std::string EncodeBatchFrame(uint64_t stream_id, int64_t step, const DecodedBatch& batch) {
  loader::BatchMeta meta;
  meta.set_stream_id(stream_id);
  meta.set_step(step);
  meta.set_size(batch.size);
  meta.set_observed(std::string(batch.observed.begin(), batch.observed.end()));
  meta.mutable_combination()->Add(batch.combination.begin(), batch.combination.end());
  meta.mutable_label()->Add(batch.label.begin(), batch.label.end());
  meta.mutable_sample()->Add(batch.sample.begin(), batch.sample.end());
  meta.mutable_weight()->Add(batch.weight.begin(), batch.weight.end());
  size_t raw = 0;
  for (const auto& f : batch.features) raw += f.size() * sizeof(float);
  const size_t meta_length = meta.ByteSizeLong();
  std::string frame(kFrameHeaderSize + meta_length + raw, '\0');
  meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(&frame[kFrameHeaderSize]));
  size_t at = kFrameHeaderSize + meta_length;
  for (const auto& f : batch.features) {
    if (f.empty()) continue;
    std::memcpy(&frame[at], f.data(), f.size() * sizeof(float));
    at += f.size() * sizeof(float);
  }
  FinishHeader(loader::BATCH, meta_length, &frame);
  return frame;
}

void SplitHostPort(const std::string& address, const std::string& what, std::string* host,
                   std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    Fail(ErrorCode::kInvalidArgument, what, ": '", address, "' is not HOST:PORT");
  }
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (port->find_first_not_of("0123456789") != std::string::npos || port->size() > 5 ||
      std::stoi(*port) > 65535) {
    Fail(ErrorCode::kInvalidArgument, what, ": '", address, "' has no valid port");
  }
}

DecodedBatch DecodeBatch(const loader::BatchMeta& meta, std::string_view raw,
                         const std::vector<int>& feature_sizes) {
  const int size = meta.size();
  const size_t m_count = feature_sizes.size();
  if (size < 0 || meta.combination_size() != size || meta.label_size() != size ||
      meta.sample_size() != size || (meta.weight_size() != 0 && meta.weight_size() != size) ||
      meta.observed().size() != static_cast<size_t>(size) * m_count) {
    Fail(ErrorCode::kInvalidArgument, "BATCH frame of step ", meta.step(),
         ": arrays do not match its size ", size);
  }
  size_t expected = 0;
  for (int f : feature_sizes) expected += static_cast<size_t>(size) * f * sizeof(float);
  if (raw.size() != expected) {
    Fail(ErrorCode::kInvalidArgument, "BATCH frame of step ", meta.step(), ": ", raw.size(),
         " feature bytes, expected ", expected);
  }
  DecodedBatch batch;
  batch.size = size;
  batch.features.resize(m_count);
  size_t at = 0;
  for (size_t m = 0; m < m_count; ++m) {
    batch.features[m].resize(static_cast<size_t>(size) * feature_sizes[m]);
    const size_t bytes = batch.features[m].size() * sizeof(float);
    if (bytes > 0) std::memcpy(batch.features[m].data(), raw.data() + at, bytes);
    at += bytes;
  }
  batch.observed.assign(meta.observed().begin(), meta.observed().end());
  batch.combination.assign(meta.combination().begin(), meta.combination().end());
  batch.label.assign(meta.label().begin(), meta.label().end());
  batch.sample.assign(meta.sample().begin(), meta.sample().end());
  batch.weight.assign(meta.weight().begin(), meta.weight().end());
  return batch;
}

}  // namespace flexmoe
