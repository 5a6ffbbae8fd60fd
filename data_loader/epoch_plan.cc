// Epoch orders and batching (epoch_plan.h).
#include "data_loader/epoch_plan.h"

#include <algorithm>

#include "cluster/base/splitmix.h"

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

}  // namespace flexmoe
