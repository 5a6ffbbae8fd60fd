// FramedServer on Boost.Asio (server.h): an acceptor, one connection object per peer, every
// read and write paired with a steady_timer, all on one io_context thread.
#include "cluster/net/server.h"

#include <glog/logging.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <optional>
#include <set>
#include <sstream>

#include "cluster/net/acceptor.h"
#include "cluster/net/asio_names.h"
#include "cluster/net/job_token.h"

namespace flexmoe::net {
namespace {

std::string FormatSeconds(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

}  // namespace

class FramedServer::Impl {
 public:
  class Peer;

  Impl(ServerProtocol protocol, ServerOptions options, SessionFactory sessions);
  void Accept();
  void DoStop();
  void DropAll(const std::string& why);
  void AddQueued(size_t n) {
    const uint64_t now = queued_.fetch_add(n) + n;
    uint64_t peak = peak_queued_.load();
    while (now > peak && !peak_queued_.compare_exchange_weak(peak, now)) {
    }
  }
  void SubQueued(size_t n) { queued_.fetch_sub(n); }
  void Repeat(std::shared_ptr<asio::steady_timer> timer, double seconds,
              std::function<void()> task);

  const ServerProtocol protocol_;
  const ServerOptions options_;
  SessionFactory sessions_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  std::optional<asio::signal_set> signals_;
  std::string address_;
  bool stopped_ = false;                            // io thread only
  int max_connections_ = options_.max_connections;  // io thread only
  std::set<std::shared_ptr<Peer>> peers_;
  std::set<std::shared_ptr<asio::steady_timer>> timers_;
  std::atomic<int64_t> accepted_{0}, open_{0}, refused_{0};
  std::atomic<uint64_t> bytes_sent_{0}, queued_{0}, peak_queued_{0};
};

class FramedServer::Impl::Peer : public Connection, public std::enable_shared_from_this<Peer> {
 public:
  Peer(Impl* server, tcp::socket socket, std::string address)
      : server_(server),
        socket_(std::move(socket)),
        read_timer_(server->io_),
        write_timer_(server->io_),
        address_(std::move(address)) {}

  void Start() { ReadHeader(); }

  void Send(std::string frame, bool notify) override {
    if (closed_) return;
    server_->AddQueued(frame.size());
    out_.emplace_back(std::move(frame), notify);
    if (!writing_) WriteNext();
  }

  void Refuse(ErrorCode code, const std::string& why) override {
    if (closed_ || closing_) return;
    ++server_->refused_;
    LOG(WARNING) << server_->protocol_.frame.name << ": refusing connection from " << Name() << ": "
                 << why;
    const std::string reply =
        server_->protocol_.error_frame ? server_->protocol_.error_frame(code, why) : "";
    if (reply.empty()) return Shut("refused: " + why, false);
    closing_ = true;
    close_reason_ = why;
    read_timer_.cancel();
    Send(reply, false);
  }

  void Close(const std::string& why) override { Shut(why, false); }

  std::string Name() const override {
    return name_.empty() ? address_ : address_ + " (" + name_ + ")";
  }
  void SetPeerName(const std::string& name) override { name_ = name.substr(0, 64); }

  // Closes at once (pending operations complete with operation_aborted).
  void Shut(const std::string& why, bool warn) {
    if (closed_) return;
    closed_ = true;
    if (warn) {
      LOG(WARNING) << server_->protocol_.frame.name << ": closed connection from " << Name() << ": "
                   << why;
    } else {
      VLOG(1) << server_->protocol_.frame.name << ": connection from " << Name()
              << " closed: " << why;
    }
    error_code ignored;
    socket_.close(ignored);
    read_timer_.cancel();
    write_timer_.cancel();
    if (!writing_) DropQueue();
    server_->open_.fetch_sub(1);
    auto self = shared_from_this();  // keeps this alive past the erase
    server_->peers_.erase(self);
    if (session_) session_->OnClose(why);
  }

 private:
  void DropQueue() {
    for (const auto& [frame, notify] : out_) server_->SubQueued(frame.size());
    out_.clear();
  }

  // A timer that closes the connection unless re-armed or cancelled before `seconds`.
  void Arm(asio::steady_timer* timer, double seconds, const char* what) {
    timer->expires_after(Seconds(seconds));
    timer->async_wait([this, self = shared_from_this(), timer, seconds, what](error_code ec) {
      if (ec || closed_ || timer->expiry() > Clock::now()) return;
      ++server_->refused_;
      Shut(std::string(what) + " for " + FormatSeconds(seconds) + " s", true);
    });
  }

  void ReadHeader() {
    if (!session_) {
      Arm(&read_timer_, server_->options_.handshake_timeout_s, "no hello with the job token");
    } else {
      Arm(&read_timer_, server_->options_.idle_timeout_s, "no frame");
    }
    asio::async_read(socket_, asio::buffer(header_bytes_),
                     [this, self = shared_from_this()](error_code ec, size_t) {
                       if (closed_ || closing_) return;
                       if (ec) {
                         return Shut(ec == asio::error::eof ? "peer closed" : ec.message(), false);
                       }
                       try {
                         header_ = ParseFrameHeader(server_->protocol_.frame, header_bytes_,
                                                    server_->options_.max_frame_bytes);
                         if (!session_ && header_.type != server_->protocol_.hello_type) {
                           Fail(ErrorCode::kInvalidArgument, "first frame is ",
                                server_->protocol_.frame.type_name(header_.type),
                                ", expected the hello with the job token");
                         }
                       } catch (const Error& e) {
                         return Refuse(e.code(), e.what());
                       }
                       body_.assign(header_.length, '\0');  // bounded by the check above
                       ReadBody();
                     });
  }

  void ReadBody() {
    asio::async_read(socket_, asio::buffer(body_),
                     [this, self = shared_from_this()](error_code ec, size_t) {
                       if (closed_ || closing_) return;
                       if (ec) return Shut("read failed: " + ec.message(), true);
                       try {
                         Handle();
                       } catch (const Error& e) {
                         return Refuse(e.code(), e.what());
                       } catch (const std::exception& e) {
                         return Refuse(ErrorCode::kInternal, e.what());
                       }
                       if (!closed_ && !closing_) ReadHeader();
                     });
  }

  void Handle() {
    if (!session_) {
      const std::string token = server_->protocol_.hello_token(header_, body_);
      if (!TokensEqual(token, server_->options_.token)) {
        Fail(ErrorCode::kFailedPrecondition, "wrong job token");
      }
      session_ = server_->sessions_(*this);
    } else if (header_.type == server_->protocol_.hello_type) {
      Fail(ErrorCode::kInvalidArgument, "a second hello");
    }
    session_->OnFrame(*this, header_, body_);
  }

  void WriteNext() {
    if (out_.empty()) {
      writing_ = false;
      if (closing_) Shut("refused: " + close_reason_, false);
      return;
    }
    writing_ = true;
    Arm(&write_timer_, server_->options_.write_timeout_s, "peer took no data");
    asio::async_write(socket_, asio::buffer(out_.front().first),
                      [this, self = shared_from_this()](error_code ec, size_t n) {
                        write_timer_.cancel();
                        const bool notify = out_.front().second;
                        server_->SubQueued(out_.front().first.size());
                        out_.pop_front();
                        writing_ = false;
                        if (closed_) return DropQueue();
                        if (ec) return Shut("write failed: " + ec.message(), true);
                        server_->bytes_sent_ += n;
                        if (notify && session_ && !closing_) {
                          try {
                            session_->OnWritten(*this);
                          } catch (const Error& e) {
                            return Refuse(e.code(), e.what());
                          } catch (const std::exception& e) {
                            return Refuse(ErrorCode::kInternal, e.what());
                          }
                        }
                        if (!writing_ && !closed_) WriteNext();
                      });
  }

  Impl* server_;
  tcp::socket socket_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  std::string address_, name_;
  std::unique_ptr<Session> session_;  // after the token check
  uint8_t header_bytes_[kFrameHeaderSize] = {};
  FrameHeader header_;
  std::string body_;
  bool closing_ = false;  // refused: stop reading, close once the reply is written
  bool closed_ = false;
  bool writing_ = false;
  std::string close_reason_;
  std::deque<std::pair<std::string, bool>> out_;  // frames to write; true: notify
};

FramedServer::Impl::Impl(ServerProtocol protocol, ServerOptions options, SessionFactory sessions)
    : protocol_(std::move(protocol)),
      options_(std::move(options)),
      sessions_(std::move(sessions)),
      acceptor_(io_),
      accept_retry_(io_) {
  const std::string& name = protocol_.frame.name;
  if (options_.token.empty()) {
    Fail(ErrorCode::kInvalidArgument, name, ": a job token is required (cluster.job_token_source)");
  }
  OpenAcceptor(acceptor_, options_.listen, name + " --listen");
  address_ = EndpointName(acceptor_.local_endpoint());
  if (options_.stop_on_signals) {
    signals_.emplace(io_, SIGINT, SIGTERM);
    signals_->async_wait([this](error_code ec, int signal) {
      if (ec) return;
      LOG(INFO) << protocol_.frame.name << ": signal " << signal << ", stopping";
      DoStop();
    });
  }
  Accept();
}

void FramedServer::Impl::Accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (stopped_) return;
    if (ec) {
      // Out of descriptors and the like: retry later rather than spin.
      LOG(WARNING) << protocol_.frame.name << ": accept failed: " << ec.message();
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](error_code ec) {
        if (!ec && !stopped_) Accept();
      });
      return;
    }
    ++accepted_;
    error_code ignored;
    const tcp::endpoint remote = socket.remote_endpoint(ignored);
    if (static_cast<int>(peers_.size()) >= max_connections_) {
      ++refused_;
      LOG(WARNING) << protocol_.frame.name << ": refusing " << EndpointName(remote) << ": "
                   << max_connections_ << " connections open";
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ignored);
      auto peer = std::make_shared<Peer>(this, std::move(socket), EndpointName(remote));
      peers_.insert(peer);
      ++open_;
      peer->Start();
    }
    Accept();
  });
}

void FramedServer::Impl::DoStop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  if (signals_) signals_->cancel(ignored);
  for (const auto& timer : timers_) timer->cancel();
  timers_.clear();
  DropAll("server stopping");
}

void FramedServer::Impl::DropAll(const std::string& why) {
  const auto peers = peers_;  // Shut() erases from the set
  for (const auto& peer : peers) peer->Shut(why, false);
}

void FramedServer::Impl::Repeat(std::shared_ptr<asio::steady_timer> timer, double seconds,
                                std::function<void()> task) {
  timer->expires_after(Seconds(seconds));
  timer->async_wait([this, timer, seconds, task](error_code ec) {
    if (ec || stopped_) return;
    task();
    if (!stopped_) Repeat(timer, seconds, task);
  });
}

FramedServer::FramedServer(ServerProtocol protocol, ServerOptions options, SessionFactory sessions)
    : impl_(std::make_unique<Impl>(std::move(protocol), std::move(options), std::move(sessions))) {}

FramedServer::~FramedServer() = default;

std::string FramedServer::address() const { return impl_->address_; }

void FramedServer::Run() { impl_->io_.run(); }

void FramedServer::Stop() {
  asio::post(impl_->io_, [impl = impl_.get()] { impl->DoStop(); });
}

void FramedServer::Post(std::function<void()> task) { asio::post(impl_->io_, std::move(task)); }

void FramedServer::SetMaxConnections(int n) { impl_->max_connections_ = n; }

void FramedServer::Every(double seconds, std::function<void()> task) {
  asio::post(impl_->io_, [impl = impl_.get(), seconds, task = std::move(task)] {
    if (impl->stopped_) return;
    auto timer = std::make_shared<asio::steady_timer>(impl->io_);
    impl->timers_.insert(timer);
    impl->Repeat(timer, seconds, task);
  });
}

void FramedServer::After(double seconds, std::function<void()> task) {
  asio::post(impl_->io_, [impl = impl_.get(), seconds, task = std::move(task)] {
    if (impl->stopped_) return;
    auto timer = std::make_shared<asio::steady_timer>(impl->io_);
    impl->timers_.insert(timer);
    timer->expires_after(Seconds(seconds));
    timer->async_wait([impl, timer, task](error_code ec) {
      impl->timers_.erase(timer);
      if (!ec && !impl->stopped_) task();
    });
  });
}

void FramedServer::DropConnections(const std::string& why) {
  asio::post(impl_->io_, [impl = impl_.get(), why] { impl->DropAll(why); });
}

ServerStats FramedServer::stats() const {
  ServerStats s;
  s.connections_accepted = impl_->accepted_;
  s.connections_open = impl_->open_;
  s.connections_refused = impl_->refused_;
  s.bytes_sent = impl_->bytes_sent_;
  s.queued_bytes = impl_->queued_;
  s.peak_queued_bytes = impl_->peak_queued_;
  return s;
}

}  // namespace flexmoe::net
