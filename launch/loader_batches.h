// The batch source a worker uses when the job has loaders: a LoaderClient per split, to the
// loader cluster.loader_addresses names for its rank. Built here, in launch/, because the
// network clients are a launch decision; the trainer only takes a BatchSourceFactory.
#pragma once

#include <cstdint>

#include "data_loader/folds.h"
#include "data_loader/shard.h"
#include "proto/config.pb.h"
#include "trainer/train/trainer.h"

namespace flexmoe {

// LoaderClient when cluster.loader_addresses names loaders (worker w uses loader
// w % count), else null (the in-process plan). The loader must serve `prepared` (its
// WELCOME is checked against it); with `fold.folds` >= 2 it plans over that cross-fitting
// fold's splits.
BatchSourceFactory LoaderBatchesFromConfig(const config::Config& config,
                                           const PreparedDataset& prepared, uint64_t seed,
                                           const FoldOfData& fold = {});

}  // namespace flexmoe
