// A worker's batches from its loader (loader_batches.h).
#include "launch/loader_batches.h"

#include <memory>

#include "data_loader/loader_client.h"
#include "data_loader/plan_batch_source.h"

namespace flexmoe {

BatchSourceFactory LoaderBatchesFromConfig(const config::Config& config,
                                           const PreparedDataset& prepared, uint64_t seed,
                                           const FoldOfData& fold) {
  if (config.cluster().loader_addresses_size() == 0) return nullptr;
  const uint64_t samples = prepared.size();
  const uint32_t crc = prepared.meta.index_crc32c();
  return [config, seed, fold, samples, crc](uint32_t split, int rank,
                                            int world_size) -> std::unique_ptr<BatchSource> {
    LoaderClientOptions options = LoaderClientOptionsFromConfig(config, split, rank, world_size);
    options.fold = fold;
    options.plan.seed = seed;
    if (split != 0) {
      options.plan = EvaluationPlanOptions(world_size, config.data().modalities_size());
    }
    options.check_dataset = true;
    options.expected_samples = samples;
    options.expected_index_crc32c = crc;
    return std::make_unique<LoaderClient>(options);
  };
}

}  // namespace flexmoe
