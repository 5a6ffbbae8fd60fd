// `flexmoe worker`: one MPI rank of a multi-worker training job (run under mpirun or srun),
// and `flexmoe train --workers N`, which starts N of them with mpirun on this machine.
#pragma once

#include <string>

namespace flexmoe {

int WorkerCommand(int argc, char** argv);

// Replaces this process by `mpirun -np N <this binary> worker <args> --set run.dir=DIR`.
int LaunchWorkers(int workers, const std::string& run_dir, int argc, char** argv);

}  // namespace flexmoe
