// `flexmoe train --workers N`: the whole job on this machine. The launcher writes the
// resolved config and a fresh job token (mode 0600) into the run directory, starts the
// coordinator, a loader and `mpirun -np N flexmoe worker` in one process group of their
// own (the job's), on loopback, and waits for them with deadlines: every process of the
// job ends, and what ended it is said in one line. SIGINT, SIGTERM and SIGUSR1 have the
// job checkpoint at the next step and stop (a second SIGINT stops it at once); the newest
// checkpoint is named. With --max-restarts K, a job whose member died starts again from
// its newest checkpoint, without the workers that died, up to K times.
#pragma once

#include <string>
#include <vector>

#include "proto/config.pb.h"

namespace flexmoe {

struct LaunchOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // the user's --set, in order
  config::Config config;               // resolved (file and overrides)
  std::string run_dir;
  int workers = 1;
  int threads = 0;  // per worker; 0: the cores over the workers, less one for the services
  bool resume = false;
  int max_restarts = 0;
};

// Runs the job (and its restarts); returns the exit status: 0 when it finished or was
// preempted, otherwise that of the member that failed (docs/errors.md).
int LaunchJob(const LaunchOptions& options);

// The default threads per worker for `workers` workers on `cores` cores: never more busy
// threads than cores, counting the loader.
int DefaultThreadsPerWorker(int cores, int workers);

// The cores this process may run on (its CPU affinity: a SLURM allocation, taskset, a
// cgroup's cpuset), at least 1; all online cores when the affinity cannot be read.
int UsableCores();

}  // namespace flexmoe
