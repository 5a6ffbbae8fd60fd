// ClientConnection: the client side of a framed TCP connection that comes back after it
// drops, on an io_context its owner runs (the loader client's). Each attempt resolves and
// connects within a deadline; attempts after a drop wait an exponential backoff; a write
// that the peer does not take within write_timeout_s, and silence of read_timeout_s while
// the owner expects frames, count as a drop; a frame over max_frame_bytes is refused from
// its header, before anything is allocated. Whether and when to try again is the owner's
// call (in `lost`): ClientConnection keeps no budget of its own.
//
// Threading: every method and every event on the io_context's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cluster/base/error.h"
#include "cluster/net/frame.h"

namespace boost::asio {
class io_context;
}

namespace flexmoe::net {

struct ClientConnectionOptions {
  std::string address;  // HOST:PORT
  uint32_t max_frame_bytes = 1u << 20;
  double max_attempt_s = 2.0;  // one resolve + connect
  double first_backoff_s = 0.05, max_backoff_s = 0.5;
  double read_timeout_s = 30, write_timeout_s = 30;
};

struct ClientConnectionEvents {
  std::function<void()> connected;  // send the hello here
  // A whole frame; a flexmoe::Error thrown here ends the connection through `failed`.
  std::function<void(const FrameHeader& header, const std::string& body)> frame;
  // The connection dropped (or an attempt failed): `timeout` when a deadline passed.
  std::function<void(const std::string& reason, bool timeout)> lost;
  // A bad frame, or an error of the frame handler: the connection is closed for good.
  std::function<void(ErrorCode code, const std::string& message)> failed;
  // Whether silence is expected now (the read deadline then waits another period).
  std::function<bool()> quiet;
};

class ClientConnection {
 public:
  // kInvalidArgument for a malformed address.
  ClientConnection(boost::asio::io_context& io, FrameProtocol protocol,
                   ClientConnectionOptions options, ClientConnectionEvents events);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // One attempt now, within min(max_attempt_s, budget_s).
  void Connect(double budget_s);
  // Runs `then` (on the io thread) after the backoff, doubled each time up to
  // max_backoff_s and at most max_wait_s; `then` usually calls Connect (or gives up).
  void AfterBackoff(double max_wait_s, std::function<void()> then);
  // After a successful exchange: the next drop retries at first_backoff_s again.
  void ResetBackoff();
  // Queues a whole frame (dropped when not connected).
  void Send(std::string frame);
  // Closes without events; a later Connect starts afresh.
  void Close();
  bool connected() const;
  // Connections made so far (attempts that succeeded).
  int64_t connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe::net
