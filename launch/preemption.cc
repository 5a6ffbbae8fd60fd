// Preemption signals and hook (preemption.h).
#include "launch/preemption.h"

#include <csignal>
#include <string>

namespace flexmoe {
namespace {

// Set by the signal handler: the only process-wide state, owned by launch/.
volatile std::sig_atomic_t caught_signal = 0;

extern "C" void OnPreemptionSignal(int signal) { caught_signal = signal; }

}  // namespace

void CatchPreemptionSignals() {
  struct sigaction action = {};
  action.sa_handler = OnPreemptionSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int PreemptionSignal() { return caught_signal; }

StepRequests PreemptionHook::Request(const TrainPosition&) {
  const int signal = PreemptionSignal();
  if (signal != 0 && coordinator_ != nullptr && !told_) {
    coordinator_->Preempt("a worker got signal " + std::to_string(signal));
    told_ = true;
  }
  const bool stop = signal != 0 || (coordinator_ != nullptr && coordinator_->stop_requested());
  return {stop, stop};
}

}  // namespace flexmoe
