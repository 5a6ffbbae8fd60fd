// Wall-clock time per step phase (encode, attention, routing, experts, head, backward,
// optimizer), accumulated when a PhaseTimes is attached; for benchmarks and progress.
#pragma once

#include <array>
#include <chrono>

namespace flexmoe {

enum class Phase { kEncode, kAttention, kRouting, kExperts, kHead, kBackward, kOptimizer, kCount };

inline const char* PhaseName(Phase phase) {
  static const char* kNames[] = {"encode", "attention", "routing",  "experts",
                                 "head",   "backward",  "optimizer"};
  return kNames[static_cast<int>(phase)];
}

struct PhaseTimes {
  std::array<double, static_cast<int>(Phase::kCount)> seconds{};
  void Add(Phase phase, double s) { seconds[static_cast<int>(phase)] += s; }
  double Get(Phase phase) const { return seconds[static_cast<int>(phase)]; }
};

// Adds the scope's duration to `times` (when not null) on destruction.
class PhaseScope {
 public:
  PhaseScope(PhaseTimes* times, Phase phase)
      : times_(times), phase_(phase), start_(std::chrono::steady_clock::now()) {}
  ~PhaseScope() {
    if (times_ != nullptr) {
      times_->Add(phase_,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTimes* times_;
  Phase phase_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace flexmoe
