// Encoding and checking frames (frame.h).
#include "cluster/net/frame.h"

#include <cstring>

#include "cluster/base/crc32c.h"
#include "cluster/base/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "frames carry numbers as little-endian bytes; add byte swapping");

namespace flexmoe::net {
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

}  // namespace

void FinishFrame(const FrameProtocol& protocol, uint16_t type, size_t meta_length,
                 std::string* frame) {
  auto* p = reinterpret_cast<uint8_t*>(frame->data());
  const size_t body = frame->size() - kFrameHeaderSize;
  PutU32(p, protocol.magic);
  PutU16(p + 4, protocol.version);
  PutU16(p + 6, type);
  PutU32(p + 8, static_cast<uint32_t>(body));
  PutU32(p + 12, static_cast<uint32_t>(meta_length));
  PutU32(p + 16, Crc32c(p + kFrameHeaderSize, body));
}

std::string EncodeFrame(const FrameProtocol& protocol, uint16_t type,
                        const google::protobuf::MessageLite& meta, std::string_view raw) {
  const size_t meta_length = meta.ByteSizeLong();
  std::string frame(kFrameHeaderSize + meta_length + raw.size(), '\0');
  meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(&frame[kFrameHeaderSize]));
  if (!raw.empty()) std::memcpy(&frame[kFrameHeaderSize + meta_length], raw.data(), raw.size());
  FinishFrame(protocol, type, meta_length, &frame);
  return frame;
}

FrameHeader ParseFrameHeader(const FrameProtocol& protocol,
                             const uint8_t (&bytes)[kFrameHeaderSize], uint32_t max_frame_bytes) {
  if (GetU32(bytes) != protocol.magic) {
    Fail(ErrorCode::kInvalidArgument, "frame: bad magic 0x", std::hex, GetU32(bytes),
         " (not a flexmoe ", protocol.name, " frame)");
  }
  const uint16_t version = GetU16(bytes + 4);
  if (version != protocol.version) {
    Fail(ErrorCode::kInvalidArgument, "frame: ", protocol.name, " protocol version ", version,
         ", expected ", protocol.version);
  }
  FrameHeader header;
  header.type = GetU16(bytes + 6);
  if (header.type == 0 || !protocol.known_type(header.type)) {
    Fail(ErrorCode::kInvalidArgument, "frame: unknown type ", header.type, " (not a ",
         protocol.name, " frame type)");
  }
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

std::string_view ParseFrameBody(const FrameProtocol& protocol, const FrameHeader& header,
                                const std::string& body, google::protobuf::MessageLite* meta) {
  if (body.size() != header.length) {
    Fail(ErrorCode::kInvalidArgument, "frame: body of ", body.size(), " bytes, header says ",
         header.length);
  }
  const uint32_t crc = Crc32c(body.data(), body.size());
  if (crc != header.crc) {
    Fail(ErrorCode::kDataLoss, "frame: checksum mismatch (type ", protocol.type_name(header.type),
         ", ", body.size(), " bytes)");
  }
  if (!meta->ParseFromArray(body.data(), static_cast<int>(header.meta_length))) {
    Fail(ErrorCode::kInvalidArgument, "frame: unparsable ", protocol.type_name(header.type),
         " message");
  }
  return std::string_view(body).substr(header.meta_length);
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

}  // namespace flexmoe::net
