// Evaluation of a model on a list of samples, distributed over the workers (every worker
// scores its slices; the result is the same on every worker), and the batch conversion.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/comm/communicator.h"
#include "data_loader/batch_source.h"
#include "data_loader/samples.h"
#include "data_loader/shard.h"
#include "trainer/train/metrics.h"

namespace flexmoe {

struct EvalResult {
  GroupedMetrics metrics;  // groups = modality combinations
  double loss = 0;         // mean task loss (weighted as in training)
  double ece = 0;          // expected calibration error, 15 bins (trainer/train/calibration.h)
  // Per combination c > 0: tokens of samples of combination c whose top-1 expert (first
  // sparse layer) is expert c, and all their tokens.
  std::vector<int64_t> routed_to_own_expert;
  std::vector<int64_t> tokens;
  // Per sparse layer, [C * E]: the tokens of combination c among whose top-k experts is e,
  // at (c * E + e) (the expert activation of the paper's Figure 4).
  std::vector<std::vector<int64_t>> routed;
  // Per sample, in the order of `samples`: log class probabilities [N, K] (with class weights,
  // corrected for their prior shift: log_softmax(logits - log w)), label, combination.
  std::vector<double> log_probs;
  std::vector<int> labels;
  std::vector<int> groups;
  // Class probabilities [N, K] (float), as the metrics were computed from.
  std::vector<float> probs;

  // Frees the per-sample vectors (log_probs, labels, groups, probs); the metrics stay.
  void DropPerSample() {
    std::vector<double>().swap(log_probs);
    std::vector<int>().swap(labels);
    std::vector<int>().swap(groups);
    std::vector<float>().swap(probs);
  }
};

class FlexMoeModelImpl;
struct BatchTensors;
// A decoded batch as the model's input tensors (copies).
BatchTensors ToTensors(const DecodedBatch& batch, const std::vector<int>& feature_sizes);
// The same tensors on `device` (themselves on the host).
BatchTensors ToDevice(BatchTensors batch, const c10::Device& device);

// Scores an evaluation pass of `batches` (this worker's slices of an evaluation plan:
// data_loader/plan_batch_source.h) with the model in evaluation mode (no dropout, no router
// noise). With `world`, every worker scores its slices of the same pass; the result is the
// same on every worker. class_weights may be undefined (unweighted task loss); defined, they
// weight the loss and are taken out of the probabilities (EvalResult::log_probs).
EvalResult Evaluate(FlexMoeModelImpl& model, BatchSource& batches,
                    const std::vector<int>& feature_sizes, int num_classes, int num_combinations,
                    const at::Tensor& class_weights, Communicator* world = nullptr);
// The same over `samples` of `data` (every worker passes the same list).
EvalResult Evaluate(FlexMoeModelImpl& model, const Samples& data,
                    const std::vector<uint32_t>& samples, int num_classes, int num_combinations,
                    const at::Tensor& class_weights, Communicator* world = nullptr);

// Combination names of the prepared dataset, for tables.
std::vector<std::string> CombinationNames(const PreparedDataset& prepared);

}  // namespace flexmoe
