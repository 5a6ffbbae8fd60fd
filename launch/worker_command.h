// `flexmoe worker`: one MPI rank of a training job (under mpirun or srun; `flexmoe train`
// starts them with mpirun, launch/job_launcher.h).
#pragma once

#include <string>

namespace flexmoe {

int WorkerCommand(int argc, char** argv);

}  // namespace flexmoe
