// `flexmoe lease --config FILE [--set ...] [--what TEXT] [--watch-pid PID]`: holds the lease of
// run.dir (cluster/base/run_lease.h) for a launch script. It prints "lease held on DIR" once
// it has it (or exits 2 naming the live holder), renews it while the watched process (by
// default its parent, the script) lives, and releases it when that process ends or on
// SIGTERM/SIGINT.
#pragma once

namespace flexmoe {

int LeaseCommand(int argc, char** argv);

}  // namespace flexmoe
