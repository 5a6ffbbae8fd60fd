// Channel: one blocking framed TCP connection with a deadline on every call, for a member's
// control thread (the coordinator client). Received bytes are buffered, so a Receive that
// times out part-way through a frame loses nothing. Frames over max_frame_bytes are refused
// from their header, before anything is allocated for the body.
//
// Threading: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cluster/net/frame.h"

namespace flexmoe::net {

class Channel {
 public:
  Channel(FrameProtocol protocol, uint32_t max_frame_bytes);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Connects, retrying refused attempts until `timeout_s`: kUnavailable (or
  // kDeadlineExceeded) naming the address when it cannot.
  void Connect(const std::string& address, double timeout_s);
  // Writes a whole frame: kUnavailable when the peer is gone, kDeadlineExceeded at timeout.
  void Send(const std::string& frame, double timeout_s);
  // Waits up to `timeout_s` for the next frame: false at timeout; kUnavailable when the
  // peer closed; kInvalidArgument / kDataLoss for a bad frame.
  bool Receive(FrameHeader* header, std::string* body, double timeout_s);
  void Close();
  const std::string& address() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe::net
