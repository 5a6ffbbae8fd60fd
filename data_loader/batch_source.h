// Where a worker's batches come from: the in-process plan over a decoded dataset, or a
// loader process over TCP (data_loader/loader_client.h). Both yield, for one worker, the
// batches of the epoch plan (data_loader/epoch_plan.h) in step order.
#pragma once

#include <cstdint>

#include "data_loader/decoded_batch.h"

namespace flexmoe {

// Not thread-safe; one per worker.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Positions the source at (epoch, first_step) of this worker's plan. Throws
  // flexmoe::Error (kUnavailable, kDeadlineExceeded naming the loader) when it cannot.
  virtual void StartEpoch(int epoch, int64_t first_step) = 0;
  // The next batch of the epoch; false after the epoch's last step. A batch may hold zero
  // samples (a worker whose slice of a short global batch is empty) and still counts as a
  // step: every worker sees the same number of steps.
  virtual bool Next(DecodedBatch* batch) = 0;
  // Steps in the current epoch (the same on every worker).
  virtual int64_t steps_in_epoch() const = 0;
};

}  // namespace flexmoe
