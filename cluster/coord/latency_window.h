// LatencyWindow: the distribution of a delay over the last minute (six windows of ten
// seconds), in log-spaced buckets (32 a decade, 10 us to about 930 s), so that adding a sample
// is constant time and a quantile costs a pass over the buckets however many samples came.
// The coordinator keeps two (control_stats.h): how late its event loop runs a handler that
// is due, and the gaps between a member's heartbeats as it receives them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "cluster/web/job_view.h"

namespace flexmoe {

class LatencyWindow {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kBuckets = 256;
  static constexpr int kWindows = 6;
  static constexpr double kWindowSeconds = 10;

  void Add(double seconds, Clock::time_point now);
  // Quantiles 0.5 and 0.99 (each a bucket's upper edge: at most 7.5% high) and the exact
  // largest over the last minute.
  LatencyFigures Figures(Clock::time_point now) const;

 private:
  struct Window {
    int64_t start = -1;  // which ten seconds (since the clock's epoch) it counts
    std::array<int64_t, kBuckets> counts{};
    double max = 0, sum = 0;
  };
  Window& Current(Clock::time_point now);
  static int64_t WindowIndex(Clock::time_point now);

  std::array<Window, kWindows> windows_{};
};

}  // namespace flexmoe
