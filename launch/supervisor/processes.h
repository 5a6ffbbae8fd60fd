// This host's processes as /proc shows them, for the supervisor: a process's state (a
// stopped one is 'T'), its descendants, SIGKILL to a whole tree, and a short command run
// with a deadline. Torch-free, no state.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace flexmoe {

// The state letter of a process (R, S, D, T, Z...), or 0 when it cannot be read.
char ProcessState(pid_t pid);

// Every process below `pid` on this host (children, theirs...), parents before children.
std::vector<pid_t> DescendantsOf(pid_t pid);

// SIGKILL to `pid` and every descendant it has now (mpirun and its local ranks, srun, the
// rsh agent's children): the tree is collected before the first signal.
void KillTree(pid_t pid);

struct CommandResult {
  bool ran = false;    // it ended by itself within the deadline
  int status = -1;     // its exit status when it did
  std::string output;  // stdout and stderr
};

// Runs `argv` (argv[0] looked up in PATH) with its output captured, SIGKILLed with its tree
// after `timeout_s`: `scontrol show hostnames`, a host probe.
CommandResult RunCommandWithDeadline(const std::vector<std::string>& argv, double timeout_s);

}  // namespace flexmoe
