// `flexmoe train --config FILE [--workers N] [--threads N] [--resume]`: trains on
// data.prepared_dir, writes metrics, checkpoints and the best parameters into run.dir,
// prints the per-combination table, and with several training.seeds the mean +- std.
#include "launch/train_command.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "data_loader/decoded_dataset.h"
#include "launch/args.h"
#include "launch/preemption.h"
#include "launch/train_job.h"
#include "launch/worker_command.h"
#include "proto/config_loader.h"
#include "trainer/compute_threads.h"
#include "trainer/trainer.h"

namespace flexmoe {
PreparedDataset OpenPrepared(const config::Config& config, const std::string& config_path) {
  const std::string& dir = config.data().prepared_dir();
  if (!std::filesystem::exists(dir + "/" + kMetaFile)) {
    Fail(ErrorCode::kNotFound, dir, ": no prepared dataset (config field data.prepared_dir); ",
         "run: flexmoe prepare --config ", config_path);
  }
  return PreparedDataset::Open(dir);
}

std::string DefaultRunDir() {
  std::time_t now = std::time(nullptr);
  char buffer[64];
  std::strftime(buffer, sizeof(buffer), "runs/%Y%m%d-%H%M%S", std::localtime(&now));
  return buffer;
}

int TrainCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv, {"config", "workers", "threads"}, {"resume"});
  std::string path = args.Get("config");
  if (path.empty()) Fail(ErrorCode::kInvalidArgument, "train: --config FILE is required");
  config::Config config = LoadConfig(path, args.overrides);
  int workers = args.GetInt("workers", config.cluster().workers());
  if (workers < 1) Fail(ErrorCode::kInvalidArgument, "train: --workers must be at least 1");
  const bool resume = args.Has("resume");
  const std::string run_dir = RunDirFor(config, resume);
  if (workers > 1) return LaunchWorkers(workers, run_dir, argc, argv);
  PreparedDataset prepared = OpenPrepared(config, path);
  DecodedDataset data(prepared);
  TrainOptions options;
  options.log = &std::cout;
  options.threads = args.GetInt("threads", 0);
  CatchPreemptionSignals();
  PreemptionHook preemption(nullptr, 0);
  options.hooks.push_back(&preemption);
  std::cout << "BLAS: " << BlasDescription() << "\n";
  std::cout << "training on " << config.data().prepared_dir() << " (" << prepared.size()
            << " samples), run directory " << run_dir << "\n";
  return TrainSeeds(config, prepared, data, run_dir, resume, options, &std::cout);
}

}  // namespace flexmoe
