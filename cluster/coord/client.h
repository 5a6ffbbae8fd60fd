// CoordinatorClient: a member's side of the coordinator protocol (NOTE [coordinator
// protocol] in proto/coordinator.proto). The constructor registers and waits for ACCEPTED;
// then a thread of its own sends a heartbeat every interval and watches the coordinator's.
// When the coordinator says STOP, or is not heard from for heartbeat_timeout_s, or its
// connection breaks, the thread calls on_stop once with one line naming why (who died and
// when it was last heard, or that the coordinator was lost) and ends.
//
// Threading: SetStep, Report and Leave from any thread; on_stop runs on the client's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cluster/base/expert_placement.h"
#include "proto/coordinator.pb.h"

namespace flexmoe {

struct CoordinatorClientOptions {
  std::string address;  // the coordinator's HOST:PORT
  std::string token;
  coordinator::Member member;
  int world_size = 0;  // workers
  uint32_t config_hash = 0;
  std::string config_text;
  double connect_timeout_s = 30;
  uint32_t max_frame_bytes = 1u << 20;
  // finished: the job ended normally (loaders exit 0); otherwise `line` names the cause
  // and exit_status is what to exit with (that of the culprit's error, or 1).
  std::function<void(bool finished, const std::string& line, int exit_status)> on_stop;
  // Called once, before on_stop, when the coordinator is lost (its connection broke, or it
  // was silent for the heartbeat timeout) rather than heard saying stop: this member may be
  // on a host cut off from the job.
  std::function<void()> on_lost;
};

class CoordinatorClient {
 public:
  // Connects and registers: kUnavailable / kDeadlineExceeded naming the coordinator when it
  // cannot be reached, or the coordinator's refusal (kInvalidArgument naming the first
  // differing config field, kFailedPrecondition for a wrong token).
  explicit CoordinatorClient(CoordinatorClientOptions options);
  // Stops the thread (without LEAVE: to the coordinator this member died).
  ~CoordinatorClient();
  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  const coordinator::Accepted& accepted() const;
  // The placement the coordinator handed out (workers).
  PlacementMap placement() const;
  // Reported with the next heartbeats.
  void SetStep(int64_t global_step);
  // Whether the coordinator asked the workers to checkpoint and stop (preemption).
  bool stop_requested() const;
  // Whether the coordinator asked for a checkpoint (without stopping) since the last call.
  bool TakeCheckpointRequest();
  // Asks the coordinator to preempt the job (this member got SIGTERM or SIGUSR1).
  void Preempt(const std::string& reason);
  // Queues a report (metrics records, checkpoints) for the coordinator; they go out in
  // order, before a later Leave's LEAVE.
  void Report(coordinator::Report report);
  // Queues PLACEMENT (worker 0, after a re-pack moved experts after `global_step`), in order
  // with the reports.
  void ReportPlacement(const PlacementMap& placement, int64_t global_step);
  // Waits until the coordinator answered FLUSHED for flush `number` (a Report's flush):
  // kDeadlineExceeded after timeout_s, kUnavailable once the coordinator is lost.
  void WaitForFlush(int64_t number, double timeout_s);
  // Tells the coordinator this member failed with `code` and `message` (it ends the job
  // naming them), then stops the thread.
  void LeaveWithError(int code, const std::string& message);
  // Tells the coordinator this member finished, then stops the thread (within about one
  // heartbeat interval).
  void Leave();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe
