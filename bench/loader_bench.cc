// Loader throughput over loopback, on the path `flexmoe loader` runs: an in-process
// LoaderServer (its build threads included) serving shuffled epochs from the prepared
// shards on demand (ShardSamples, a cache of --cache-mb), to 1, 4 and 8 LoaderClients
// (workers of one job, each on its own thread) as fast as they take them. For each number of
// consumers the loader starts with an empty cache ("cold"; with --drop-caches the page cache
// is dropped too, so the shards come from the disk), then measures again ("warm"). Prints
// batches/s, samples/s and MB/s per setting, the in-process PlanBatchSource rate as the
// reference, and one JSON line per setting.
// Usage: loader_bench --config FILE [--seconds 5] [--batch N] [--prefetch 8]
//   [--cache-mb N] [--consumers 1,4,8] [--build-threads N] [--drop-caches] [--memory]
#include <glog/logging.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/base/error.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/loader_client.h"
#include "data_loader/loader_server.h"
#include "data_loader/plan_batch_source.h"
#include "data_loader/shard.h"
#include "data_loader/shard_samples.h"
#include "launch/cli/args.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

using Clock = std::chrono::steady_clock;

struct Rate {
  int64_t batches = 0;  // per worker, summed over workers
  int64_t samples = 0;
  uint64_t bytes = 0;  // on the wire (server) or gathered (in process)
  double seconds = 0;
};

struct BenchOptions {
  config::Config config;
  double seconds = 5;
  int batch = 0;
  int prefetch = 8;
  uint64_t cache_mb = 0;
  std::vector<int> consumers;
  int build_threads = 2;
  bool drop_caches = false;
  bool memory = false;  // serve the decoded dataset from memory instead of the shards
};

uint64_t FeatureBytes(const DecodedBatch& batch) {
  uint64_t bytes = 0;
  for (const auto& f : batch.features) bytes += f.size() * sizeof(float);
  return bytes;
}

// Streams whole shuffled epochs from `source` until `seconds` have passed.
void Drain(BatchSource* source, int first_epoch, double seconds, Rate* rate) {
  const auto start = Clock::now();
  DecodedBatch batch;
  for (int epoch = first_epoch;; ++epoch) {
    source->StartEpoch(epoch, 0);
    while (source->Next(&batch)) {
      ++rate->batches;
      rate->samples += batch.size;
      rate->bytes += FeatureBytes(batch);
      rate->seconds = std::chrono::duration<double>(Clock::now() - start).count();
      if (rate->seconds >= seconds) return;
    }
  }
}

void Print(const std::string& what, int workers, const Rate& rate) {
  const double s = rate.seconds;
  std::printf("| %-30s | %d | %10.0f | %10.0f | %10.0f | %8.1f |\n", what.c_str(), workers,
              rate.batches / s, rate.batches / s / workers, rate.samples / s, rate.bytes / s / 1e6);
  std::fflush(stdout);
}

void PrintJson(const BenchOptions& o, const std::string& cache, int workers, const Rate& r) {
  std::printf(
      "{\"bench\": \"loader\", \"source\": \"%s\", \"cache_mb\": %llu, \"cache\": \"%s\", "
      "\"consumers\": %d, \"build_threads\": %d, \"batch\": %d, \"samples_per_s\": %.0f, "
      "\"mb_per_s\": %.2f}\n",
      o.memory ? "memory" : "shards", static_cast<unsigned long long>(o.cache_mb), cache.c_str(),
      workers, o.build_threads, o.batch, r.samples / r.seconds, r.bytes / r.seconds / 1e6);
  std::fflush(stdout);
}

// Drops the page cache (root only): the next shard reads come from the disk.
void DropPageCache() {
  ::sync();
  std::ofstream drop("/proc/sys/vm/drop_caches");
  drop << "3\n";
  if (!drop)
    Fail(ErrorCode::kFailedPrecondition, "--drop-caches: cannot write /proc/sys/vm/drop_caches");
}

// `workers` clients of one job draining the server at once for o.seconds.
Rate MeasureClients(const BenchOptions& o, LoaderServer& server, const std::string& token,
                    int workers, int first_epoch) {
  std::vector<Rate> rates(workers);
  std::vector<std::thread> threads;
  const uint64_t bytes_before = server.stats().bytes_sent;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      LoaderClientOptions options;
      options.address = server.address();
      options.token = token;
      options.plan = PlanOptionsFromConfig(o.config, workers);
      options.warmup_epochs = o.config.training().warmup_epochs();
      options.worker = w;
      options.prefetch = o.prefetch;
      LoaderClient client(options);
      Drain(&client, first_epoch, o.seconds, &rates[w]);
    });
  }
  for (auto& t : threads) t.join();
  Rate total;
  for (const Rate& r : rates) {
    total.batches += r.batches;
    total.samples += r.samples;
    total.seconds = std::max(total.seconds, r.seconds);
  }
  total.bytes = server.stats().bytes_sent - bytes_before;
  return total;
}

// A fresh loader (empty cache) for `workers` consumers: cold, then warm.
void MeasureLoader(const BenchOptions& o, const PreparedDataset& prepared, const Samples* memory,
                   int workers, int first_epoch) {
  if (o.drop_caches) DropPageCache();
  std::unique_ptr<ShardSamples> shards;
  if (memory == nullptr) shards = std::make_unique<ShardSamples>(prepared, o.cache_mb << 20);
  LoaderServerOptions server_options;
  server_options.token = "bench-token";
  server_options.build_threads = o.build_threads;
  LoaderServer server(prepared, memory != nullptr ? *memory : *shards, server_options);
  std::thread server_thread([&] { server.Run(); });
  const std::string source = o.memory ? "memory" : "shards, " + std::to_string(o.cache_mb) + " MB";
  for (const std::string cache : {"cold", "warm"}) {
    const Rate rate = MeasureClients(o, server, server_options.token, workers, first_epoch);
    Print("loader (" + source + "), " + cache, workers, rate);
    PrintJson(o, cache, workers, rate);
  }
  server.Stop();
  server_thread.join();
}

BenchOptions ParseBench(int argc, char** argv) {
  const CommandSpec spec = {
      "loader_bench",
      "",
      "Loader throughput over loopback.",
      "",
      "",
      false,
      true,
      {{"config", "FILE", "the config"},
       {"seconds", "S", "how long to measure each setting (default 5)"},
       {"batch", "N", "samples per batch (default training.batch_size)"},
       {"prefetch", "N", "batches in flight per client (default 8)"},
       {"cache-mb", "N", "the loader's cache (default data.loader_cache_mb)"},
       {"consumers", "LIST", "clients at once, comma-separated (default 1,4,8)"},
       {"build-threads", "N", "the loader's batch-building threads (default 2)"},
       {"drop-caches", "", "drop the page cache before each cold run (root)",
        FlagSpec::Kind::kSwitch},
       {"memory", "", "serve the decoded dataset from memory (not what flexmoe loader does)",
        FlagSpec::Kind::kSwitch}}};
  // ParseArgs reads `PROGRAM COMMAND FLAGS...`.
  std::vector<char*> with_command = {argv[0], const_cast<char*>("loader_bench")};
  with_command.insert(with_command.end(), argv + 1, argv + argc);
  Args args = ParseArgs(spec, static_cast<int>(with_command.size()), with_command.data());
  BenchOptions o;
  o.config = LoadConfig(args.Get("config"), args.overrides);
  o.seconds = args.GetInt("seconds", 5);
  o.batch = args.GetInt("batch", o.config.training().batch_size());
  o.prefetch = args.GetInt("prefetch", 8);
  o.cache_mb = args.GetInt("cache-mb", o.config.data().loader_cache_mb());
  o.build_threads = args.GetInt("build-threads", 2);
  o.drop_caches = args.Has("drop-caches");
  o.memory = args.Has("memory");
  std::stringstream list(args.Get("consumers", "1,4,8"));
  for (std::string n; std::getline(list, n, ',');) o.consumers.push_back(std::stoi(n));
  o.config.mutable_training()->set_batch_size(o.batch);
  return o;
}

int Main(int argc, char** argv) {
  const BenchOptions o = ParseBench(argc, argv);
  const PreparedDataset prepared = PreparedDataset::Open(o.config.data().prepared_dir());
  uint64_t shard_bytes = 0;
  for (int s = 0; s < prepared.meta.shard_files_size(); ++s) {
    std::ifstream f(prepared.ShardPath(s), std::ios::ate | std::ios::binary);
    shard_bytes += static_cast<uint64_t>(f.tellg());
  }
  const int first_epoch = o.config.training().warmup_epochs();  // shuffled epochs
  std::printf(
      "%s: %zu samples in %d shards (%.1f MB), global batch %d, prefetch %d, build threads "
      "%d, %.0f s a setting%s\n",
      o.config.data().prepared_dir().c_str(), prepared.size(), prepared.meta.shard_files_size(),
      shard_bytes / 1e6, o.batch, o.prefetch, o.build_threads, o.seconds,
      o.drop_caches ? ", page cache dropped before each cold run" : "");
  std::printf(
      "| source                         | W | batches/s  | per worker | samples/s  | MB/s     "
      "|\n|---|---|---|---|---|---|\n");
  std::unique_ptr<DecodedDataset> memory;
  if (o.memory) {
    memory = std::make_unique<DecodedDataset>(prepared);
    Rate rate;
    PlanBatchSource local(*memory, prepared, 0, PlanOptionsFromConfig(o.config, 1),
                          o.config.training().warmup_epochs(), 0);
    Drain(&local, first_epoch, o.seconds, &rate);
    Print("in-process (no TCP)", 1, rate);
  }
  for (int workers : o.consumers) MeasureLoader(o, prepared, memory.get(), workers, first_epoch);
  return 0;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  return flexmoe::RunReportingErrors("loader_bench", [&] { return flexmoe::Main(argc, argv); });
}
