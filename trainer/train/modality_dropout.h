// training.modality_dropout: one observed modality of a training sample hidden for a step,
// so that the bank stands in for it (proto/config.proto).
#pragma once

#include "trainer/model/keyed_tensors.h"
#include "trainer/model/model.h"

namespace flexmoe {

// With probability p per sample (keyed by `key`: the same draw on every worker and after a
// resume), a sample with two or more observed modalities loses one, chosen uniformly: its
// observed flag cleared, its features zeroed, its combination the one without it. `batch`
// is on the host.
void HideModalities(double p, const StepKey& key, BatchTensors* batch);

}  // namespace flexmoe
