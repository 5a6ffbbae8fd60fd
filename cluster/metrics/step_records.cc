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
         ": token counts of another shape than the other workers'");
  }
  for (size_t l = 0; l < sum->counts.size(); ++l) {
    if (from.counts[l].size() != sum->counts[l].size()) {
      Fail(ErrorCode::kInvalidArgument, "step record of worker ", rank, ": ", from.counts[l].size(),
           " token counts in layer ", l, ", the other workers sent ", sum->counts[l].size());
    }
    for (size_t i = 0; i < sum->counts[l].size(); ++i) sum->counts[l][i] += from.counts[l][i];
  }
}

PhaseMsRecord Slowest(const PhaseMsRecord& a, const PhaseMsRecord& b) {
  return {std::max(a.compute, b.compute), std::max(a.exchange, b.exchange),
          std::max(a.reduce, b.reduce), std::max(a.data, b.data)};
}

}  // namespace

StepMerger::StepMerger(int workers, int per_worker_limit)
    : workers_(workers),
      per_worker_limit_(per_worker_limit),
      seen_(static_cast<size_t>(workers)),
      phases_(static_cast<size_t>(workers)) {}

void StepMerger::Add(int rank, const WorkerStepLine& w) {
  if (seen_[rank]) {
    Fail(ErrorCode::kInvalidArgument, "worker ", rank, " sent step ", w.at.global_step, " twice");
  }
  if (received_ > 0 && w.at.global_step != line_.at.global_step) {
    Fail(ErrorCode::kInvalidArgument, "step record of worker ", rank, " is of global step ",
         w.at.global_step, ", the other workers' of ", line_.at.global_step);
  }
  if (rank == 0 || received_ == 0) {
    line_.at = w.at;
    line_.steps = w.steps;
  }
  seen_[rank] = true;
  ++received_;
  line_.samples += w.samples;
  seconds_ = std::max(seconds_, w.seconds);
  line_.step_ms = Slowest(line_.step_ms, w.step_ms);
  phases_[rank] = w.step_ms;
  AddTokens(w.tokens, rank, &line_.tokens);
}

StepLine StepMerger::Line() const {
  StepLine line = line_;
  line.samples_per_s = seconds_ > 0 ? static_cast<double>(line.samples) / seconds_ : 0.0;
  SummarizeWorkers(phases_, &line);
  if (workers_ <= per_worker_limit_) line.worker_step_ms = phases_;
  return line;
}

Json MergeStepRecords(const std::vector<Json>& workers, int per_worker_limit) {
  if (workers.empty()) Fail(ErrorCode::kInvalidArgument, "no step records to merge");
  StepMerger merger(static_cast<int>(workers.size()), per_worker_limit);
  for (size_t r = 0; r < workers.size(); ++r) {
    merger.Add(static_cast<int>(r), WorkerStepLineFrom(workers[r], static_cast<int>(r)));
  }
  return ToJson(merger.Line());
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
    const WorkerStepLine part = WorkerStepLineFrom(record, rank);
    auto it = parts_.try_emplace(key, workers_, per_worker_limit_).first;
    if (parts_.size() > kMaxPendingSteps) {
      Fail(ErrorCode::kFailedPrecondition, "more than ", kMaxPendingSteps,
           " logged steps wait for a worker's record");
    }
    it->second.Add(rank, part);
    if (rank == 0) order_.push_back({{}, true, key});
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
      if (!it->second.complete()) break;
      MetricsItem item;
      item.record = ToJson(it->second.Line());
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
