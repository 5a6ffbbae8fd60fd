// Channel on Boost.Asio (channel.h): async operations run on a private io_context for at
// most each call's deadline.
#include "cluster/net/channel.h"

#include <boost/asio.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/net/asio_names.h"

namespace flexmoe::net {

class Channel::Impl {
 public:
  Impl(FrameProtocol protocol, uint32_t max_frame_bytes)
      : protocol_(std::move(protocol)), max_frame_bytes_(max_frame_bytes), socket_(io_) {}

  // Runs the io_context until `done` or the deadline; cancels what is pending at the
  // deadline and lets its handlers finish. False at the deadline.
  bool RunUntil(const bool& done, Clock::time_point deadline) {
    io_.restart();
    while (!done && Clock::now() < deadline) io_.run_one_until(deadline);
    if (done) return true;
    error_code ignored;
    socket_.cancel(ignored);
    io_.restart();
    while (io_.poll() > 0) {
    }
    return false;  // the cancelled operation's handler has run (operation_aborted)
  }

  void Connect(const std::string& address, double timeout_s) {
    address_ = address;
    std::string host, port;
    SplitHostPort(address, protocol_.name + " address", &host, &port);
    const auto deadline = Clock::now() + Seconds(timeout_s);
    std::string last = "no attempt";
    while (Clock::now() < deadline) {
      error_code ec;
      tcp::resolver resolver(io_);
      auto endpoints = resolver.resolve(host, port, ec);
      if (ec) Fail(ErrorCode::kUnavailable, protocol_.name, " ", address, ": ", ec.message());
      bool done = false;
      error_code result;
      socket_ = tcp::socket(io_);
      asio::async_connect(socket_, endpoints, [&](error_code e, const tcp::endpoint&) {
        result = e;
        done = true;
      });
      if (!RunUntil(done, deadline)) break;
      if (!result) {
        socket_.set_option(tcp::no_delay(true), ec);
        return;
      }
      last = result.message();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Fail(ErrorCode::kUnavailable, protocol_.name, " ", address, " unreachable for ", timeout_s,
         " s (", last, ")");
  }

  void Send(const std::string& frame, double timeout_s) {
    bool done = false;
    error_code result;
    asio::async_write(socket_, asio::buffer(frame), [&](error_code e, size_t) {
      result = e;
      done = true;
    });
    if (!RunUntil(done, Clock::now() + Seconds(timeout_s))) {
      Fail(ErrorCode::kDeadlineExceeded, protocol_.name, " ", address_, ": a frame not taken in ",
           timeout_s, " s");
    }
    if (result)
      Fail(ErrorCode::kUnavailable, protocol_.name, " ", address_, ": ", result.message());
  }

  // A whole frame from the buffer, if it holds one (the header checked first).
  bool TakeFrame(FrameHeader* header, std::string* body) {
    if (buffer_.size() < kFrameHeaderSize) return false;
    uint8_t bytes[kFrameHeaderSize];
    std::memcpy(bytes, buffer_.data(), kFrameHeaderSize);
    const FrameHeader h = ParseFrameHeader(protocol_, bytes, max_frame_bytes_);
    if (buffer_.size() < kFrameHeaderSize + h.length) return false;
    *header = h;
    body->assign(buffer_, kFrameHeaderSize, h.length);
    buffer_.erase(0, kFrameHeaderSize + h.length);
    return true;
  }

  bool Receive(FrameHeader* header, std::string* body, double timeout_s) {
    const auto deadline = Clock::now() + Seconds(timeout_s);
    char chunk[4096];
    while (!TakeFrame(header, body)) {
      bool done = false;
      error_code result;
      size_t got = 0;
      socket_.async_read_some(asio::buffer(chunk), [&](error_code e, size_t n) {
        result = e;
        got = n;
        done = true;
      });
      const bool finished = RunUntil(done, deadline);
      buffer_.append(chunk, got);  // what arrived before a cancel is kept
      if (!finished) return TakeFrame(header, body);
      if (result) {
        Fail(ErrorCode::kUnavailable, protocol_.name, " ", address_, ": ",
             result == asio::error::eof ? std::string("connection closed") : result.message());
      }
    }
    return true;
  }

  void Close() {
    error_code ignored;
    socket_.close(ignored);
  }

  FrameProtocol protocol_;
  uint32_t max_frame_bytes_;
  asio::io_context io_;
  tcp::socket socket_;
  std::string address_;
  std::string buffer_;
};

Channel::Channel(FrameProtocol protocol, uint32_t max_frame_bytes)
    : impl_(std::make_unique<Impl>(std::move(protocol), max_frame_bytes)) {}
Channel::~Channel() = default;
void Channel::Connect(const std::string& address, double timeout_s) {
  impl_->Connect(address, timeout_s);
}
void Channel::Send(const std::string& frame, double timeout_s) { impl_->Send(frame, timeout_s); }
bool Channel::Receive(FrameHeader* header, std::string* body, double timeout_s) {
  return impl_->Receive(header, body, timeout_s);
}
void Channel::Close() { impl_->Close(); }
const std::string& Channel::address() const { return impl_->address_; }

}  // namespace flexmoe::net
