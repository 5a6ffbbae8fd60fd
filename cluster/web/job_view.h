// What the live page and /metrics show of a job (docs/coordinator.md, "Live view"): a value,
// JobViewState, built from job.json's record, the run records of metrics.jsonl and the
// members' heartbeats. JobView holds the state of a running job: the coordinator updates it
// from its one thread, the HTTP thread copies it (Snapshot) under a mutex held for the copy.
// The coordinator's thread never waits for that mutex: an update that finds it held is
// queued (under a second mutex, held only to add to or take the queue), as is a heartbeat
// (the newest per member), and applied by the next update or copy. So a request thread that
// is starved while it copies the view of thousands of members never delays the thread that
// judges heartbeats.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/metrics/job_record.h"
#include "cluster/metrics/run_records.h"

namespace flexmoe {

struct MemberView {
  JobMemberRecord member;
  std::optional<double> heartbeat_age_s;  // none in a run directory, or before the first
};

// Tokens of one sparse layer routed to (expert e, combination c), at e * combinations + c.
struct LayerTokens {
  int layer = 0;
  int64_t experts = 0, combinations = 0;
  std::vector<int64_t> counts;
};

// A delay's distribution over the last minute (cluster/coord/latency_window.h): quantiles
// 0.5 and 0.99, the largest, the sum and the number of samples.
struct LatencyFigures {
  double p50 = 0, p99 = 0, max = 0, sum = 0;
  int64_t count = 0;
};

// How the coordinator keeps up (docs/coordinator.md, "At scale"): how late its one thread
// runs a handler that is due (what a heartbeat waits before it is judged), the gaps between
// each member's heartbeats as it reads them, the time job.json's record takes to build
// there, and the reports it takes per second.
struct ControlPlaneFigures {
  LatencyFigures loop_lag, heartbeat_gap;
  LatencyFigures job_json;          // building job.json's record on that thread (written off it)
  double job_json_write_max_s = 0;  // the longest write of job.json, on the writer's thread
  double reports_per_s = 0;
};

struct JobViewState {
  std::string source = "live";  // "live" (the coordinator) or "run_dir" (flexmoe serve)
  JobRecord job;
  std::vector<MemberView> members;
  double heartbeat_timeout_s = 0;
  int per_worker_limit = 64;  // metrics.per_worker_limit
  uint64_t seed = 0;          // the seed being trained (the last one seen)
  std::optional<StepLine> last_step;
  std::vector<EpochLine> epochs;  // the seed's, in order
  std::optional<TestLine> test;
  std::vector<RestartLine> restarts;  // the records seen (this attempt's, live)
  int restart_count = 0;  // restarts so far: the launcher's attempt, or the largest recorded
  std::vector<ResumeLine> resumes;
  int tokens_epoch = 0;                              // the epoch `epoch_tokens` counts
  std::vector<LayerTokens> epoch_tokens;             // summed over that epoch's logged steps
  std::vector<LayerTokens> total_tokens;             // over the whole job
  int64_t samples_total = 0;                         // over the logged steps
  int64_t newest_checkpoint_step = -1;               // from the newest checkpoint's name
  std::optional<ControlPlaneFigures> control_plane;  // live only
};

// Folds one metrics.jsonl record into `state` (other events are ignored). A record of a new
// seed starts that seed's curves and heatmap afresh.
void AddRunRecord(JobViewState& state, const nlohmann::json& record);

// The global step in a checkpoint path ".../step-00000120", or -1.
int64_t CheckpointStep(const std::string& path);

class JobView {
 public:
  using Clock = std::chrono::steady_clock;

  // `restart`: the launcher's attempt number (0: the first).
  // per_worker_limit: per-member series on /metrics for jobs of up to that many workers.
  JobView(double heartbeat_timeout_s, int restart, int per_worker_limit);
  JobView(const JobView&) = delete;
  JobView& operator=(const JobView&) = delete;

  void SetJob(const JobRecord& job);
  // A member (by role and rank) was heard from at `when`.
  void Heard(const std::string& role, int rank, Clock::time_point when);
  void AddRecord(const nlohmann::json& record);
  void SetControlPlane(const ControlPlaneFigures& figures);
  // A copy with the members' heartbeat ages as of now.
  JobViewState Snapshot() const;
  // Holds the view as a copy does (for tests: updates meanwhile must not wait).
  std::unique_lock<std::mutex> HoldForTest() const { return std::unique_lock<std::mutex>(mutex_); }

 private:
  using Update = std::function<void(JobViewState&)>;
  // Applies `update` now when the view is free, else queues it.
  void Apply(Update update);
  void ApplyQueued() const;  // with mutex_ held

  mutable std::mutex mutex_;
  mutable std::mutex queue_mutex_;
  mutable std::vector<Update> queue_;
  using HeardMap = std::map<std::pair<std::string, int>, Clock::time_point>;
  mutable HeardMap queued_heard_;
  mutable JobViewState state_;
  mutable HeardMap heard_;
};

}  // namespace flexmoe
