// Frames of the data-loader protocol (proto/loader.proto) in the shared framing of
// cluster/net/frame.h, magic "FMDL": a 20-byte header and a body of the type's protobuf
// message, then raw bytes (BATCH: the features, packed little-endian float32, modality by
// modality). These wrappers give the header the loader's FrameType.
#pragma once

#include <google/protobuf/message_lite.h>

#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/net/frame.h"
#include "data_loader/decoded_dataset.h"
#include "proto/loader.pb.h"

namespace flexmoe {

// "2", "0.5": seconds for messages.
inline std::string FormatSeconds(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

// Seconds as a steady_clock duration, for deadlines.
inline std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

inline constexpr uint32_t kLoaderMagic = 0x4C444D46;  // bytes "FMDL"
inline constexpr uint16_t kLoaderProtocolVersion = 1;
using net::kFrameHeaderSize;

// The loader's magic, version and frame types for the shared codec.
const net::FrameProtocol& LoaderProtocol();

struct FrameHeader {
  loader::FrameType type = loader::FRAME_UNKNOWN;
  uint32_t length = 0;       // body bytes
  uint32_t meta_length = 0;  // protobuf bytes at the start of the body
  uint32_t crc = 0;          // CRC32C of the body
};

// A whole frame: header, `meta` serialized, then `raw`.
std::string EncodeFrame(loader::FrameType type, const google::protobuf::MessageLite& meta,
                        std::string_view raw = {});

// Checks a received header. Throws kInvalidArgument naming the problem: bad magic, another
// protocol version, an unknown type, meta length over body length, or a body over
// `max_frame_bytes` (whole frame, header included).
FrameHeader ParseFrameHeader(const uint8_t (&bytes)[kFrameHeaderSize], uint32_t max_frame_bytes);

// Checks the body's CRC and parses its protobuf part into `meta`; returns the raw part
// (a view into `body`). Throws kDataLoss (checksum) or kInvalidArgument (unparsable meta).
std::string_view ParseFrameBody(const FrameHeader& header, const std::string& body,
                                google::protobuf::MessageLite* meta);

// A BATCH frame for one step of a stream.
std::string EncodeBatchFrame(uint64_t stream_id, int64_t step, const DecodedBatch& batch);

using net::SplitHostPort;

// The batch of a BATCH frame. Throws kInvalidArgument when the arrays or the raw bytes do
// not match `size` and `feature_sizes`.
DecodedBatch DecodeBatch(const loader::BatchMeta& meta, std::string_view raw,
                         const std::vector<int>& feature_sizes);

}  // namespace flexmoe
