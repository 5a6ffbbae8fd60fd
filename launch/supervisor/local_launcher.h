// The local launch path (`flexmoe train --workers N`): the coordinator, one loader and
// `mpirun -np N flexmoe worker` on this machine, on loopback (cluster.bind_address), in one
// process group of their own (the attempt's).
#pragma once

#include <sys/types.h>

#include "launch/supervisor/launcher.h"
#include "proto/config.pb.h"

namespace flexmoe {

struct LocalLaunchOptions {
  MemberCommand command;
  config::Config config;  // resolved
  int workers = 1;
  int threads = 0;  // per worker; 0: the cores over the workers, less one for the services
};

class LocalLauncher : public Launcher {
 public:
  explicit LocalLauncher(LocalLaunchOptions options) : options_(std::move(options)) {}
  std::vector<std::string> Hosts() override { return {"localhost"}; }
  bool MultiHost() const override { return false; }
  int Workers(const Attempt* previous, const std::vector<std::string>& hosts,
              int dead_workers) override;
  int Threads(const Attempt& attempt) override;
  std::unique_ptr<Member> StartCoordinator(const Attempt& attempt) override;
  std::unique_ptr<Member> StartLoaders(const Attempt& attempt) override;
  std::unique_ptr<Member> StartWorkers(const Attempt& attempt) override;
  bool Reachable(const std::string&) override { return true; }
  void KillLeftovers() override;
  std::string ResumeCommand() const override;
  std::string LoaderLogs() const override;

 private:
  LocalLaunchOptions options_;
  pid_t group_ = 0;  // the attempt's process group, led by its coordinator
};

// The default threads per worker for `workers` workers on `cores` cores: never more busy
// threads than cores, counting the loader.
int DefaultThreadsPerWorker(int cores, int workers);

// The cores this process may run on (its CPU affinity: a SLURM allocation, taskset, a
// cgroup's cpuset), at least 1; all online cores when the affinity cannot be read.
int UsableCores();

}  // namespace flexmoe
