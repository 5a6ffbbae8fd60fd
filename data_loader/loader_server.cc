// The loader server on Boost.Asio (loader_server.h): an acceptor, one Connection per client,
// every read and write paired with a steady_timer, all on one io_context thread.
#include "data_loader/loader_server.h"

#include <glog/logging.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "cluster/base/error.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/job_token.h"
#include "data_loader/loader_wire.h"
#include "data_loader/plan_batch_source.h"

namespace flexmoe {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// Frames from clients are small (HELLO, REQUEST, CREDIT); anything larger is refused.
constexpr uint32_t kMaxClientFrameBytes = 64u << 10;
constexpr size_t kPlanCacheSize = 8;

std::string EndpointName(const tcp::endpoint& endpoint) {
  const std::string host = endpoint.address().to_string();
  const std::string port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + host + "]:" + port : host + ":" + port;
}

// Everything a plan depends on, from a request.
struct PlanKey {
  uint32_t split;
  uint64_t seed;
  int epoch;
  bool warmup;
  int global_batch;
  int remainder;
  int batching;
  int world_size;
  bool operator==(const PlanKey& o) const {
    return split == o.split && seed == o.seed && epoch == o.epoch && warmup == o.warmup &&
           global_batch == o.global_batch && remainder == o.remainder && batching == o.batching &&
           world_size == o.world_size;
  }
};

}  // namespace

class LoaderServer::Impl {
 public:
  class Connection;

  Impl(const PreparedDataset& prepared, const DecodedDataset& data, LoaderServerOptions options);

  void Accept();
  void DoStop();
  void DropAll(const std::string& why);
  std::shared_ptr<const EpochPlan> Plan(const loader::StreamRequest& request);
  void AddQueued(size_t n) {
    const uint64_t now = queued_.fetch_add(n) + n;
    uint64_t peak = peak_queued_.load();
    while (now > peak && !peak_queued_.compare_exchange_weak(peak, now)) {
    }
  }
  void SubQueued(size_t n) { queued_.fetch_sub(n); }

  const PreparedDataset& prepared_;
  const DecodedDataset& data_;
  const LoaderServerOptions options_;
  std::vector<int> feature_sizes_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  std::optional<asio::signal_set> signals_;
  std::string address_;
  bool stopped_ = false;  // io thread only
  std::set<std::shared_ptr<Connection>> connections_;
  std::deque<std::pair<PlanKey, std::shared_ptr<const EpochPlan>>> plans_;

  std::atomic<int64_t> accepted_{0}, open_{0}, refused_{0}, streams_{0}, batches_{0};
  std::atomic<uint64_t> bytes_sent_{0}, queued_{0}, peak_queued_{0};
};

class LoaderServer::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl* server, tcp::socket socket, std::string peer)
      : server_(server),
        socket_(std::move(socket)),
        read_timer_(server->io_),
        write_timer_(server->io_),
        peer_(std::move(peer)) {}

  void Start() { ReadHeader(); }

  // Closes at once (pending operations complete with operation_aborted).
  void Close(const std::string& why, bool warn) {
    if (closed_) return;
    closed_ = true;
    if (warn) {
      LOG(WARNING) << "loader: closed connection from " << Name() << ": " << why;
    } else {
      LOG(INFO) << "loader: connection from " << Name() << " closed: " << why;
    }
    error_code ignored;
    socket_.close(ignored);
    read_timer_.cancel();
    write_timer_.cancel();
    if (!writing_) DropQueue();
    server_->open_.fetch_sub(1);
    server_->connections_.erase(shared_from_this());
  }

 private:
  std::string Name() const { return client_.empty() ? peer_ : peer_ + " (" + client_ + ")"; }

  void DropQueue() {
    for (const auto& [frame, is_batch] : out_) server_->SubQueued(frame.size());
    out_.clear();
  }

  // A timer that closes the connection unless re-armed or cancelled before `seconds`.
  void Arm(asio::steady_timer* timer, double seconds, const char* what) {
    timer->expires_after(Seconds(seconds));
    timer->async_wait([this, self = shared_from_this(), timer, seconds, what](error_code ec) {
      if (ec || closed_ || timer->expiry() > Clock::now()) return;
      ++server_->refused_;
      Close(std::string(what) + " for " + FormatSeconds(seconds) + " s", true);
    });
  }

  void ReadHeader() {
    if (!authenticated_) {
      Arm(&read_timer_, server_->options_.handshake_timeout_s, "no HELLO");
    } else {
      Arm(&read_timer_, server_->options_.idle_timeout_s, "no frame");
    }
    asio::async_read(
        socket_, asio::buffer(header_bytes_),
        [this, self = shared_from_this()](error_code ec, size_t) {
          if (closed_ || closing_) return;
          if (ec) return Close(ec == asio::error::eof ? "peer closed" : ec.message(), false);
          try {
            header_ = ParseFrameHeader(
                header_bytes_, std::min(server_->options_.max_frame_bytes, kMaxClientFrameBytes));
          } catch (const Error& e) {
            return Refuse(e.code(), e.what());
          }
          if (!authenticated_ && header_.type != loader::HELLO) {
            return Refuse(ErrorCode::kInvalidArgument, "first frame is " +
                                                           loader::FrameType_Name(header_.type) +
                                                           ", expected HELLO with the job token");
          }
          body_.assign(header_.length, '\0');  // bounded by the check above
          ReadBody();
        });
  }

  void ReadBody() {
    asio::async_read(socket_, asio::buffer(body_),
                     [this, self = shared_from_this()](error_code ec, size_t) {
                       if (closed_ || closing_) return;
                       if (ec) return Close("read failed: " + ec.message(), true);
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
    switch (header_.type) {
      case loader::HELLO: {
        loader::Hello hello;
        ParseFrameBody(header_, body_, &hello);
        if (authenticated_) Fail(ErrorCode::kInvalidArgument, "a second HELLO");
        client_ = hello.client().substr(0, 64);
        if (!TokensEqual(hello.token(), server_->options_.token)) {
          Fail(ErrorCode::kFailedPrecondition, "wrong job token");
        }
        authenticated_ = true;
        loader::Welcome welcome;
        for (int f : server_->feature_sizes_) welcome.add_feature_sizes(f);
        welcome.set_num_samples(server_->prepared_.size());
        welcome.set_index_crc32c(server_->prepared_.meta.index_crc32c());
        Send(EncodeFrame(loader::WELCOME, welcome), false);
        VLOG(1) << "loader: " << Name() << " connected";
        return;
      }
      case loader::REQUEST: {
        loader::StreamRequest request;
        ParseFrameBody(header_, body_, &request);
        StartStream(request);
        return;
      }
      case loader::CREDIT: {
        loader::Credit credit;
        ParseFrameBody(header_, body_, &credit);
        if (streaming_ && credit.stream_id() == stream_id_) {
          credits_ = static_cast<uint32_t>(std::min<uint64_t>(
              server_->options_.max_credits, static_cast<uint64_t>(credits_) + credit.batches()));
          Pump();
        }
        return;
      }
      default:
        Fail(ErrorCode::kInvalidArgument, "unexpected ", loader::FrameType_Name(header_.type),
             " frame from a client");
    }
  }

  void StartStream(const loader::StreamRequest& request) {
    if (request.world_size() < 1 || request.worker() < 0 ||
        request.worker() >= request.world_size()) {
      Fail(ErrorCode::kInvalidArgument, "REQUEST for worker ", request.worker(), " of world size ",
           request.world_size());
    }
    std::shared_ptr<const EpochPlan> plan = server_->Plan(request);
    if (request.first_step() < 0 || request.first_step() > plan->steps()) {
      Fail(ErrorCode::kInvalidArgument, "REQUEST from step ", request.first_step(), " of epoch ",
           request.epoch(), ", which has ", plan->steps(), " steps");
    }
    streaming_ = true;
    stream_id_ = request.stream_id();
    plan_ = std::move(plan);
    worker_ = request.worker();
    next_step_ = request.first_step();
    credits_ = std::min(request.credits(), server_->options_.max_credits);
    ++server_->streams_;
    loader::StreamInfo info;
    info.set_stream_id(stream_id_);
    info.set_steps(plan_->steps());
    info.set_first_step(next_step_);
    info.set_dropped(plan_->dropped);
    info.set_padded(plan_->padded);
    Send(EncodeFrame(loader::STREAM_INFO, info), false);
    VLOG(1) << "loader: " << Name() << " streams epoch " << request.epoch() << " from step "
            << next_step_ << " of " << plan_->steps();
  }

  // Builds the next frame of the stream when the previous batch is written and a credit is
  // left: this is what bounds a connection's memory to one batch frame.
  void Pump() {
    if (closed_ || closing_ || !streaming_ || batch_queued_) return;
    if (next_step_ >= plan_->steps()) {
      loader::EndOfEpoch end;
      end.set_stream_id(stream_id_);
      end.set_steps(plan_->steps());
      streaming_ = false;
      Send(EncodeFrame(loader::END_OF_EPOCH, end), false);
      return;
    }
    if (credits_ == 0) return;
    std::string frame = EncodeBatchFrame(stream_id_, next_step_,
                                         GatherSlice(server_->data_, *plan_, next_step_, worker_));
    if (frame.size() > server_->options_.max_frame_bytes) {
      return Refuse(ErrorCode::kInvalidArgument,
                    "the batch of step " + std::to_string(next_step_) + " is " +
                        std::to_string(frame.size()) + " bytes, over cluster.max_frame_bytes (" +
                        std::to_string(server_->options_.max_frame_bytes) +
                        "); raise it or lower training.batch_size");
    }
    ++next_step_;
    --credits_;
    ++server_->batches_;
    Send(std::move(frame), true);
  }

  // Answers ERROR_REPLY, then closes once it is written (or the write times out).
  void Refuse(ErrorCode code, const std::string& why) {
    if (closed_ || closing_) return;
    ++server_->refused_;
    LOG(WARNING) << "loader: refusing connection from " << Name() << ": " << why;
    closing_ = true;
    close_reason_ = why;
    read_timer_.cancel();
    loader::ErrorReply reply;
    reply.set_code(static_cast<int>(code));
    reply.set_message(why);
    Send(EncodeFrame(loader::ERROR_REPLY, reply), false);
  }

  void Send(std::string frame, bool is_batch) {
    server_->AddQueued(frame.size());
    if (is_batch) batch_queued_ = true;
    out_.emplace_back(std::move(frame), is_batch);
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    if (out_.empty()) {
      writing_ = false;
      if (closing_) Close("refused: " + close_reason_, false);
      return;
    }
    writing_ = true;
    Arm(&write_timer_, server_->options_.write_timeout_s, "peer took no data");
    asio::async_write(socket_, asio::buffer(out_.front().first),
                      [this, self = shared_from_this()](error_code ec, size_t n) {
                        write_timer_.cancel();
                        const bool was_batch = out_.front().second;
                        server_->SubQueued(out_.front().first.size());
                        out_.pop_front();
                        writing_ = false;
                        if (closed_) return DropQueue();
                        if (ec) return Close("write failed: " + ec.message(), true);
                        server_->bytes_sent_ += n;
                        if (was_batch) batch_queued_ = false;
                        try {
                          Pump();
                        } catch (const std::exception& e) {
                          return Refuse(ErrorCode::kInternal, e.what());
                        }
                        if (!writing_) WriteNext();
                      });
  }

  Impl* server_;
  tcp::socket socket_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  std::string peer_;
  std::string client_;
  uint8_t header_bytes_[kFrameHeaderSize] = {};
  FrameHeader header_;
  std::string body_;
  bool authenticated_ = false;
  bool closing_ = false;  // refused: stop reading, close once the reply is written
  bool closed_ = false;
  bool writing_ = false;
  bool batch_queued_ = false;
  std::string close_reason_;
  std::deque<std::pair<std::string, bool>> out_;  // frames to write; true for a batch
  bool streaming_ = false;
  uint64_t stream_id_ = 0;
  std::shared_ptr<const EpochPlan> plan_;
  int worker_ = 0;
  int64_t next_step_ = 0;
  uint32_t credits_ = 0;
};

LoaderServer::Impl::Impl(const PreparedDataset& prepared, const DecodedDataset& data,
                         LoaderServerOptions options)
    : prepared_(prepared),
      data_(data),
      options_(std::move(options)),
      feature_sizes_(data.feature_sizes()),
      acceptor_(io_),
      accept_retry_(io_) {
  if (options_.token.empty()) {
    Fail(ErrorCode::kInvalidArgument, "loader: a job token is required (cluster.job_token_source)");
  }
  std::string host, port;
  SplitHostPort(options_.listen, "loader --listen", &host, &port);
  error_code ec;
  tcp::resolver resolver(io_);
  auto endpoints = resolver.resolve(host, port, tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    Fail(ErrorCode::kInvalidArgument, "loader: cannot resolve --listen ", options_.listen, ": ",
         ec.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    Fail(ErrorCode::kUnavailable, "loader: cannot listen on ", options_.listen, ": ", ec.message());
  }
  address_ = EndpointName(acceptor_.local_endpoint());
  if (options_.stop_on_signals) {
    signals_.emplace(io_, SIGINT, SIGTERM);
    signals_->async_wait([this](error_code ec, int signal) {
      if (ec) return;
      LOG(INFO) << "loader: signal " << signal << ", stopping";
      DoStop();
    });
  }
  Accept();
}

void LoaderServer::Impl::Accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (stopped_) return;
    if (ec) {
      // Out of descriptors and the like: retry later rather than spin.
      LOG(WARNING) << "loader: accept failed: " << ec.message();
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](error_code ec) {
        if (!ec && !stopped_) Accept();
      });
      return;
    }
    ++accepted_;
    error_code ignored;
    const tcp::endpoint remote = socket.remote_endpoint(ignored);
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      ++refused_;
      LOG(WARNING) << "loader: refusing " << EndpointName(remote) << ": "
                   << options_.max_connections << " connections open";
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ignored);
      auto connection = std::make_shared<Connection>(this, std::move(socket), EndpointName(remote));
      connections_.insert(connection);
      ++open_;
      connection->Start();
    }
    Accept();
  });
}

void LoaderServer::Impl::DoStop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  if (signals_) signals_->cancel(ignored);
  DropAll("server stopping");
}

void LoaderServer::Impl::DropAll(const std::string& why) {
  const auto connections = connections_;  // Close() erases from the set
  for (const auto& connection : connections) connection->Close(why, false);
}

std::shared_ptr<const EpochPlan> LoaderServer::Impl::Plan(const loader::StreamRequest& request) {
  const PlanKey key{request.split(),    request.seed(),         request.epoch(),
                    request.warmup(),   request.global_batch(), request.remainder(),
                    request.batching(), request.world_size()};
  for (const auto& [k, plan] : plans_) {
    if (k == key) return plan;
  }
  if (!config::TrainingConfig::Remainder_IsValid(key.remainder) ||
      !config::TrainingConfig::Batching_IsValid(key.batching)) {
    Fail(ErrorCode::kInvalidArgument, "REQUEST with remainder ", key.remainder, " and batching ",
         key.batching);
  }
  PlanOptions options;
  options.seed = key.seed;
  options.epoch = key.epoch;
  options.phase = key.warmup ? EpochPhase::kWarmup : EpochPhase::kShuffled;
  options.world_size = key.world_size;
  options.global_batch = key.global_batch;
  options.remainder = static_cast<config::TrainingConfig::Remainder>(key.remainder);
  options.batching = static_cast<config::TrainingConfig::Batching>(key.batching);
  auto plan = std::make_shared<const EpochPlan>(PlanEpoch(prepared_, key.split, options));
  plans_.emplace_back(key, plan);
  if (plans_.size() > kPlanCacheSize) plans_.pop_front();
  return plan;
}

LoaderServer::LoaderServer(const PreparedDataset& prepared, const DecodedDataset& data,
                           LoaderServerOptions options)
    : impl_(std::make_unique<Impl>(prepared, data, std::move(options))) {}

LoaderServer::~LoaderServer() = default;

std::string LoaderServer::address() const { return impl_->address_; }

void LoaderServer::Run() { impl_->io_.run(); }

void LoaderServer::Stop() {
  asio::post(impl_->io_, [impl = impl_.get()] { impl->DoStop(); });
}

LoaderServerStats LoaderServer::stats() const {
  LoaderServerStats s;
  s.connections_accepted = impl_->accepted_;
  s.connections_open = impl_->open_;
  s.connections_refused = impl_->refused_;
  s.streams_started = impl_->streams_;
  s.batches_sent = impl_->batches_;
  s.bytes_sent = impl_->bytes_sent_;
  s.queued_bytes = impl_->queued_;
  s.peak_queued_bytes = impl_->peak_queued_;
  return s;
}

void LoaderServer::DropConnectionsForTest() {
  asio::post(impl_->io_, [impl = impl_.get()] { impl->DropAll("dropped for a test"); });
}

}  // namespace flexmoe
