// The training loop (MODEL.md "Training schedule") for one process or W workers: warm-up
// epochs in sorted order, shuffled epochs after, validation after every epoch, the best
// validation epoch's parameters kept and scored on the test split, metrics as JSON lines,
// training-state checkpoints a run resumes from, and the best parameters exported.
//
// A Trainer's whole state is one TrainState value (trainer/checkpoint/train_state.h). Metrics,
// progress and checkpoints plug in through TrainHook; what a hook asks for at a step is
// combined over the workers with that step's loss reduction, so every rank acts at the
// same step.
//
// With W workers (TrainOptions::world) every global batch of the epoch plan is split into
// W contiguous slices; the experts are sharded over the expert-parallel groups by the
// placement and the tokens exchanged with all-to-all; the router statistics, the losses
// and the metrics are reduced over the workers, so that W workers compute what one process
// computes on the same global batch (ARCHITECTURE.md, "Equivalence").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "cluster/base/expert_placement.h"
#include "cluster/comm/communicator.h"
#include "cluster/metrics/metrics_sink.h"
#include "data_loader/batch_source.h"
#include "data_loader/decoded_dataset.h"
#include "proto/config.pb.h"
#include "trainer/checkpoint/resumable_checkpoint.h"
#include "trainer/checkpoint/train_state.h"
#include "trainer/train/calibration.h"
#include "trainer/train/evaluate.h"
#include "trainer/train/metrics.h"

namespace flexmoe {

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
  // Bytes of tokens and their gradients this worker sent to other workers, a step.
  int64_t exchange_bytes = 0;
  int64_t dropped_rows = 0;  // rows over the expert capacity, all workers
  // Rows the most loaded rank's experts processed over the mean per rank (1 with one
  // worker): how well the placement spreads the load.
  double expert_imbalance = 1;
  // LOAD_AWARE: the experts were re-packed after this epoch's steps, from the measured
  // loads (imbalance under the old and the new placement).
  bool repacked = false;
  // The largest imbalance over the sparse layers, under the old and the new placement.
  double imbalance_before = 0, imbalance_after = 0;
  PlacementMap repacked_placement;  // every sparse layer's new placement
  bool warmup = false;
  EvalResult validation;
};

struct TrainResult {
  uint64_t seed = 0;
  // The global total loss of every step this call ran, in order (a resumed run starts at
  // the checkpoint's step).
  std::vector<double> step_losses;
  std::vector<EpochRecord> epochs;  // the epochs this call ran
  int best_epoch = -1;
  EvalResult best_validation;  // the best parameters scored on the validation split again
  EvalResult test;
  // The calibration fitted on best_validation's (prior-corrected) log-probabilities
  // (trainer/train/calibration.h), stored with the export for `flexmoe predict --calibrated`.
  Calibration calibration;
  int epochs_run = 0;           // epochs completed (fewer than training.epochs on early stop)
  bool early_stopped = false;   // training.early_stopping_patience ended the run
  std::string checkpoint_dir;   // the best-parameters export
  std::string last_checkpoint;  // the newest training-state checkpoint written, if any
  bool stopped = false;         // a hook asked to stop; the state is in last_checkpoint
  // CRC32C of the bytes of every replicated parameter (bank, encoders, attention, routers,
  // head...), for checking that they are bit-identical on every worker.
  uint32_t replicated_crc = 0;
};

// This worker's totals since its Trainer was made, for the windows between log lines.
struct StepTotals {
  int64_t steps = 0, samples = 0;
  // Seconds: waiting for data, in steps (everything from the batch to the update), and
  // within steps in reductions (gradient buckets, loss sums) and in token exchanges.
  double data_s = 0, step_s = 0, reduce_s = 0, exchange_s = 0;
  // Per sparse layer: the tokens of this worker's samples routed to (expert e,
  // combination c), at e * combinations + c (FlexMoeModelImpl::CountTokensInto).
  std::vector<std::vector<int64_t>> tokens;
};

// Where the loop stands after a step, and that step's global losses.
struct StepReport {
  TrainPosition position;  // after the step
  int epochs = 0;
  int64_t steps_in_epoch = 0;
  double loss = 0, task_loss = 0, router_loss = 0;
  int64_t samples = 0;  // this worker's samples in the step
  const StepTotals* totals = nullptr;
};

// What a rank asks for after a step; any rank asking is enough.
struct StepRequests {
  bool checkpoint = false;  // write a checkpoint (at the epoch's end if this was its last step)
  bool stop = false;        // write a checkpoint and end the run (TrainResult::stopped)
};

// Called on every rank. Not owned by the Trainer.
class TrainHook {
 public:
  virtual ~TrainHook() = default;
  // After the step's update, before its losses are reduced over the workers.
  virtual StepRequests Request(const TrainPosition& after) { return {}; }
  virtual void AfterStep(const StepReport& report) {}
  // After the epoch's validation and best selection (state.progress is past the epoch).
  virtual void AfterEpoch(const EpochRecord& record, const TrainState& state) {}
  virtual void AfterCheckpoint(const std::string& dir, const TrainState& state) {}
  // After the test evaluation of the best parameters.
  virtual void AfterTraining(const TrainResult& result) {}
  // A run continued from `dir` (before its first step).
  virtual void Resumed(const std::string& dir, const TrainManifest& manifest) {}
  // The expert placement this run trains with: once when the Trainer is made (W > 1), and
  // again whenever a LOAD_AWARE re-pack moves the experts at the end of an epoch (at `after`).
  virtual void PlacementChanged(const PlacementMap& placement, const TrainPosition& after) {}
};

// Makes worker `rank`'s batches of one split: split 0 its training batches (the epoch plan),
// 1 (validation) and 2 (testing) its evaluation passes (PlanOptions.evaluation). Null in
// TrainOptions: the in-process plans over the trainer's samples.
using BatchSourceFactory =
    std::function<std::unique_ptr<BatchSource>(uint32_t split, int rank, int world_size)>;

struct TrainOptions {
  std::string run_dir;           // metrics.jsonl, checkpoints/, checkpoint/ (empty: nothing)
  std::ostream* log = nullptr;   // progress and tables (rank 0 only); null: silent
  bool redraw_progress = false;  // `log` is a terminal: one progress line, redrawn
  int threads = 0;               // LibTorch and BLAS threads; 0: leave the defaults
  // This worker's index among the workers of its node (launch/ reads it from the MPI
  // launcher or SLURM): with training.device: CUDA it picks the GPU (trainer/train/device.h).
  int local_rank = 0;
  Communicator* world = nullptr;   // null: one process
  int expert_parallel_degree = 0;  // 0: the whole world
  BatchSourceFactory batches;      // null: in-process plans over the trainer's samples
  // The expert placement over the expert-parallel group; null: the one cluster.placement
  // makes (MakePlacement, trainer/model/placement_policy.h).
  const PlacementMap* placement = nullptr;
  // A checkpoint directory to continue from (checkpoint.resume_from, or what --resume found).
  std::string resume_from;
  std::vector<TrainHook*> hooks;  // besides the metrics, progress and checkpoint ones
  // Where the metrics records go (every worker's; the coordinator's report sink); null:
  // worker 0 writes run_dir/metrics.jsonl and run_dir/tensorboard/ itself.
  MetricsSink* metrics_sink = nullptr;
  // Empty run_dir/metrics.jsonl first (a run that starts over after an attempt that left
  // no checkpoint).
  bool restart_metrics = false;
  // The launcher's restart number (0: the first attempt) and what ended the attempt
  // before: worker 0 logs a "restart" record when it is not 0.
  int restart = 0;
  std::string restart_reason;
  CheckpointFault fault;  // test-only
};

class Trainer {
 public:
  // Every worker constructs it with the same config and seed. Throws flexmoe::Error on
  // bad config or data.
  // `data`: where in-process batches are gathered from; null when options.batches makes
  // every batch (a worker fed by a loader holds no samples). `prepared` may hold only the
  // metadata then (PreparedDataset::OpenMeta).
  Trainer(const config::Config& config, const PreparedDataset& prepared, const Samples* data,
          uint64_t seed, const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Continues from a checkpoint written at any world size: verifies it, refuses a config
  // whose computation differs (naming the field) or another dataset, and restores the
  // state. Call before Run.
  void Resume(const std::string& dir);
  // Trains to training.epochs (or until a hook asks to stop), then scores the best
  // parameters on the test split and exports them.
  TrainResult Run();

  const TrainState& state() const;
  FlexMoeModelImpl& model();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Trains one model with `seed` (resuming when options.resume_from names a checkpoint).
TrainResult Train(const config::Config& config, const PreparedDataset& prepared,
                  const Samples* data, uint64_t seed, const TrainOptions& options);

}  // namespace flexmoe
