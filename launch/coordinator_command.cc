// `flexmoe coordinator` (coordinator_command.h): the job's coordinator service from a
// config, with the preemption and checkpoint signals and the launcher watch.
#include "launch/coordinator_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/coord/service.h"
#include "cluster/net/job_token.h"
#include "launch/cli/args.h"
#include "launch/preemption.h"
#include "launch/train_job.h"
#include "proto/config_compare.h"
#include "proto/config_loader.h"
#include "trainer/model/placement_policy.h"
#include "trainer/train/evaluate.h"

namespace flexmoe {
namespace {

std::string NewJobId() {
  std::random_device random;
  char id[17];
  std::snprintf(id, sizeof(id), "%08x%08x", random(), random());
  return id;
}

// The heatmap's row names: the prepared dataset's combinations, or none before it is
// prepared (the page then numbers them).
std::vector<std::string> CombinationNamesOf(const config::Config& config) {
  try {
    return CombinationNames(PreparedDataset::OpenMeta(config.data().prepared_dir()));
  } catch (const Error&) {
    return {};
  }
}

}  // namespace

int CoordinatorCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::string path = args.Get("config");
  const config::Config config = LoadConfig(path, args.overrides);
  const config::ClusterConfig& cluster = config.cluster();
  CoordinatorOptions options;
  options.listen = args.Get("listen", cluster.bind_address() + ":0");
  options.token = ReadJobToken(cluster);
  options.heartbeat_interval_s = cluster.heartbeat_interval_s();
  options.heartbeat_timeout_s = cluster.heartbeat_timeout_s();
  options.handshake_timeout_s = cluster.connect_timeout_s();
  // The workers and at most a loader each (raised when the first worker gives the world).
  options.max_members = 2 * cluster.workers();
  options.job_id = NewJobId();
  options.run_dir = RunDirFor(config, false);
  options.tensorboard = config.metrics().tensorboard();
  options.per_worker_limit = config.metrics().per_worker_limit();
  options.checkpoint_every_steps = config.checkpoint().every_steps();
  options.checkpoint_every_epochs = config.checkpoint().every_epochs();
  options.checkpoint_keep_last = config.checkpoint().keep_last();
  options.config_hash = ComputationHash(config);
  options.config_text = ConfigToText(config);
  // LOAD_AWARE packs by the training split's combination counts (the prepared summary).
  std::shared_ptr<PreparedDataset> prepared;
  if (cluster.placement() == config::ClusterConfig::LOAD_AWARE) {
    prepared =
        std::make_shared<PreparedDataset>(PreparedDataset::OpenMeta(config.data().prepared_dir()));
  }
  options.http_listen = cluster.http_listen();
  options.http_require_token = cluster.http_require_token();
  options.restart = args.GetInt("restart", 0);
  options.combination_names = CombinationNamesOf(config);
  const int ep_degree = cluster.expert_parallel_degree();
  options.placement = [config, prepared, ep_degree](int world_size) {
    const int ranks = world_size == 1 ? 1 : (ep_degree > 0 ? ep_degree : world_size);
    if (prepared) return MakePlacement(config, *prepared, ranks);
    return MakePlacement(config, PreparedDataset(), ranks);
  };
  // SIGTERM and SIGUSR1 (preemption) have the workers checkpoint and stop; their handler
  // only sets a flag, which a thread watches (LibTorch starts threads before main, so the
  // signals cannot be blocked everywhere for sigwait). SIGINT ends the coordinator, and with
  // it the job.
  // SIGUSR2 asks for a checkpoint and the job goes on.
  CatchPreemptionSignals(/*checkpoint_signal=*/true);
  CoordinatorService service(options);
  // Started by `flexmoe train` (or tune's trials): the job does not outlive its launcher.
  // A launcher killed outright (SIGKILL, so it could not stop the job) leaves the
  // coordinator reparented; the job then checkpoints and stops as if preempted.
  const pid_t launcher = static_cast<pid_t>(args.GetInt("launcher-pid", 0));
  std::thread([&service, launcher] {
    int checkpoints = 0;
    while (PreemptionSignal() == 0) {
      if (launcher > 0 && ::getppid() != launcher) {
        service.Preempt("the launcher (pid " + std::to_string(launcher) + ") is gone");
        return;
      }
      if (CheckpointSignals() != checkpoints) {
        checkpoints = CheckpointSignals();
        service.Checkpoint("the coordinator got SIGUSR2");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    service.Preempt("the coordinator got signal " + std::to_string(PreemptionSignal()));
  }).detach();
  std::cout << "listening on " << service.address() << "\nrun directory " << options.run_dir
            << "\njob " << options.job_id << "\n";
  if (!service.http_address().empty()) {
    std::cout << "live page on http://" << service.http_address() << "/\n";
  }
  std::cout << std::flush;
  return service.Run();
}

}  // namespace flexmoe
