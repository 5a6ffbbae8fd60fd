// How a job's members are started, for the supervisor (job_supervisor.h): one
// implementation per launch path (local_launcher.h: this machine; hostfile_launcher.h:
// mpirun across an Open MPI hostfile's hosts; slurm_launcher.h: srun and mpirun inside a
// SLURM allocation). A launcher starts processes and probes hosts; what to start when, how
// long to wait, and what to do when something ends are the supervisor's.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "launch/supervisor/member.h"

namespace flexmoe {

// One attempt of a job: where it runs and how it starts.
struct Attempt {
  int number = 0;                  // 0: the first; restarts count up
  std::vector<std::string> hosts;  // the first runs the coordinator; a loader on each
  int workers = 1;
  bool resume = false;
  std::string why;                   // what ended the previous attempt
  std::string coordinator;           // its address, once it listens
  std::vector<std::string> loaders;  // theirs
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // The hosts a job may run on now: the hostfile read again (a host added since joins the
  // next restart), the allocation's nodes, this machine.
  virtual std::vector<std::string> Hosts() = 0;
  // Whether messages name the hosts (one machine: they do not).
  virtual bool MultiHost() const = 0;
  // The workers of an attempt on `hosts`: `previous` is the attempt before (null for the
  // first) and `dead_workers` how many of its workers the coordinator found dead.
  virtual int Workers(const Attempt* previous, const std::vector<std::string>& hosts,
                      int dead_workers) = 0;
  // The compute threads of each worker of an attempt.
  virtual int Threads(const Attempt& attempt) = 0;
  virtual std::unique_ptr<Member> StartCoordinator(const Attempt& attempt) = 0;
  // One loader per host of the attempt.
  virtual std::unique_ptr<Member> StartLoaders(const Attempt& attempt) = 0;
  virtual std::unique_ptr<Member> StartWorkers(const Attempt& attempt) = 0;
  // Whether a member can still be started on `host` (a few seconds at most); called from
  // several threads at once.
  virtual bool Reachable(const std::string& host) = 0;
  // Ends whatever of the attempt's processes on this host escaped their member's tree (a
  // process group), once the members have been killed.
  virtual void KillLeftovers() {}
  // The command that continues a stopped job (its --resume appended).
  virtual std::string ResumeCommand() const = 0;
  // The loaders' logs, for the line that says where the logs are.
  virtual std::string LoaderLogs() const = 0;
};

// What every member's command line shares: this binary, the subcommand, the config and the
// user's --set, the run directory and the job token file.
struct MemberCommand {
  std::string self;  // this binary
  std::string config_path;
  std::vector<std::string> overrides;
  std::string run_dir;
  std::vector<std::string> Args(const std::string& command) const;
  // The worker's own flags for an attempt: coordinator, loaders, threads, resume, restart.
  std::vector<std::string> WorkerArgs(const Attempt& attempt, int threads) const;
  // mpirun's tail for an attempt's workers: -np, the threads, the worker's command line.
  std::vector<std::string> MpirunWorkers(const Attempt& attempt, int threads) const;
  // bash -c 'exec SELF loader ... --listen "$(hostname):0"': a loader listening on the
  // name of the host mpirun or srun started it on.
  std::vector<std::string> LoaderOnItsHost(const std::string& coordinator) const;
};

// The name of `path` in its directory ("loader.log").
std::string FileName(const std::string& path);

// The binary this process runs.
std::string SelfExecutable();

}  // namespace flexmoe
