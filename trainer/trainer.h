// The single-process training loop (MODEL.md "Training schedule"): warm-up epochs in
// sorted order, shuffled epochs after, validation after every epoch, the best validation
// accuracy's parameters kept and scored on the test split, metrics as JSON lines and the
// best parameters saved as a checkpoint.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "data_loader/decoded_dataset.h"
#include "proto/config.pb.h"
#include "trainer/metrics.h"

namespace flexmoe {

struct EvalResult {
  GroupedMetrics metrics;  // groups = modality combinations
  double loss = 0;         // mean task loss
  // Per combination c > 0: tokens of samples of combination c whose top-1 expert (first
  // sparse layer) is expert c, and all their tokens.
  std::vector<int64_t> routed_to_own_expert;
  std::vector<int64_t> tokens;
};

struct EpochRecord {
  int epoch = 0;
  double train_loss = 0;   // mean total loss over the epoch's steps
  double task_loss = 0;    // mean task loss
  double router_loss = 0;  // mean router loss (before the gate-loss weight)
  double samples_per_s = 0;
  EvalResult validation;
};

struct TrainResult {
  uint64_t seed = 0;
  std::vector<double> step_losses;  // total loss of every step, in order
  std::vector<EpochRecord> epochs;
  int best_epoch = -1;
  EvalResult best_validation;
  EvalResult test;
  std::string checkpoint_dir;
};

struct TrainOptions {
  std::string run_dir;          // metrics.jsonl and checkpoint/ go here; empty: write nothing
  std::ostream* log = nullptr;  // progress and tables; null: silent
  int threads = 0;              // LibTorch intra-op threads; 0: leave the default
};

// Trains one model with `seed` on the prepared dataset. Throws flexmoe::Error on bad
// config or data.
TrainResult Train(const config::Config& config, const PreparedDataset& prepared,
                  const DecodedDataset& data, uint64_t seed, const TrainOptions& options);

class FlexMoeModelImpl;
// Scores `samples` with the model in evaluation mode (no dropout, no router noise).
// class_weights may be undefined (unweighted task loss).
EvalResult Evaluate(FlexMoeModelImpl& model, const DecodedDataset& data,
                    const std::vector<uint32_t>& samples, int num_classes, int num_combinations,
                    const at::Tensor& class_weights);

// Combination names of the prepared dataset, for tables.
std::vector<std::string> CombinationNames(const PreparedDataset& prepared);

}  // namespace flexmoe
