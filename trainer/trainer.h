// The training loop (MODEL.md "Training schedule") for one process or W workers: warm-up
// epochs in sorted order, shuffled epochs after, validation after every epoch, the best
// validation epoch's parameters kept and scored on the test split, metrics as JSON lines
// and the best parameters saved as a checkpoint.
//
// With W workers (TrainOptions::world) every global batch of the epoch plan is split into
// W contiguous slices; the experts are sharded over the expert-parallel groups and the
// tokens exchanged with all-to-all; the router statistics, the losses and the metrics are
// reduced over the workers, so that W workers compute what one process computes on the
// same global batch (ARCHITECTURE.md, "Equivalence").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "cluster/comm/communicator.h"
#include "data_loader/batch_source.h"
#include "data_loader/decoded_dataset.h"
#include "proto/config.pb.h"
#include "trainer/metrics.h"

namespace flexmoe {

struct EvalResult {
  GroupedMetrics metrics;  // groups = modality combinations
  double loss = 0;         // mean task loss (weighted as in training)
  // Per combination c > 0: tokens of samples of combination c whose top-1 expert (first
  // sparse layer) is expert c, and all their tokens.
  std::vector<int64_t> routed_to_own_expert;
  std::vector<int64_t> tokens;
};

struct EpochRecord {
  int epoch = 0;
  double train_loss = 0;   // mean total loss over the epoch's steps (global)
  double task_loss = 0;    // mean task loss
  double router_loss = 0;  // mean router loss (before the gate-loss weight)
  double samples_per_s = 0;
  // Mean time per step (seconds): compute (forward, backward, optimizer, without the
  // exchanges), token exchange (all-to-all and counts, forward and backward), reduction
  // (gradient buckets and loss sums), waiting for data.
  double compute_s = 0, exchange_s = 0, reduce_s = 0, data_s = 0;
  int64_t dropped_rows = 0;                   // rows over the expert capacity, all workers
  int64_t plan_dropped = 0, plan_padded = 0;  // samples the epoch plan dropped or padded
  EvalResult validation;
};

struct TrainResult {
  uint64_t seed = 0;
  std::vector<double> step_losses;  // global total loss of every step, in order
  std::vector<EpochRecord> epochs;
  int best_epoch = -1;
  EvalResult best_validation;
  EvalResult test;
  std::string checkpoint_dir;
  // CRC32C of the bytes of every replicated parameter (bank, encoders, attention, routers,
  // head...), for checking that they are bit-identical on every worker.
  uint32_t replicated_crc = 0;
};

// Makes worker `rank`'s batches for one split (training or evaluation). Null in
// TrainOptions: the in-process plan over the decoded dataset.
using BatchSourceFactory = std::function<std::unique_ptr<BatchSource>(int rank, int world_size)>;

struct TrainOptions {
  std::string run_dir;                  // metrics.jsonl and checkpoint/ (rank 0); empty: nothing
  std::ostream* log = nullptr;          // progress and tables (rank 0 only); null: silent
  int threads = 0;                      // LibTorch and BLAS threads; 0: leave the defaults
  Communicator* world = nullptr;        // null: one process
  int expert_parallel_degree = 0;       // 0: the whole world
  BatchSourceFactory training_batches;  // null: in-process plan
};

// The batch source of the config: LoaderClient when cluster.loader_addresses names loaders
// (worker w uses loader w % count), else null (the in-process plan).
BatchSourceFactory LoaderBatchesFromConfig(const config::Config& config, uint64_t seed);

// Trains one model with `seed`. Every worker calls it with the same config and seed.
// Throws flexmoe::Error on bad config or data.
TrainResult Train(const config::Config& config, const PreparedDataset& prepared,
                  const DecodedDataset& data, uint64_t seed, const TrainOptions& options);

class FlexMoeModelImpl;
struct BatchTensors;
// A decoded batch as the model's input tensors (copies).
BatchTensors ToTensors(const DecodedBatch& batch, const std::vector<int>& feature_sizes);

// Scores `samples` with the model in evaluation mode (no dropout, no router noise). With
// `world`, every worker passes the same samples and scores its slices; the result is the
// same on every worker. class_weights may be undefined (unweighted task loss).
EvalResult Evaluate(FlexMoeModelImpl& model, const DecodedDataset& data,
                    const std::vector<uint32_t>& samples, int num_classes, int num_combinations,
                    const at::Tensor& class_weights, Communicator* world = nullptr);

// Combination names of the prepared dataset, for tables.
std::vector<std::string> CombinationNames(const PreparedDataset& prepared);

}  // namespace flexmoe
