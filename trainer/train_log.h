// The trainer's own hooks: the metrics log (run.dir/metrics.jsonl, rank 0: a "step" line
// every metrics.log_every_steps steps, an "epoch" line per epoch, a "resume" line where a
// run continued, a "test" line at the end), TensorBoard scalars, and the progress lines on
// the console.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "trainer/tensorboard.h"
#include "trainer/trainer.h"

namespace flexmoe {

class MetricsLog : public TrainHook {
 public:
  // An empty path writes nothing (ranks other than 0, runs without a directory).
  MetricsLog(std::string path, uint64_t seed, int workers, int log_every_steps);

  // The file's current length (0 when there is none).
  int64_t bytes() const;
  // Continues the log of a checkpointed run: truncates the file to `bytes`, its length at
  // the checkpoint, dropping the lines of steps that will run again. kDataLoss naming the
  // file when it is shorter. A missing file starts afresh.
  void ContinueAt(int64_t bytes);

  void AfterStep(const StepReport& report) override;
  void AfterEpoch(const EpochRecord& record, const TrainState& state) override;
  void AfterTraining(const TrainResult& result) override;
  void Resumed(const std::string& dir, const TrainManifest& manifest) override;

 private:
  void Append(const nlohmann::json& line) const;

  std::string path_;
  uint64_t seed_;
  int workers_;
  int every_;
};

// Scalars for TensorBoard (run.dir/tensorboard/, rank 0), at the global step: step losses
// every log_every_steps steps; per epoch the train losses, validation metrics, throughput
// and expert imbalance; the test metrics at the end.
class TensorBoardLog : public TrainHook {
 public:
  TensorBoardLog(const std::string& dir, int log_every_steps);

  void AfterStep(const StepReport& report) override;
  void AfterEpoch(const EpochRecord& record, const TrainState& state) override;
  void AfterTraining(const TrainResult& result) override;

 private:
  EventWriter writer_;
  int every_;
};

class ProgressLog : public TrainHook {
 public:
  // `log` may be null (silent).
  ProgressLog(std::ostream* log, int log_every_steps, int workers);

  void AfterStep(const StepReport& report) override;
  void AfterEpoch(const EpochRecord& record, const TrainState& state) override;
  void Resumed(const std::string& dir, const TrainManifest& manifest) override;

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream* log_;
  int every_;
  int workers_ = 1;
  Clock::time_point start_ = Clock::now(), epoch_start_ = Clock::now();
  int64_t steps_ = 0, epoch_samples_ = 0;
};

// "HH:MM:SS".
std::string FormatDuration(double seconds);

}  // namespace flexmoe
