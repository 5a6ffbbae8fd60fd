// Scoring batches with one model or an ensemble: class probabilities averaged over the
// members (each corrected for the prior shift of its class weights, and optionally calibrated
// by its validation-fitted temperature and biases), and the
// modality attribution: per sample and observed modality, the change in the probability
// of the class of interest when that modality is replaced by the bank's entry for the
// combination without it (the model's own "as if missing").
#pragma once

#include <vector>

#include "data_loader/decoded_dataset.h"
#include "inference/loaded_model.h"

namespace flexmoe {

struct ScoreOptions {
  bool calibrated = false;  // each member's calibration (temperature and biases) applied
  bool explain = false;     // compute the attribution
};

struct BatchScores {
  std::vector<float> probs;  // [B, K], rows sum to 1
  // [B, M] (explain only): p(class of interest) - p(the same, modality m as if missing);
  // NaN where m is not observed, is the sample's only modality (no combination without it),
  // or the combination without it had no training samples (its bank entries were never
  // trained, so "as if missing" would be the initial random draw).
  std::vector<float> attribution;
};

// The class whose probability the attribution follows: class 1 of a binary task, else the
// sample's predicted class.
int ClassOfInterest(const float* probs, int num_classes);

// Scores a batch (every sample with at least one modality) with the members, which must
// share the feature layout (CheckSameLayout).
BatchScores ScoreBatch(const std::vector<LoadedModel*>& members, const DecodedBatch& batch,
                       const ScoreOptions& options);

}  // namespace flexmoe
