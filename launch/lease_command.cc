// The lease subcommand (lease_command.h).
#include "launch/lease_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/base/run_lease.h"
#include "launch/cli/args.h"
#include "launch/preemption.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

// A lock-free atomic: safe to write in a signal handler and to read from any thread.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> lease_signal{0};
extern "C" void OnLeaseSignal(int signal) { lease_signal = signal; }

}  // namespace

int LeaseCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  const std::string path = args.Get("config");
  const config::Config config = LoadConfig(path, args.overrides);
  if (config.run().dir().empty()) {
    Fail(ErrorCode::kInvalidArgument, "lease: the config names no run.dir (--set run.dir=DIR)");
  }
  const pid_t watched = static_cast<pid_t>(args.GetInt("watch-pid", ::getppid()));
  CatchSignals(OnLeaseSignal, {SIGTERM, SIGINT, SIGHUP});
  std::atomic<bool> lost{false};
  RunLease::Options options;
  options.run_dir = config.run().dir();
  options.timeout_s = config.cluster().heartbeat_timeout_s();
  options.what = args.Get("what", "flexmoe lease");
  options.on_lost = [&lost](const LeaseHolder& by) {
    PrintErrorLine("flexmoe lease: the lease of the run directory was taken over by host " +
                   by.host + ", pid " + std::to_string(by.pid));
    lost = true;
  };
  std::string taken_over;
  RunLease lease(options, &taken_over);
  if (!taken_over.empty()) std::cout << taken_over << "\n";
  std::cout << "lease held on " << options.run_dir << std::endl;
  while (lease_signal == 0 && !lost && ::kill(watched, 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return lost ? 1 : 0;
}

}  // namespace flexmoe
