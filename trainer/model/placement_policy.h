// The expert placement of a job from its config (cluster.placement) and, for LOAD_AWARE,
// the combination counts of the prepared training split; and the expected imbalance.
#pragma once

#include <string>
#include <vector>

#include "cluster/base/expert_placement.h"
#include "data_loader/shard.h"
#include "proto/config.pb.h"

namespace flexmoe {

// Expected tokens per expert of any sparse layer (ExpectedExpertLoad over the training
// split's combination counts, M * P tokens per sample).
std::vector<double> ExpectedLoadOf(const config::Config& config, const PreparedDataset& prepared);

// The placement over `ranks` ranks of the expert-parallel group.
PlacementMap MakePlacement(const config::Config& config, const PreparedDataset& prepared,
                           int ranks);

// "LOAD_AWARE over 2 ranks: expected imbalance 1.03 (CONTIGUOUS: 1.41)".
std::string DescribePlacement(const config::Config& config, const PreparedDataset& prepared,
                              const PlacementMap& placement);

}  // namespace flexmoe
