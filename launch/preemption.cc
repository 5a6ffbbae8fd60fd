// Preemption signals and hook (preemption.h).
#include "launch/preemption.h"

#include <atomic>
#include <csignal>
#include <string>

namespace flexmoe {
namespace {

// Set by the signal handler: the only process-wide state, owned by launch/.
// A lock-free atomic: safe to write in a signal handler and to read from any thread.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> caught_signal{0};
std::atomic<int> checkpoint_signals{0};

extern "C" void OnPreemptionSignal(int signal) { caught_signal = signal; }
extern "C" void OnCheckpointSignal(int) { checkpoint_signals.fetch_add(1); }

}  // namespace

void CatchSignals(void (*handler)(int), std::initializer_list<int> signals) {
  struct sigaction action = {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : signals) sigaction(signal, &action, nullptr);
}

void CatchPreemptionSignals(bool checkpoint_signal) {
  CatchSignals(OnPreemptionSignal, {SIGTERM, SIGUSR1});
  if (checkpoint_signal) CatchSignals(OnCheckpointSignal, {SIGUSR2});
}

int PreemptionSignal() { return caught_signal; }
int CheckpointSignals() { return checkpoint_signals; }

StepRequests PreemptionHook::Request(const TrainPosition&) {
  const int signal = PreemptionSignal();
  if (signal != 0 && coordinator_ != nullptr && !told_) {
    coordinator_->Preempt("a worker got signal " + std::to_string(signal));
    told_ = true;
  }
  const bool stop = signal != 0 || (coordinator_ != nullptr && coordinator_->stop_requested());
  const bool checkpoint =
      coordinator_ != nullptr && coordinator_->TakeCheckpointRequest() && rank_ == 0;
  return {stop || checkpoint, stop};
}

}  // namespace flexmoe
