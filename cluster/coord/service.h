// CoordinatorService: the job's control plane behind `flexmoe coordinator` (NOTE
// [coordinator protocol] in proto/coordinator.proto). Workers and loaders register with
// it; it refuses a member whose config computes something else (naming the member and the
// first differing field), hands out the job id, the run directory and the expert
// placement, exchanges heartbeats with every member, and when a member dies (its
// connection closes without LEAVE, or it is not heard from for heartbeat_timeout_s) tells
// every other member to stop, naming the dead one. It is the job's one writer of
// metrics.jsonl and the TensorBoard files, from the records the workers report. On SIGTERM/SIGUSR1
// (Preempt), or a member's PREEMPT, it has the workers checkpoint and stop (with none to
// checkpoint, the job ends at once). It keeps run_dir/job.json current (written atomically,
// on a thread of its own): the job id and state, every member, the placement and the newest
// complete checkpoint.
//
// Threading: Run() serves on the calling thread; Stop() may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/base/expert_placement.h"

namespace flexmoe {

struct CoordinatorOptions {
  std::string listen = "127.0.0.1:0";
  std::string token;  // the job token; required
  uint32_t max_frame_bytes = 1u << 20;
  // The most members the job can have (its workers and a loader per host: at most twice
  // cluster.workers), until the first worker gives the world size W (then 2 W). The server
  // takes CoordinatorConnections(max_members) connections, and the process raises its
  // open-file limit for them (kFailedPrecondition naming the hard limit when it cannot).
  int max_members = 0;
  double heartbeat_interval_s = 1;
  double heartbeat_timeout_s = 4;
  double handshake_timeout_s = 10;
  std::string job_id;
  std::string run_dir;        // handed to the workers; job.json and the metrics go there
  bool tensorboard = true;    // metrics.tensorboard: event files besides metrics.jsonl
  int per_worker_limit = 64;  // metrics.per_worker_limit
  // The computation hash and text of the coordinator's config: members must match it.
  uint32_t config_hash = 0;
  std::string config_text;
  // The job's checkpoint schedule, handed to the workers.
  int checkpoint_every_steps = 0, checkpoint_every_epochs = 0, checkpoint_keep_last = 0;
  // The expert placement for a job of `world_size` workers.
  std::function<PlacementMap(int world_size)> placement;
  // The live page, /api/job and /metrics (cluster/web): HOST:PORT, "" for none; with
  // http_require_token a request must carry a token of its own (http_token(), written to
  // RUN/web.token). combination_names label the heatmap; restart is the launcher's attempt.
  std::string http_listen;
  bool http_require_token = true;
  std::vector<std::string> combination_names;
  int restart = 0;
};

// How long the coordinator waits, once the job ends, for the STOP frames to go out before it
// closes the connections: 0.5 s and 250 us per member (docs/coordinator.md, "At scale").
double StopDrainSeconds(size_t members);

// Connections the coordinator takes for `max_members` members: those and 64 being
// handshaken, never fewer than 512.
int CoordinatorConnections(int max_members);

class CoordinatorService {
 public:
  // Binds (kUnavailable / kInvalidArgument naming the address, as FramedServer).
  explicit CoordinatorService(CoordinatorOptions options);
  ~CoordinatorService();
  CoordinatorService(const CoordinatorService&) = delete;
  CoordinatorService& operator=(const CoordinatorService&) = delete;

  std::string address() const;
  // The live view's HOST:PORT, or "" when cluster.http_listen is empty.
  std::string http_address() const;
  // The token its requests must carry (also in RUN/web.token), or "" when none is required.
  std::string http_token() const;
  // Serves until the job ends. 0: every worker left after finishing; 1: a member died or
  // Stop() was called (the reason is logged, and sent to every member).
  int Run();
  // Stops the job: every member is told to stop with `why`.
  void Stop(const std::string& why);
  // Preempts the job: every worker is asked to checkpoint at the next step boundary and
  // stop; once they have left, the job ends with 0 (SLURM's preemption notice).
  void Preempt(const std::string& why);
  // Has the workers write a checkpoint at the next step boundary and go on.
  void Checkpoint(const std::string& why);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe
