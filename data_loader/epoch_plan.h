// The order in which an epoch visits the training samples, a pure function of the index,
// the seed, the epoch and the phase: warm-up epochs visit samples with more observed
// modalities first (stable), later epochs a seeded shuffle, different every epoch.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/dataset.pb.h"

namespace flexmoe {

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

}  // namespace flexmoe
