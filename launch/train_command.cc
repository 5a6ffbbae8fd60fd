// `flexmoe train --config FILE [--workers N] [--threads N] [--resume] [--max-restarts K]
// [--hostfile FILE | --slurm] [--nodes MIN[:MAX]]`: the whole job (coordinator, loaders, N
// workers) on data.prepared_dir, into run.dir, on this machine or across hosts.
#include "launch/train_command.h"

#include <ctime>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "data_loader/prepare.h"
#include "data_loader/prepared_check.h"
#include "launch/cli/args.h"
#include "launch/job_launcher.h"
#include "launch/train_job.h"
#include "proto/config_loader.h"
#include "trainer/train/device.h"

namespace flexmoe {
PreparedDataset OpenPrepared(const config::Config& config, const std::string& config_path,
                             PreparedParts parts) {
  return OpenPreparedFor(config.data(), "flexmoe prepare --config " + config_path, parts);
}

void PrepareIfStale(const config::Config& config, std::ostream& out) {
  const config::DataConfig& data = config.data();
  const std::string& dir = data.prepared_dir();
  std::string why;
  if (!std::filesystem::exists(dir + "/" + kMetaFile)) {
    why = dir + " holds no prepared dataset";
  } else {
    const std::string mismatch = PreparedMismatch(PreparedDataset::OpenMeta(dir).meta, data);
    if (mismatch.empty()) return;
    why = dir + " was prepared from another data section (" + mismatch + ")";
  }
  if (!std::filesystem::exists(data.input())) {
    Fail(ErrorCode::kNotFound, why, ", and its input ", data.input(),
         " (config field data.input) is missing, so it cannot be prepared again");
  }
  out << "flexmoe train: " << why << ": preparing it from " << data.input() << std::endl;
  const PrepareResult result = PrepareDataset(config, dir, nullptr);
  out << "flexmoe train: prepared " << result.meta.num_samples() << " samples in " << result.seconds
      << " s" << std::endl;
}

std::string DefaultRunDir() {
  std::time_t now = std::time(nullptr);
  char buffer[64];
  std::strftime(buffer, sizeof(buffer), "runs/%Y%m%d-%H%M%S", std::localtime(&now));
  return buffer;
}

int TrainCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  LaunchOptions options;
  options.config_path = args.Get("config");
  options.overrides = args.overrides;
  options.config = LoadConfig(options.config_path, args.overrides);
  // A CUDA or NCCL job this build or machine cannot run: said before anything starts.
  CheckDeviceSupport(options.config);
  options.workers = args.GetInt("workers", 0);
  if (args.Has("workers") && options.workers < 1) {
    Fail(ErrorCode::kInvalidArgument, "train: --workers must be at least 1");
  }
  options.threads = args.GetInt("threads", 0);
  options.max_restarts = args.GetInt("max-restarts", 0);
  options.resume = args.Has("resume");
  options.hostfile = args.Get("hostfile");
  options.slurm = args.Has("slurm");
  if (args.Has("nodes")) ParseNodeRange(args.Get("nodes"), &options.min_hosts, &options.max_hosts);
  options.run_dir = RunDirFor(options.config, options.resume);
  // Missing or stale data: prepared again, and said, before anything starts.
  PrepareIfStale(options.config, std::cerr);
  return LaunchJob(options);
}

}  // namespace flexmoe
