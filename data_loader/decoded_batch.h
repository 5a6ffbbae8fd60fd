// A batch as the loaders and the in-process sources hand it to a worker: per-modality
// feature rows, the observed mask, combinations, labels and loss weights.
#pragma once

#include <cstdint>
#include <vector>

namespace flexmoe {

struct DecodedBatch {
  int size = 0;
  std::vector<std::vector<float>> features;  // per modality, [size * features(m)]
  std::vector<uint8_t> observed;             // [size * M]
  std::vector<int64_t> combination;          // [size]
  std::vector<int64_t> label;                // [size]
  std::vector<int64_t> sample;               // [size], index into the dataset
  // [size]: 1, or 0 for a padding repeat that must not count in the loss. Empty means all 1.
  std::vector<float> weight;
  // The whole global batch's (every worker's slice) weight per label: entry c sums `weight`
  // over its samples of label c. The loss denominator, known without a collective. Empty
  // when the source does not know the global batch.
  std::vector<double> global_label_weight;
};

}  // namespace flexmoe
