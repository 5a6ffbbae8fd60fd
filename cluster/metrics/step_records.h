// Step records: every worker reports its part of a logged step (its samples, its step-time
// split, the tokens its tokens sent to each (layer, expert, combination)); MergeStepRecords
// makes the job's one "step" line from them. RecordJoiner orders a job's records as
// worker 0 sent them, each step line written once every worker's part of it came (the
// coordinator receives them on separate connections).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cluster/metrics/run_records.h"

namespace flexmoe {

// Jobs of up to this many workers log every worker's step (metrics.per_worker_limit).
inline constexpr int kDefaultPerWorkerLimit = 64;

// One logged step's parts as they come from the workers, folded in at once (a part is
// parsed and dropped when it arrives, so a step of thousands of workers is never held as
// JSON nor merged in one go): worker 0's position and global losses; samples and tokens
// summed; samples_per_s over the slowest worker's window; step_ms the slowest worker's per
// phase; the workers' spread, the slowest and the straggler (SummarizeWorkers); every
// worker's as worker_step_ms when there are at most per_worker_limit workers.
class StepMerger {
 public:
  StepMerger(int workers, int per_worker_limit);
  // kInvalidArgument naming the worker when it sent this step before, or token counts of
  // another shape than the others', or a step other than the first part's.
  void Add(int rank, const WorkerStepLine& part);
  bool complete() const { return received_ == workers_; }
  StepLine Line() const;

 private:
  int workers_, per_worker_limit_, received_ = 0;
  std::vector<bool> seen_;
  std::vector<PhaseMsRecord> phases_;
  StepLine line_;
  double seconds_ = 0;
};

// One "step" line from the records of workers 0..W-1 of the same step (in rank order), as
// StepMerger makes it. kInvalidArgument when the records disagree on the step or the token
// shape.
nlohmann::json MergeStepRecords(const std::vector<nlohmann::json>& workers,
                                int per_worker_limit = kDefaultPerWorkerLimit);

// What a writer does next: start writing into the run directory `open` (opens), keep the
// first continue_at lines (>= 0), or write `record`.
struct MetricsItem {
  nlohmann::json record;
  int64_t continue_at = -1;
  bool opens = false;
  std::string open;
  int64_t flush = 0;  // > 0: everything before is written; tell worker 0
};

class RecordJoiner {
 public:
  explicit RecordJoiner(int workers, int per_worker_limit = kDefaultPerWorkerLimit)
      : workers_(workers), per_worker_limit_(per_worker_limit) {}
  // A record from worker `rank` ("step" records from every worker, the others from worker
  // 0); returns the items now complete, in worker 0's order.
  std::vector<MetricsItem> Add(int rank, nlohmann::json record);
  // Worker 0 asked to continue after `lines` lines, or to write into another run directory
  // (in its order).
  std::vector<MetricsItem> ContinueAt(int64_t lines);
  std::vector<MetricsItem> Open(const std::string& run_dir);
  std::vector<MetricsItem> Flush(int64_t number);
  // Step parts waiting for worker 0's record or the other workers'.
  size_t pending() const { return parts_.size(); }

 private:
  struct Entry {
    MetricsItem item;
    bool step = false;
    std::pair<uint64_t, int64_t> key;  // seed and global step of a step entry
  };
  std::vector<MetricsItem> Drain();

  int workers_, per_worker_limit_;
  std::deque<Entry> order_;  // worker 0's stream
  std::map<std::pair<uint64_t, int64_t>, StepMerger> parts_;
};

}  // namespace flexmoe
