// The loader subcommand (loader_command.h).
#include "launch/loader_command.h"

#include <glog/logging.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "cluster/base/env.h"
#include "cluster/base/error.h"
#include "cluster/base/peak_memory.h"
#include "cluster/net/job_token.h"
#include "data_loader/loader_server.h"
#include "data_loader/prepared_check.h"
#include "data_loader/shard.h"
#include "data_loader/shard_samples.h"
#include "launch/cli/args.h"
#include "launch/membership.h"
#include "launch/preemption.h"
#include "proto/config_loader.h"

namespace flexmoe {

int LoaderCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::string path = args.Get("config");
  const config::Config config = LoadConfig(path, args.overrides);
  const config::ClusterConfig& cluster = config.cluster();
  // One loader per node: its rank is its index among the job's loaders (--rank, or the
  // task index that mpirun or srun gives it).
  const int rank = args.GetInt("rank", LauncherTaskIndex());

  LoaderServerOptions options;
  options.listen = args.Get("listen", cluster.bind_address() + ":0");
  options.token = ReadJobToken(cluster);
  options.max_frame_bytes = cluster.max_frame_bytes();
  options.handshake_timeout_s = cluster.connect_timeout_s();
  options.write_timeout_s = cluster.connect_timeout_s();
  // Without a coordinator SIGINT and SIGTERM stop the loader; with one, SIGTERM and SIGUSR1
  // preempt the job (below).
  options.stop_on_signals = config.cluster().coordinator().empty();
  options.name = "loader " + std::to_string(rank);
  options.build_threads = args.GetInt("threads", options.build_threads);

  const PreparedDataset prepared =
      OpenPreparedFor(config.data(), "flexmoe prepare --config " + path, PreparedParts::kServing);
  const ShardSamples data(prepared, static_cast<uint64_t>(config.data().loader_cache_mb()) << 20);
  LoaderServer server(prepared, data, options);
  LOG(INFO) << "loader: serving " << prepared.size() << " samples of " << prepared.dir << " (cache "
            << config.data().loader_cache_mb() << " MB) on " << server.address();
  std::cout << "listening on " << server.address() << std::endl;
  // With a coordinator: serve until it ends the job (exit 0 when finished, 1 otherwise).
  std::atomic<int> status{0};
  const int port = std::stoi(server.address().substr(server.address().rfind(':') + 1));
  std::unique_ptr<CoordinatorClient> coordinator =
      JoinCoordinator(config, coordinator::LOADER, rank, 0, port,
                      [&server, &status](bool finished, const std::string& line, int exit) {
                        if (!finished) PrintErrorLine("flexmoe loader: " + line);
                        status = exit;
                        server.Stop();
                      });
  // With a coordinator, SIGTERM and SIGUSR1 preempt the job (the workers checkpoint and
  // stop; the coordinator then ends the loader); their handler only sets a flag.
  if (coordinator) {
    CatchPreemptionSignals();
    std::thread([client = coordinator.get(), rank] {
      while (PreemptionSignal() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      client->Preempt("loader " + std::to_string(rank) + " got signal " +
                      std::to_string(PreemptionSignal()));
    }).detach();
  }
  server.Run();
  const ShardSamplesStats read = data.stats();
  LOG(INFO) << "loader " << rank << ": peak resident memory " << PeakResidentMb() << " MB; "
            << read.records_read << " records read, " << read.cache_hits << " cache hits, cache "
            << read.peak_cached_bytes / 1e6 << " MB at most";
  return status;
}

}  // namespace flexmoe
