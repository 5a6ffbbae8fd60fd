// `flexmoe worker`: one MPI rank of a multi-worker training job (run under mpirun or srun),
// and `flexmoe train --workers N`, which starts N of them with mpirun on this machine.
#pragma once

namespace flexmoe {

int WorkerCommand(int argc, char** argv);

// Runs `mpirun -np N <this binary> worker <args>` and returns its exit status.
int LaunchWorkers(int workers, int argc, char** argv);

}  // namespace flexmoe
