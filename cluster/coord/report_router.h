// Where the workers' REPORTs go: their step records merged across workers in worker 0's
// order (RecordJoiner), written by the run's one MetricsWriter (into the run directory or
// the seed directory worker 0 opened) and added to the live view; the flushes worker 0 asked
// for, to be answered once what came before is written; the newest checkpoint reported.
// Used on the coordinator's one thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/metrics/metrics_writer.h"
#include "cluster/metrics/step_records.h"
#include "proto/coordinator.pb.h"

namespace flexmoe {

class JobView;

class ReportRouter {
 public:
  // `run_dir` empty: no files, the live view only.
  ReportRouter(std::string run_dir, bool tensorboard, JobView* view);
  // Once the first worker gave the world size; reports before it are refused.
  void Start(int world_size);

  struct Taken {
    std::vector<int64_t> flushed;  // flushes now written: FLUSHED to worker 0
    bool checkpoint = false;       // a new newest checkpoint
  };
  // A REPORT of worker `rank`. kInvalidArgument when it is not one that worker may send
  // (only worker 0 opens runs, continues logs, flushes and reports checkpoints).
  Taken Take(int rank, const coordinator::Report& report);
  const std::string& newest_checkpoint() const { return newest_checkpoint_; }

 private:
  void Apply(std::vector<MetricsItem> items, Taken* taken);
  void AddToView(const nlohmann::json& record);

  const std::string run_dir_;
  const bool tensorboard_;
  JobView* view_;
  std::unique_ptr<RecordJoiner> joiner_;   // once the world size is known
  std::unique_ptr<MetricsWriter> writer_;  // once worker 0 opened a run
  std::string newest_checkpoint_;
};

}  // namespace flexmoe
