// Calibration: temperature scaling fitted on held-out log-probabilities, the expected
// calibration error and the reliability bins it is computed from. Torch-free.
#pragma once

#include <cstdint>
#include <vector>

namespace flexmoe {

// Inputs shared below: log_probs is row-major [N, K] log class probabilities (or logits:
// temperature scaling is unchanged by a per-row constant); labels N class ids in [0, K).

// Probabilities softmax(log_probs / temperature), row-major [N, K].
std::vector<float> SoftmaxWithTemperature(const std::vector<double>& log_probs, int num_classes,
                                          double temperature);

// Mean negative log-likelihood of the labels under softmax(log_probs / temperature).
double TemperatureNll(const std::vector<double>& log_probs, const std::vector<int>& labels,
                      int num_classes, double temperature);

// The temperature in [0.05, 20] that minimises TemperatureNll (golden-section search over
// log T; the NLL is convex in 1/T). 1 when there are no rows.
double FitTemperature(const std::vector<double>& log_probs, const std::vector<int>& labels,
                      int num_classes);

struct ReliabilityBin {
  double lower = 0, upper = 0;  // confidence range [lower, upper), the last bin closed
  int64_t count = 0;
  double confidence = 0;  // mean top-class probability of the bin's rows
  double accuracy = 0;    // share of the bin's rows whose top class is the label
};

struct Reliability {
  std::vector<ReliabilityBin> bins;
  // Expected calibration error: sum over bins of count/N * |accuracy - confidence|; NaN
  // when N == 0.
  double ece = 0;
};

// Equal-width bins over the top-class probability (probs row-major [N, K]).
Reliability ComputeReliability(const std::vector<int>& labels, const std::vector<float>& probs,
                               int num_classes, int num_bins = 15);

// Reliability of the rows of each group (group_ids[i] in [0, num_groups)).
std::vector<Reliability> ComputeGroupedReliability(const std::vector<int>& labels,
                                                   const std::vector<float>& probs, int num_classes,
                                                   const std::vector<int>& group_ids,
                                                   int num_groups, int num_bins = 15);

}  // namespace flexmoe
