// `flexmoe train --config FILE [--workers N] [--threads N]`: trains on data.prepared_dir,
// writes metrics and the best checkpoint into run.dir, prints the per-combination table,
// and with several training.seeds the mean +- std over them.
#include "launch/train_command.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "data_loader/decoded_dataset.h"
#include "launch/args.h"
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
  Args args = ParseArgs(argc, argv, {"config", "workers", "threads"});
  std::string path = args.Get("config");
  if (path.empty()) Fail(ErrorCode::kInvalidArgument, "train: --config FILE is required");
  config::Config config = LoadConfig(path, args.overrides);
  int workers = args.GetInt("workers", config.cluster().workers());
  if (workers < 1) Fail(ErrorCode::kInvalidArgument, "train: --workers must be at least 1");
  if (workers > 1) return LaunchWorkers(workers, argc, argv);
  const std::string& prepared_dir = config.data().prepared_dir();
  PreparedDataset prepared = OpenPrepared(config, path);
  DecodedDataset data(prepared);
  std::string run_dir = config.run().dir().empty() ? DefaultRunDir() : config.run().dir();
  std::vector<uint64_t> seeds(config.training().seeds().begin(), config.training().seeds().end());
  if (seeds.empty()) seeds.push_back(config.training().seed());

  TrainOptions options;
  options.log = &std::cout;
  options.threads = args.GetInt("threads", 0);
  std::cout << "BLAS: " << BlasDescription() << "\n";
  std::cout << "training on " << prepared_dir << " (" << prepared.size() << " samples), run "
            << "directory " << run_dir << "\n";
  std::vector<double> acc, f1, auc;
  for (uint64_t seed : seeds) {
    options.run_dir = seeds.size() == 1 ? run_dir : run_dir + "/seed-" + std::to_string(seed);
    options.training_batches = LoaderBatchesFromConfig(config, seed);
    TrainResult result = Train(config, prepared, data, seed, options);
    acc.push_back(result.test.metrics.overall.accuracy);
    f1.push_back(result.test.metrics.overall.macro_f1);
    auc.push_back(result.test.metrics.overall.auc);
    std::cout << "checkpoint: " << result.checkpoint_dir << "\n";
  }
  if (seeds.size() > 1) {
    // Population std (ddof 0), as the authors' reporting does with np.std.
    std::cout << "\ntest over " << seeds.size() << " seeds (mean +- std, %): ACC "
              << FormatMeanStd(MeanStd(acc, 0)) << ", F1 " << FormatMeanStd(MeanStd(f1, 0))
              << ", AUC " << FormatMeanStd(MeanStd(auc, 0)) << "\n";
  }
  return 0;
}

}  // namespace flexmoe
