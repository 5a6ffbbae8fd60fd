// The settings of a job's supervisor (job_supervisor.h) that every launch path shares.
#pragma once

#include <functional>
#include <string>

#include "proto/config.pb.h"

namespace flexmoe {

struct SupervisorOptions {
  std::string name = "flexmoe train";  // the first word of its messages
  std::string run_dir;
  config::Config config;  // resolved; written to run_dir/config.textproto
  int max_restarts = 0;
  bool resume = false;
  // Hosts per attempt: a restart needs at least min_hosts reachable and uses at most
  // max_hosts (0: all), as torchrun's --nnodes=MIN:MAX.
  int min_hosts = 1;
  int max_hosts = 0;
  // Called once the job has finished (flexmoe train draws the report's figures); may be empty.
  std::function<void(const std::string& run_dir)> on_finished;
  // How long the other members may take to end once the coordinator has ended the job:
  // after a finished or stopped job, and after a failed one (or a coordinator that died or
  // stopped answering, which the members learn within cluster.heartbeat_timeout_s).
  double clean_end_s = 10;
  double failed_end_s = 3;
};

}  // namespace flexmoe
