// Loader throughput over loopback: an in-process LoaderServer on its own thread serves
// shuffled epochs of a prepared dataset to 1 and 2 LoaderClients (workers of one job, each
// on its own thread) as fast as they take them; prints batches/s and MB/s per setting, and
// the in-process PlanBatchSource rate as the reference.
// Usage: loader_bench --config FILE [--seconds 5] [--batch N] [--prefetch 8]
#include <glog/logging.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cluster/base/error.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/loader_client.h"
#include "data_loader/loader_server.h"
#include "data_loader/plan_batch_source.h"
#include "data_loader/shard.h"
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
    }
    rate->seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (rate->seconds >= seconds) return;
  }
}

void Print(const std::string& what, int workers, const Rate& rate, int64_t steps_per_epoch) {
  const double s = rate.seconds;
  std::printf(
      "| %-22s | %d | %10.0f | %10.0f | %10.0f | %8.1f | %8.2f |\n", what.c_str(), workers,
      rate.batches / s, rate.batches / s / workers, rate.samples / s, rate.bytes / s / 1e6,
      rate.batches / static_cast<double>(workers) / s / static_cast<double>(steps_per_epoch));
}

int Main(int argc, char** argv) {
  const CommandSpec spec = {"loader_bench",
                            "",
                            "Loader throughput over loopback.",
                            "",
                            "",
                            false,
                            true,
                            {{"config", "FILE", "the config"},
                             {"seconds", "S", "how long to measure (default 5)"},
                             {"batch", "N", "samples per batch (default training.batch_size)"},
                             {"prefetch", "N", "batches in flight per client (default 8)"}}};
  // ParseArgs reads `PROGRAM COMMAND FLAGS...`.
  std::vector<char*> argv_with_command = {argv[0], const_cast<char*>("loader_bench")};
  argv_with_command.insert(argv_with_command.end(), argv + 1, argv + argc);
  Args args = ParseArgs(spec, static_cast<int>(argv_with_command.size()), argv_with_command.data());
  config::Config config = LoadConfig(args.Get("config"), args.overrides);
  const double seconds = args.GetInt("seconds", 5);
  const int batch = args.GetInt("batch", config.training().batch_size());
  const int prefetch = args.GetInt("prefetch", 8);
  config.mutable_training()->set_batch_size(batch);

  const PreparedDataset prepared = PreparedDataset::Open(config.data().prepared_dir());
  const DecodedDataset data(prepared);
  LoaderServerOptions server_options;
  server_options.token = "bench-token";
  LoaderServer server(prepared, data, server_options);
  std::thread server_thread([&] { server.Run(); });

  const int first_epoch = config.training().warmup_epochs();  // shuffled epochs
  const int64_t steps =
      PlanEpoch(prepared, 0,
                PlanOptionsForEpoch(PlanOptionsFromConfig(config, 1), first_epoch, first_epoch))
          .steps();
  std::printf("%s: %zu samples, global batch %d, %lld steps per epoch, prefetch %d, %.0f s\n",
              config.data().prepared_dir().c_str(), prepared.size(), batch,
              static_cast<long long>(steps), prefetch, seconds);
  std::printf(
      "| source                 | W | batches/s  | per worker | samples/s  | MB/s     | "
      "epochs/s |\n|---|---|---|---|---|---|---|\n");
  {
    Rate rate;
    PlanBatchSource local(data, prepared, 0, PlanOptionsFromConfig(config, 1),
                          config.training().warmup_epochs(), 0);
    Drain(&local, first_epoch, seconds, &rate);
    Print("in-process (no TCP)", 1, rate, steps);
  }
  for (int workers : {1, 2}) {
    std::vector<Rate> rates(workers);
    std::vector<std::thread> threads;
    const uint64_t bytes_before = server.stats().bytes_sent;
    for (int w = 0; w < workers; ++w) {
      threads.emplace_back([&, w] {
        LoaderClientOptions options;
        options.address = server.address();
        options.token = server_options.token;
        options.plan = PlanOptionsFromConfig(config, workers);
        options.warmup_epochs = config.training().warmup_epochs();
        options.worker = w;
        options.prefetch = prefetch;
        LoaderClient client(options);
        Drain(&client, first_epoch, seconds, &rates[w]);
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
    Print("loader over loopback", workers, total, steps);
  }
  server.Stop();
  server_thread.join();
  return 0;
}

}  // namespace
}  // namespace flexmoe

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  return flexmoe::RunReportingErrors("loader_bench", [&] { return flexmoe::Main(argc, argv); });
}
