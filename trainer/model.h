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

#include "experts/moe_layer.h"
#include "proto/config.pb.h"
#include "trainer/keyed_tensors.h"
#include "trainer/phase_times.h"

namespace flexmoe {

struct ModelShape {
  std::vector<int> feature_sizes;  // F_m per modality
  int num_classes = 2;
};

// One batch as tensors: features per modality [B, F_m] (zeros where missing), observed
// [B, M] bool, combination [B] int64, label [B] int64.
struct BatchTensors {
  std::vector<at::Tensor> features;
  at::Tensor observed;
  at::Tensor combination;
  at::Tensor label;
};

struct ModelOutput {
  at::Tensor logits;    // [B, classes]
  at::Tensor aux_loss;  // scalar: router losses summed over sparse layers and blocks
  // Per sparse layer: the top-k expert indices of every token, [B * M * P, k], tokens in
  // (modality block, sample, patch) order.
  std::vector<at::Tensor> routing;
};

// Patch embedding: a feature vector of length F is zero-padded to P * ceil(F / P), viewed
// as [P, ceil(F / P)] (patch p holds features p*ps .. p*ps+ps-1) and each patch projected
// by one Linear(ps -> D).
class PatchEmbeddingImpl : public torch::nn::Module {
 public:
  PatchEmbeddingImpl(int features, int patches, int hidden_dim);
  at::Tensor forward(const at::Tensor& x);  // [B, F] -> [B, P, D]
  int patch_size() const { return patch_size_; }

 private:
  int features_, patches_, patch_size_;
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(PatchEmbedding);

// One fusion layer: pre-norm multi-head attention over all M*P tokens, the residual
// (standard or the authors' variant), then per modality block x + dropout(FFN(LN(x))) with
// the FFN a sparse MoE or a dense MLP.
class FusionLayerImpl : public torch::nn::Module {
 public:
  FusionLayerImpl(const config::ModelConfig& model, bool sparse, int64_t layer_index,
                  int64_t init_seed);
  // x: [B, M*P, D]. token_combination: [B*M*P] in (block, sample, patch) order.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& token_combination,
                     const at::Tensor& block_of_token, int64_t num_blocks, const StepKey& key,
                     bool training, at::Tensor* aux_loss, at::Tensor* routing);
  bool sparse() const { return sparse_; }
  LocalMoeLayer& moe() { return moe_; }
  void set_phase_times(PhaseTimes* times) { times_ = times; }

 private:
  at::Tensor Attention(const at::Tensor& h, const StepKey& key, bool training);

  config::ModelConfig model_;
  bool sparse_;
  int64_t layer_;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Linear q_{nullptr}, kv_{nullptr}, proj_{nullptr};
  LocalMoeLayer moe_{nullptr};
  torch::nn::Linear dense1_{nullptr}, dense2_{nullptr};
  PhaseTimes* times_ = nullptr;
};
TORCH_MODULE(FusionLayer);

class FlexMoeModelImpl : public torch::nn::Module {
 public:
  // Parameters are drawn from LibTorch's global generator (seed it first) except the
  // experts and routers, which are keyed by `init_seed`.
  FlexMoeModelImpl(const config::ModelConfig& model, const ModelShape& shape, int64_t init_seed);
  ModelOutput Forward(const BatchTensors& batch, const StepKey& key, bool training);
  // The token blocks before the fusion layers, [B, M*P, D] without the position
  // embedding: encoder output for observed modalities, bank[c, m] (or zeros) for missing.
  at::Tensor Embed(const BatchTensors& batch);
  at::Tensor& bank() { return bank_; }
  PatchEmbedding& encoder(int m) { return encoders_[m]; }
  // Attaches (or, with null, detaches) forward-phase timing.
  void SetPhaseTimes(PhaseTimes* times);

  int num_modalities() const { return static_cast<int>(encoders_.size()); }
  int num_combinations() const { return (1 << num_modalities()) - 1; }
  std::vector<FusionLayer>& layers() { return layers_; }

 private:
  config::ModelConfig model_;
  ModelShape shape_;
  std::vector<PatchEmbedding> encoders_;
  at::Tensor bank_;       // [C, M, P, D]
  at::Tensor pos_embed_;  // [1, M*P, D]
  std::vector<FusionLayer> layers_;
  std::vector<torch::nn::Linear> head_;
  PhaseTimes* times_ = nullptr;
};
TORCH_MODULE(FlexMoeModel);

}  // namespace flexmoe
