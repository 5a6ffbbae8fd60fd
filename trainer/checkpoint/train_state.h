// TrainState: the whole state of a training run as one value (ARCHITECTURE.md "Formats"):
// the parameters with their groups and Adam's moments (live tensors shared with the model
// and the optimizer, in one order), the best epoch's parameters, their moving average, the position
// and the trainer's scalars. Saved and restored by trainer/checkpoint/resumable_checkpoint.h.
// Randomness is keyed by (seed, epoch, step, sample), so no random stream is part of it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "trainer/checkpoint/train_progress.h"
#include "trainer/model/parameter_groups.h"

namespace flexmoe {

struct TrainState {
  uint64_t seed = 0;
  std::vector<ModelParameter> parameters;       // the model's, named_parameters() order
  std::vector<at::Tensor> exp_avg, exp_avg_sq;  // the optimizer's, same order
  std::vector<at::Tensor> best;  // the best epoch's values, same order; empty before one
  // training.average_epochs' moving average of the parameters, same order; empty when off.
  std::vector<at::Tensor> average;
  TrainProgress progress;
};

}  // namespace flexmoe
