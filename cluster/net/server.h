// FramedServer: a TCP server on Boost.Asio for one frame protocol (frame.h), shared by the
// loader and the coordinator. It owns what every listener must get right:
//   - it binds to `listen` (loopback by default) and refuses connections over
//     max_connections at once;
//   - the first frame of a connection must be the protocol's hello, arrive within
//     handshake_timeout_s and carry the job token; anything else closes that connection
//     only (with an error reply when the protocol has one), logging why;
//   - every header is checked and a frame over max_frame_bytes refused before its body is
//     allocated; a bad checksum or an unparsable message closes the connection;
//   - a connection that sends nothing for idle_timeout_s, or does not take a written frame
//     within write_timeout_s, is closed.
// After the token check each connection gets a Session from the factory; the session sees
// every frame (the hello included), replies through its Connection, and may ask to be
// told when a frame it sent has been written (flow control).
//
// Threading: one io_context, run by the thread that calls Run(); sessions, connections and
// Every() callbacks run on it. Stop(), Post(), stats() and address() are safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cluster/base/error.h"
#include "cluster/net/frame.h"

namespace flexmoe::net {

// The parts of a protocol the server needs besides its framing.
struct ServerProtocol {
  FrameProtocol frame;
  uint16_t hello_type = 0;
  // The token of a hello frame's body (throws flexmoe::Error when it does not parse).
  std::function<std::string(const FrameHeader&, const std::string& body)> hello_token;
  // An error reply frame, or "" when the protocol has none.
  std::function<std::string(ErrorCode, const std::string& message)> error_frame;
};

struct ServerOptions {
  std::string listen = "127.0.0.1:0";    // HOST:PORT; port 0 picks a free port
  std::string token;                     // the job token; required
  uint32_t max_frame_bytes = 64u << 10;  // for frames from peers
  double handshake_timeout_s = 10;
  double write_timeout_s = 30;
  double idle_timeout_s = 600;
  int max_connections = 512;
  bool stop_on_signals = false;  // SIGINT and SIGTERM stop Run()
};

struct ServerStats {
  int64_t connections_accepted = 0;
  int64_t connections_open = 0;
  int64_t connections_refused = 0;  // a protocol error, a bad token, a limit or a timeout
  uint64_t bytes_sent = 0;
  uint64_t queued_bytes = 0;       // frames built but not yet written, all connections
  uint64_t peak_queued_bytes = 0;  // the maximum of queued_bytes so far
};

// A peer's connection, as its session sees it (io thread only).
class Connection {
 public:
  virtual ~Connection() = default;
  // Queues a frame; with notify, the session's OnWritten runs once it is written.
  virtual void Send(std::string frame, bool notify = false) = 0;
  // Sends the protocol's error reply, then closes once it is written.
  virtual void Refuse(ErrorCode code, const std::string& why) = 0;
  virtual void Close(const std::string& why) = 0;
  // "127.0.0.1:40312 (worker 3)": the peer's address and the name the session gave it.
  virtual std::string Name() const = 0;
  virtual void SetPeerName(const std::string& name) = 0;
};

class Session {
 public:
  virtual ~Session() = default;
  // A frame from the peer, the hello first. Throwing flexmoe::Error refuses the connection.
  virtual void OnFrame(Connection& connection, const FrameHeader& header,
                       const std::string& body) = 0;
  // A frame sent with notify has been written.
  virtual void OnWritten(Connection& connection) {}
  // The connection closed (by the peer, a timeout, a refusal or Stop).
  virtual void OnClose(const std::string& why) {}
};

class FramedServer {
 public:
  using SessionFactory = std::function<std::unique_ptr<Session>(Connection&)>;

  // Binds and listens: kUnavailable naming the address when it cannot, kInvalidArgument for
  // a malformed address or an empty token.
  FramedServer(ServerProtocol protocol, ServerOptions options, SessionFactory sessions);
  // Call after Run() has returned.
  ~FramedServer();
  FramedServer(const FramedServer&) = delete;
  FramedServer& operator=(const FramedServer&) = delete;

  std::string address() const;  // the bound "HOST:PORT"
  void Run();                   // serves on the calling thread until Stop()
  void Stop();                  // closes the listener and every connection
  // Runs `task` on the io thread.
  void Post(std::function<void()> task);
  // Runs `task` on the io thread every `seconds` until Stop().
  void Every(double seconds, std::function<void()> task);
  // Runs `task` once on the io thread after `seconds` (unless stopped before).
  void After(double seconds, std::function<void()> task);
  // Closes every connection (io thread or not).
  void DropConnections(const std::string& why);
  // Takes up to `n` connections at once from now on (io thread only; ServerOptions'
  // max_connections until then).
  void SetMaxConnections(int n);
  ServerStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe::net
