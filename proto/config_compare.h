// Which config changes alter what a training run computes. A checkpoint records the hash of
// its config's computation fields; resuming refuses a config whose computation differs,
// naming the first differing field. Fields that may change between save and resume: the
// number of epochs, the device and the precision (training.device, training.precision), and
// the checkpoint, metrics, run, cluster (worker count, expert-parallel degree, addresses,
// timeouts: how the job runs, not what it computes) and synth messages.
#pragma once

#include <cstdint>
#include <string>

#include "proto/config.pb.h"

namespace flexmoe {

// CRC32C of the config's text format with the fields that may change cleared.
uint32_t ComputationHash(const config::Config& config);

// Empty when `saved` and `current` compute the same; otherwise the first difference as
// "field training.lr: 0.001 in the checkpoint, 0.002 now" (a field path and both values).
std::string FirstComputationDifference(const config::Config& saved, const config::Config& current);

// The data section as a prepared dataset records it: without data.prepared_dir (where, not
// what), data.records_per_shard (the shard size, not the samples) and data.loader_cache_mb
// (the loader's memory, not the samples).
config::DataConfig PreparedDataSection(const config::DataConfig& data);

// Empty when data prepared from `prepared` is what `current` asks for; otherwise the first
// difference as "field data.scaling: STANDARD when prepared, NO_SCALING in the config".
std::string FirstDataDifference(const config::DataConfig& prepared,
                                const config::DataConfig& current);

}  // namespace flexmoe
