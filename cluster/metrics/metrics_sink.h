// MetricsSink: where a worker's metrics records go. Without a coordinator, worker 0 writes
// them (the others' step records gathered to it); with one, every worker sends its records
// to the coordinator, the job's one writer (cluster/coord/report_sink.h). The trainer
// calls it from every worker at the same steps (MetricsLog, trainer/train/train_log.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace flexmoe {

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  // Worker 0, before a run's records: they go to run_dir/metrics.jsonl (and
  // run_dir/tensorboard/); `run_dir` is the job's run directory or its seed-N directory.
  virtual void Open(const std::string& run_dir) = 0;
  // Every worker, at the same steps: its step record (step_records.h).
  virtual void WorkerStep(int rank, const nlohmann::json& record) = 0;
  // Worker 0: a record of the run ("epoch", "resume", "test").
  virtual void RunRecord(const nlohmann::json& record) = 0;
  // Worker 0: the lines metrics.jsonl has, counting those not yet written.
  virtual int64_t lines() const = 0;
  // Worker 0: keep the first `lines` lines (a resumed run), then go on.
  virtual void ContinueAt(int64_t lines) = 0;
  // Worker 0, before a checkpoint: returns once every record so far is written.
  virtual void Flush() {}
};

}  // namespace flexmoe
