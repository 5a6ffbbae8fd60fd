// The order in which an epoch visits the training samples, a pure function of the index,
// the seed, the epoch and the phase: warm-up epochs visit samples with more observed
// modalities first (stable), later epochs a seeded shuffle, different every epoch.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "proto/config.pb.h"
#include "proto/dataset.pb.h"

namespace flexmoe {

struct PreparedDataset;

enum class EpochPhase { kWarmup, kShuffled };

// Indices (into the dataset index) of the samples of `split`, in index order.
std::vector<uint32_t> SamplesOfSplit(const data::DatasetIndex& index, uint32_t split);

// The visiting order of `samples` for one epoch. Warm-up: stable sort by observed-modality
// count, most first (`modality_count[i]` is the count of index entry i's combination).
// Shuffled: Fisher-Yates driven by splitmix64 keyed by (seed, epoch).
std::vector<uint32_t> EpochOrder(const std::vector<uint32_t>& samples,
                                 const std::vector<int>& modality_count_of_sample, uint64_t seed,
                                 int epoch, EpochPhase phase);

// Splits an order into consecutive batches of `batch_size` (the last may be shorter).
std::vector<std::vector<uint32_t>> Batches(const std::vector<uint32_t>& order, int batch_size);

// What the distributed epoch plan depends on (besides the index and the split).
struct PlanOptions {
  uint64_t seed = 0;
  int epoch = 0;
  EpochPhase phase = EpochPhase::kWarmup;
  int world_size = 1;
  int global_batch = 1;  // samples per step over all workers (training.batch_size)
  config::TrainingConfig::Remainder remainder = config::TrainingConfig::KEEP;
  config::TrainingConfig::Batching batching = config::TrainingConfig::MIXED;
  // M, needed to count a combination's modalities (the index does not record it). Required
  // (1..8) by the DatasetIndex overload of PlanEpoch; the PreparedDataset overload fills it.
  int num_modalities = 0;
  // An evaluation pass: the split's samples in index order, cut into batches of
  // global_batch (the last kept short), every weight 1; seed, epoch, phase, remainder and
  // batching play no part.
  bool evaluation = false;
};

// One epoch of the distributed plan: global batches in step order, and which part of each
// a worker takes. Every worker has the same number of steps (a slice may be empty).
struct EpochPlan {
  std::vector<std::vector<uint32_t>> batches;  // global batch per step (dataset indices)
  std::vector<std::vector<float>> weights;     // per sample: 1, or 0 for a padding repeat
  uint64_t dropped = 0;                        // samples left out by Remainder DROP
  uint64_t padded = 0;                         // repeats added by Remainder PAD
  int world_size = 1;

  int64_t steps() const { return static_cast<int64_t>(batches.size()); }
  // Worker w's slice of step s: positions [n*w/W, n*(w+1)/W) of batches[s], n its size.
  std::pair<size_t, size_t> Slice(int64_t step, int worker) const;
};

// The plan of one epoch. The global order is EpochOrder(SamplesOfSplit(index, split), ...)
// with each sample's observed-modality count, cut into batches of options.global_batch:
// - MIXED: consecutive cuts of the order; the last short batch is kept (KEEP), dropped
//   (DROP; counted in `dropped`) or padded to global_batch with the first samples of the
//   order at weight 0 (PAD; counted in `padded`).
// - BY_COMBINATION: the order is grouped by combination (groups by combination index, the
//   order kept inside a group) and each group cut as above, the remainder policy applied per
//   group; warm-up: batches ordered by combination size, most modalities first (ties by
//   combination index, then position); shuffled: the batch order is a seeded shuffle keyed
//   by (seed, epoch).
// Throws kInvalidArgument for world_size < 1, global_batch < 1, num_modalities outside 1..8
// or a combination index out of range.
EpochPlan PlanEpoch(const data::DatasetIndex& index, uint32_t split, const PlanOptions& options);
// The same, with num_modalities taken from the dataset's metadata when options leave it 0.
EpochPlan PlanEpoch(const PreparedDataset& dataset, uint32_t split, PlanOptions options);

}  // namespace flexmoe
