// One attempt of a job, for the supervisor (job_supervisor.h): starts the coordinator, the
// loaders and the workers in that order (a member that does not start stops the start),
// forwards stop requests, watches until every member has ended, ends what still runs once
// the job has ended (bounded), probes the hosts when the job failed, and says what ended it.
#pragma once

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "cluster/metrics/job_record.h"
#include "launch/supervisor/launcher.h"
#include "launch/supervisor/stop_requests.h"
#include "launch/supervisor/supervisor_options.h"

namespace flexmoe {

struct AttemptOutcome {
  bool started = true;  // false: a member did not start (reason says which and why)
  int status = 0;       // the exit status the job ends with
  std::string state;    // finished, preempted, failed
  std::string reason;   // what ended it, first cause first
  int dead_workers = 0;
  std::vector<std::string> reachable;  // the hosts that answered the probes, when probed
  std::string newest_checkpoint;
};

class AttemptRunner {
 public:
  AttemptRunner(const SupervisorOptions& options, Launcher* launcher, StopRequests* stop,
                std::ostream& out, std::ostream& err, Attempt attempt);
  // Ends whatever of the attempt still runs.
  ~AttemptRunner();
  AttemptOutcome Run();

 private:
  using Clock = std::chrono::steady_clock;
  // Starts the members in order; false (and `failed` filled) when one did not start.
  bool Start(AttemptOutcome* failed);
  // The "listening on" addresses of a member just started, or why it did not start.
  std::optional<std::vector<std::string>> Ready(Member& member, int count, AttemptOutcome* failed);
  void PrintLivePage();
  void PrintStarted();
  void Watch();
  // One look at the members once one has ended: true when the attempt is over (what still
  // ran has been ended).
  bool EndedLongEnough(Clock::time_point first_end);
  void ForwardStopRequests();
  void StartProbes();
  // SIGKILL to every member that still runs and what it started on this host.
  void EndAll();
  AttemptOutcome Outcome();
  void NameLostHosts(const std::optional<JobRecord>& job, AttemptOutcome* out);
  // The workers ended by themselves, failing, and job.json lists none of them.
  bool WorkersNeverJoined(const std::optional<JobRecord>& job);
  std::vector<Member*> Members() const;

  const SupervisorOptions& options_;
  Launcher* launcher_;
  StopRequests* stop_;
  std::ostream& out_;
  std::ostream& err_;
  Attempt attempt_;
  std::unique_ptr<Member> coordinator_, loaders_, workers_;
  std::map<std::string, std::future<bool>> probes_;  // host: reachable
  std::optional<bool> clean_end_;  // read from job.json once the coordinator has ended
  std::set<Member*> ended_by_us_;  // killed by EndAll: their status is not the job's
  bool preempting_ = false;
  std::string coordinator_hung_;  // why the supervisor ended a coordinator that had not ended
};

}  // namespace flexmoe
