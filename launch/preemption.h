// Preemption: SIGTERM or SIGUSR1 to a training process (SLURM's notice before it ends a
// job, `scancel --signal=USR1`, mpirun forwarding SIGUSR1) or the coordinator's CHECKPOINT
// request makes the run checkpoint at the next step boundary and stop with exit 0; a
// later `flexmoe train --resume` continues it. The request goes through the trainer's hooks,
// so every rank checkpoints and stops at the same step.
#pragma once

#include <initializer_list>

#include "cluster/coord/client.h"
#include "trainer/train/trainer.h"

namespace flexmoe {

// Installs `handler` (which only sets a flag) for each of `signals`, with SA_RESTART: the
// one way the launch commands catch signals.
void CatchSignals(void (*handler)(int), std::initializer_list<int> signals);

// Installs the SIGTERM and SIGUSR1 handlers of this process (they only set a flag), and
// SIGUSR2's (a checkpoint request, counted) when `checkpoint_signal`.
void CatchPreemptionSignals(bool checkpoint_signal = false);
// The signal caught so far, or 0.
int PreemptionSignal();
// SIGUSR2s caught so far.
int CheckpointSignals();

// Asks for a checkpoint and a stop once a preemption signal came or the coordinator (may be
// null) asked; tells the coordinator of a signal this process got. Worker 0 (`rank`) asks
// for a checkpoint alone when the coordinator requests one: its request reaches every
// worker at the same step, where each worker's own would not.
class PreemptionHook : public TrainHook {
 public:
  PreemptionHook(CoordinatorClient* coordinator, int rank)
      : coordinator_(coordinator), rank_(rank) {}
  StepRequests Request(const TrainPosition& after) override;

 private:
  CoordinatorClient* coordinator_;
  int rank_;
  bool told_ = false;
};

}  // namespace flexmoe
