// The loader server (loader_server.h): the loader protocol's sessions on the shared framed
// server (cluster/net/server.h), which owns sockets, timers, limits and the token check.
#include "data_loader/loader_server.h"

#include <glog/logging.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "cluster/base/error.h"
#include "cluster/net/server.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/folds.h"
#include "data_loader/loader_wire.h"
#include "data_loader/plan_batch_source.h"

namespace flexmoe {
namespace {

// Frames from clients are small (HELLO, REQUEST, CREDIT); anything larger is refused.
constexpr uint32_t kMaxClientFrameBytes = 64u << 10;
// Plans hold every sample's position (8 bytes a sample): the few in use are kept (the
// epoch's, the next one's, validation and test).
constexpr size_t kPlanCacheSize = 4;

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
  bool evaluation;
  FoldOfData fold;
  bool operator==(const PlanKey& o) const {
    return split == o.split && seed == o.seed && epoch == o.epoch && warmup == o.warmup &&
           global_batch == o.global_batch && remainder == o.remainder && batching == o.batching &&
           world_size == o.world_size && evaluation == o.evaluation && fold == o.fold;
  }
};

}  // namespace

class LoaderServer::Impl {
 public:
  class Stream;

  // What a built batch frame is for: the stream's step of one session.
  struct BuildJob {
    std::shared_ptr<const bool> alive;  // false once the session is gone (io thread only)
    uint64_t stream_id = 0;
    std::shared_ptr<const EpochPlan> plan;
    int64_t step = 0;
    int worker = 0;
  };
  // The frame of `job`, or the error that stopped it (code and message).
  struct Built {
    std::string frame;
    std::optional<std::pair<ErrorCode, std::string>> error;
  };

  Impl(const PreparedDataset& prepared, const Samples& data, LoaderServerOptions options);
  ~Impl();
  std::shared_ptr<const EpochPlan> Plan(const loader::StreamRequest& request);
  // The prepared dataset, or its copy with a cross-fitting fold as the validation split (the
  // last fold asked for is kept: a job's members ask for theirs one after another).
  const PreparedDataset& DataOfFold(const FoldOfData& fold);
  // Builds `job`'s frame on the build pool, then runs `done` with it on the io thread if
  // the session is still there.
  void Build(BuildJob job, std::function<void(Built)> done);

  const PreparedDataset& prepared_;
  const Samples& data_;
  const LoaderServerOptions options_;
  std::vector<int> feature_sizes_;
  std::deque<std::pair<PlanKey, std::shared_ptr<const EpochPlan>>> plans_;  // io thread
  std::optional<std::pair<FoldOfData, PreparedDataset>> fold_data_;         // io thread
  std::atomic<int64_t> streams_{0}, batches_{0};
  std::unique_ptr<net::FramedServer> server_;
  // Last: joined before the server and the samples its tasks use go.
  std::unique_ptr<boost::asio::thread_pool> builders_;
};

// One client's session: the handshake's WELCOME, then the stream of its REQUEST.
class LoaderServer::Impl::Stream : public net::Session {
 public:
  explicit Stream(Impl* loader) : loader_(loader) {}
  ~Stream() override { *alive_ = false; }

  void OnFrame(net::Connection& c, const net::FrameHeader& h, const std::string& body) override {
    const FrameHeader header{static_cast<loader::FrameType>(h.type), h.length, h.meta_length,
                             h.crc};
    switch (header.type) {
      case loader::HELLO: {
        loader::Hello hello;
        ParseFrameBody(header, body, &hello);  // the server checked its token
        c.SetPeerName(hello.client());
        loader::Welcome welcome;
        for (int f : loader_->feature_sizes_) welcome.add_feature_sizes(f);
        welcome.set_num_samples(loader_->prepared_.size());
        welcome.set_index_crc32c(loader_->prepared_.meta.index_crc32c());
        c.Send(EncodeFrame(loader::WELCOME, welcome));
        LOG(INFO) << loader_->options_.name << ": " << c.Name() << " connected";
        return;
      }
      case loader::REQUEST: {
        loader::StreamRequest request;
        ParseFrameBody(header, body, &request);
        StartStream(c, request);
        return;
      }
      case loader::CREDIT: {
        loader::Credit credit;
        ParseFrameBody(header, body, &credit);
        if (streaming_ && credit.stream_id() == stream_id_) {
          credits_ = static_cast<uint32_t>(std::min<uint64_t>(
              loader_->options_.max_credits, static_cast<uint64_t>(credits_) + credit.batches()));
          Pump(c);
        }
        return;
      }
      default:
        Fail(ErrorCode::kInvalidArgument, "unexpected ", loader::FrameType_Name(header.type),
             " frame from a client");
    }
  }

  // A batch frame has been written: the next may be built.
  void OnWritten(net::Connection& c) override {
    batch_queued_ = false;
    Pump(c);
  }

 private:
  void StartStream(net::Connection& c, const loader::StreamRequest& request) {
    if (request.world_size() < 1 || request.worker() < 0 ||
        request.worker() >= request.world_size()) {
      Fail(ErrorCode::kInvalidArgument, "REQUEST for worker ", request.worker(), " of world size ",
           request.world_size());
    }
    std::shared_ptr<const EpochPlan> plan = loader_->Plan(request);
    if (request.first_step() < 0 || request.first_step() > plan->steps()) {
      Fail(ErrorCode::kInvalidArgument, "REQUEST from step ", request.first_step(), " of epoch ",
           request.epoch(), ", which has ", plan->steps(), " steps");
    }
    streaming_ = true;
    stream_id_ = request.stream_id();
    plan_ = std::move(plan);
    worker_ = request.worker();
    next_step_ = request.first_step();
    credits_ = std::min(request.credits(), loader_->options_.max_credits);
    ++loader_->streams_;
    loader::StreamInfo info;
    info.set_stream_id(stream_id_);
    info.set_steps(plan_->steps());
    info.set_first_step(next_step_);
    info.set_dropped(plan_->dropped);
    info.set_padded(plan_->padded);
    c.Send(EncodeFrame(loader::STREAM_INFO, info));
    VLOG(1) << "loader: " << c.Name() << " streams epoch " << request.epoch() << " from step "
            << next_step_ << " of " << plan_->steps();
    Pump(c);
  }

  // Has the next frame of the stream built (on the build pool) when the previous batch is
  // written and a credit is left: this is what bounds a connection's memory to one batch
  // frame.
  void Pump(net::Connection& c) {
    if (!streaming_ || batch_queued_ || building_) return;
    if (next_step_ >= plan_->steps()) {
      loader::EndOfEpoch end;
      end.set_stream_id(stream_id_);
      end.set_steps(plan_->steps());
      streaming_ = false;
      c.Send(EncodeFrame(loader::END_OF_EPOCH, end));
      return;
    }
    if (credits_ == 0) return;
    building_ = true;
    const uint64_t stream = stream_id_;
    net::Connection* connection = &c;
    loader_->Build({alive_, stream, plan_, next_step_, worker_},
                   [this, connection, stream](Built b) {
                     building_ = false;
                     if (b.error) {
                       connection->Refuse(b.error->first, b.error->second);
                       return;
                     }
                     if (!streaming_ || stream != stream_id_)
                       return Pump(*connection);  // a new REQUEST came
                     ++next_step_;
                     --credits_;
                     ++loader_->batches_;
                     batch_queued_ = true;
                     connection->Send(std::move(b.frame), /*notify=*/true);
                   });
  }

  Impl* loader_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool batch_queued_ = false;
  bool building_ = false;
  bool streaming_ = false;
  uint64_t stream_id_ = 0;
  std::shared_ptr<const EpochPlan> plan_;
  int worker_ = 0;
  int64_t next_step_ = 0;
  uint32_t credits_ = 0;
};

LoaderServer::Impl::Impl(const PreparedDataset& prepared, const Samples& data,
                         LoaderServerOptions options)
    : prepared_(prepared),
      data_(data),
      options_(std::move(options)),
      feature_sizes_(data.feature_sizes()) {
  net::ServerProtocol protocol;
  protocol.frame = LoaderProtocol();
  protocol.hello_type = loader::HELLO;
  protocol.hello_token = [](const net::FrameHeader& h, const std::string& body) {
    loader::Hello hello;
    ParseFrameBody({loader::HELLO, h.length, h.meta_length, h.crc}, body, &hello);
    return hello.token();
  };
  protocol.error_frame = [](ErrorCode code, const std::string& message) {
    loader::ErrorReply reply;
    reply.set_code(static_cast<int>(code));
    reply.set_message(message);
    return EncodeFrame(loader::ERROR_REPLY, reply);
  };
  net::ServerOptions server;
  server.listen = options_.listen;
  server.token = options_.token;
  // Frames from clients are small (HELLO, REQUEST, CREDIT); anything larger is refused.
  server.max_frame_bytes = std::min(options_.max_frame_bytes, kMaxClientFrameBytes);
  server.handshake_timeout_s = options_.handshake_timeout_s;
  server.write_timeout_s = options_.write_timeout_s;
  server.idle_timeout_s = options_.idle_timeout_s;
  server.max_connections = options_.max_connections;
  server.stop_on_signals = options_.stop_on_signals;
  server_ = std::make_unique<net::FramedServer>(
      std::move(protocol), server,
      [this](net::Connection&) { return std::make_unique<Stream>(this); });
  if (options_.build_threads < 1) {
    Fail(ErrorCode::kInvalidArgument, "loader: build_threads must be at least 1, not ",
         options_.build_threads);
  }
  builders_ = std::make_unique<boost::asio::thread_pool>(options_.build_threads);
}

LoaderServer::Impl::~Impl() {
  builders_->join();  // its tasks post to the server and read the samples
}

void LoaderServer::Impl::Build(BuildJob job, std::function<void(Built)> done) {
  boost::asio::post(*builders_, [this, job = std::move(job), done = std::move(done)]() mutable {
    Built built;
    try {
      built.frame = EncodeBatchFrame(job.stream_id, job.step,
                                     GatherSlice(data_, *job.plan, job.step, job.worker));
      if (built.frame.size() > options_.max_frame_bytes) {
        Fail(ErrorCode::kInvalidArgument, "the batch of step ", job.step, " is ",
             built.frame.size(), " bytes, over cluster.max_frame_bytes (", options_.max_frame_bytes,
             "); raise it or lower training.batch_size");
      }
    } catch (const Error& e) {
      LOG(ERROR) << options_.name << ": " << e.what();
      built.error.emplace(e.code(), e.what());
    }
    server_->Post([alive = job.alive, built = std::move(built), done = std::move(done)]() mutable {
      if (*alive) done(std::move(built));
    });
  });
}

std::shared_ptr<const EpochPlan> LoaderServer::Impl::Plan(const loader::StreamRequest& request) {
  const FoldOfData fold{static_cast<int>(request.folds()), static_cast<int>(request.fold()),
                        request.fold_seed()};
  const PlanKey key{request.split(),        request.seed(),
                    request.epoch(),        request.warmup(),
                    request.global_batch(), request.remainder(),
                    request.batching(),     request.world_size(),
                    request.evaluation(),   fold};
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
  options.evaluation = key.evaluation;
  auto plan = std::make_shared<const EpochPlan>(PlanEpoch(DataOfFold(fold), key.split, options));
  plans_.emplace_back(key, plan);
  if (plans_.size() > kPlanCacheSize) plans_.pop_front();
  return plan;
}

const PreparedDataset& LoaderServer::Impl::DataOfFold(const FoldOfData& fold) {
  if (fold.folds == 0) return prepared_;
  if (!fold_data_ || !(fold_data_->first == fold)) {
    fold_data_.emplace(fold, WithFoldAsValidation(prepared_, fold));
  }
  return fold_data_->second;
}

LoaderServer::LoaderServer(const PreparedDataset& prepared, const Samples& data,
                           LoaderServerOptions options)
    : impl_(std::make_unique<Impl>(prepared, data, std::move(options))) {}

LoaderServer::~LoaderServer() = default;

std::string LoaderServer::address() const { return impl_->server_->address(); }

void LoaderServer::Run() { impl_->server_->Run(); }

void LoaderServer::Stop() { impl_->server_->Stop(); }

LoaderServerStats LoaderServer::stats() const {
  const net::ServerStats n = impl_->server_->stats();
  LoaderServerStats s;
  s.connections_accepted = n.connections_accepted;
  s.connections_open = n.connections_open;
  s.connections_refused = n.connections_refused;
  s.streams_started = impl_->streams_;
  s.batches_sent = impl_->batches_;
  s.bytes_sent = n.bytes_sent;
  s.queued_bytes = n.queued_bytes;
  s.peak_queued_bytes = n.peak_queued_bytes;
  return s;
}

void LoaderServer::DropConnectionsForTest() {
  impl_->server_->DropConnections("dropped for a test");
}

}  // namespace flexmoe
