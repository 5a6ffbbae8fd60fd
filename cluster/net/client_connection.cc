// The reconnecting framed client connection (client_connection.h).
#include "cluster/net/client_connection.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>

#include "cluster/net/asio_names.h"

namespace flexmoe::net {
namespace {

std::string FormatSeconds(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", s);
  return buffer;
}

}  // namespace

class ClientConnection::Impl {
 public:
  Impl(asio::io_context& io, FrameProtocol protocol, ClientConnectionOptions options,
       ClientConnectionEvents events)
      : protocol_(std::move(protocol)),
        options_(std::move(options)),
        events_(std::move(events)),
        io_(io),
        resolver_(io),
        attempt_timer_(io),
        retry_timer_(io),
        read_timer_(io),
        write_timer_(io),
        backoff_s_(options_.first_backoff_s) {
    SplitHostPort(options_.address, protocol_.name + " address", &host_, &port_);
  }

  // One TCP connection; handlers hold it alive and ignore it once it is not conn_.
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    uint8_t header[kFrameHeaderSize] = {};
    std::string body;
    std::deque<std::string> out;
    bool writing = false;
    bool open = false;  // connected, not yet lost
  };

  void Connect(double budget_s) {
    Close();
    auto conn = std::make_shared<Conn>(io_);
    conn_ = conn;
    attempt_timer_.expires_after(Seconds(std::min(options_.max_attempt_s, budget_s)));
    attempt_timer_.async_wait([this, conn](error_code ec) {
      if (ec || conn != conn_ || conn->open || attempt_timer_.expiry() > Clock::now()) return;
      resolver_.cancel();
      Lost(conn, "connect attempt timed out", true);
    });
    resolver_.async_resolve(
        host_, port_, [this, conn](error_code ec, tcp::resolver::results_type results) {
          if (conn != conn_) return;
          if (ec) return Lost(conn, "cannot resolve " + host_ + ": " + ec.message(), false);
          asio::async_connect(conn->socket, results,
                              [this, conn](error_code ec, const tcp::endpoint&) {
                                if (conn != conn_) return;
                                attempt_timer_.cancel();
                                if (ec) return Lost(conn, ec.message(), false);
                                conn->open = true;
                                ++connections_;
                                error_code ignored;
                                conn->socket.set_option(tcp::no_delay(true), ignored);
                                events_.connected();
                                if (conn == conn_) ReadHeader(conn);
                              });
        });
  }

  void AfterBackoff(double max_wait_s, std::function<void()> then) {
    Close();
    const double wait = std::max(0.0, std::min(backoff_s_, max_wait_s));
    backoff_s_ = std::min(backoff_s_ * 2, options_.max_backoff_s);
    retry_timer_.expires_after(Seconds(wait));
    retry_timer_.async_wait([then = std::move(then)](error_code ec) {
      if (!ec) then();
    });
  }

  void Send(std::string frame) {
    if (!conn_ || !conn_->open) return;
    conn_->out.push_back(std::move(frame));
    if (!conn_->writing) WriteNext(conn_);
  }

  void Close() {
    if (conn_) {
      error_code ignored;
      conn_->socket.close(ignored);
      conn_.reset();
    }
    resolver_.cancel();
    attempt_timer_.cancel();
    retry_timer_.cancel();
    read_timer_.cancel();
    write_timer_.cancel();
  }

  void Lost(const std::shared_ptr<Conn>& conn, const std::string& reason, bool timeout) {
    if (conn != conn_) return;
    Close();
    events_.lost(reason, timeout);
  }

  void Failed(const std::shared_ptr<Conn>& conn, ErrorCode code, const std::string& message) {
    if (conn != conn_) return;
    Close();
    events_.failed(code, message);
  }

  void WriteNext(const std::shared_ptr<Conn>& conn) {
    conn->writing = true;
    write_timer_.expires_after(Seconds(options_.write_timeout_s));
    write_timer_.async_wait([this, conn](error_code ec) {
      if (ec || conn != conn_ || write_timer_.expiry() > Clock::now()) return;
      Lost(conn,
           "the " + protocol_.name + " took no data for " +
               FormatSeconds(options_.write_timeout_s) + " s",
           true);
    });
    asio::async_write(conn->socket, asio::buffer(conn->out.front()),
                      [this, conn](error_code ec, size_t) {
                        conn->out.pop_front();
                        conn->writing = false;
                        if (conn != conn_) return;
                        write_timer_.cancel();
                        if (ec) return Lost(conn, "write failed: " + ec.message(), false);
                        if (!conn->out.empty()) WriteNext(conn);
                      });
  }

  void ArmRead(const std::shared_ptr<Conn>& conn) {
    read_timer_.expires_after(Seconds(options_.read_timeout_s));
    read_timer_.async_wait([this, conn](error_code ec) {
      if (ec || conn != conn_ || read_timer_.expiry() > Clock::now()) return;
      if (events_.quiet && events_.quiet()) return ArmRead(conn);
      Lost(conn,
           "no data from the " + protocol_.name + " for " + FormatSeconds(options_.read_timeout_s) +
               " s",
           true);
    });
  }

  std::string Closed(const error_code& ec) const {
    return ec == asio::error::eof ? "the " + protocol_.name + " closed the connection"
                                  : ec.message();
  }

  void ReadHeader(const std::shared_ptr<Conn>& conn) {
    ArmRead(conn);
    asio::async_read(conn->socket, asio::buffer(conn->header), [this, conn](error_code ec, size_t) {
      if (conn != conn_) return;
      if (ec) return Lost(conn, Closed(ec), false);
      FrameHeader header;
      try {
        header = ParseFrameHeader(protocol_, conn->header, options_.max_frame_bytes);
      } catch (const Error& e) {
        return Failed(conn, e.code(),
                      protocol_.name + " " + options_.address + " sent a bad frame: " + e.what());
      }
      conn->body.resize(header.length);
      asio::async_read(conn->socket, asio::buffer(conn->body),
                       [this, conn, header](error_code ec, size_t) {
                         if (conn != conn_) return;
                         if (ec) return Lost(conn, Closed(ec), false);
                         try {
                           events_.frame(header, conn->body);
                         } catch (const Error& e) {
                           return Failed(conn, e.code(),
                                         protocol_.name + " " + options_.address + ": " + e.what());
                         }
                         if (conn == conn_) ReadHeader(conn);
                       });
    });
  }

  FrameProtocol protocol_;
  ClientConnectionOptions options_;
  ClientConnectionEvents events_;
  asio::io_context& io_;
  std::string host_, port_;
  tcp::resolver resolver_;
  asio::steady_timer attempt_timer_, retry_timer_, read_timer_, write_timer_;
  std::shared_ptr<Conn> conn_;
  double backoff_s_;
  int64_t connections_ = 0;
};

ClientConnection::ClientConnection(boost::asio::io_context& io, FrameProtocol protocol,
                                   ClientConnectionOptions options, ClientConnectionEvents events)
    : impl_(
          std::make_unique<Impl>(io, std::move(protocol), std::move(options), std::move(events))) {}
ClientConnection::~ClientConnection() = default;
void ClientConnection::Connect(double budget_s) { impl_->Connect(budget_s); }
void ClientConnection::AfterBackoff(double max_wait_s, std::function<void()> then) {
  impl_->AfterBackoff(max_wait_s, std::move(then));
}
void ClientConnection::ResetBackoff() { impl_->backoff_s_ = impl_->options_.first_backoff_s; }
void ClientConnection::Send(std::string frame) { impl_->Send(std::move(frame)); }
void ClientConnection::Close() { impl_->Close(); }
bool ClientConnection::connected() const { return impl_->conn_ && impl_->conn_->open; }
int64_t ClientConnection::connections() const { return impl_->connections_; }

}  // namespace flexmoe::net
