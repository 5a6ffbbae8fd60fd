// One supervisor for every launch path (`flexmoe train` on this machine, --hostfile, --slurm):
// it owns the run directory's lease, the job token, the start order (coordinator, one loader
// per host, workers; a member that does not start stops the start), the watch (members,
// the coordinator's verdict in job.json, a stopped coordinator), the bounded end (whatever
// still runs once the job has ended is killed), host probes, the culprit (a lost host is the
// first cause), restarts on the hosts still reachable (and those that came back, between
// --nodes MIN and MAX), and the last line. Members are started through a Launcher
// (launcher.h), so that unit tests drive it with fakes in milliseconds.
#pragma once

#include <ostream>
#include <string>

#include "launch/supervisor/attempt_runner.h"
#include "launch/supervisor/launcher.h"
#include "launch/supervisor/stop_requests.h"
#include "launch/supervisor/supervisor_options.h"

namespace flexmoe {

class JobSupervisor {
 public:
  JobSupervisor(SupervisorOptions options, Launcher* launcher, StopRequests* stop,
                std::ostream* out, std::ostream* err)
      : options_(std::move(options)), launcher_(launcher), stop_(stop), out_(*out), err_(*err) {}
  // Runs the job and its restarts; returns the exit status (docs/errors.md): 0 when it
  // finished or stopped at a checkpoint, otherwise that of what failed (1 when the
  // supervisor ended it, 2 for a run directory another job holds).
  int Run();

 private:
  int RunAttempts();
  // The hosts of the attempt after `outcome`; fewer than min_hosts: none.
  std::vector<std::string> NextHosts(const AttemptOutcome& outcome) const;
  int Summarize(const Attempt& attempt, const AttemptOutcome& outcome);

  SupervisorOptions options_;
  Launcher* launcher_;
  StopRequests* stop_;
  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace flexmoe
