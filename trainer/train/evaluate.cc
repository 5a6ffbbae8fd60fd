// Distributed evaluation and the batch conversion (evaluate.h).
#include "trainer/train/evaluate.h"

#include <ATen/ATen.h>
#include <malloc.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <cmath>
#include <cstring>

#include "data_loader/epoch_plan.h"
#include "data_loader/plan_batch_source.h"
#include "trainer/model/model.h"
#include "trainer/train/calibration.h"

namespace flexmoe {
namespace {

// Worker `rank`'s contiguous slices of `samples` in batches of kEvaluationBatchPerWorker * W:
// the evaluation plan (data_loader/plan_batch_source.h) over a list of samples.
class SampleListSource : public BatchSource {
 public:
  SampleListSource(const Samples& data, const std::vector<uint32_t>& samples, int rank,
                   int world_size)
      : data_(data),
        batches_(Batches(samples, kEvaluationBatchPerWorker * world_size)),
        rank_(rank),
        w_(world_size) {}
  void StartEpoch(int, int64_t first_step) override { step_ = first_step; }
  bool Next(DecodedBatch* batch) override {
    if (step_ >= steps_in_epoch()) return false;
    const std::vector<uint32_t>& global = batches_[step_++];
    const size_t n = global.size();
    *batch = data_.Gather(std::vector<uint32_t>(global.begin() + n * rank_ / w_,
                                                global.begin() + n * (rank_ + 1) / w_));
    return true;
  }
  int64_t steps_in_epoch() const override { return static_cast<int64_t>(batches_.size()); }

 private:
  const Samples& data_;
  std::vector<std::vector<uint32_t>> batches_;
  int rank_, w_;
  int64_t step_ = 0;
};

// Every worker's rows [N_r, C] (double), concatenated in rank order, on every worker.
at::Tensor GatherRows(const at::Tensor& rows, Communicator* world) {
  if (world == nullptr || world->size() == 1) return rows;
  const int w = world->size();
  at::Tensor counts = world->AllGather(at::tensor({rows.size(0)}, at::kLong)).reshape({-1});
  std::vector<int64_t> recv(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + w);
  std::vector<int64_t> send(w, rows.size(0));
  std::vector<at::Tensor> copies(w, rows);
  return world->AllToAll(at::cat(copies, 0), send, recv);
}

// Adds a batch's routing to `routed` (per combination: tokens routed top-1 to the
// combination's own expert, and all its tokens) and `activation` (per sparse layer, the
// tokens of combination c among whose top-k experts is e, at c * E + e).
void TallyRouting(const std::vector<at::Tensor>& routing, const at::Tensor& combination,
                  int64_t m_count, int64_t e_count, at::Tensor* routed, at::Tensor* activation) {
  const int64_t b = combination.size(0);
  const int64_t cells = activation->size(1);
  // Tokens in (block, sample, patch) order; top-1 is the first column.
  at::Tensor top = routing[0].select(1, 0).reshape({m_count, b, -1});
  at::Tensor own = top.eq(combination.view({1, -1, 1}));  // [M, B, P]
  at::Tensor per_sample = own.sum(at::IntArrayRef{0, 2});
  (*routed)[0].index_add_(0, combination, per_sample);
  (*routed)[1].index_add_(0, combination, at::full({b}, own.size(0) * own.size(2), at::kLong));
  const int64_t p = top.size(2);
  at::Tensor token_combination =
      combination.view({1, -1, 1, 1}).expand({m_count, b, p, 1}).reshape({-1, 1});
  for (int64_t l = 0; l < activation->size(0); ++l) {
    at::Tensor cell = token_combination * e_count + routing[l].to(at::kLong);
    (*activation)[l] += at::bincount(cell.reshape({-1}), {}, cells);
  }
}

// Every worker's rows [N, K log probs | label | combination | nll | weight] into the
// result's per-sample vectors and its weighted mean loss.
void UnpackRows(const at::Tensor& all, int num_classes, EvalResult* result) {
  const int64_t cols = num_classes + 4;
  double loss_sum = 0, weight_sum = 0;
  const double* r = all.data_ptr<double>();
  for (int64_t i = 0; i < all.size(0); ++i, r += cols) {
    for (int k = 0; k < num_classes; ++k) {
      result->log_probs.push_back(r[k]);
      result->probs.push_back(static_cast<float>(std::exp(r[k])));
    }
    result->labels.push_back(static_cast<int>(r[num_classes]));
    result->groups.push_back(static_cast<int>(r[num_classes + 1]));
    loss_sum += r[num_classes + 2];
    weight_sum += r[num_classes + 3];
  }
  result->loss = weight_sum > 0 ? loss_sum / weight_sum : 0;
}

}  // namespace

EvalResult Evaluate(FlexMoeModelImpl& model, const Samples& data,
                    const std::vector<uint32_t>& samples, int num_classes, int num_combinations,
                    const at::Tensor& class_weights, Communicator* world) {
  SampleListSource source(data, samples, world != nullptr ? world->rank() : 0,
                          world != nullptr ? world->size() : 1);
  return Evaluate(model, source, data.feature_sizes(), num_classes, num_combinations, class_weights,
                  world);
}

EvalResult Evaluate(FlexMoeModelImpl& model, BatchSource& batches,
                    const std::vector<int>& feature_sizes, int num_classes, int num_combinations,
                    const at::Tensor& class_weights, Communicator* world) {
  torch::NoGradGuard no_grad;
  const c10::Device device = model.device();
  const at::Tensor weights = class_weights.defined() ? class_weights.to(at::kCPU) : class_weights;
  const int w = world != nullptr ? world->size() : 1;
  const int64_t m_count = model.num_modalities();
  // Per sample: [K log probs | label | combination | nll | weight], in one allocation made
  // before the first batch: per-batch pieces kept between the batches' large transient
  // tensors would pin the heap, which then grows with the split (measured: 315 MB at 1,500
  // test samples, 533 MB at 15,000, 4.9 GB at 150,000).
  const int64_t cols = num_classes + 4;
  batches.StartEpoch(0, 0);
  std::vector<double> rows;
  rows.reserve(static_cast<size_t>(batches.steps_in_epoch()) * kEvaluationBatchPerWorker * cols);
  at::Tensor routed = at::zeros({2, num_combinations}, at::kLong);
  const int64_t e_count = model.num_experts();
  const int64_t l_count =
      static_cast<int64_t>(FlexMoeModelImpl::SparseLayers(model.config()).size());
  at::Tensor activation = at::zeros({l_count, num_combinations * e_count}, at::kLong);
  StepKey key;  // unused in evaluation: no dropout, no noise
  // Every worker runs the same number of batches (its slice may be empty).
  DecodedBatch batch;
  while (batches.Next(&batch)) {
    // The freed pages of the last batch's tensors go back to the system: an evaluation
    // pass's batches are 16x a training step's, and glibc would otherwise keep the heap
    // they fragmented (the worker's peak grew with the validation split).
    ::malloc_trim(0);
    // The model's input on its device; the results come back to the host.
    BatchTensors t = ToTensors(batch, feature_sizes);
    ModelOutput out = model.Forward(ToDevice(t, device), key, /*training=*/false);
    const at::Tensor logits = out.logits.to(at::kCPU);
    at::Tensor logp = at::log_softmax(logits, -1);
    at::Tensor nll = at::nll_loss(logp, t.label, weights, at::Reduction::None);
    // The probabilities without the prior shift the class weights trained into the logits
    // (trainer/train/calibration.h, PriorCorrection).
    if (weights.defined()) logp = at::log_softmax(logits - weights.log(), -1);
    at::Tensor weight =
        weights.defined() ? weights.index_select(0, t.label) : at::ones({batch.size});
    const at::Tensor piece =
        at::cat({logp.to(at::kDouble), t.label.unsqueeze(1).to(at::kDouble),
                 t.combination.unsqueeze(1).to(at::kDouble), nll.unsqueeze(1).to(at::kDouble),
                 weight.unsqueeze(1).to(at::kDouble)},
                1)
            .contiguous();
    rows.insert(rows.end(), piece.data_ptr<double>(), piece.data_ptr<double>() + piece.numel());
    for (at::Tensor& r : out.routing) r = r.to(at::kCPU);
    if (!out.routing.empty() && batch.size > 0) {
      TallyRouting(out.routing, t.combination, m_count, e_count, &routed, &activation);
    }
  }
  at::Tensor all =
      GatherRows(
          at::from_blob(rows.data(), {static_cast<int64_t>(rows.size()) / cols, cols}, at::kDouble),
          world)
          .contiguous();
  if (world != nullptr && w > 1) {
    world->AllReduce(routed, ReduceOp::kSum);
    world->AllReduce(activation, ReduceOp::kSum);
  }
  EvalResult result;
  UnpackRows(all, num_classes, &result);
  std::vector<int>& labels = result.labels;
  std::vector<float>& probs = result.probs;
  std::vector<int>& groups = result.groups;
  result.metrics = ComputeGroupedMetrics(labels, probs, num_classes, groups, num_combinations);
  result.ece = labels.empty() ? 0 : ComputeReliability(labels, probs, num_classes).ece;
  result.routed_to_own_expert.assign(routed[0].data_ptr<int64_t>(),
                                     routed[0].data_ptr<int64_t>() + num_combinations);
  result.tokens.assign(routed[1].data_ptr<int64_t>(),
                       routed[1].data_ptr<int64_t>() + num_combinations);
  activation = activation.contiguous();
  for (int64_t l = 0; l < l_count; ++l) {
    const int64_t* a = activation[l].data_ptr<int64_t>();
    result.routed.emplace_back(a, a + num_combinations * e_count);
  }
  return result;
}

BatchTensors ToTensors(const DecodedBatch& batch, const std::vector<int>& feature_sizes) {
  BatchTensors t;
  const int64_t b = batch.size;
  const int64_t m_count = static_cast<int64_t>(feature_sizes.size());
  for (int64_t m = 0; m < m_count; ++m) {
    at::Tensor f = at::empty({b, feature_sizes[m]}, at::kFloat);
    std::memcpy(f.data_ptr<float>(), batch.features[m].data(),
                batch.features[m].size() * sizeof(float));
    t.features.push_back(f);
  }
  t.observed = at::empty({b, m_count}, at::kBool);
  std::memcpy(t.observed.data_ptr<bool>(), batch.observed.data(), batch.observed.size());
  t.combination = at::empty({b}, at::kLong);
  std::memcpy(t.combination.data_ptr<int64_t>(), batch.combination.data(), b * sizeof(int64_t));
  t.label = at::empty({b}, at::kLong);
  std::memcpy(t.label.data_ptr<int64_t>(), batch.label.data(), b * sizeof(int64_t));
  return t;
}

BatchTensors ToDevice(BatchTensors batch, const c10::Device& device) {
  if (device.is_cpu()) return batch;
  for (at::Tensor& f : batch.features) f = f.to(device);
  batch.observed = batch.observed.to(device);
  batch.combination = batch.combination.to(device);
  batch.label = batch.label.to(device);
  return batch;
}

std::vector<std::string> CombinationNames(const PreparedDataset& prepared) {
  const auto& names = prepared.meta.summary().combination_names();
  return std::vector<std::string>(names.begin(), names.end());
}
}  // namespace flexmoe
