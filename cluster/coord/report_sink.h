// CoordinatorReportSink: a worker's metrics records sent to the coordinator (REPORT, NOTE
// [coordinator protocol] in proto/coordinator.proto), which merges the workers' step
// records and writes metrics.jsonl and the TensorBoard files; worker 0 also reports the
// checkpoints it completes, for job.json.
#pragma once

#include <cstdint>
#include <string>

#include "cluster/coord/client.h"
#include "cluster/metrics/metrics_sink.h"

namespace flexmoe {

class CoordinatorReportSink : public MetricsSink {
 public:
  // `client` (registered) must outlive the sink.
  explicit CoordinatorReportSink(CoordinatorClient* client) : client_(client) {}

  // run_dir: the coordinator's run directory or a seed-N directory in it
  // (kInvalidArgument otherwise).
  void Open(const std::string& run_dir) override;
  void WorkerStep(int rank, const nlohmann::json& record) override;
  void RunRecord(const nlohmann::json& record) override;
  int64_t lines() const override { return base_ + sent_; }
  void ContinueAt(int64_t lines) override;
  // Waits (at most 60 s) until the coordinator has written every record sent so far.
  void Flush() override;
  // Worker 0: a checkpoint it completed.
  void Checkpointed(const std::string& dir);

 private:
  CoordinatorClient* client_;
  std::string path_;  // the open run's metrics.jsonl
  int64_t base_ = 0, sent_ = 0;
  int64_t flushes_ = 0;  // lines in metrics.jsonl at Open or ContinueAt, and since
};

}  // namespace flexmoe
