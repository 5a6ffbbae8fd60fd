// Merging the workers' step records, and ordering a job's records (step_records.h).
#include "cluster/metrics/step_records.h"

#include <algorithm>

#include "cluster/base/error.h"
#include "cluster/metrics/run_records.h"

namespace flexmoe {
namespace {

using Json = nlohmann::json;

// Bounds the step parts held for a worker 0 that lags (it cannot lag far: every step
// ends with a reduction over all workers).
constexpr size_t kMaxPendingSteps = 4096;

void AddTokens(const TokenCounts& from, int rank, TokenCounts* sum) {
  if (from.counts.empty()) return;
  if (sum->counts.empty()) {
    *sum = from;
    return;
  }
  if (from.layers != sum->layers || from.experts != sum->experts ||
      from.combinations != sum->combinations || from.counts.size() != sum->counts.size()) {
    Fail(ErrorCode::kInvalidArgument, "step record of worker ", rank,
         ": token counts of another shape than worker 0's");
  }
  for (size_t l = 0; l < sum->counts.size(); ++l) {
    if (from.counts[l].size() != sum->counts[l].size()) {
      Fail(ErrorCode::kInvalidArgument, "step record of worker ", rank, ": ", from.counts[l].size(),
           " token counts in layer ", l, ", worker 0 sent ", sum->counts[l].size());
    }
    for (size_t i = 0; i < sum->counts[l].size(); ++i) sum->counts[l][i] += from.counts[l][i];
  }
}

PhaseMsRecord Slowest(const PhaseMsRecord& a, const PhaseMsRecord& b) {
  return {std::max(a.compute, b.compute), std::max(a.exchange, b.exchange),
          std::max(a.reduce, b.reduce), std::max(a.data, b.data)};
}

}  // namespace

Json MergeStepRecords(const std::vector<Json>& workers) {
  if (workers.empty()) Fail(ErrorCode::kInvalidArgument, "no step records to merge");
  const WorkerStepLine first = WorkerStepLineFrom(workers[0], 0);
  StepLine line;
  line.at = first.at;
  line.steps = first.steps;
  double seconds = 0;
  for (size_t r = 0; r < workers.size(); ++r) {
    const WorkerStepLine w = r == 0 ? first : WorkerStepLineFrom(workers[r], static_cast<int>(r));
    if (w.at.global_step != first.at.global_step) {
      Fail(ErrorCode::kInvalidArgument, "step record of worker ", r, " is of global step ",
           w.at.global_step, ", worker 0's of ", first.at.global_step);
    }
    line.samples += w.samples;
    seconds = std::max(seconds, w.seconds);
    line.step_ms = Slowest(line.step_ms, w.step_ms);
    line.worker_step_ms.push_back(w.step_ms);
    AddTokens(w.tokens, static_cast<int>(r), &line.tokens);
  }
  line.samples_per_s = seconds > 0 ? line.samples / seconds : 0.0;
  return ToJson(line);
}

std::vector<MetricsItem> RecordJoiner::Add(int rank, Json record) {
  if (rank < 0 || rank >= workers_) {
    Fail(ErrorCode::kInvalidArgument, "a metrics record from worker ", rank, " of a job of ",
         workers_);
  }
  const bool step = record.value("event", "") == "step";
  if (!step && rank != 0) {
    Fail(ErrorCode::kInvalidArgument, "worker ", rank, " sent a '", record.value("event", ""),
         "' record; only worker 0 sends those");
  }
  if (step) {
    const int64_t global_step = record.value("global_step", int64_t{-1});
    const std::pair<uint64_t, int64_t> key{record.value("seed", uint64_t{0}), global_step};
    std::vector<Json>& parts = parts_[key];
    parts.resize(workers_);
    if (!parts[rank].is_null()) {
      Fail(ErrorCode::kInvalidArgument, "worker ", rank, " sent step ", global_step, " twice");
    }
    if (parts_.size() > kMaxPendingSteps) {
      Fail(ErrorCode::kFailedPrecondition, "more than ", kMaxPendingSteps,
           " logged steps wait for a worker's record");
    }
    if (rank == 0) order_.push_back({{}, true, key});
    parts[rank] = std::move(record);
  } else {
    MetricsItem item;
    item.record = std::move(record);
    order_.push_back({std::move(item), false, {}});
  }
  return Drain();
}

std::vector<MetricsItem> RecordJoiner::ContinueAt(int64_t lines) {
  MetricsItem item;
  item.continue_at = lines;
  order_.push_back({std::move(item), false, {}});
  return Drain();
}

std::vector<MetricsItem> RecordJoiner::Flush(int64_t number) {
  MetricsItem item;
  item.flush = number;
  order_.push_back({std::move(item), false, {}});
  return Drain();
}

std::vector<MetricsItem> RecordJoiner::Open(const std::string& run_dir) {
  order_.push_back({{Json(), -1, true, run_dir}, false, {}});
  return Drain();
}

std::vector<MetricsItem> RecordJoiner::Drain() {
  std::vector<MetricsItem> ready;
  while (!order_.empty()) {
    Entry& front = order_.front();
    if (front.step) {
      auto it = parts_.find(front.key);
      const bool complete = std::all_of(it->second.begin(), it->second.end(),
                                        [](const Json& j) { return !j.is_null(); });
      if (!complete) break;
      MetricsItem item;
      item.record = MergeStepRecords(it->second);
      ready.push_back(std::move(item));
      parts_.erase(it);
    } else {
      ready.push_back(std::move(front.item));
    }
    order_.pop_front();
  }
  return ready;
}

}  // namespace flexmoe
