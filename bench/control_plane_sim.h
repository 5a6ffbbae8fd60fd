// Simulated members for the control-plane load test (bench/control_plane_bench.cc): a
// process holding `count` workers of a job, each a real CoordinatorClient with its own
// connection and heartbeat thread, each reporting a step record of the real shape through
// the real CoordinatorReportSink every report interval (worker 0 also opens the run and sends
// its placement back now and then). Each member's STOP (or loss of the coordinator) is
// timed on the steady clock, which is the same across the processes of one machine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flexmoe::bench {

struct SimulationOptions {
  std::string address, token;
  std::string config;                  // the job's config file
  std::vector<std::string> overrides;  // --set, as the coordinator got them
  int first = 0, count = 0, world = 0;
  int register_threads = 8;
  double report_interval_s = 1;
  std::string out;  // one line per member: "rank stop_ns finished|stopped|lost|none line"
};

// Registers the members, prints "registered N" once all are, reports until every member
// was told to stop (or SIGUSR1: every member leaves as finished; SIGTERM: none leaves),
// writes `out`. Returns the exit status.
int SimulateMembers(const SimulationOptions& options);

// The steady clock's now in nanoseconds (CLOCK_MONOTONIC: comparable across processes).
int64_t SteadyNowNs();

}  // namespace flexmoe::bench
