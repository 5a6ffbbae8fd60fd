// The Flex-MoE model (MODEL.md): per-modality patch-embedding encoders, the
// missing-modality bank [C, M, P, D], the fusion transformer (sparse MoE layers alternating
// with dense ones) and the prediction head.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "experts/cpu_blas.h"
#include "experts/expert_parallel.h"
#include "experts/moe_layer.h"
#include "proto/config.pb.h"
#include "proto/dataset.pb.h"
#include "trainer/model/encoders.h"
#include "trainer/model/keyed_tensors.h"
#include "trainer/model/parameter_groups.h"
#include "trainer/model/phase_times.h"

namespace flexmoe {

struct ModelShape {
  std::vector<int> feature_sizes;  // F_m per modality
  int num_classes = 2;
  // Per modality its config (encoder kind, volume shape); empty: patch embeddings.
  std::vector<config::Modality> modalities;
  // Per modality: a CNN3D modality's voxel positions (ModalityMeta.volume_voxels), empty
  // when its features are the whole volume.
  std::vector<std::vector<int64_t>> volume_voxels;
  // Per modality: a PIECEWISE_LINEAR modality's bin edges (ModalityMeta.bin_edges).
  std::vector<std::vector<float>> bin_edges;
};

// Per modality of `meta`, its CNN3D voxel positions (ModalityMeta.volume_voxels).
std::vector<std::vector<int64_t>> VolumeVoxels(const data::DatasetMeta& meta);
// Per modality of `meta`, its PIECEWISE_LINEAR bin edges (ModalityMeta.bin_edges).
std::vector<std::vector<float>> BinEdges(const data::DatasetMeta& meta);

// One batch as tensors: features per modality [B, F_m] (zeros where missing), observed
// [B, M] bool, combination [B] int64, label [B] int64.
struct BatchTensors {
  std::vector<at::Tensor> features;
  at::Tensor observed;
  at::Tensor combination;
  at::Tensor label;
};

// How a worker's model is spread: the placement of experts over the expert-parallel group
// and the groups its collectives use. Null (the default) means one process.
struct ParallelLayout {
  PlacementMap placement;  // per sparse layer, over the ranks of `expert_parallel`
  int expert_rank = 0;     // this rank in `expert_parallel`
  Communicator* expert_parallel = nullptr;
  Communicator* data_parallel = nullptr;  // router statistics are summed over it
  ExchangeStats* exchange_stats = nullptr;
};

struct ModelOutput {
  at::Tensor logits;    // [B, classes]
  at::Tensor aux_loss;  // scalar: router losses summed over sparse layers and blocks
  // Per sparse layer: the top-k expert indices of every token, [B * M * P, k], tokens in
  // (modality block, sample, patch) order.
  std::vector<at::Tensor> routing;
};

// One fusion layer: pre-norm multi-head attention over all M*P tokens, the residual
// (standard or the authors' variant), then per modality block x + dropout(FFN(LN(x))) with
// the FFN a sparse MoE or a dense MLP.
class FusionLayerImpl : public torch::nn::Module {
 public:
  // `precision`: the products of the projections, the dense FFN and the experts, and the
  // token all-to-alls (training.precision); the attention core and the router stay fp32.
  FusionLayerImpl(const config::ModelConfig& model, bool sparse, int64_t layer_index,
                  int64_t init_seed, const ParallelLayout* layout,
                  GemmPrecision precision = GemmPrecision::kFp32);
  // x: [B, M*P, D]. token_combination: [B*M*P] in (block, sample, patch) order.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& token_combination,
                     const at::Tensor& block_of_token, int64_t num_blocks, const StepKey& key,
                     bool training, at::Tensor* aux_loss, at::Tensor* routing);
  bool sparse() const { return sparse_; }
  ExpertParallelMoe& moe() { return moe_; }
  void set_phase_times(PhaseTimes* times) { times_ = times; }
  // Rows dropped over the expert capacity since construction (model.capacity_factor > 0).
  int64_t dropped_rows() const { return dropped_rows_; }

 private:
  at::Tensor Attention(const at::Tensor& h, const StepKey& key, bool training);

  config::ModelConfig model_;
  bool sparse_;
  int64_t layer_;
  GemmPrecision precision_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Linear q_{nullptr}, kv_{nullptr}, proj_{nullptr};
  ExpertParallelMoe moe_{nullptr};
  const ParallelLayout* layout_ = nullptr;
  int64_t dropped_rows_ = 0;
  torch::nn::Linear dense1_{nullptr}, dense2_{nullptr};
  PhaseTimes* times_ = nullptr;
};
TORCH_MODULE(FusionLayer);

class FlexMoeModelImpl : public torch::nn::Module {
 public:
  // Parameters are drawn from LibTorch's global generator (seed it first) except the
  // experts and routers, which are keyed by `init_seed`, so that every worker holds the
  // same replicated parameters and each expert is the same wherever it is placed.
  // `layout` (may be null) must outlive the model. `precision` (training.precision): kBf16
  // computes the encoders' projections, the fusion layers' projections, dense FFNs and
  // experts, the head and the wide part with bf16 products (fp32 accumulation, fp32
  // parameters and activations), and moves the tokens between workers as bf16.
  FlexMoeModelImpl(const config::ModelConfig& model, const ModelShape& shape, int64_t init_seed,
                   const ParallelLayout* layout = nullptr,
                   GemmPrecision precision = GemmPrecision::kFp32);
  ModelOutput Forward(const BatchTensors& batch, const StepKey& key, bool training);
  // The token blocks before the fusion layers, [B, M*P, D]: encoder output for observed
  // modalities, bank[c, m] (or zeros) for missing ones, plus the position embedding.
  at::Tensor Embed(const BatchTensors& batch, const StepKey& key = {}, bool training = false);
  at::Tensor& bank() { return bank_; }
  ModalityEncoder& encoder(int m) { return *encoders_[m]; }
  // Rows dropped over the expert capacity by all sparse layers so far.
  int64_t dropped_rows();
  // Adds, per sparse layer, the tokens of each training forward routed to (expert e,
  // combination c) into (*counts)[layer][e * num_combinations() + c]: the measured load of
  // every expert per modality combination. Null (the default) counts nothing. The counts
  // belong to the caller, so they outlive a rebuilt model.
  void CountTokensInto(std::vector<std::vector<int64_t>>* counts) { token_counts_ = counts; }
  // Attaches (or, with null, detaches) forward-phase timing.
  void SetPhaseTimes(PhaseTimes* times);

  // Every parameter in named_parameters() order with its group: the experts of each
  // sparse layer (rows = this rank's experts), everything else replicated.
  std::vector<ModelParameter> Parameters();
  // The fusion-layer indices of the sparse layers (0, 2, 4, ...).
  static std::vector<int> SparseLayers(const config::ModelConfig& model);

  int num_modalities() const { return static_cast<int>(encoders_.size()); }
  // Where the parameters live (training.device).
  c10::Device device() const { return pos_embed_.device(); }
  int num_experts() const { return model_.num_experts(); }
  const config::ModelConfig& config() const { return model_; }
  int num_combinations() const { return (1 << num_modalities()) - 1; }
  std::vector<FusionLayer>& layers() { return layers_; }

 private:
  void CountTokens(const std::vector<at::Tensor>& routing, const at::Tensor& token_combination);

  config::ModelConfig model_;
  ModelShape shape_;
  GemmPrecision precision_;
  std::vector<std::vector<int64_t>>* token_counts_ = nullptr;
  std::vector<std::shared_ptr<ModalityEncoder>> encoders_;
  at::Tensor bank_;       // [C, M, P, D]
  at::Tensor pos_embed_;  // [1, M*P, D]
  std::vector<FusionLayer> layers_;
  std::vector<torch::nn::Linear> head_;
  torch::nn::Linear wide_{nullptr};  // model.wide
  PhaseTimes* times_ = nullptr;
};
TORCH_MODULE(FlexMoeModel);

}  // namespace flexmoe
