// The loader client (loader_client.h): the stream's state machine on a private io_context
// thread (HELLO, REQUEST, BATCH/CREDIT, the outage budget) over cluster/net's reconnecting
// ClientConnection, and a consumer side that waits on a bounded queue with deadlines.
#include "data_loader/loader_client.h"

#include <glog/logging.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/net/client_connection.h"
#include "cluster/net/job_token.h"
#include "cluster/net/local_host.h"
#include "data_loader/loader_wire.h"
#include "data_loader/plan_batch_source.h"

namespace flexmoe {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr double kMaxAttemptSeconds = 2.0;
constexpr double kFirstBackoffSeconds = 0.05;
constexpr double kMaxBackoffSeconds = 0.5;
// Extra time the consumer allows beyond the background thread's own deadlines.
constexpr double kConsumerSlackSeconds = 5.0;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

ErrorCode CodeFromWire(int code) {
  if (code < static_cast<int>(ErrorCode::kInvalidArgument) ||
      code > static_cast<int>(ErrorCode::kInternal)) {
    return ErrorCode::kInternal;
  }
  return static_cast<ErrorCode>(code);
}

}  // namespace

LoaderClientOptions LoaderClientOptionsFromConfig(const config::Config& config, uint32_t split,
                                                  int worker, int world_size) {
  const config::ClusterConfig& cluster = config.cluster();
  if (cluster.loader_addresses_size() == 0) {
    Fail(ErrorCode::kInvalidArgument,
         "cluster.loader_addresses: no loader configured (HOST:PORT of `flexmoe loader`)");
  }
  LoaderClientOptions options;
  // The loader on this worker's node; another one only when the node has none.
  options.address = PickNodeLocalAddress(
      {cluster.loader_addresses().begin(), cluster.loader_addresses().end()}, worker);
  options.token = ReadJobToken(cluster);
  options.name = "worker " + std::to_string(worker);
  options.split = split;
  options.plan = PlanOptionsFromConfig(config, world_size);
  options.warmup_epochs = config.training().warmup_epochs();
  options.worker = worker;
  options.connect_timeout_s = cluster.connect_timeout_s();
  options.read_timeout_s = cluster.connect_timeout_s();
  options.max_frame_bytes = cluster.max_frame_bytes();
  return options;
}

class LoaderClient::Impl {
 public:
  explicit Impl(LoaderClientOptions options);
  ~Impl();

  void StartEpoch(int epoch, int64_t first_step);
  bool Next(DecodedBatch* batch);
  int64_t steps() const {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_;
  }

  const LoaderClientOptions options_;
  std::atomic<int64_t> reconnects_{0};

 private:
  enum class State { kIdle, kConnecting, kRetryWait, kConnected, kFailed };

  // io thread.
  void BeginStream(uint64_t id, int epoch, int64_t first_step);
  void Connect();
  void ConnectionLost(const std::string& reason, bool timeout);
  void Fatal(ErrorCode code, const std::string& message);
  void SendRequest();
  void FlushGrants();
  void Connected();
  void Send(std::string frame);
  void HandleFrame(const FrameHeader& header, const std::string& body);
  bool Expecting() const;
  std::string Where() const;

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<net::ClientConnection> link_;  // after io_: destroyed before it
  State state_ = State::kIdle;
  struct Stream {
    uint64_t id = 0;
    int epoch = 0;
    int64_t next_step = 0;  // the step of the next BATCH expected
    int64_t steps = -1;
    bool active = false;  // requested and END_OF_EPOCH not yet received
  } stream_;
  int64_t owed_ = 0;  // credits granted on this connection minus batches received
  bool in_outage_ = false;
  Clock::time_point outage_start_;
  std::string last_error_;
  bool last_timeout_ = false;
  std::vector<int> feature_sizes_;

  // Shared with the consumer.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  struct Item {
    uint64_t stream;
    DecodedBatch batch;
  };
  std::deque<Item> queue_;
  uint64_t consumer_stream_ = 0;
  int64_t steps_ = -1;        // of consumer_stream_, once the loader answered
  int64_t next_to_hand_ = 0;  // the consumer's next step
  uint32_t pending_grants_ = 0;
  std::optional<Error> error_;

  std::thread thread_;
};

LoaderClient::Impl::Impl(LoaderClientOptions options)
    : options_(std::move(options)), work_(asio::make_work_guard(io_)) {
  net::ClientConnectionOptions link;
  link.address = options_.address;
  link.max_frame_bytes = options_.max_frame_bytes;
  link.max_attempt_s = kMaxAttemptSeconds;
  link.first_backoff_s = kFirstBackoffSeconds;
  link.max_backoff_s = kMaxBackoffSeconds;
  link.read_timeout_s = options_.read_timeout_s;
  link.write_timeout_s = options_.read_timeout_s;
  net::ClientConnectionEvents events;
  events.connected = [this] { Connected(); };
  events.frame = [this](const net::FrameHeader& h, const std::string& body) {
    HandleFrame({static_cast<loader::FrameType>(h.type), h.length, h.meta_length, h.crc}, body);
  };
  events.lost = [this](const std::string& reason, bool timeout) {
    ConnectionLost(reason, timeout);
  };
  events.failed = [this](ErrorCode code, const std::string& message) { Fatal(code, message); };
  events.quiet = [this] { return !Expecting(); };
  link_ = std::make_unique<net::ClientConnection>(io_, LoaderProtocol(), link, std::move(events));
  if (options_.token.empty()) Fail(ErrorCode::kInvalidArgument, "loader client: empty job token");
  if (options_.prefetch < 1) {
    Fail(ErrorCode::kInvalidArgument, "loader client: prefetch ", options_.prefetch,
         " (at least 1)");
  }
  if (options_.worker < 0 || options_.worker >= options_.plan.world_size) {
    Fail(ErrorCode::kInvalidArgument, "loader client: worker ", options_.worker,
         " outside world size ", options_.plan.world_size);
  }
  if (!(options_.connect_timeout_s > 0) || !(options_.read_timeout_s > 0)) {
    Fail(ErrorCode::kInvalidArgument, "loader client: timeouts must be positive");
  }
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = Error(ErrorCode::kInternal, std::string("loader client: ") + e.what());
      cv_.notify_all();
    }
  });
}

LoaderClient::Impl::~Impl() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

// ---- consumer side ----

void LoaderClient::Impl::StartEpoch(int epoch, int64_t first_step) {
  std::unique_lock<std::mutex> lock(mu_);
  if (error_) throw *error_;
  const uint64_t id = ++consumer_stream_;
  queue_.clear();
  steps_ = -1;
  next_to_hand_ = first_step;
  pending_grants_ = 0;
  asio::post(io_, [this, id, epoch, first_step] { BeginStream(id, epoch, first_step); });
  const double wait_s =
      options_.connect_timeout_s + options_.read_timeout_s + kConsumerSlackSeconds;
  if (!cv_.wait_for(lock, Seconds(wait_s), [&] { return error_ || steps_ >= 0; })) {
    Fail(ErrorCode::kDeadlineExceeded, "loader ", options_.address, " did not start epoch ", epoch,
         " within ", wait_s, " s");
  }
  if (error_) throw *error_;
}

bool LoaderClient::Impl::Next(DecodedBatch* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  if (steps_ < 0) {
    if (error_) throw *error_;
    Fail(ErrorCode::kFailedPrecondition, "loader client: Next() before StartEpoch()");
  }
  if (next_to_hand_ >= steps_) return false;
  const double wait_s =
      options_.connect_timeout_s + options_.read_timeout_s + kConsumerSlackSeconds;
  const auto ready = [&] {
    while (!queue_.empty() && queue_.front().stream != consumer_stream_) queue_.pop_front();
    return !queue_.empty() || error_.has_value();
  };
  if (!cv_.wait_for(lock, Seconds(wait_s), ready)) {
    Fail(ErrorCode::kDeadlineExceeded, "loader ", options_.address, ": no batch for step ",
         next_to_hand_, " within ", wait_s, " s");
  }
  if (queue_.empty()) throw *error_;
  *batch = std::move(queue_.front().batch);
  queue_.pop_front();
  ++next_to_hand_;
  ++pending_grants_;
  lock.unlock();
  asio::post(io_, [this] { FlushGrants(); });
  return true;
}

// ---- io thread ----

std::string LoaderClient::Impl::Where() const {
  return "epoch " + std::to_string(stream_.epoch) + " at step " + std::to_string(stream_.next_step);
}

void LoaderClient::Impl::BeginStream(uint64_t id, int epoch, int64_t first_step) {
  if (state_ == State::kFailed) return;
  stream_ = Stream{id, epoch, first_step, -1, true};
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                [&](const Item& item) { return item.stream != id; }),
                 queue_.end());
  }
  if (state_ == State::kConnected) {
    SendRequest();
  } else if (state_ == State::kIdle) {
    Connect();
  }  // connecting or waiting to retry: the request goes out once connected
}

void LoaderClient::Impl::Connect() {
  const auto now = Clock::now();
  if (!in_outage_) {
    in_outage_ = true;
    outage_start_ = now;
  }
  const double left = options_.connect_timeout_s - SecondsBetween(outage_start_, now);
  if (left <= 0) {
    return Fatal(last_timeout_ ? ErrorCode::kDeadlineExceeded : ErrorCode::kUnavailable,
                 "loader " + options_.address + " unreachable for " +
                     FormatSeconds(options_.connect_timeout_s) + " s (" + last_error_ +
                     ") while streaming " + Where());
  }
  state_ = State::kConnecting;
  link_->Connect(left);
}

void LoaderClient::Impl::Connected() {
  state_ = State::kConnected;
  reconnects_ = link_->connections() - 1;
  loader::Hello hello;
  hello.set_token(options_.token);
  hello.set_client(options_.name);
  Send(EncodeFrame(loader::HELLO, hello));
  if (stream_.active) SendRequest();
}

void LoaderClient::Impl::ConnectionLost(const std::string& reason, bool timeout) {
  if (state_ == State::kFailed) return;
  state_ = State::kIdle;
  last_error_ = reason;
  last_timeout_ = timeout;
  if (!stream_.active) {  // between epochs: reconnect at the next StartEpoch
    in_outage_ = false;
    return;
  }
  if (!in_outage_) {
    in_outage_ = true;
    outage_start_ = Clock::now();
    LOG(WARNING) << "loader client: lost " << options_.address << " (" << reason << ") at "
                 << Where() << "; reconnecting";
  }
  const double left = options_.connect_timeout_s - SecondsBetween(outage_start_, Clock::now());
  if (left <= 0) return Connect();  // reports the failure
  state_ = State::kRetryWait;
  link_->AfterBackoff(left, [this] {
    if (state_ == State::kRetryWait) Connect();
  });
}

void LoaderClient::Impl::Fatal(ErrorCode code, const std::string& message) {
  if (state_ == State::kFailed) return;
  LOG(ERROR) << "loader client: " << message;
  link_->Close();
  state_ = State::kFailed;
  stream_.active = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_) error_ = Error(code, message);
  cv_.notify_all();
}

void LoaderClient::Impl::SendRequest() {
  uint32_t credits = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t queued = std::count_if(
        queue_.begin(), queue_.end(), [&](const Item& item) { return item.stream == stream_.id; });
    credits = static_cast<uint32_t>(std::max<int64_t>(0, options_.prefetch - queued));
    pending_grants_ = 0;  // the free slots are counted in `credits`
  }
  owed_ = credits;
  loader::StreamRequest request;
  request.set_stream_id(stream_.id);
  request.set_split(options_.split);
  request.set_epoch(stream_.epoch);
  request.set_warmup(stream_.epoch < options_.warmup_epochs);
  request.set_seed(options_.plan.seed);
  request.set_global_batch(options_.plan.global_batch);
  request.set_remainder(options_.plan.remainder);
  request.set_batching(options_.plan.batching);
  request.set_worker(options_.worker);
  request.set_world_size(options_.plan.world_size);
  request.set_first_step(stream_.next_step);
  request.set_credits(credits);
  request.set_evaluation(options_.plan.evaluation);
  request.set_folds(options_.fold.folds);
  request.set_fold(options_.fold.fold);
  request.set_fold_seed(options_.fold.seed);
  Send(EncodeFrame(loader::REQUEST, request));
}

void LoaderClient::Impl::FlushGrants() {
  if (state_ != State::kConnected || !stream_.active) return;  // folded into the next REQUEST
  uint32_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    n = pending_grants_;
    pending_grants_ = 0;
  }
  if (n == 0) return;
  owed_ += n;
  loader::Credit credit;
  credit.set_stream_id(stream_.id);
  credit.set_batches(n);
  Send(EncodeFrame(loader::CREDIT, credit));
}

void LoaderClient::Impl::Send(std::string frame) {
  if (state_ == State::kConnected) link_->Send(std::move(frame));
}

bool LoaderClient::Impl::Expecting() const {
  if (!stream_.active) return false;
  // Waiting for the consumer to grant credits is the only quiet state of a stream.
  return !(stream_.steps >= 0 && stream_.next_step < stream_.steps && owed_ <= 0);
}

void LoaderClient::Impl::HandleFrame(const FrameHeader& header, const std::string& body) {
  switch (header.type) {
    case loader::WELCOME: {
      loader::Welcome welcome;
      ParseFrameBody(header, body, &welcome);
      if (options_.check_dataset && (welcome.num_samples() != options_.expected_samples ||
                                     welcome.index_crc32c() != options_.expected_index_crc32c)) {
        return Fatal(ErrorCode::kFailedPrecondition,
                     "loader " + options_.address + " serves another dataset (" +
                         std::to_string(welcome.num_samples()) + " samples, index CRC32C " +
                         std::to_string(welcome.index_crc32c()) + ") than this worker's (" +
                         std::to_string(options_.expected_samples) + " samples, index CRC32C " +
                         std::to_string(options_.expected_index_crc32c) + ")");
      }
      feature_sizes_.assign(welcome.feature_sizes().begin(), welcome.feature_sizes().end());
      in_outage_ = false;
      link_->ResetBackoff();
      return;
    }
    case loader::STREAM_INFO: {
      loader::StreamInfo info;
      ParseFrameBody(header, body, &info);
      if (!stream_.active || info.stream_id() != stream_.id) return;
      stream_.steps = info.steps();
      std::lock_guard<std::mutex> lock(mu_);
      if (consumer_stream_ == stream_.id) steps_ = info.steps();
      cv_.notify_all();
      return;
    }
    case loader::BATCH: {
      loader::BatchMeta meta;
      const std::string_view raw = ParseFrameBody(header, body, &meta);
      if (!stream_.active || meta.stream_id() != stream_.id) return;  // an older stream's
      if (meta.step() != stream_.next_step) {
        Fail(ErrorCode::kDataLoss, "sent step ", meta.step(), ", expected ", stream_.next_step);
      }
      DecodedBatch batch = DecodeBatch(meta, raw, feature_sizes_);
      ++stream_.next_step;
      --owed_;
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(Item{stream_.id, std::move(batch)});
      cv_.notify_all();
      return;
    }
    case loader::END_OF_EPOCH: {
      loader::EndOfEpoch end;
      ParseFrameBody(header, body, &end);
      if (end.stream_id() == stream_.id) stream_.active = false;
      return;
    }
    case loader::ERROR_REPLY: {
      loader::ErrorReply reply;
      ParseFrameBody(header, body, &reply);
      Fail(CodeFromWire(reply.code()), "refused: ", reply.message());
    }
    default:
      Fail(ErrorCode::kInvalidArgument, "unexpected ", loader::FrameType_Name(header.type),
           " frame");
  }
}

// ---- LoaderClient ----

LoaderClient::LoaderClient(LoaderClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
LoaderClient::~LoaderClient() = default;
void LoaderClient::StartEpoch(int epoch, int64_t first_step) {
  impl_->StartEpoch(epoch, first_step);
}
bool LoaderClient::Next(DecodedBatch* batch) { return impl_->Next(batch); }
int64_t LoaderClient::steps_in_epoch() const { return impl_->steps(); }
const std::string& LoaderClient::address() const { return impl_->options_.address; }
int64_t LoaderClient::reconnects() const { return impl_->reconnects_; }

}  // namespace flexmoe
