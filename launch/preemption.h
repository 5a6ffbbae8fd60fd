// Preemption: SIGTERM or SIGUSR1 to a training process (SLURM's notice before it ends a
// job, `scancel --signal=USR1`, mpirun forwarding SIGUSR1) or the coordinator's CHECKPOINT
// request makes the run checkpoint at the next step boundary and stop with exit 0; a
// later `flexmoe train --resume` continues it. The request goes through the trainer's hooks,
// so every rank checkpoints and stops at the same step.
#pragma once

#include "cluster/coord/client.h"
#include "trainer/trainer.h"

namespace flexmoe {

// Installs the SIGTERM and SIGUSR1 handlers of this process (they only set a flag).
void CatchPreemptionSignals();
// The signal caught so far, or 0.
int PreemptionSignal();

// Asks for a checkpoint and a stop once a preemption signal came or the coordinator (may be
// null) asked; tells the coordinator of a signal this process got.
class PreemptionHook : public TrainHook {
 public:
  explicit PreemptionHook(CoordinatorClient* coordinator) : coordinator_(coordinator) {}
  StepRequests Request(const TrainPosition& after) override;

 private:
  CoordinatorClient* coordinator_;
  bool told_ = false;
};

}  // namespace flexmoe
