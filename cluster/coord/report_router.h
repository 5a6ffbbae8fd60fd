// Where the workers' REPORTs go: their step records merged across workers in worker 0's
// order (RecordJoiner), added to the live view, and written by the run's one metrics writer
// (into the run directory or the seed directory worker 0 opened) on a thread of its own
// (AsyncMetricsWriter: a slow disk never holds up the thread that judges heartbeats); the
// flushes worker 0 asked for, answered through `flushed` once what came before is written;
// the newest checkpoint reported. Take and Start run on the coordinator's one thread;
// `flushed` and `failed` on the writer's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/metrics/async_metrics_writer.h"
#include "cluster/metrics/step_records.h"
#include "proto/coordinator.pb.h"

namespace flexmoe {

class JobView;

class ReportRouter {
 public:
  // `run_dir` empty: no files, the live view only. `flushed(n)`: worker 0's flush n is
  // written; `failed(message)`: the metrics cannot be written (both on the writer's thread).
  // per_worker_limit: metrics.per_worker_limit (step_records.h).
  ReportRouter(std::string run_dir, bool tensorboard, int per_worker_limit, JobView* view,
               std::function<void(int64_t)> flushed,
               std::function<void(const std::string&)> failed);
  // Once the first worker gave the world size; reports before it are refused.
  void Start(int world_size);

  struct Taken {
    bool checkpoint = false;  // a new newest checkpoint
  };
  // A REPORT of worker `rank`. kInvalidArgument when it is not one that worker may send
  // (only worker 0 opens runs, continues logs, flushes and reports checkpoints).
  Taken Take(int rank, const coordinator::Report& report);
  const std::string& newest_checkpoint() const { return newest_checkpoint_; }

 private:
  void Apply(std::vector<MetricsItem> items);

  const std::string run_dir_;
  const int per_worker_limit_;
  JobView* view_;
  std::unique_ptr<RecordJoiner> joiner_;  // once the world size is known
  std::string newest_checkpoint_;
  AsyncMetricsWriter writer_;  // last: joined first, writing what is queued
};

}  // namespace flexmoe
