// The coordinator's membership, heartbeats, stop broadcast and job.json (service.h).
#include "cluster/coord/service.h"

#include <glog/logging.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cluster/base/error.h"
#include "cluster/base/latest_file_writer.h"
#include "cluster/base/placement_json.h"
#include "cluster/base/run_dir.h"
#include "cluster/coord/protocol.h"
#include "cluster/metrics/job_record.h"
#include "cluster/metrics/metrics_writer.h"
#include "cluster/metrics/step_records.h"
#include "cluster/net/job_token.h"
#include "cluster/net/server.h"
#include "cluster/web/http_server.h"
#include "cluster/web/job_view.h"
#include "cluster/web/routes.h"
#include "proto/config_compare.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;
namespace co = coordinator;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string Format(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f", seconds);
  return buffer;
}

}  // namespace

class CoordinatorService::Impl {
 public:
  class MemberSession;
  struct State {
    co::Member member;
    net::Connection* connection = nullptr;  // null once closed
    Clock::time_point last_heard = Clock::now();
    bool left = false;
    int64_t step = 0;
  };

  explicit Impl(CoordinatorOptions options);
  co::Accepted Register(net::Connection& c, const co::Register& request, int* id);
  void Heard(int id, int64_t step) {
    State& s = members_[id];
    s.last_heard = Clock::now();
    s.step = step;
    view_.Heard(s.member.role() == co::WORKER ? "worker" : "loader", s.member.rank(), s.last_heard);
  }
  void Left(int id, const co::Leave& leave);
  // A worker's REPORT: metrics records (merged and written in worker 0's order) and
  // checkpoints. A bad one ends the job, naming the worker.
  void Reported(int id, const co::Report& report);
  // PLACEMENT: worker 0 re-packed the experts; job.json shows where they are now.
  void Moved(int id, const co::Placement& placement);
  void Apply(std::vector<MetricsItem> items);
  void AddToView(const nlohmann::json& record);
  void Closed(int id, const std::string& why);
  void Beat();
  void CheckDeadlines();
  void Preempt(const std::string& reason);
  // Tells every live worker to checkpoint (and stop); returns how many were told.
  int SendCheckpoint(bool stop, const std::string& reason);
  // Ends the job: every live member but `culprit` gets STOP; the server stops shortly after.
  // `code`: the culprit's ErrorCode, when it said (-1 otherwise).
  void End(bool finished, const std::string& reason, int culprit, int code = -1);
  void WriteJobJson();
  // The live view's server (cluster.http_listen), with a token of its own in RUN/web.token.
  void StartHttp();
  // A member's state in job.json: running, left, stopped (told to stop as the job ended),
  // failed (the culprit) or gone (its connection closed).
  std::string MemberState(int id, const State& s) const;

  CoordinatorOptions options_;
  JobView view_;                      // what the live page shows
  std::unique_ptr<HttpServer> http_;  // serves view_ on a thread of its own
  std::string http_token_;
  std::unique_ptr<net::FramedServer> server_;
  std::map<int, State> members_;
  int next_id_ = 0;
  int world_size_ = 0;  // from the first worker
  PlacementMap placement_;
  std::unique_ptr<RecordJoiner> joiner_;   // once the world size is known
  std::unique_ptr<MetricsWriter> writer_;  // once worker 0 opened a run
  std::string newest_checkpoint_;
  co::Member culprit_;  // the member whose death ended the job
  int culprit_id_ = -1;
  std::string state_ = "starting", reason_;
  bool ending_ = false, preempting_ = false;
  int exit_code_ = 1;
  // RUN/job.json (none without a run directory); last, so that it is destroyed first,
  // writing what is pending.
  std::unique_ptr<LatestFileWriter> job_json_;
};

class CoordinatorService::Impl::MemberSession : public net::Session {
 public:
  explicit MemberSession(Impl* service) : service_(service) {}

  void OnFrame(net::Connection& c, const net::FrameHeader& header,
               const std::string& body) override {
    switch (header.type) {
      case co::REGISTER: {
        co::Register request;
        ParseCoordinatorFrame(header, body, &request);
        co::Accepted accepted;
        try {
          accepted = service_->Register(c, request, &id_);
        } catch (const Error& e) {
          // A refused worker leaves its job without a member: the job cannot run.
          if (request.member().role() == co::WORKER) service_->End(false, e.what(), -1);
          throw;
        }
        c.SetPeerName(MemberName(request.member()));
        c.Send(EncodeCoordinatorFrame(co::ACCEPTED, accepted));
        return;
      }
      case co::HEARTBEAT: {
        co::Heartbeat beat;
        ParseCoordinatorFrame(header, body, &beat);
        service_->Heard(id_, beat.global_step());
        return;
      }
      case co::REPORT: {
        co::Report report;
        ParseCoordinatorFrame(header, body, &report);
        service_->Reported(id_, report);
        return;
      }
      case co::PLACEMENT: {
        co::Placement placement;
        ParseCoordinatorFrame(header, body, &placement);
        service_->Moved(id_, placement);
        return;
      }
      case co::LEAVE: {
        co::Leave leave;
        ParseCoordinatorFrame(header, body, &leave);
        service_->Left(id_, leave);
        return;
      }
      case co::PREEMPT: {
        co::Preempt preempt;
        ParseCoordinatorFrame(header, body, &preempt);
        service_->Preempt(preempt.reason());
        return;
      }
      default:
        Fail(ErrorCode::kInvalidArgument, "unexpected ",
             CoordinatorProtocol().type_name(header.type), " from a member");
    }
  }
  void OnClose(const std::string& why) override {
    if (id_ >= 0) service_->Closed(id_, why);
  }

 private:
  Impl* service_;
  int id_ = -1;
};

CoordinatorService::Impl::Impl(CoordinatorOptions options)
    : options_(std::move(options)), view_(options_.heartbeat_timeout_s, options_.restart) {
  if (!options_.run_dir.empty()) {
    job_json_ = std::make_unique<LatestFileWriter>(RunDir(options_.run_dir).job_json());
  }
  net::ServerProtocol protocol;
  protocol.frame = CoordinatorProtocol();
  protocol.hello_type = co::REGISTER;
  protocol.hello_token = [](const net::FrameHeader& h, const std::string& body) {
    co::Register request;
    ParseCoordinatorFrame(h, body, &request);
    return request.token();
  };
  protocol.error_frame = [](ErrorCode code, const std::string& message) {
    co::Refused refused;
    refused.set_code(static_cast<int>(code));
    refused.set_message(message);
    return EncodeCoordinatorFrame(co::REFUSED, refused);
  };
  net::ServerOptions server;
  server.listen = options_.listen;
  server.token = options_.token;
  server.max_frame_bytes = options_.max_frame_bytes;
  server.handshake_timeout_s = options_.handshake_timeout_s;
  // Members beat every interval; the heartbeat check (with its clearer message) comes first.
  server.idle_timeout_s = 2 * options_.heartbeat_timeout_s;
  server.write_timeout_s = options_.heartbeat_timeout_s;
  server_ = std::make_unique<net::FramedServer>(
      std::move(protocol), server,
      [this](net::Connection&) { return std::make_unique<MemberSession>(this); });
  server_->Every(options_.heartbeat_interval_s, [this] { Beat(); });
  server_->Every(options_.heartbeat_interval_s / 4, [this] { CheckDeadlines(); });
  std::error_code ec;
  if (!options_.run_dir.empty()) std::filesystem::create_directories(options_.run_dir, ec);
  StartHttp();
  WriteJobJson();
}

void CoordinatorService::Impl::StartHttp() {
  if (options_.http_listen.empty()) return;
  HttpServerOptions http;
  http.listen = options_.http_listen;
  http.what = "cluster.http_listen";
  if (options_.http_require_token) {
    // A token of its own: the page's URL and cookie never carry the job token (which lets a
    // member join the job).
    http.token = NewToken();
    if (!options_.run_dir.empty()) WriteTokenFile(RunDir(options_.run_dir).web_token(), http.token);
  }
  http_token_ = http.token;
  http_ = std::make_unique<HttpServer>(http, ViewRoutes([this] { return view_.Snapshot(); }));
}

co::Accepted CoordinatorService::Impl::Register(net::Connection& c, const co::Register& request,
                                                int* id) {
  const co::Member& m = request.member();
  const std::string name = MemberName(m);
  if (ending_) Fail(ErrorCode::kFailedPrecondition, "the job is ending");
  if (preempting_) Fail(ErrorCode::kFailedPrecondition, "the job is being preempted");
  if (m.role() != co::WORKER && m.role() != co::LOADER) {
    Fail(ErrorCode::kInvalidArgument, name, ": unknown role");
  }
  if (request.config_hash() != options_.config_hash) {
    std::string difference = "config hash " + std::to_string(request.config_hash()) +
                             ", the coordinator's " + std::to_string(options_.config_hash);
    try {
      difference = FirstComputationDifference(ParseConfig(options_.config_text, "coordinator", {}),
                                              ParseConfig(request.config_text(), name, {}));
    } catch (const Error&) {
    }
    Fail(ErrorCode::kInvalidArgument, name, " computes with another config than the ",
         "coordinator: ", difference);
  }
  if (m.role() == co::WORKER) {
    if (world_size_ == 0 && request.world_size() > 0) {
      world_size_ = request.world_size();
      placement_ = options_.placement(world_size_);
      joiner_ = std::make_unique<RecordJoiner>(world_size_);
    }
    if (request.world_size() != world_size_ || m.rank() < 0 || m.rank() >= world_size_) {
      Fail(ErrorCode::kInvalidArgument, name, ": rank ", m.rank(), " of world size ",
           request.world_size(), ", but the job has ", world_size_, " workers");
    }
  }
  for (const auto& [other, state] : members_) {
    if (state.member.role() == m.role() && state.member.rank() == m.rank()) {
      Fail(ErrorCode::kInvalidArgument, name, ": ", MemberName(state.member),
           " is registered already with that rank");
    }
  }
  *id = next_id_++;
  State& state = members_[*id];
  state.member = m;
  state.connection = &c;
  Heard(*id, 0);
  state_ = "running";
  LOG(INFO) << "coordinator: " << name << " registered";
  WriteJobJson();

  co::Accepted accepted;
  accepted.set_job_id(options_.job_id);
  accepted.set_run_dir(options_.run_dir);
  accepted.set_heartbeat_interval_s(options_.heartbeat_interval_s);
  accepted.set_heartbeat_timeout_s(options_.heartbeat_timeout_s);
  accepted.set_checkpoint_every_steps(options_.checkpoint_every_steps);
  accepted.set_checkpoint_every_epochs(options_.checkpoint_every_epochs);
  accepted.set_checkpoint_keep_last(options_.checkpoint_keep_last);
  if (m.role() == co::WORKER) {
    *accepted.mutable_placement() = PlacementToProto(placement_);
  }
  return accepted;
}

void CoordinatorService::Impl::Left(int id, const co::Leave& leave) {
  State& s = members_[id];
  if (leave.has_error()) {
    return End(false, MemberName(s.member) + " failed: " + leave.error(), id,
               leave.has_code() ? leave.code() : -1);
  }
  s.left = true;
  s.last_heard = Clock::now();
  LOG(INFO) << "coordinator: " << MemberName(s.member) << " left";
  int workers_left = 0;
  for (const auto& [other, state] : members_) {
    workers_left += state.member.role() == co::WORKER && state.left;
  }
  WriteJobJson();
  if (world_size_ > 0 && workers_left == world_size_) End(true, "", -1);
}

void CoordinatorService::Impl::Reported(int id, const co::Report& report) {
  const co::Member& m = members_[id].member;
  try {
    if (m.role() != co::WORKER || joiner_ == nullptr) {
      Fail(ErrorCode::kInvalidArgument, "only workers report");
    }
    const bool zero = m.rank() == 0;
    if (!zero && (report.has_open() || report.continue_at() >= 0 || report.has_checkpoint())) {
      Fail(ErrorCode::kInvalidArgument, "only worker 0 opens runs, continues logs and reports ",
           "checkpoints");
    }
    if (report.has_open()) {
      const std::string& name = report.open();
      if (name.find('/') != std::string::npos || name == "." || name == "..") {
        Fail(ErrorCode::kInvalidArgument, "run directory '", name, "' is not a seed directory");
      }
      Apply(joiner_->Open(name));
    }
    if (report.continue_at() >= 0) Apply(joiner_->ContinueAt(report.continue_at()));
    if (report.flush() > 0 && !zero) Fail(ErrorCode::kInvalidArgument, "only worker 0 flushes");
    if (report.has_record()) {
      nlohmann::json record = nlohmann::json::parse(report.record(), nullptr, false);
      if (!record.is_object()) Fail(ErrorCode::kInvalidArgument, "a record that is not JSON");
      Apply(joiner_->Add(m.rank(), std::move(record)));
    }
    if (report.flush() > 0) Apply(joiner_->Flush(report.flush()));
    if (report.has_checkpoint()) {
      newest_checkpoint_ = report.checkpoint();
      WriteJobJson();
    }
  } catch (const Error& e) {
    End(false, MemberName(m) + " sent a bad report: " + e.what(), id);
  }
}

void CoordinatorService::Impl::Moved(int id, const co::Placement& message) {
  const co::Member& m = members_[id].member;
  try {
    if (m.role() != co::WORKER || m.rank() != 0) {
      Fail(ErrorCode::kInvalidArgument, "only worker 0 reports placements");
    }
    PlacementMap placement = PlacementFromProto(message);
    if (placement.ranks != placement_.ranks ||
        placement.layers.size() != placement_.layers.size()) {
      Fail(ErrorCode::kInvalidArgument, "a placement over ", placement.ranks, " ranks and ",
           placement.layers.size(), " layers for a job of ", placement_.ranks, " and ",
           placement_.layers.size());
    }
    for (const auto& [layer, p] : placement_.layers) {
      auto it = placement.layers.find(layer);
      if (it == placement.layers.end() || it->second.num_experts() != p.num_experts()) {
        Fail(ErrorCode::kInvalidArgument, "a placement without layer ", layer, "'s ",
             p.num_experts(), " experts");
      }
    }
    placement_ = std::move(placement);
    LOG(INFO) << "experts re-packed after step " << message.global_step();
    WriteJobJson();
  } catch (const Error& e) {
    End(false, MemberName(m) + " sent a bad placement: " + e.what(), id);
  }
}

void CoordinatorService::Impl::Apply(std::vector<MetricsItem> items) {
  for (MetricsItem& item : items) {
    if (item.flush > 0) {
      co::Flushed flushed;
      flushed.set_flush(item.flush);
      for (auto& [id, s] : members_) {
        if (s.member.role() == co::WORKER && s.member.rank() == 0 && s.connection != nullptr) {
          s.connection->Send(EncodeCoordinatorFrame(co::FLUSHED, flushed));
        }
      }
    } else if (item.opens) {
      if (options_.run_dir.empty()) continue;
      const std::string dir =
          item.open.empty() ? options_.run_dir : options_.run_dir + "/" + item.open;
      writer_ = std::make_unique<MetricsWriter>(dir, options_.tensorboard);
    } else if (item.continue_at >= 0) {
      if (writer_ != nullptr) writer_->ContinueAt(item.continue_at);
    } else {
      if (writer_ != nullptr) writer_->Write(item.record);  // none: a run without a directory
      AddToView(item.record);
    }
  }
}

void CoordinatorService::Impl::AddToView(const nlohmann::json& record) {
  try {
    view_.AddRecord(record);
  } catch (const std::exception& e) {
    // The live view never ends a job: the record is in metrics.jsonl all the same.
    LOG(WARNING) << "coordinator: the live view skips a record: " << e.what();
  }
}

void CoordinatorService::Impl::Closed(int id, const std::string& why) {
  State& s = members_[id];
  s.connection = nullptr;
  if (s.left || ending_) return;
  End(false,
      MemberName(s.member) + " closed its connection (" + why + "), last heard " +
          Format(SecondsSince(s.last_heard)) + " s ago",
      id);
}

void CoordinatorService::Impl::Beat() {
  const std::string frame = EncodeCoordinatorFrame(co::HEARTBEAT, co::Heartbeat());
  for (auto& [id, s] : members_) {
    if (s.connection != nullptr && !s.left) s.connection->Send(frame);
  }
}

void CoordinatorService::Impl::CheckDeadlines() {
  if (ending_) return;
  for (auto& [id, s] : members_) {
    if (s.left || s.connection == nullptr) continue;
    const double silent = SecondsSince(s.last_heard);
    if (silent > options_.heartbeat_timeout_s) {
      return End(false,
                 MemberName(s.member) + " sent no heartbeat for " + Format(silent) +
                     " s (hung, stopped or cut off)",
                 id);
    }
  }
}

void CoordinatorService::Impl::Preempt(const std::string& reason) {
  if (ending_ || preempting_) return;
  preempting_ = true;
  reason_ = reason;
  LOG(WARNING) << "coordinator: " << reason << ": the workers checkpoint and stop";
  PrintErrorLine("flexmoe coordinator: " + reason + ": the workers checkpoint and stop");
  const int told = SendCheckpoint(true, reason);
  WriteJobJson();
  // No worker to checkpoint (none has joined yet, or all have left): nothing to wait for.
  if (told == 0) End(true, reason, -1);
}

int CoordinatorService::Impl::SendCheckpoint(bool stop, const std::string& reason) {
  co::Checkpoint checkpoint;
  checkpoint.set_stop(stop);
  checkpoint.set_reason(reason);
  const std::string frame = EncodeCoordinatorFrame(co::CHECKPOINT, checkpoint);
  int told = 0;
  for (auto& [id, s] : members_) {
    if (s.member.role() == co::WORKER && s.connection != nullptr && !s.left) {
      s.connection->Send(frame);
      ++told;
    }
  }
  return told;
}

void CoordinatorService::Impl::End(bool finished, const std::string& reason, int culprit,
                                   int code) {
  if (ending_) return;
  ending_ = true;
  exit_code_ = finished ? 0 : 1;
  state_ = finished ? (preempting_ ? "preempted" : "finished") : "failed";
  if (!finished || !preempting_) reason_ = reason;
  if (!finished) {
    LOG(ERROR) << "coordinator: stopping the job: " << reason;
    PrintErrorLine("flexmoe coordinator: stopping the job: " + reason);
  }
  co::Stop stop;
  stop.set_finished(finished);
  stop.set_reason(reason);
  if (code >= 0) stop.set_code(code);
  if (culprit >= 0) {
    *stop.mutable_culprit() = members_[culprit].member;
    culprit_ = members_[culprit].member;
    culprit_id_ = culprit;
  }
  const std::string frame = EncodeCoordinatorFrame(co::STOP, stop);
  for (auto& [id, s] : members_) {
    if (id != culprit && s.connection != nullptr) s.connection->Send(frame);
  }
  WriteJobJson();
  // Time for the STOP frames to go out before the connections close.
  server_->After(0.5, [this] { server_->Stop(); });
}

std::string CoordinatorService::Impl::MemberState(int id, const State& s) const {
  if (s.left) return "left";
  if (ending_ && id == culprit_id_) return "failed";
  if (s.connection == nullptr) return "gone";
  return ending_ ? "stopped" : "running";  // stopped: told to stop as the job ended
}

namespace {

JobMemberRecord MemberRecord(const co::Member& m) {
  JobMemberRecord r;
  r.role = m.role() == co::WORKER ? "worker" : "loader";
  r.rank = m.rank();
  r.host = m.host();
  r.port = m.port();
  r.pid = m.pid();
  return r;
}

}  // namespace

void CoordinatorService::Impl::WriteJobJson() {
  JobRecord job;
  job.job_id = options_.job_id;
  job.state = state_;
  job.coordinator = server_ ? server_->address() : "";
  job.workers = world_size_;
  for (const auto& [id, s] : members_) {
    job.members.push_back(MemberRecord(s.member));
    job.members.back().state = MemberState(id, s);
  }
  job.placement = placement_;
  job.newest_checkpoint = newest_checkpoint_.empty() && !options_.run_dir.empty()
                              ? RunDir(options_.run_dir).NewestCheckpoint()
                              : newest_checkpoint_;
  job.reason = reason_;
  if (culprit_.has_role()) job.culprit = MemberRecord(culprit_);
  job.combinations = options_.combination_names;
  view_.SetJob(job);
  // Written by job_json_'s own thread: this thread judges heartbeats.
  if (job_json_) job_json_->Submit(JobRecordToJson(job).dump(2) + "\n");
}

CoordinatorService::CoordinatorService(CoordinatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
CoordinatorService::~CoordinatorService() = default;
std::string CoordinatorService::address() const { return impl_->server_->address(); }
std::string CoordinatorService::http_address() const {
  return impl_->http_ ? impl_->http_->address() : "";
}
std::string CoordinatorService::http_token() const { return impl_->http_token_; }

int CoordinatorService::Run() {
  impl_->WriteJobJson();
  impl_->server_->Run();
  // The job's end is on disk before the coordinator's exit says it ended.
  if (impl_->job_json_ && !impl_->job_json_->Flush(std::chrono::seconds(30))) {
    LOG(WARNING) << "coordinator: job.json not written within 30 s of the job's end";
  }
  return impl_->exit_code_;
}

void CoordinatorService::Stop(const std::string& why) {
  impl_->server_->Post([impl = impl_.get(), why] { impl->End(false, why, -1); });
}

void CoordinatorService::Checkpoint(const std::string& why) {
  impl_->server_->Post([impl = impl_.get(), why] {
    if (impl->ending_ || impl->preempting_) return;
    LOG(INFO) << "coordinator: " << why << ": the workers checkpoint";
    std::cout << "checkpoint requested (" << why << ")" << std::endl;
    impl->SendCheckpoint(false, why);
  });
}

void CoordinatorService::Preempt(const std::string& why) {
  impl_->server_->Post([impl = impl_.get(), why] { impl->Preempt(why); });
}

}  // namespace flexmoe
