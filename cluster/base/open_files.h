// The open-file limit a process that serves many connections needs (the coordinator holds
// one socket per member): the soft limit raised towards the hard one.
#pragma once

namespace flexmoe {

// Raises this process's soft RLIMIT_NOFILE to at least `needed` (up to the hard limit) and
// returns the soft limit now in force. kFailedPrecondition naming `what`, the need and the
// hard limit when the hard limit is below `needed`.
long EnsureOpenFiles(long needed, const char* what);

}  // namespace flexmoe
