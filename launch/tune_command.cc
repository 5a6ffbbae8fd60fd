// The tune subcommand (tune_command.h): flags, SIGINT/SIGTERM stopping the search, the
// summary of the trials.
#include "launch/tune_command.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cluster/base/error.h"
#include "launch/cli/args.h"
#include "launch/job_launcher.h"
#include "launch/preemption.h"
#include "tune/tune_results.h"
#include "tune/tuner.h"

namespace flexmoe {
namespace {

// Set by the signal handler (process-wide state owned by launch/, as the launcher's flags).
// A lock-free atomic: safe to write in a signal handler and to read from any thread.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> stop_signal{0};
extern "C" void OnTuneSignal(int signal) { stop_signal = signal; }

void CatchTuneSignals() { CatchSignals(OnTuneSignal, {SIGINT, SIGTERM}); }

}  // namespace

int TuneCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  TuneOptions options;
  options.config_path = args.Get("config");
  options.space_path = args.Get("space");
  options.out_dir = args.Get("out");
  options.overrides = args.overrides;
  options.max_trials = args.GetInt("trials", 0);
  options.threads = args.GetInt("threads", 1);
  const int cores = UsableCores();
  options.parallel = args.GetInt("parallel", std::max(1, cores / std::max(1, options.threads)));
  const std::string timeout = args.Get("trial-timeout-s", "7200");
  char* end = nullptr;
  options.trial_timeout_s = std::strtod(timeout.c_str(), &end);
  if (end == timeout.c_str() || *end != '\0') {
    Fail(ErrorCode::kInvalidArgument, "tune: --trial-timeout-s '", timeout, "' is not a number");
  }
  if (options.max_trials < 1 || options.threads < 1 || options.parallel < 1 ||
      !(options.trial_timeout_s > 0)) {
    Fail(ErrorCode::kInvalidArgument,
         "tune: --trials, --threads and --parallel must be >= 1, --trial-timeout-s > 0");
  }
  options.executable = std::filesystem::read_symlink("/proc/self/exe").string();
  CatchTuneSignals();
  options.stop_requested = [] { return stop_signal != 0; };
  const TuneResult result = RunTune(options, &std::cout);
  std::cout << "\nwrote " << result.csv_path << "\n";
  if (result.best < 0) {
    std::cout << "no trial finished; nothing chosen\n";
    return result.stopped ? 130 : 1;
  }
  const TrialResult& best = result.trials[result.best];
  std::cout << "best: trial " << best.trial.number << " (" << TrialLabel(best.trial)
            << "), validation " << result.metric << " " << best.mean << " +- " << best.std
            << " over " << best.fold_scores.size() << " folds\nwrote " << result.best_config_path
            << "\n";
  return result.stopped ? 130 : 0;
}

}  // namespace flexmoe
