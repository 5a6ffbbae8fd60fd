// Encoding and checking loader frames (loader_wire.h).
#include "data_loader/loader_wire.h"

#include <cmath>
#include <cstring>

#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "loader frames carry floats as little-endian bytes; add byte swapping");

namespace flexmoe {

const net::FrameProtocol& LoaderProtocol() {
  static const net::FrameProtocol protocol{
      "loader", kLoaderMagic, kLoaderProtocolVersion,
      [](uint16_t type) { return loader::FrameType_IsValid(type); },
      [](uint16_t type) {
        return loader::FrameType_IsValid(type)
                   ? loader::FrameType_Name(static_cast<loader::FrameType>(type))
                   : std::to_string(type);
      }};
  return protocol;
}

std::string EncodeFrame(loader::FrameType type, const google::protobuf::MessageLite& meta,
                        std::string_view raw) {
  return net::EncodeFrame(LoaderProtocol(), static_cast<uint16_t>(type), meta, raw);
}

FrameHeader ParseFrameHeader(const uint8_t (&bytes)[kFrameHeaderSize], uint32_t max_frame_bytes) {
  const net::FrameHeader h = net::ParseFrameHeader(LoaderProtocol(), bytes, max_frame_bytes);
  return {static_cast<loader::FrameType>(h.type), h.length, h.meta_length, h.crc};
}

std::string_view ParseFrameBody(const FrameHeader& header, const std::string& body,
                                google::protobuf::MessageLite* meta) {
  const net::FrameHeader h{static_cast<uint16_t>(header.type), header.length, header.meta_length,
                           header.crc};
  return net::ParseFrameBody(LoaderProtocol(), h, body, meta);
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
  meta.mutable_global_label_weight()->Add(batch.global_label_weight.begin(),
                                          batch.global_label_weight.end());
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
  net::FinishFrame(LoaderProtocol(), loader::BATCH, meta_length, &frame);
  return frame;
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
  for (double w : meta.global_label_weight()) {
    if (!(w >= 0.0) || !std::isfinite(w)) {
      Fail(ErrorCode::kInvalidArgument, "BATCH frame of step ", meta.step(),
           ": global_label_weight holds ", w, ", expected a finite value >= 0");
    }
  }
  batch.global_label_weight.assign(meta.global_label_weight().begin(),
                                   meta.global_label_weight().end());
  return batch;
}

}  // namespace flexmoe
