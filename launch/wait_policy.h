// OpenMP's wait policy for every flexmoe process: PASSIVE (idle pool threads sleep at once)
// unless the user chose one. LibTorch's OpenMP (libgomp) reads OMP_WAIT_POLICY when it is
// loaded, before main, so the process sets it and executes itself again.
#pragma once

namespace flexmoe {

// When OMP_WAIT_POLICY is unset: sets it to PASSIVE and re-executes /proc/self/exe with the
// same arguments (the process keeps its pid). Returns when the policy was already set, or
// when the re-execution failed (the process then runs with libgomp's spinning default).
void EnsurePassiveOpenMpWait(char** argv);

// Open MPI's progress loop yields the core (sched_yield) when a poll finds nothing to do,
// unless the user set OMPI_MCA_mpi_yield_when_idle: call before MPI_Init. Why: a rank that
// spins without yielding keeps the kernel's network receive work (softirq, run by ksoftirqd
// on a busy core) off its core until the next timer tick, 4 ms at HZ=250. Between two hosts
// over TCP a raw MPI_Alltoallv of 64 KB took 7.9 ms instead of 0.09 ms (docs/benchmarks.md).
void EnsureMpiYieldsWhenIdle();

}  // namespace flexmoe
