// The in-process BatchSource: one worker's slices of the epoch plan, gathered from any
// Samples (decoded in memory, or shards read on demand). The loader server gathers with the
// same GatherSlice, so a LoaderClient yields exactly what this source yields for the same
// worker.
#pragma once

#include <cstdint>

#include "data_loader/batch_source.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/samples.h"
#include "data_loader/shard.h"
#include "proto/config.pb.h"

namespace flexmoe {

// The plan options of a job (seed, global batch, remainder, batching, modality count) for
// `world_size` workers; epoch and phase are left for PlanOptionsForEpoch.
PlanOptions PlanOptionsFromConfig(const config::Config& config, int world_size);

// Samples per worker in an evaluation batch (the model's forward pass over 256 samples).
inline constexpr int kEvaluationBatchPerWorker = 256;

// The plan options of an evaluation pass over `world_size` workers: batches of
// kEvaluationBatchPerWorker samples per worker in index order.
PlanOptions EvaluationPlanOptions(int world_size, int num_modalities);

// `base` with the epoch set and the phase chosen: warm-up while epoch < warmup_epochs.
PlanOptions PlanOptionsForEpoch(PlanOptions base, int epoch, int warmup_epochs);

// Worker `worker`'s part of step `step`, with per-sample weights (always filled).
DecodedBatch GatherSlice(const Samples& data, const EpochPlan& plan, int64_t step, int worker);

// Not thread-safe; `data` and `prepared` must outlive it. StartEpoch builds the epoch's
// plan (O(samples log samples)); Next gathers one slice. With base.evaluation the source
// makes evaluation passes over `split` (the epoch passed to StartEpoch plays no part).
class PlanBatchSource : public BatchSource {
 public:
  // `base`: every plan option but epoch and phase. Throws kInvalidArgument for a worker
  // outside [0, base.world_size).
  PlanBatchSource(const Samples& data, const PreparedDataset& prepared, uint32_t split,
                  PlanOptions base, int warmup_epochs, int worker);

  // Throws kInvalidArgument for first_step beyond the epoch's steps.
  void StartEpoch(int epoch, int64_t first_step) override;
  bool Next(DecodedBatch* batch) override;
  int64_t steps_in_epoch() const override { return plan_.steps(); }
  const EpochPlan& plan() const { return plan_; }

 private:
  const Samples& data_;
  const PreparedDataset& prepared_;
  uint32_t split_;
  PlanOptions base_;
  int warmup_epochs_;
  int worker_;
  EpochPlan plan_;
  int64_t step_ = 0;
};

}  // namespace flexmoe
