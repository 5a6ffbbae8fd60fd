// The member's registration and heartbeat thread (client.h).
#include "cluster/coord/client.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/coord/protocol.h"
#include "cluster/net/channel.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;
namespace co = coordinator;

double SecondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

class CoordinatorClient::Impl {
 public:
  explicit Impl(CoordinatorClientOptions options)
      : options_(std::move(options)), channel_(CoordinatorProtocol(), options_.max_frame_bytes) {
    channel_.Connect(options_.address, options_.connect_timeout_s);
    co::Register request;
    request.set_token(options_.token);
    *request.mutable_member() = options_.member;
    request.set_world_size(options_.world_size);
    request.set_config_hash(options_.config_hash);
    request.set_config_text(options_.config_text);
    channel_.Send(EncodeCoordinatorFrame(co::REGISTER, request), options_.connect_timeout_s);
    net::FrameHeader header;
    std::string body;
    if (!channel_.Receive(&header, &body, options_.connect_timeout_s)) {
      Fail(ErrorCode::kDeadlineExceeded, "coordinator ", options_.address, " did not answer ",
           "the registration within ", options_.connect_timeout_s, " s");
    }
    if (header.type == co::REFUSED) {
      co::Refused refused;
      ParseCoordinatorFrame(header, body, &refused);
      Fail(static_cast<ErrorCode>(refused.code()), "coordinator ", options_.address, " refused ",
           MemberName(options_.member), ": ", refused.message());
    }
    if (header.type != co::ACCEPTED) {
      Fail(ErrorCode::kInvalidArgument, "coordinator ", options_.address, " answered ",
           CoordinatorProtocol().type_name(header.type), " to REGISTER");
    }
    ParseCoordinatorFrame(header, body, &accepted_);
    if (!(accepted_.heartbeat_interval_s() > 0) ||
        accepted_.heartbeat_timeout_s() < accepted_.heartbeat_interval_s()) {
      Fail(ErrorCode::kInvalidArgument, "coordinator ", options_.address,
           ": bad heartbeat settings");
    }
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() {
    quit_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void Leave() {
    leave_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void LeaveWithError(int code, const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      leave_message_.set_code(code);
      leave_message_.set_error(message);
    }
    Leave();
  }

  void Loop() {
    const double interval = accepted_.heartbeat_interval_s();
    const double timeout = accepted_.heartbeat_timeout_s();
    auto last_heard = Clock::now();
    auto next_beat = Clock::now();
    try {
      while (!quit_) {
        auto now = Clock::now();
        if (preempt_.exchange(false)) {
          co::Preempt preempt;
          {
            std::lock_guard<std::mutex> lock(mu_);
            preempt.set_reason(preempt_reason_);
          }
          channel_.Send(EncodeCoordinatorFrame(co::PREEMPT, preempt), timeout);
        }
        SendReports(timeout);
        if (leave_) {
          SendReports(timeout);  // queued before Leave()
          co::Leave leave;
          {
            std::lock_guard<std::mutex> lock(mu_);
            leave = leave_message_;
          }
          channel_.Send(EncodeCoordinatorFrame(co::LEAVE, leave), interval);
          channel_.Close();
          return;
        }
        if (now >= next_beat) {
          co::Heartbeat beat;
          beat.set_global_step(step_.load());
          channel_.Send(EncodeCoordinatorFrame(co::HEARTBEAT, beat), timeout);
          next_beat = now + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(interval));
        }
        net::FrameHeader header;
        std::string body;
        // Short waits, so that Leave and the destructor are answered promptly.
        const double wait = std::min(0.1, std::max(0.0, SecondsBetween(Clock::now(), next_beat)));
        if (!channel_.Receive(&header, &body, wait)) {
          // Judged only once nothing waits unread: a thread that was itself starved or
          // stopped reads what the coordinator sent meanwhile before it calls it silent.
          const double silent = SecondsBetween(last_heard, Clock::now());
          if (silent > timeout) {
            if (options_.on_lost) options_.on_lost();
            return Stop(false, "lost the coordinator at " + options_.address +
                                   ": nothing heard for " + std::to_string(silent) + " s");
          }
          continue;
        }
        last_heard = Clock::now();
        if (header.type == co::CHECKPOINT) {
          co::Checkpoint checkpoint;
          ParseCoordinatorFrame(header, body, &checkpoint);
          (checkpoint.stop() ? stop_requested_ : checkpoint_requested_) = true;
          continue;
        }
        if (header.type == co::FLUSHED) {
          co::Flushed flushed;
          ParseCoordinatorFrame(header, body, &flushed);
          std::lock_guard<std::mutex> lock(mu_);
          flushed_ = std::max(flushed_, flushed.flush());
          flushed_changed_.notify_all();
          continue;
        }
        if (header.type == co::STOP) {
          co::Stop stop;
          ParseCoordinatorFrame(header, body, &stop);
          return Stop(
              stop.finished(),
              stop.finished() ? "the job finished" : "stopped by the coordinator: " + stop.reason(),
              stop.has_code() ? ExitStatusFor(static_cast<ErrorCode>(stop.code())) : 1);
        }
      }
    } catch (const Error& e) {
      if (!quit_ && !leave_) {
        if (options_.on_lost) options_.on_lost();
        Stop(false, "lost the coordinator at " + options_.address + ": " + e.what());
      }
    }
  }

  void SendReports(double timeout) {
    std::deque<std::string> frames;
    {
      std::lock_guard<std::mutex> lock(mu_);
      frames.swap(outgoing_);
    }
    for (const std::string& frame : frames) channel_.Send(frame, timeout);
  }

  void Stop(bool finished, const std::string& line, int exit_status = 1) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended_ = true;
      flushed_changed_.notify_all();
    }
    if (options_.on_stop) options_.on_stop(finished, line, finished ? 0 : exit_status);
  }

  CoordinatorClientOptions options_;
  net::Channel channel_;
  co::Accepted accepted_;
  std::atomic<int64_t> step_{0};
  std::atomic<bool> quit_{false}, leave_{false}, preempt_{false}, stop_requested_{false},
      checkpoint_requested_{false};
  std::mutex mu_;
  std::string preempt_reason_;
  std::deque<std::string> outgoing_;  // REPORT and PLACEMENT frames, in order
  co::Leave leave_message_;
  int64_t flushed_ = 0;
  bool ended_ = false;  // the thread stopped: no FLUSHED will come
  std::condition_variable flushed_changed_;
  std::thread thread_;
};

CoordinatorClient::CoordinatorClient(CoordinatorClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
CoordinatorClient::~CoordinatorClient() = default;
const coordinator::Accepted& CoordinatorClient::accepted() const { return impl_->accepted_; }
void CoordinatorClient::SetStep(int64_t global_step) { impl_->step_ = global_step; }
void CoordinatorClient::Leave() { impl_->Leave(); }
void CoordinatorClient::LeaveWithError(int code, const std::string& message) {
  impl_->LeaveWithError(code, message);
}
void CoordinatorClient::Report(coordinator::Report report) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->outgoing_.push_back(EncodeCoordinatorFrame(co::REPORT, report));
}
bool CoordinatorClient::stop_requested() const { return impl_->stop_requested_; }
bool CoordinatorClient::TakeCheckpointRequest() {
  return impl_->checkpoint_requested_.exchange(false);
}
void CoordinatorClient::Preempt(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    impl_->preempt_reason_ = reason;
  }
  impl_->preempt_ = true;
}

void CoordinatorClient::WaitForFlush(int64_t number, double timeout_s) {
  std::unique_lock<std::mutex> lock(impl_->mu_);
  const bool done =
      impl_->flushed_changed_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                                       [&] { return impl_->flushed_ >= number || impl_->ended_; });
  if (impl_->flushed_ >= number) return;
  if (!done) {
    Fail(ErrorCode::kDeadlineExceeded, "coordinator ", impl_->options_.address,
         " did not confirm the metrics within ", timeout_s, " s");
  }
  Fail(ErrorCode::kUnavailable, "lost the coordinator at ", impl_->options_.address,
       " before it confirmed the metrics");
}

PlacementMap CoordinatorClient::placement() const {
  return PlacementFromProto(impl_->accepted_.placement());
}

void CoordinatorClient::ReportPlacement(const PlacementMap& placement, int64_t global_step) {
  coordinator::Placement message = PlacementToProto(placement);
  message.set_global_step(global_step);
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->outgoing_.push_back(EncodeCoordinatorFrame(co::PLACEMENT, message));
}

}  // namespace flexmoe
