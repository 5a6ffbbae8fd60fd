// `flexmoe train`: a whole job, on this machine (--workers N), across the hosts of an Open
// MPI hostfile (--hostfile FILE) or inside a SLURM allocation (--slurm), all supervised by
// one JobSupervisor (launch/supervisor/job_supervisor.h) with the same flags, messages and
// exit codes. SIGINT, SIGTERM and SIGUSR1 have the job checkpoint at the next step and stop
// (a second SIGINT stops it at once). With --max-restarts K, a job whose member or host died
// starts again from its newest checkpoint, without the dead workers or on the hosts still
// reachable, up to K times.
#pragma once

#include <string>
#include <vector>

#include "launch/supervisor/local_launcher.h"  // DefaultThreadsPerWorker, UsableCores
#include "proto/config.pb.h"

namespace flexmoe {

struct LaunchOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // the user's --set, in order
  config::Config config;               // resolved (file and overrides)
  std::string run_dir;
  int workers = 0;  // 0: cluster.workers here, the slots or tasks across hosts
  int threads = 0;  // per worker; 0: the launch path's default
  bool resume = false;
  int max_restarts = 0;
  std::string hostfile;  // --hostfile FILE
  bool slurm = false;    // --slurm
  int min_hosts = 1;     // --nodes MIN[:MAX]
  int max_hosts = 0;
};

// Runs the job (and its restarts); returns the exit status: 0 when it finished or was
// preempted, otherwise that of what failed (docs/errors.md).
int LaunchJob(const LaunchOptions& options);

// "MIN" or "MIN:MAX" (--nodes) into min and max hosts; kInvalidArgument otherwise.
void ParseNodeRange(const std::string& text, int* min_hosts, int* max_hosts);

}  // namespace flexmoe
