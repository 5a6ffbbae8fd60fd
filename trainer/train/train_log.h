// The trainer's own hooks: the metrics records (through a MetricsSink to the run's one
// writer of metrics.jsonl and TensorBoard files: a "step" line every
// metrics.log_every_steps steps, an "epoch" line per epoch, a "resume" line where a run
// continued, a "test" line at the end; docs/metrics.md), and the progress lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cluster/metrics/metrics_sink.h"
#include "cluster/metrics/metrics_writer.h"
#include "cluster/metrics/run_records.h"
#include "trainer/train/redraw_stream.h"
#include "trainer/train/trainer.h"

namespace flexmoe {

// A split's overall scores as a metrics record's (cluster/metrics/run_records.h).
ScoreRecord ScoreOf(const ClassificationMetrics& m);

// The metrics records of a run, from every worker, into a MetricsSink: at every
// metrics.log_every_steps steps (and each epoch's last) a step record of this worker's
// window (samples, step-time split, tokens per (layer, expert, combination)); on worker 0
// the "epoch", "resume" and "test" records.
class MetricsLog : public TrainHook {
 public:
  struct Shape {
    std::vector<int> sparse_layers;
    int64_t experts = 0;
    int combinations = 0;
  };
  MetricsLog(MetricsSink* sink, int rank, uint64_t seed, int workers, int log_every_steps,
             Shape shape);

  void AfterStep(const StepReport& report) override;
  void AfterEpoch(const EpochRecord& record, const TrainState& state) override;
  void AfterTraining(const TrainResult& result) override;
  void Resumed(const std::string& dir, const TrainManifest& manifest) override;

 private:
  MetricsSink* sink_;
  int rank_;
  uint64_t seed_;
  int workers_;
  int every_;
  Shape shape_;
  StepTotals last_;  // at the previous step record
};

// The sink of a job without a coordinator: worker 0 writes (metrics_writer.h), each step
// record of the other workers gathered to it (a collective at the logged steps).
class LocalMetricsSink : public MetricsSink {
 public:
  LocalMetricsSink(Communicator* world, bool tensorboard, int per_worker_limit);
  ~LocalMetricsSink() override;

  void Open(const std::string& run_dir) override;
  void WorkerStep(int rank, const nlohmann::json& record) override;
  void RunRecord(const nlohmann::json& record) override;
  int64_t lines() const override;
  void ContinueAt(int64_t lines) override;

 private:
  Communicator* world_;
  bool tensorboard_;
  int per_worker_limit_;
  std::unique_ptr<MetricsWriter> writer_;  // worker 0, once opened
};

class ProgressLog : public TrainHook {
 public:
  // `log` may be null (silent). With `redraw` (a terminal) the step lines replace each
  // other on one line; otherwise each is a line of its own.
  ProgressLog(std::ostream* log, int log_every_steps, int workers, RedrawStream* redraw = nullptr);

  void AfterStep(const StepReport& report) override;
  void AfterEpoch(const EpochRecord& record, const TrainState& state) override;
  void Resumed(const std::string& dir, const TrainManifest& manifest) override;

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream* log_;
  RedrawStream* redraw_;
  int every_;
  int workers_ = 1;
  Clock::time_point start_ = Clock::now(), epoch_start_ = Clock::now();
  int64_t steps_ = 0, epoch_samples_ = 0;
};

// "HH:MM:SS".
std::string FormatDuration(double seconds);

}  // namespace flexmoe
