// Plan options from the config and the in-process batch source (plan_batch_source.h).
#include "data_loader/plan_batch_source.h"

#include "cluster/base/error.h"

namespace flexmoe {

PlanOptions PlanOptionsFromConfig(const config::Config& config, int world_size) {
  PlanOptions options;
  options.seed = config.training().seed();
  options.world_size = world_size;
  options.global_batch = config.training().batch_size();
  options.remainder = config.training().remainder();
  options.batching = config.training().batching();
  options.num_modalities = config.data().modalities_size();
  return options;
}

PlanOptions EvaluationPlanOptions(int world_size, int num_modalities) {
  PlanOptions options;
  options.evaluation = true;
  options.world_size = world_size;
  options.global_batch = kEvaluationBatchPerWorker * world_size;
  options.num_modalities = num_modalities;
  return options;
}

PlanOptions PlanOptionsForEpoch(PlanOptions base, int epoch, int warmup_epochs) {
  base.epoch = epoch;
  base.phase = epoch < warmup_epochs ? EpochPhase::kWarmup : EpochPhase::kShuffled;
  return base;
}

DecodedBatch GatherSlice(const Samples& data, const EpochPlan& plan, int64_t step, int worker) {
  const auto [begin, end] = plan.Slice(step, worker);
  const auto& global = plan.batches[step];
  const auto& weights = plan.weights[step];
  DecodedBatch batch =
      data.Gather(std::vector<uint32_t>(global.begin() + begin, global.begin() + end));
  batch.weight.assign(weights.begin() + begin, weights.begin() + end);
  for (size_t i = 0; i < global.size(); ++i) {
    const auto label = static_cast<size_t>(data.label(global[i]));
    if (label >= batch.global_label_weight.size()) batch.global_label_weight.resize(label + 1, 0.0);
    batch.global_label_weight[label] += weights[i];
  }
  return batch;
}

PlanBatchSource::PlanBatchSource(const Samples& data, const PreparedDataset& prepared,
                                 uint32_t split, PlanOptions base, int warmup_epochs, int worker)
    : data_(data),
      prepared_(prepared),
      split_(split),
      base_(base),
      warmup_epochs_(warmup_epochs),
      worker_(worker) {
  if (worker < 0 || worker >= base.world_size) {
    Fail(ErrorCode::kInvalidArgument, "batch source: worker ", worker, " outside world size ",
         base.world_size);
  }
}

void PlanBatchSource::StartEpoch(int epoch, int64_t first_step) {
  plan_ = PlanEpoch(prepared_, split_, PlanOptionsForEpoch(base_, epoch, warmup_epochs_));
  if (first_step < 0 || first_step > plan_.steps()) {
    Fail(ErrorCode::kInvalidArgument, "batch source: first step ", first_step, " outside epoch ",
         epoch, " of ", plan_.steps(), " steps");
  }
  step_ = first_step;
}

bool PlanBatchSource::Next(DecodedBatch* batch) {
  if (step_ >= plan_.steps()) return false;
  *batch = GatherSlice(data_, plan_, step_++, worker_);
  return true;
}

}  // namespace flexmoe
