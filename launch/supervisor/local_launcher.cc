// The local launch path (local_launcher.h).
#include "launch/supervisor/local_launcher.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "cluster/base/env.h"
#include "cluster/base/run_dir.h"

namespace flexmoe {

int DefaultThreadsPerWorker(int cores, int workers) {
  if (cores <= workers) return 1;
  return std::max(1, (cores - 1) / workers);  // one core for the loader and coordinator
}

int UsableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return CPU_COUNT(&set);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int LocalLauncher::Workers(const Attempt* previous, const std::vector<std::string>&,
                           int dead_workers) {
  // A restart goes on without the workers that died.
  return previous == nullptr ? options_.workers : std::max(1, previous->workers - dead_workers);
}

int LocalLauncher::Threads(const Attempt& attempt) {
  return options_.threads > 0 ? options_.threads
                              : DefaultThreadsPerWorker(UsableCores(), attempt.workers);
}

std::unique_ptr<Member> LocalLauncher::StartCoordinator(const Attempt& attempt) {
  std::vector<std::string> argv = options_.command.Args("coordinator");
  argv.insert(argv.end(),
              {"--listen", options_.config.cluster().bind_address() + ":0", "--launcher-pid",
               std::to_string(::getpid()), "--restart", std::to_string(attempt.number)});
  const std::string log = RunDir(options_.command.run_dir).coordinator_log();
  auto member = std::make_unique<ProcessMember>(ChildSpec{"coordinator", argv, log, 0},
                                                std::vector<std::string>{log});
  group_ = member->pid();
  return member;
}

std::unique_ptr<Member> LocalLauncher::StartLoaders(const Attempt& attempt) {
  std::vector<std::string> argv = options_.command.Args("loader");
  argv.insert(argv.end(), {"--set", "cluster.coordinator=" + attempt.coordinator});
  const std::string log = RunDir(options_.command.run_dir).loader_log();
  return std::make_unique<ProcessMember>(ChildSpec{"loader", argv, log, group_},
                                         std::vector<std::string>{log});
}

std::unique_ptr<Member> LocalLauncher::StartWorkers(const Attempt& attempt) {
  std::vector<std::string> argv = {"mpirun", "--oversubscribe"};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  // A terminal gets one progress line, redrawn (the ranks' output is mpirun's pipe).
  if (::isatty(STDOUT_FILENO)) {
    argv.insert(argv.end(), {"-x", std::string(kEnvProgress) + "=redraw"});
  }
  const std::vector<std::string> workers =
      options_.command.MpirunWorkers(attempt, Threads(attempt));
  argv.insert(argv.end(), workers.begin(), workers.end());
  return std::make_unique<ProcessMember>(ChildSpec{"workers", argv, "", group_},
                                         std::vector<std::string>{});
}

void LocalLauncher::KillLeftovers() {
  if (group_ > 0) ::killpg(group_, SIGKILL);
}

std::string LocalLauncher::ResumeCommand() const {
  return "flexmoe train --config " + options_.command.config_path +
         " --set run.dir=" + options_.command.run_dir + " --resume";
}

std::string LocalLauncher::LoaderLogs() const {
  return FileName(RunDir(options_.command.run_dir).loader_log());
}

}  // namespace flexmoe
