// OpenMP's wait policy for every flexmoe process: PASSIVE (idle pool threads sleep at once)
// unless the user chose one. LibTorch's OpenMP (libgomp) reads OMP_WAIT_POLICY when it is
// loaded, before main, so the process sets it and executes itself again.
#pragma once

namespace flexmoe {

// When OMP_WAIT_POLICY is unset: sets it to PASSIVE and re-executes /proc/self/exe with the
// same arguments (the process keeps its pid). Returns when the policy was already set, or
// when the re-execution failed (the process then runs with libgomp's spinning default).
void EnsurePassiveOpenMpWait(char** argv);

}  // namespace flexmoe
