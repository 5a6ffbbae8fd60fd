// `flexmoe train --config FILE [--workers N] [--threads N] [--resume] [--max-restarts K]`:
// the whole job (coordinator, loader, N workers) on data.prepared_dir, into run.dir.
#include "launch/train_command.h"

#include <ctime>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "launch/args.h"
#include "launch/job_launcher.h"
#include "launch/train_job.h"
#include "proto/config_loader.h"
#include "trainer/device.h"

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
  Args args = ParseArgs(argc, argv, {"config", "workers", "threads", "max-restarts"}, {"resume"});
  LaunchOptions options;
  options.config_path = args.Get("config");
  if (options.config_path.empty()) {
    Fail(ErrorCode::kInvalidArgument, "train: --config FILE is required");
  }
  options.overrides = args.overrides;
  options.config = LoadConfig(options.config_path, args.overrides);
  // A CUDA or NCCL job this build or machine cannot run: said before anything starts.
  CheckDeviceSupport(options.config);
  options.workers = args.GetInt("workers", options.config.cluster().workers());
  options.threads = args.GetInt("threads", 0);
  options.max_restarts = args.GetInt("max-restarts", 0);
  options.resume = args.Has("resume");
  options.run_dir = RunDirFor(options.config, options.resume);
  OpenPrepared(options.config, options.config_path);  // missing data: said before anything starts
  return LaunchJob(options);
}

}  // namespace flexmoe
