// Epoch orders, batching and the distributed epoch plan (epoch_plan.h).
#include "data_loader/epoch_plan.h"

#include <glog/logging.h>

#include <algorithm>
#include <numeric>

#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"
#include "data_loader/combinations.h"
#include "data_loader/shard.h"

namespace flexmoe {
std::vector<uint32_t> SamplesOfSplit(const data::DatasetIndex& index, uint32_t split) {
  std::vector<uint32_t> samples;
  for (int i = 0; i < index.split_size(); ++i) {
    if (index.split(i) == split) samples.push_back(static_cast<uint32_t>(i));
  }
  return samples;
}

std::vector<uint32_t> EpochOrder(const std::vector<uint32_t>& samples,
                                 const std::vector<int>& modality_count_of_sample, uint64_t seed,
                                 int epoch, EpochPhase phase) {
  std::vector<uint32_t> order = samples;
  if (phase == EpochPhase::kWarmup) {
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return modality_count_of_sample[a] > modality_count_of_sample[b];
    });
    return order;
  }
  uint64_t state =
      seed * 0xD1B54A32D192ED03ull ^ (static_cast<uint64_t>(epoch) + 1) * 0x8CB92BA72F3D8DD7ull;
  for (size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[SplitMix64(&state) % i]);
  }
  return order;
}

std::vector<std::vector<uint32_t>> Batches(const std::vector<uint32_t>& order, int batch_size) {
  std::vector<std::vector<uint32_t>> batches;
  for (size_t start = 0; start < order.size(); start += batch_size) {
    size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    batches.emplace_back(order.begin() + start, order.begin() + end);
  }
  return batches;
}

namespace {

// Cuts `order` into batches of options.global_batch and applies the remainder policy to a
// short last batch (padding repeats from the start of `order`).
void CutIntoBatches(const std::vector<uint32_t>& order, const PlanOptions& options,
                    EpochPlan* plan) {
  const size_t b = static_cast<size_t>(options.global_batch);
  for (size_t start = 0; start < order.size(); start += b) {
    const size_t end = std::min(order.size(), start + b);
    std::vector<uint32_t> batch(order.begin() + start, order.begin() + end);
    std::vector<float> weight(batch.size(), 1.0f);
    if (batch.size() < b) {
      if (options.remainder == config::TrainingConfig::DROP) {
        plan->dropped += batch.size();
        continue;
      }
      if (options.remainder == config::TrainingConfig::PAD) {
        for (size_t k = 0; batch.size() < b; ++k) {
          batch.push_back(order[k % order.size()]);
          weight.push_back(0.0f);
          ++plan->padded;
        }
      }
    }
    plan->batches.push_back(std::move(batch));
    plan->weights.push_back(std::move(weight));
  }
}

}  // namespace

std::pair<size_t, size_t> EpochPlan::Slice(int64_t step, int worker) const {
  CHECK(step >= 0 && step < steps()) << "step " << step << " of " << steps();
  CHECK(worker >= 0 && worker < world_size) << "worker " << worker << " of " << world_size;
  const size_t n = batches[step].size();
  const size_t w = static_cast<size_t>(worker);
  const size_t world = static_cast<size_t>(world_size);
  return {n * w / world, n * (w + 1) / world};
}

EpochPlan PlanEpoch(const data::DatasetIndex& index, uint32_t split, const PlanOptions& options) {
  if (options.world_size < 1) {
    Fail(ErrorCode::kInvalidArgument, "epoch plan: world size ", options.world_size,
         " (at least 1)");
  }
  if (options.global_batch < 1) {
    Fail(ErrorCode::kInvalidArgument, "epoch plan: global batch ", options.global_batch,
         " (training.batch_size, at least 1)");
  }
  if (options.num_modalities < 1 || options.num_modalities > 8) {
    Fail(ErrorCode::kInvalidArgument, "epoch plan: num_modalities ", options.num_modalities,
         " (1 to 8; PlanOptions.num_modalities must be set)");
  }
  const Combinations combinations(options.num_modalities);
  std::vector<int> modality_count(index.combination_size());
  for (int i = 0; i < index.combination_size(); ++i) {
    const uint32_t c = index.combination(i);
    if (c >= static_cast<uint32_t>(combinations.size())) {
      Fail(ErrorCode::kInvalidArgument, "epoch plan: index entry ", i, " has combination ", c,
           ", out of range for ", options.num_modalities, " modalities");
    }
    modality_count[i] = combinations.Size(static_cast<int>(c));
  }
  EpochPlan plan;
  plan.world_size = options.world_size;
  if (options.evaluation) {
    PlanOptions keep = options;
    keep.remainder = config::TrainingConfig::KEEP;
    CutIntoBatches(SamplesOfSplit(index, split), keep, &plan);
    return plan;
  }
  const std::vector<uint32_t> order = EpochOrder(SamplesOfSplit(index, split), modality_count,
                                                 options.seed, options.epoch, options.phase);
  if (options.batching != config::TrainingConfig::BY_COMBINATION) {
    CutIntoBatches(order, options, &plan);
    return plan;
  }
  // Group by combination (in combination index order), keeping the order inside a group.
  std::vector<std::vector<uint32_t>> groups(combinations.size());
  for (uint32_t i : order) groups[index.combination(i)].push_back(i);
  EpochPlan grouped;
  std::vector<int> size_of_batch;  // the batch's combination size
  for (size_t c = 0; c < groups.size(); ++c) {
    CutIntoBatches(groups[c], options, &grouped);
    size_of_batch.resize(grouped.batches.size(), combinations.Size(static_cast<int>(c)));
  }
  std::vector<size_t> batch_order(grouped.batches.size());
  std::iota(batch_order.begin(), batch_order.end(), 0);
  if (options.phase == EpochPhase::kWarmup) {
    std::stable_sort(batch_order.begin(), batch_order.end(),
                     [&](size_t a, size_t b) { return size_of_batch[a] > size_of_batch[b]; });
  } else {
    uint64_t state = options.seed * 0x9FB21C651E98DF25ull ^
                     (static_cast<uint64_t>(options.epoch) + 1) * 0xC2B2AE3D27D4EB4Full ^
                     0x2545F4914F6CDD1Dull;
    for (size_t i = batch_order.size(); i > 1; --i) {
      std::swap(batch_order[i - 1], batch_order[SplitMix64(&state) % i]);
    }
  }
  plan.dropped = grouped.dropped;
  plan.padded = grouped.padded;
  for (size_t b : batch_order) {
    plan.batches.push_back(std::move(grouped.batches[b]));
    plan.weights.push_back(std::move(grouped.weights[b]));
  }
  return plan;
}

EpochPlan PlanEpoch(const PreparedDataset& dataset, uint32_t split, PlanOptions options) {
  if (options.num_modalities == 0) options.num_modalities = dataset.meta.modalities_size();
  return PlanEpoch(dataset.index, split, options);
}

}  // namespace flexmoe
