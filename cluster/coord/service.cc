// The coordinator (service.h): registration, heartbeats and the verdict, the stop broadcast,
// preemption, placement and job.json; the members in a MemberTable, the reports through a
// ReportRouter.
#include "cluster/coord/service.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "cluster/base/latest_file_writer.h"
#include "cluster/base/open_files.h"
#include "cluster/base/placement_json.h"
#include "cluster/base/run_dir.h"
#include "cluster/coord/latency_window.h"
#include "cluster/coord/member_table.h"
#include "cluster/coord/protocol.h"
#include "cluster/coord/report_router.h"
#include "cluster/metrics/job_record.h"
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

double StopDrainSeconds(size_t members) { return 0.5 + 250e-6 * static_cast<double>(members); }

int CoordinatorConnections(int max_members) { return std::max(512, max_members + 64); }

// How the job stands and, once it ends, why: job.json's state, reason and culprit, and the
// coordinator's exit status.
struct JobVerdict {
  std::string state = "starting", reason;
  co::Member culprit;  // the member whose death ended the job
  int culprit_id = -1;
  bool ending = false, preempting = false;
  int exit_code = 1;
};

class CoordinatorService::Impl {
 public:
  class MemberSession;

  explicit Impl(CoordinatorOptions options);
  co::Accepted Register(net::Connection& c, const co::Register& request, int* id);
  // A member was heard from: its registration, or a heartbeat (whose gap since the one
  // before goes into the control-plane figures).
  void Heard(int id, int64_t step, bool heartbeat) {
    MemberTable::Entry& s = members_.at(id);
    const Clock::time_point now = Clock::now();
    if (heartbeat)
      heartbeat_gaps_.Add(std::chrono::duration<double>(now - s.last_heard).count(), now);
    s.last_heard = now;
    s.step = step;
    view_.Heard(s.member.role() == co::WORKER ? "worker" : "loader", s.member.rank(), s.last_heard);
  }
  // Every 100 ms: how late this tick ran is how long a frame that arrived waited.
  void Tick() {
    const Clock::time_point now = Clock::now();
    const double late = std::chrono::duration<double>(now - last_tick_).count() - kTickSeconds;
    loop_lag_.Add(std::max(0.0, late), now);
    last_tick_ = now;
  }
  void PublishControlPlane();
  void Left(int id, const co::Leave& leave);
  // A worker's REPORT: metrics records (merged and written in worker 0's order) and
  // checkpoints. A bad one ends the job, naming the worker.
  void Reported(int id, const co::Report& report);
  // FLUSHED to worker 0: its flush is written (the metrics writer's thread said so).
  void SendFlushed(int64_t flush);
  // PLACEMENT: worker 0 re-packed the experts; job.json shows where they are now.
  void Moved(int id, const co::Placement& placement);
  void Closed(int id, const std::string& why);
  void Beat();
  void CheckDeadlines();
  void Preempt(const std::string& reason);
  // Tells every live worker to checkpoint (and stop); returns how many were told.
  int SendCheckpoint(bool stop, const std::string& reason);
  // Ends the job: every live member but `culprit` gets STOP; the server stops shortly after.
  // `code`: the culprit's ErrorCode, when it said (-1 otherwise).
  void End(bool finished, const std::string& reason, int culprit, int code = -1);
  // job.json and the live view's job record: written at most every kJobJsonSeconds (a
  // change marks it due), at once when the job ends. Building it costs a pass over every
  // member: 4,096 registrations must not cost 4,096 passes each.
  void WriteJobJson();
  void WriteJobJsonNow();
  // The live view's server (cluster.http_listen), with a token of its own in RUN/web.token.
  void StartHttp();
  // A member's state in job.json: running, left, stopped (told to stop as the job ended),
  // failed (the culprit) or gone (its connection closed).
  std::string MemberState(int id, const MemberTable::Entry& s) const;

  CoordinatorOptions options_;
  JobView view_;                      // what the live page shows
  std::unique_ptr<HttpServer> http_;  // serves view_ on a thread of its own
  std::string http_token_;
  std::unique_ptr<net::FramedServer> server_;
  MemberTable members_;
  // Looks at the members' silence every heartbeat_interval_s / 10 (a pass over the members: 4,096
  // in microseconds); a look more than half the heartbeat timeout late (this thread stalled) judges
  // nobody (member_table.h).
  StallGuard silence_guard_{options_.heartbeat_timeout_s / 2};
  PlacementMap placement_;  // once the first worker gave the world size
  ReportRouter reports_;
  JobVerdict verdict_;
  // Connections the server takes (CoordinatorConnections); raised once the first worker
  // gives the world size. Open files besides them: the page's, the logs', the metrics'.
  int connections_ = 0;
  static constexpr int kOtherFiles = 192;
  bool job_json_due_ = false;
  // The newest checkpoint in the run directory when the coordinator started (a resumed
  // job's), until a worker reports one: looked up once, not on every job.json.
  std::string initial_checkpoint_;
  static constexpr double kTickSeconds = 0.1, kJobJsonSeconds = 0.2;
  Clock::time_point last_tick_ = Clock::now();
  LatencyWindow loop_lag_, heartbeat_gaps_, job_json_build_;
  int64_t reports_taken_ = 0, reports_published_ = 0;
  Clock::time_point published_ = Clock::now();
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
        service_->Heard(id_, beat.global_step(), true);
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
    : options_(std::move(options)),
      view_(options_.heartbeat_timeout_s, options_.restart, options_.per_worker_limit),
      reports_(
          options_.run_dir, options_.tensorboard, options_.per_worker_limit, &view_,
          // From the metrics writer's thread, back onto this one.
          [this](int64_t flush) { server_->Post([this, flush] { SendFlushed(flush); }); },
          [this](const std::string& why) {
            server_->Post([this, why] {
              End(false, "the coordinator cannot write the metrics: " + why, -1);
            });
          }) {
  if (!options_.run_dir.empty()) {
    job_json_ = std::make_unique<LatestFileWriter>(RunDir(options_.run_dir).job_json());
    initial_checkpoint_ = RunDir(options_.run_dir).NewestCheckpoint();
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
  connections_ = CoordinatorConnections(options_.max_members);
  EnsureOpenFiles(connections_ + kOtherFiles, "the coordinator");
  server.max_connections = connections_;
  // Members beat every interval; the heartbeat check (with its clearer message) comes first.
  server.idle_timeout_s = 2 * options_.heartbeat_timeout_s;
  server.write_timeout_s = options_.heartbeat_timeout_s;
  server_ = std::make_unique<net::FramedServer>(
      std::move(protocol), server,
      [this](net::Connection&) { return std::make_unique<MemberSession>(this); });
  server_->Every(options_.heartbeat_interval_s, [this] { Beat(); });
  server_->Every(options_.heartbeat_interval_s / 10, [this] { CheckDeadlines(); });
  server_->Every(kTickSeconds, [this] { Tick(); });
  server_->Every(1, [this] { PublishControlPlane(); });
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
  // A token of its own: the page's URL and cookie never carry the job token (which lets a
  // member join the job). Written once the server listens: a page that could not start
  // leaves no token behind.
  if (options_.http_require_token) http.token = NewToken();
  http_token_ = http.token;
  http_ = std::make_unique<HttpServer>(http, ViewRoutes([this] { return view_.Snapshot(); }));
  if (!http_token_.empty() && !options_.run_dir.empty()) {
    WriteTokenFile(RunDir(options_.run_dir).web_token(), http_token_);
  }
}

co::Accepted CoordinatorService::Impl::Register(net::Connection& c, const co::Register& request,
                                                int* id) {
  const co::Member& m = request.member();
  const std::string name = MemberName(m);
  if (verdict_.ending) Fail(ErrorCode::kFailedPrecondition, "the job is ending");
  if (verdict_.preempting) Fail(ErrorCode::kFailedPrecondition, "the job is being preempted");
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
  const bool had_world = members_.world_size() > 0;
  *id = members_.Add(m, request.world_size(), &c);
  if (!had_world && members_.world_size() > 0) {
    placement_ = options_.placement(members_.world_size());
    reports_.Start(members_.world_size());
    // The workers and at most a loader each: whatever the config said, this is the job.
    const int connections = CoordinatorConnections(2 * members_.world_size());
    if (connections > connections_) {
      EnsureOpenFiles(connections + kOtherFiles, "the coordinator");
      connections_ = connections;
      server_->SetMaxConnections(connections_);
    }
  }
  Heard(*id, 0, false);
  verdict_.state = "running";
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
  MemberTable::Entry& s = members_.at(id);
  if (leave.has_error()) {
    return End(false, MemberName(s.member) + " failed: " + leave.error(), id,
               leave.has_code() ? leave.code() : -1);
  }
  s.left = true;
  s.last_heard = Clock::now();
  LOG(INFO) << "coordinator: " << MemberName(s.member) << " left";
  WriteJobJson();
  if (members_.world_size() > 0 && members_.workers_left() == members_.world_size()) {
    End(true, "", -1);
  }
}

void CoordinatorService::Impl::Reported(int id, const co::Report& report) {
  const co::Member& m = members_.at(id).member;
  ++reports_taken_;
  try {
    if (m.role() != co::WORKER) Fail(ErrorCode::kInvalidArgument, "only workers report");
    const ReportRouter::Taken taken = reports_.Take(m.rank(), report);
    if (taken.checkpoint) WriteJobJson();
  } catch (const Error& e) {
    End(false, MemberName(m) + " sent a bad report: " + e.what(), id);
  }
}

void CoordinatorService::Impl::SendFlushed(int64_t flush) {
  co::Flushed flushed;
  flushed.set_flush(flush);
  members_.Send(EncodeCoordinatorFrame(co::FLUSHED, flushed),
                [](const co::Member& w) { return w.role() == co::WORKER && w.rank() == 0; });
}

void CoordinatorService::Impl::Moved(int id, const co::Placement& message) {
  const co::Member& m = members_.at(id).member;
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

void CoordinatorService::Impl::Closed(int id, const std::string& why) {
  MemberTable::Entry& s = members_.at(id);
  s.connection = nullptr;
  if (s.left || verdict_.ending) return;
  End(false,
      MemberName(s.member) + " closed its connection (" + why + "), last heard " +
          Format(SecondsSince(s.last_heard)) + " s ago",
      id);
}

void CoordinatorService::Impl::Beat() {
  members_.Send(EncodeCoordinatorFrame(co::HEARTBEAT, co::Heartbeat()),
                [](const co::Member&) { return true; });
}

void CoordinatorService::Impl::CheckDeadlines() {
  if (!silence_guard_.Steady(MemberTable::Clock::now())) {
    LOG(WARNING) << "coordinator: the heartbeat check ran " << Format(silence_guard_.last_gap_s())
                 << " s after the one before (this process was stalled); the members are "
                    "judged once what they sent meanwhile is read";
    return;
  }
  if (verdict_.ending) return;
  double silent = 0;
  const int id = members_.FirstSilent(options_.heartbeat_timeout_s, &silent);
  if (id < 0) return;
  End(false,
      MemberName(members_.at(id).member) + " sent no heartbeat for " + Format(silent) +
          " s (hung, stopped or cut off; if it is only that slow, raise "
          "cluster.heartbeat_timeout_s, now " +
          Format(options_.heartbeat_timeout_s) + " s)",
      id);
}

void CoordinatorService::Impl::Preempt(const std::string& reason) {
  if (verdict_.ending || verdict_.preempting) return;
  verdict_.preempting = true;
  verdict_.reason = reason;
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
  return members_.Send(EncodeCoordinatorFrame(co::CHECKPOINT, checkpoint),
                       [](const co::Member& m) { return m.role() == co::WORKER; });
}

void CoordinatorService::Impl::End(bool finished, const std::string& reason, int culprit,
                                   int code) {
  if (verdict_.ending) return;
  verdict_.ending = true;
  verdict_.exit_code = finished ? 0 : 1;
  verdict_.state = finished ? (verdict_.preempting ? "preempted" : "finished") : "failed";
  if (!finished || !verdict_.preempting) verdict_.reason = reason;
  if (!finished) {
    LOG(ERROR) << "coordinator: stopping the job: " << reason;
    PrintErrorLine("flexmoe coordinator: stopping the job: " + reason);
  }
  co::Stop stop;
  stop.set_finished(finished);
  stop.set_reason(reason);
  if (code >= 0) stop.set_code(code);
  if (culprit >= 0) {
    *stop.mutable_culprit() = members_.at(culprit).member;
    verdict_.culprit = members_.at(culprit).member;
    verdict_.culprit_id = culprit;
  }
  // Every member still connected, those that left too: the culprit is not told.
  const std::string frame = EncodeCoordinatorFrame(co::STOP, stop);
  for (const auto& [id, s] : members_.all()) {
    if (id != culprit && s.connection != nullptr) s.connection->Send(frame);
  }
  WriteJobJsonNow();  // the verdict on disk at once
  // Time for the STOP frames to go out before the connections close: it grows with the
  // members (measured: 4,095 STOP frames out in 0.3 s on 2 cores, about 75 us each; this
  // allows 250 us each besides the half second).
  server_->After(StopDrainSeconds(members_.all().size()), [this] { server_->Stop(); });
}

std::string CoordinatorService::Impl::MemberState(int id, const MemberTable::Entry& s) const {
  if (s.left) return "left";
  if (verdict_.ending && id == verdict_.culprit_id) return "failed";
  if (s.connection == nullptr) return "gone";
  return verdict_.ending ? "stopped" : "running";  // stopped: told to stop as the job ended
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

void CoordinatorService::Impl::PublishControlPlane() {
  const Clock::time_point now = Clock::now();
  ControlPlaneFigures f;
  f.loop_lag = loop_lag_.Figures(now);
  f.heartbeat_gap = heartbeat_gaps_.Figures(now);
  f.job_json = job_json_build_.Figures(now);
  if (job_json_) f.job_json_write_max_s = job_json_->longest_write_s();
  const double seconds = std::chrono::duration<double>(now - published_).count();
  f.reports_per_s =
      seconds > 0 ? static_cast<double>(reports_taken_ - reports_published_) / seconds : 0;
  reports_published_ = reports_taken_;
  published_ = now;
  view_.SetControlPlane(f);
}

void CoordinatorService::Impl::WriteJobJson() {
  if (server_ == nullptr) return WriteJobJsonNow();
  if (job_json_due_) return;
  job_json_due_ = true;
  server_->After(kJobJsonSeconds, [this] {
    if (job_json_due_) WriteJobJsonNow();
  });
}

void CoordinatorService::Impl::WriteJobJsonNow() {
  job_json_due_ = false;
  const Clock::time_point start = Clock::now();
  JobRecord job;
  job.job_id = options_.job_id;
  job.state = verdict_.state;
  job.coordinator = server_ ? server_->address() : "";
  job.workers = members_.world_size();
  for (const auto& [id, s] : members_.all()) {
    job.members.push_back(MemberRecord(s.member));
    job.members.back().state = MemberState(id, s);
  }
  job.placement = placement_;
  job.newest_checkpoint =
      reports_.newest_checkpoint().empty() ? initial_checkpoint_ : reports_.newest_checkpoint();
  job.reason = verdict_.reason;
  if (verdict_.culprit.has_role()) job.culprit = MemberRecord(verdict_.culprit);
  job.combinations = options_.combination_names;
  view_.SetJob(job);
  // Written by job_json_'s own thread: this thread judges heartbeats.
  if (job_json_) job_json_->Submit(JobRecordToJson(job).dump(2) + "\n");
  const Clock::time_point end = Clock::now();
  job_json_build_.Add(std::chrono::duration<double>(end - start).count(), end);
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
  impl_->last_tick_ = Clock::now();  // start-up is not loop lag
  impl_->WriteJobJsonNow();
  impl_->server_->Run();
  if (impl_->job_json_due_) impl_->WriteJobJsonNow();
  // The job's end is on disk before the coordinator's exit says it ended.
  if (impl_->job_json_ && !impl_->job_json_->Flush(std::chrono::seconds(30))) {
    LOG(WARNING) << "coordinator: job.json not written within 30 s of the job's end";
  }
  return impl_->verdict_.exit_code;
}

void CoordinatorService::Stop(const std::string& why) {
  impl_->server_->Post([impl = impl_.get(), why] { impl->End(false, why, -1); });
}

void CoordinatorService::Checkpoint(const std::string& why) {
  impl_->server_->Post([impl = impl_.get(), why] {
    if (impl->verdict_.ending || impl->verdict_.preempting) return;
    LOG(INFO) << "coordinator: " << why << ": the workers checkpoint";
    std::cout << "checkpoint requested (" << why << ")" << std::endl;
    impl->SendCheckpoint(false, why);
  });
}

void CoordinatorService::Preempt(const std::string& why) {
  impl_->server_->Post([impl = impl_.get(), why] { impl->Preempt(why); });
}

}  // namespace flexmoe
