// `flexmoe train`'s launch paths on one supervisor (job_launcher.h).
#include "launch/job_launcher.h"

#include <csignal>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "inference/report.h"
#include "launch/preemption.h"
#include "launch/supervisor/hostfile_launcher.h"
#include "launch/supervisor/job_supervisor.h"
#include "launch/supervisor/slurm_launcher.h"

namespace flexmoe {
namespace {

// Written by the signal handlers: process-wide state owned by launch/, as the preemption
// flag (preemption.cc).
StopRequests stop_requests;

extern "C" void OnLauncherInterrupt(int) { stop_requests.interrupts.fetch_add(1); }
extern "C" void OnLauncherTerminate(int signal) { stop_requests.terminate_signal = signal; }

std::unique_ptr<Launcher> LauncherFor(const LaunchOptions& options, const MemberCommand& command) {
  if (!options.hostfile.empty()) {
    ReadHostfile(options.hostfile);  // a bad hostfile is refused before anything is written
    return std::make_unique<HostfileLauncher>(
        HostfileLaunchOptions{command, options.hostfile, options.workers, options.threads});
  }
  if (options.slurm) {
    return std::make_unique<SlurmLauncher>(
        SlurmLaunchOptions{command, options.workers, options.threads});
  }
  const int workers = options.workers > 0 ? options.workers : options.config.cluster().workers();
  return std::make_unique<LocalLauncher>(
      LocalLaunchOptions{command, options.config, std::max(workers, 1), options.threads});
}

// The figures of a finished run (inference/report.h). The job has succeeded by then: a
// report that cannot be drawn (no gnuplot) is a warning naming the command to retry.
void DrawReport(const std::string& run_dir) {
  try {
    WriteReport(run_dir, &std::cout);
  } catch (const Error& e) {
    std::cerr << "flexmoe train: warning: no report (" << e.what()
              << "); draw it with: flexmoe report " << run_dir << std::endl;
  }
}

}  // namespace

void ParseNodeRange(const std::string& text, int* min_hosts, int* max_hosts) {
  const size_t colon = text.find(':');
  auto number = [&](const std::string& part) {
    if (part.empty() || part.size() > 6 ||
        part.find_first_not_of("0123456789") != std::string::npos || std::stoi(part) < 1) {
      Fail(ErrorCode::kInvalidArgument, "train: --nodes '", text,
           "': expected MIN or MIN:MAX, positive whole numbers");
    }
    return std::stoi(part);
  };
  *min_hosts = number(text.substr(0, colon));
  *max_hosts = colon == std::string::npos ? 0 : number(text.substr(colon + 1));
  if (*max_hosts > 0 && *max_hosts < *min_hosts) {
    Fail(ErrorCode::kInvalidArgument, "train: --nodes '", text, "': MAX is below MIN");
  }
}

int LaunchJob(const LaunchOptions& options) {
  if (options.workers < 0) Fail(ErrorCode::kInvalidArgument, "train: --workers must be at least 1");
  if (options.max_restarts < 0) {
    Fail(ErrorCode::kInvalidArgument, "train: --max-restarts must be at least 0");
  }
  if (!options.hostfile.empty() && options.slurm) {
    Fail(ErrorCode::kInvalidArgument,
         "train: --hostfile and --slurm are two launch paths; give one");
  }
  const bool multi_host = !options.hostfile.empty() || options.slurm;
  // Across hosts the run directory is named the same everywhere (a shared file system).
  const std::string run_dir =
      multi_host ? std::filesystem::absolute(options.run_dir).lexically_normal().string()
                 : options.run_dir;
  const MemberCommand command{SelfExecutable(), options.config_path, options.overrides, run_dir};
  const std::unique_ptr<Launcher> launcher = LauncherFor(options, command);
  SupervisorOptions supervisor;
  supervisor.run_dir = run_dir;
  supervisor.config = options.config;
  supervisor.max_restarts = options.max_restarts;
  supervisor.resume = options.resume;
  supervisor.min_hosts = options.min_hosts;
  supervisor.max_hosts = options.max_hosts;
  supervisor.on_finished = DrawReport;
  CatchSignals(OnLauncherInterrupt, {SIGINT});
  CatchSignals(OnLauncherTerminate, {SIGTERM, SIGUSR1});
  return JobSupervisor(supervisor, launcher.get(), &stop_requests, &std::cout, &std::cerr).Run();
}

}  // namespace flexmoe
