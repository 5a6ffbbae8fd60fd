// The framing every flexmoe TCP protocol shares (the loader's and the coordinator's). A
// frame is a 20-byte header
//   [u32 magic][u16 version][u16 type][u32 body length][u32 meta length][u32 CRC32C]
// (little-endian) and a body: `meta length` bytes of the type's protobuf message, then raw
// bytes. The CRC covers the body. A reader checks the header, and refuses a body over its
// limit, before allocating anything for it. The magic, version and valid types are the
// protocol's (FrameProtocol).
#pragma once

#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace flexmoe::net {

inline constexpr size_t kFrameHeaderSize = 20;

struct FrameProtocol {
  std::string name;  // "loader", "coordinator": in messages
  uint32_t magic = 0;
  uint16_t version = 1;
  std::function<bool(uint16_t)> known_type;        // a valid, non-zero type
  std::function<std::string(uint16_t)> type_name;  // for messages
};

struct FrameHeader {
  uint16_t type = 0;
  uint32_t length = 0;       // body bytes
  uint32_t meta_length = 0;  // protobuf bytes at the start of the body
  uint32_t crc = 0;          // CRC32C of the body
};

// A whole frame: header, `meta` serialized, then `raw`.
std::string EncodeFrame(const FrameProtocol& protocol, uint16_t type,
                        const google::protobuf::MessageLite& meta, std::string_view raw = {});
// Fills the header of `frame` (kFrameHeaderSize reserved bytes, then the body).
void FinishFrame(const FrameProtocol& protocol, uint16_t type, size_t meta_length,
                 std::string* frame);

// Checks a received header. Throws kInvalidArgument naming the problem: bad magic, another
// protocol version, an unknown type, meta length over body length, or a frame (header
// included) over `max_frame_bytes`.
FrameHeader ParseFrameHeader(const FrameProtocol& protocol,
                             const uint8_t (&bytes)[kFrameHeaderSize], uint32_t max_frame_bytes);

// Checks the body's CRC and parses its protobuf part into `meta`; returns the raw part
// (a view into `body`). Throws kDataLoss (checksum) or kInvalidArgument (unparsable meta).
std::string_view ParseFrameBody(const FrameProtocol& protocol, const FrameHeader& header,
                                const std::string& body, google::protobuf::MessageLite* meta);

// Splits "HOST:PORT" (or "[V6HOST]:PORT"); throws kInvalidArgument naming `what` when the
// address is malformed.
void SplitHostPort(const std::string& address, const std::string& what, std::string* host,
                   std::string* port);

}  // namespace flexmoe::net
