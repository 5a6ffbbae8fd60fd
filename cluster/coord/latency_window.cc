// Windowed delay distributions (latency_window.h).
#include "cluster/coord/latency_window.h"

#include <algorithm>
#include <cmath>

namespace flexmoe {
namespace {

constexpr double kSmallest = 1e-5;  // bucket 0 holds everything up to 10 us
constexpr double kPerDecade = 32;

int BucketOf(double seconds) {
  if (!(seconds > kSmallest)) return 0;
  const int b = static_cast<int>(std::ceil(std::log10(seconds / kSmallest) * kPerDecade));
  return std::min(b, LatencyWindow::kBuckets - 1);
}

double UpperEdge(int bucket) { return kSmallest * std::pow(10.0, bucket / kPerDecade); }

}  // namespace

int64_t LatencyWindow::WindowIndex(Clock::time_point now) {
  return static_cast<int64_t>(std::chrono::duration<double>(now.time_since_epoch()).count() /
                              kWindowSeconds);
}

LatencyWindow::Window& LatencyWindow::Current(Clock::time_point now) {
  const int64_t index = WindowIndex(now);
  Window& w = windows_[static_cast<size_t>(index % kWindows)];
  if (w.start != index) w = Window{index, {}, 0, 0};
  return w;
}

void LatencyWindow::Add(double seconds, Clock::time_point now) {
  Window& w = Current(now);
  ++w.counts[static_cast<size_t>(BucketOf(seconds))];
  w.max = std::max(w.max, seconds);
  w.sum += seconds;
}

LatencyFigures LatencyWindow::Figures(Clock::time_point now) const {
  const int64_t index = WindowIndex(now);
  std::array<int64_t, kBuckets> counts{};
  LatencyFigures f;
  for (const Window& w : windows_) {
    if (w.start < 0 || w.start <= index - kWindows) continue;
    for (int b = 0; b < kBuckets; ++b) counts[b] += w.counts[b];
    f.max = std::max(f.max, w.max);
    f.sum += w.sum;
  }
  for (int64_t c : counts) f.count += c;
  auto quantile = [&](double q) {
    const auto rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(f.count)));
    int64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += counts[b];
      if (seen >= std::max<int64_t>(rank, 1)) return std::min(UpperEdge(b), f.max);
    }
    return f.max;
  };
  if (f.count > 0) {
    f.p50 = quantile(0.5);
    f.p99 = quantile(0.99);
  }
  return f;
}

}  // namespace flexmoe
