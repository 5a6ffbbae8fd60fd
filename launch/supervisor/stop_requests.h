// What the process's signal handlers and the run lease's thread ask of a running job's
// supervisor: lock-free atomics, which both may write.
#pragma once

#include <atomic>

namespace flexmoe {

static_assert(std::atomic<int>::is_always_lock_free);

struct StopRequests {
  std::atomic<int> interrupts{0};  // SIGINTs: the first stops at a checkpoint, a second at once
  std::atomic<int> terminate_signal{0};  // SIGTERM or SIGUSR1: stop at a checkpoint
  std::atomic<bool> lease_lost{false};   // another job took the run directory: stop at once
  bool Asked() const { return interrupts > 0 || terminate_signal != 0 || lease_lost; }
  bool AtOnce() const { return interrupts > 1 || lease_lost; }
};

}  // namespace flexmoe
