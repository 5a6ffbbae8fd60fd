// The trainer's own hooks: the metrics log (run.dir/metrics.jsonl, rank 0: a "step" line
// every metrics.log_every_steps steps, an "epoch" line per epoch, a "resume" line where a
// run continued, a "test" line at the end) and the progress lines on the console.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

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
