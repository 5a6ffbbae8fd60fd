// The torch-free parts of a run's training state (trainer/checkpoint/train_state.h): where it
// stands, the sums of the epoch in progress, and the best-selection scalars. Saved in every
// checkpoint manifest.
#pragma once

#include <cstdint>

namespace flexmoe {

struct TrainPosition {
  int epoch = 0;              // the epoch in progress, or the next one to start
  int64_t step_in_epoch = 0;  // steps of it already taken
  int64_t global_step = 0;    // steps taken over the whole run
};

// Sums over the steps of the epoch in progress, in step order, so that a run resumed in the
// middle of an epoch reports the same epoch means as an uninterrupted one.
struct EpochSums {
  double loss = 0, task_loss = 0, router_loss = 0;
  int64_t dropped_rows_at_start = 0;  // the run's dropped rows when the epoch began
};

struct BestScore {
  double score = -2;  // the validation selection metric of the best epoch (-1 for NaN)
  int epoch = -1;     // -1: no epoch validated yet
  int64_t step = 0;   // the global step at that epoch's end
};

struct TrainProgress {
  TrainPosition position;
  EpochSums epoch;
  BestScore best;
  int64_t adam_steps = 0;  // after every step
  // Rows over the expert capacity, whole run, all workers: as of the last epoch end or
  // checkpoint (counting them needs a reduction over the workers).
  int64_t dropped_rows = 0;
  int64_t metrics_lines = 0;  // lines of run.dir/metrics.jsonl at the last checkpoint
};

}  // namespace flexmoe
