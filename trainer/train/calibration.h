// Calibration of class probabilities: the correction of the prior shift that class weights
// put into a model's logits, a temperature and per-class biases fitted on held-out rows, the
// expected calibration error and the reliability bins it is computed from. Torch-free.
#pragma once

#include <cstdint>
#include <vector>

#include "proto/dataset.pb.h"

namespace flexmoe {

// Inputs shared below: log_probs is row-major [N, K] log class probabilities (or logits:
// everything here is unchanged by a per-row constant); labels N class ids in [0, K).

// The per-class logit offsets that undo class weights (training.class_weights): a model
// trained with a loss weighted by w_c learns p(c | x) w_c / Z, so log w_c is subtracted from
// its logits. Empty weights: no offsets (empty result).
std::vector<double> PriorCorrection(const std::vector<double>& class_weights);

// softmax(log_probs / temperature + bias): the temperature rescales every logit, the bias
// (one per class, bias[0] = 0; empty means none) moves the classes' prior.
struct Calibration {
  double temperature = 1;
  std::vector<double> bias;
};

// Probabilities under `calibration`, row-major [N, K].
std::vector<float> Calibrate(const std::vector<double>& log_probs, int num_classes,
                             const Calibration& calibration);

// Mean negative log-likelihood of the labels under `calibration`.
double CalibrationNll(const std::vector<double>& log_probs, const std::vector<int>& labels,
                      int num_classes, const Calibration& calibration);

// The weight of the prior that holds the calibration near its centre: a Gaussian of
// precision kCalibrationPrior on 1 / temperature - 1 and on every bias's distance from the
// centre's, worth about that many validation rows. On the suite's small tables (45-116
// validation rows) it keeps the fit from chasing noise (docs/recipe.md); on 600 rows it
// changes the log-loss by under 1e-4.
inline constexpr double kCalibrationPrior = 10;

// The class shares of a prepared dataset's training split (its summary's per-class counts),
// or empty when the summary has none.
std::vector<double> TrainingClassShares(const data::DatasetMeta& meta, int num_classes);

// The biases (bias[0] = 0) under which the mean of softmax(log_probs + bias) over the rows is
// `class_shares` (positive, summing to 1): the calibration in the large that matches the
// training split's class prevalence. Empty shares or no rows: all zero.
std::vector<double> PrevalenceBias(const std::vector<double>& log_probs, int num_classes,
                                   const std::vector<double>& class_shares);

// The temperature and biases that minimise the summed negative log-likelihood (CalibrationNll
// times the rows) plus that prior: a multinomial logistic regression on the
// log-probabilities with one shared slope 1 / temperature, convex, solved by Newton's method
// with a line search. The prior's centre is temperature 1 and PrevalenceBias(class_shares)
// (the training split's class shares; empty: biases 0), so that with few rows the mean
// probability stays near the prevalence the model was trained on. Chosen over a centre at
// bias 0 and over a free bias by 5-fold cross-validation within the validation rows of the
// suite (docs/recipe.md). The temperature is kept in [0.05, 20] (the biases refitted at the
// bound). The identity when there are no rows.
Calibration FitCalibration(const std::vector<double>& log_probs, const std::vector<int>& labels,
                           int num_classes, const std::vector<double>& class_shares = {});

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
