// EnsurePassiveOpenMpWait (wait_policy.h). Why: with OpenMP's default policy, pool threads
// spin for a while after each parallel region; beside another job on the same cores that
// spinning took the cores from the threads doing the work, and `--threads 2` trained at
// 0.03x of `--threads 1` (docs/benchmarks.md, shared cores).
#include "launch/wait_policy.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "cluster/base/env.h"

namespace flexmoe {

void EnsurePassiveOpenMpWait(char** argv) {
  if (!GetEnv(kEnvOmpWaitPolicy).empty()) return;
  if (::setenv(kEnvOmpWaitPolicy, "PASSIVE", 1) != 0) return;
  // The resolved path, not /proc/self/exe itself: the kernel names the process after the
  // file executed, and `ps`, `top` and `perf` should say flexmoe, not exe.
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n > 0) {
    path[n] = '\0';
    ::execv(path, argv);
  }
  ::execv("/proc/self/exe", argv);
  // Only reached when execv failed: carry on with the default policy.
}

void EnsureMpiYieldsWhenIdle() {
  if (GetEnv(kEnvOmpiYieldWhenIdle).empty()) ::setenv(kEnvOmpiYieldWhenIdle, "1", 1);
}

}  // namespace flexmoe
