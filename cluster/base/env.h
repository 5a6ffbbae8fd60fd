// The environment variables flexmoe reads: debug and test knobs only, never training
// semantics (configs carry those). Each is named here and listed in docs/env.md; only
// launch/ reads them, through GetEnv.
#pragma once

#include <string>

namespace flexmoe {

// Test-only: "N:K[:R]" makes world rank R (default 0) kill itself with SIGKILL at the K-th
// file or directory operation of the N-th checkpoint it writes (K = 0: once that checkpoint
// is complete). Used by the crash tests (tests/launch/resume_test.cc).
inline constexpr char kEnvCheckpointFault[] = "FLEXMOE_TEST_CHECKPOINT_FAULT";

// Set by srun in each task: the step's task count and this task's index (the worker
// refuses N singletons that each believe they are rank 0).
inline constexpr char kEnvSlurmStepTasks[] = "SLURM_STEP_NUM_TASKS";
inline constexpr char kEnvSlurmProcId[] = "SLURM_PROCID";
// Set in a rank by mpirun (Open MPI) or by srun's MPI plugins (--mpi=pmix, --mpi=pmi2).
inline constexpr char kEnvOmpiWorldSize[] = "OMPI_COMM_WORLD_SIZE";
inline constexpr char kEnvPmixRank[] = "PMIX_RANK";
inline constexpr char kEnvPmiRank[] = "PMI_RANK";

// A rank's index among the ranks of its node, as mpirun (Open MPI), srun or MPICH's Hydra
// set it, in that order of preference: picks the GPU of a worker with training.device: CUDA.
inline constexpr char kEnvOmpiLocalRank[] = "OMPI_COMM_WORLD_LOCAL_RANK";
inline constexpr char kEnvSlurmLocalId[] = "SLURM_LOCALID";
inline constexpr char kEnvMpichLocalRank[] = "MPI_LOCALRANKID";

// OpenMP's wait policy: every flexmoe process sets PASSIVE when it is unset (and runs itself
// again, since libgomp reads it at load time); a value the user set is kept.
inline constexpr char kEnvOmpWaitPolicy[] = "OMP_WAIT_POLICY";

// Open MPI's progress loop: yield the core when a poll finds nothing (flexmoe workers set 1
// unless the user set it).
inline constexpr char kEnvOmpiYieldWhenIdle[] = "OMPI_MCA_mpi_yield_when_idle";

// "redraw": worker 0's output is a terminal (flexmoe train sets it for mpirun when its own
// is); the progress line is redrawn in place.
inline constexpr char kEnvProgress[] = "FLEXMOE_PROGRESS";

// Set in each process that mpirun starts: its index among them.
inline constexpr char kEnvOmpiWorldRank[] = "OMPI_COMM_WORLD_RANK";

// The variable's value, or "" when it is unset.
std::string GetEnv(const char* name);

// This process's index among the tasks mpirun or srun started together (the launch scripts'
// one loader per node): OMPI_COMM_WORLD_RANK, PMIX_RANK or SLURM_PROCID, else 0.
int LauncherTaskIndex();

}  // namespace flexmoe
