// The run's metrics written on a thread of its own, in the order they come, so that a slow
// or throttled disk never holds up the coordinator's thread, which judges heartbeats:
// Open, ContinueAt and Write are queued for a MetricsWriter; a Flush marker calls
// `flushed(number)` once everything queued before it is written (also without a run
// directory); an error calls `failed(message)` once and drops what comes after it. The
// destructor writes what is queued, then joins. `flushed` and `failed` run on the writer's
// thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cluster/metrics/metrics_writer.h"

namespace flexmoe {

class AsyncMetricsWriter {
 public:
  AsyncMetricsWriter(bool tensorboard, std::function<void(int64_t)> flushed,
                     std::function<void(const std::string&)> failed);
  ~AsyncMetricsWriter();
  AsyncMetricsWriter(const AsyncMetricsWriter&) = delete;
  AsyncMetricsWriter& operator=(const AsyncMetricsWriter&) = delete;

  // The records that follow go to `dir`'s metrics.jsonl (and event files); "" drops them.
  void Open(const std::string& dir);
  void ContinueAt(int64_t lines);
  void Write(nlohmann::json record);
  void Flush(int64_t number);

 private:
  struct Op {
    enum Kind { kOpen, kContinueAt, kWrite, kFlush } kind = kWrite;
    std::string dir;
    int64_t number = 0;
    nlohmann::json record;
  };
  void Push(Op op);
  void Loop();
  void Apply(Op& op);

  const bool tensorboard_;
  std::function<void(int64_t)> flushed_;
  std::function<void(const std::string&)> failed_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Op> ops_;
  bool quit_ = false;
  bool broken_ = false;                    // writer thread only: an error was reported
  std::unique_ptr<MetricsWriter> writer_;  // writer thread only
  std::thread thread_;                     // last: started once the rest is built
};

}  // namespace flexmoe
