// The SLURM launch path (`flexmoe train --slurm`, inside sbatch or salloc): the coordinator
// on this node (the allocation's first, where the batch script runs), one loader per node as
// one srun step (`--output=RUN/loader-%N.log`), the workers through mpirun, which starts its
// daemons as srun steps of the allocation. After a lost node the next attempt runs on the
// nodes still reachable (sbatch --no-kill keeps the allocation), with the allocation's tasks
// per node.
#pragma once

#include <string>
#include <vector>

#include "launch/supervisor/launcher.h"

namespace flexmoe {

struct SlurmLaunchOptions {
  MemberCommand command;
  int workers = 0;  // 0: SLURM_NTASKS (the allocation's tasks)
  int threads = 0;  // per worker; 0: SLURM_CPUS_PER_TASK, else 1
};

class SlurmLauncher : public Launcher {
 public:
  // kInvalidArgument (exit 2) when this process is not inside an allocation.
  explicit SlurmLauncher(SlurmLaunchOptions options);
  std::vector<std::string> Hosts() override { return nodes_; }
  bool MultiHost() const override { return true; }
  int Workers(const Attempt* previous, const std::vector<std::string>& hosts,
              int dead_workers) override;
  int Threads(const Attempt& attempt) override;
  std::unique_ptr<Member> StartCoordinator(const Attempt& attempt) override;
  std::unique_ptr<Member> StartLoaders(const Attempt& attempt) override;
  std::unique_ptr<Member> StartWorkers(const Attempt& attempt) override;
  bool Reachable(const std::string& host) override;
  std::string ResumeCommand() const override;
  std::string LoaderLogs() const override;

 private:
  SlurmLaunchOptions options_;
  std::string job_id_;
  std::vector<std::string> nodes_;  // the allocation's, in order
  int tasks_ = 1;                   // SLURM_NTASKS
  int tasks_per_node_ = 1;          // tasks over nodes, rounded down
  std::string batch_script_;        // the batch script's path, when SLURM says
};

}  // namespace flexmoe
