// cluster/net ClientConnection against raw loopback sockets: frames arrive whole; a refused
// port and a silent peer are drops (the latter after the read deadline, unless the owner
// says silence is expected); an oversize header is refused before its body is read; and
// after a drop the owner's retry connects again. Every wait is for a condition, with a
// deadline (RunUntil), never a fixed window.
#include "cluster/net/client_connection.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "proto/coordinator.pb.h"

namespace flexmoe::net {
namespace {

FrameProtocol TestProtocol() {
  return {"test peer", 0x54534554, 1, [](uint16_t t) { return t == 1; },
          [](uint16_t t) { return "type " + std::to_string(t); }};
}

// A listening loopback socket; Accept() takes one connection.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { ::close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int Accept() { return ::accept(fd_, nullptr, nullptr); }
  // Wakes a thread blocked in Accept (which then returns -1), so that a failed wait can
  // join it instead of leaving it joinable.
  void Unblock() { ::shutdown(fd_, SHUT_RDWR); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct Seen {
  int connected = 0, frames = 0, lost = 0, failed = 0;
  int quiet_asked = 0;  // read deadlines that passed while the owner expected silence
  bool timeout = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string body, reason;
};

ClientConnectionEvents Record(Seen* seen, bool* quiet = nullptr) {
  ClientConnectionEvents events;
  events.connected = [seen] { ++seen->connected; };
  events.frame = [seen](const FrameHeader&, const std::string& body) {
    ++seen->frames;
    seen->body = body;
  };
  events.lost = [seen](const std::string& reason, bool timeout) {
    ++seen->lost;
    seen->reason = reason;
    seen->timeout = timeout;
  };
  events.failed = [seen](ErrorCode code, const std::string& message) {
    ++seen->failed;
    seen->code = code;
    seen->reason = message;
  };
  events.quiet = [seen, quiet] {
    const bool is_quiet = quiet != nullptr && *quiet;
    if (is_quiet) ++seen->quiet_asked;
    return is_quiet;
  };
  return events;
}

// Runs the handlers until `done` holds; false after 10 s (the test then fails).
bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  io.restart();
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Blocks until the peer closes `fd` (read returns 0 or an error), at most 10 s.
void AwaitClose(int fd) {
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char byte;
  while (::read(fd, &byte, 1) > 0) {
  }
}

TEST(ClientConnection, ReceivesWholeFramesAndConnectsAgainAfterADrop) {
  Listener listener;
  boost::asio::io_context io;
  Seen seen;
  ClientConnectionOptions options;
  options.address = listener.address();
  ClientConnection link(io, TestProtocol(), options, Record(&seen));
  link.Connect(5);
  std::thread peer([&] {
    const int fd = listener.Accept();
    coordinator::Stop meta;
    meta.set_reason("hello");
    const std::string frame = EncodeFrame(TestProtocol(), 1, meta, "raw");
    ASSERT_EQ(::write(fd, frame.data(), 7), 7);  // in two pieces
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(::write(fd, frame.data() + 7, frame.size() - 7),
              static_cast<ssize_t>(frame.size() - 7));
    ::close(fd);  // a drop
  });
  const bool peer_done = RunUntil(io, [&] { return seen.lost == 1; });
  if (!peer_done) listener.Unblock();
  peer.join();
  ASSERT_TRUE(peer_done);
  EXPECT_EQ(seen.connected, 1);
  ASSERT_EQ(seen.frames, 1);
  EXPECT_NE(seen.body.find("raw"), std::string::npos);
  EXPECT_EQ(seen.lost, 1);
  EXPECT_FALSE(seen.timeout);
  // The owner's retry, after the backoff.
  std::thread again([&] { ::close(listener.Accept()); });
  link.AfterBackoff(1, [&] { link.Connect(5); });
  const bool again_done = RunUntil(io, [&] { return seen.connected == 2; });
  if (!again_done) listener.Unblock();
  again.join();
  ASSERT_TRUE(again_done);
  EXPECT_EQ(seen.connected, 2);
  EXPECT_EQ(link.connections(), 2);
}

TEST(ClientConnection, RefusedPortIsADropAndSilenceCountsOnlyWhenFramesAreExpected) {
  boost::asio::io_context io;
  Seen refused;
  ClientConnectionOptions options;
  {
    Listener closed;
    options.address = closed.address();
  }  // nothing listens there now
  ClientConnection nowhere(io, TestProtocol(), options, Record(&refused));
  nowhere.Connect(5);
  ASSERT_TRUE(RunUntil(io, [&] { return refused.lost == 1; }));
  EXPECT_EQ(refused.lost, 1);
  EXPECT_FALSE(refused.timeout);

  Listener listener;
  options.address = listener.address();
  options.read_timeout_s = 0.2;
  bool quiet = true;
  Seen silent;
  ClientConnection link(io, TestProtocol(), options, Record(&silent, &quiet));
  link.Connect(5);
  int fd = -1;
  std::thread peer([&] { fd = listener.Accept(); });
  // Quiet: two read deadlines pass (the owner is asked each time) and nothing is dropped.
  const bool peer_done = RunUntil(io, [&] { return silent.quiet_asked >= 2 || silent.lost > 0; });
  if (!peer_done) listener.Unblock();
  peer.join();
  ASSERT_TRUE(peer_done);
  EXPECT_EQ(silent.connected, 1);
  EXPECT_EQ(silent.lost, 0);
  quiet = false;
  ASSERT_TRUE(RunUntil(io, [&] { return silent.lost == 1; }));
  EXPECT_TRUE(silent.timeout);
  EXPECT_NE(silent.reason.find("no data from the test peer"), std::string::npos) << silent.reason;
  ::close(fd);
}

TEST(ClientConnection, OversizeHeaderIsRefusedBeforeItsBody) {
  Listener listener;
  boost::asio::io_context io;
  Seen seen;
  ClientConnectionOptions options;
  options.address = listener.address();
  options.max_frame_bytes = 1024;
  ClientConnection link(io, TestProtocol(), options, Record(&seen));
  link.Connect(5);
  std::thread peer([&] {
    const int fd = listener.Accept();
    coordinator::Stop meta;
    std::string frame = EncodeFrame(TestProtocol(), 1, meta, std::string(4096, 'x'));
    ::write(fd, frame.data(), kFrameHeaderSize);  // the header only: 4 KiB announced
    AwaitClose(fd);  // the client refuses it and hangs up without waiting for the body
    ::close(fd);
  });
  const bool peer_done = RunUntil(io, [&] { return seen.failed == 1; });
  if (!peer_done) listener.Unblock();
  peer.join();
  ASSERT_TRUE(peer_done);
  EXPECT_EQ(seen.failed, 1);
  EXPECT_EQ(seen.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(seen.reason.find("sent a bad frame"), std::string::npos) << seen.reason;
  EXPECT_EQ(seen.frames, 0);
  EXPECT_FALSE(link.connected());
}

}  // namespace
}  // namespace flexmoe::net
