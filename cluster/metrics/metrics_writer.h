// MetricsWriter: the one writer of a run's metrics: run.dir/metrics.jsonl (one JSON line
// per record) and TensorBoard scalars derived from the same records in
// run.dir/tensorboard/. In a job with a coordinator the coordinator owns it; without one,
// worker 0 does. The records are documented in docs/metrics.md: "step" (merged from every
// worker's step record, step_records.h), "epoch", "resume" and "test".
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cluster/metrics/tensorboard.h"

namespace flexmoe {

struct TensorBoardScalar {
  std::string tag;
  int64_t step = 0;
  double value = 0;
};

// The scalars TensorBoard shows for one record: step losses, throughput and step-time split,
// the tokens each expert received per layer and per combination; per epoch the losses, the
// validation metrics, throughput and expert imbalance; the test metrics.
std::vector<TensorBoardScalar> TensorBoardScalarsOf(const nlohmann::json& record);

// The number of lines of a text file (0 when it does not exist).
int64_t CountLines(const std::string& path);

class MetricsWriter {
 public:
  // An empty run_dir writes nothing. `tensorboard`: event files too (metrics.tensorboard).
  MetricsWriter(const std::string& run_dir, bool tensorboard);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  // Appends the record's line (flushed) and its TensorBoard scalars.
  void Write(const nlohmann::json& record);
  // Lines in metrics.jsonl now.
  int64_t lines() const { return lines_; }
  // Continues the log of a checkpointed run: keeps the first `lines` lines, dropping those
  // of steps that will run again. kDataLoss naming the file when it has fewer; a missing
  // file starts afresh (a checkpoint copied into a new run directory).
  void ContinueAt(int64_t lines);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int64_t lines_ = 0;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace flexmoe
