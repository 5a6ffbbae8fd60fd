// Synthetic multimodal data (`flexmoe synth`): layout A (labels.csv, splits.json, one CSV
// per modality) with a chosen distribution over modality combinations. Each modality alone
// carries class signal, and part of the signal lives only in the interaction of adjacent
// modalities (a shared random sign that cancels unless both are observed). Deterministic
// in synth.seed.
#pragma once

#include <string>

#include "proto/config.pb.h"

namespace flexmoe {

struct SynthResult {
  int samples = 0;
  std::vector<int> per_combination;  // in combination index order
};

// Writes the dataset into `out_dir` (atomically). Throws kInvalidArgument for a config
// that cannot be generated (a modality without synth_features, say).
SynthResult GenerateSynthetic(const config::Config& config, const std::string& out_dir);

// Samples per combination: min_per_combination each, the rest by weight with largest
// remainders. Exposed for tests.
std::vector<int> CombinationCounts(const config::SynthConfig& synth, int num_modalities);

}  // namespace flexmoe
