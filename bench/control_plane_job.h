// One simulated job for the control-plane load test (control_plane_bench.cc): a real
// `flexmoe coordinator` process, the job's workers simulated by a few processes of real
// clients (control_plane_sim.h), one more process holding a single slow member (stopped
// for a while now and then, but never for the heartbeat timeout) and one holding the member
// the fault is done to (kill -9 or SIGSTOP).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster/base/child_process.h"

namespace flexmoe::bench {

struct JobSetup {
  std::string self;     // this program, to start the simulators
  std::string flexmoe;  // the flexmoe program, for the coordinator
  std::string config;   // the job's config (the coordinator's and the members')
  std::vector<std::string> overrides;
  std::string dir;  // this job's files: logs, run directory, members' results
  std::string token;
  int members = 0;
  int processes = 4;
  double heartbeat_timeout_s = 4;
  double slow_pause_s = 2;  // the slow member is stopped this long every slow_every_s
  double slow_every_s = 3;
};

// What the coordinator did while the members ran steadily.
struct SteadyFigures {
  double register_s = 0;  // every member registered
  double seconds = 0;
  double cpu_cores = 0;             // the coordinator's CPU time over the wall time
  double simulators_cpu_cores = 0;  // the simulated members' (the same machine's cores)
  double rss_mb = 0, peak_rss_mb = 0;
  double metrics_mb_per_hour = 0, tensorboard_mb_per_hour = 0, job_json_kb = 0;
  double step_lines_per_s = 0, reports_per_s = 0;
  bool false_verdict = false;
  std::string verdict;  // the coordinator's last lines when it ended the job
  std::string metrics;  // /metrics at the end of the steady phase
  double api_job_ms = 0, metrics_ms = 0;
  // The live page in headless Chromium (when on PATH): the whole run (start, load, first
  // render with the job's data, DOM dumped), and whether it showed the members' summary.
  double page_s = -1;
  bool page_ok = false;
};

// How a fault was seen: from the fault to the first member told, and to the last.
struct FaultFigures {
  double detect_s = -1, all_told_s = -1;
  int told = 0, expected = 0;
  std::string verdict;  // the coordinator's STOP line
};

class SimulatedJob {
 public:
  explicit SimulatedJob(JobSetup setup);
  // Kills whatever still runs.
  ~SimulatedJob();
  SimulatedJob(const SimulatedJob&) = delete;
  SimulatedJob& operator=(const SimulatedJob&) = delete;

  // Starts the coordinator and the members; returns when every member registered.
  void Start();
  // Lets the job run for `seconds`, the slow member paused now and then.
  SteadyFigures Steady(double seconds);
  // Kills (SIGKILL) or stops (SIGSTOP) the fault member and times the verdict.
  FaultFigures Fault(int signal);

 private:
  std::unique_ptr<ChildProcess> StartSimulator(const std::string& name, int first, int count);
  void WaitForMembers(double timeout_s);
  std::string HttpGetTimed(const std::string& path, double* ms) const;
  double SimulatorsCpu() const;
  void LoadPage(SteadyFigures* f) const;
  void CollectEnds(int64_t fault_ns, FaultFigures* figures);

  JobSetup setup_;
  std::string address_, run_dir_, http_, http_token_;
  double register_s_ = 0;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> simulators_;  // then the slow one, the fault one
};

}  // namespace flexmoe::bench
