// The Flex-MoE model's forward pass (model.h).
#include "trainer/model/model.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "cluster/base/error.h"
#include "experts/linear.h"
#include "trainer/model/attention_kernel.h"
#include "trainer/model/fill_missing.h"

namespace flexmoe {
namespace {

// A torch::nn::Linear through the fused host GEMM path (experts/linear.h).
at::Tensor Affine(const torch::nn::Linear& layer, const at::Tensor& x, GemmPrecision precision) {
  return FusedLinear(x, layer->weight, layer->bias, precision);
}

}  // namespace

FusionLayerImpl::FusionLayerImpl(const config::ModelConfig& model, bool sparse, int64_t layer_index,
                                 int64_t init_seed, const ParallelLayout* layout,
                                 GemmPrecision precision)
    : model_(model), sparse_(sparse), layer_(layer_index), precision_(precision), layout_(layout) {
  const int64_t d = model.hidden_dim();
  norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  q_ = register_module("q", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  kv_ = register_module("kv", torch::nn::Linear(torch::nn::LinearOptions(d, 2 * d).bias(false)));
  proj_ = register_module("proj", torch::nn::Linear(d, d));
  if (sparse) {
    ExpertParallelMoeOptions options;
    options.hidden_dim = d;
    options.num_experts = model.num_experts();
    options.top_k = model.top_k();
    options.init_seed = init_seed;
    options.precision = precision;
    if (layout != nullptr) {
      options.placement = layout->placement.Layer(static_cast<int>(layer_index));
      options.rank = layout->expert_rank;
    }
    moe_ = register_module("moe", ExpertParallelMoe(options));
  } else {
    dense1_ = register_module("dense1", torch::nn::Linear(d, 2 * d));
    dense2_ = register_module("dense2", torch::nn::Linear(2 * d, d));
  }
}

at::Tensor FusionLayerImpl::Attention(const at::Tensor& h, const StepKey& key, bool training) {
  const int64_t n = h.size(1), heads = model_.num_heads();
  const double p = model_.dropout();
  at::Tensor mask;
  if (training && p > 0.0) {
    mask =
        KeyedTensor(key, RandomSite::kAttentionWeights, layer_, {heads, n, n}, KeyedKind::kMask, p);
  }
  // Queries, keys and values by one GEMM over the concatenated weights (q and kv stay
  // separate parameters, as in the authors' model and our checkpoints).
  const at::Tensor qkv =
      FusedLinear(h, at::cat({q_->weight, kv_->weight}, 0), at::Tensor(), precision_);
  at::Tensor out = Affine(proj_, AttentionCore(qkv, heads, mask), precision_);
  return KeyedDropout(out, p, training, key, RandomSite::kAttentionOutput, layer_);
}

at::Tensor FusionLayerImpl::forward(const at::Tensor& x, const at::Tensor& token_combination,
                                    const at::Tensor& block_of_token, int64_t num_blocks,
                                    const StepKey& key, bool training, at::Tensor* aux_loss,
                                    at::Tensor* routing) {
  const double p = model_.dropout();
  at::Tensor y;
  {
    PhaseScope scope(times_, Phase::kAttention);
    at::Tensor a = Attention(norm1_->forward(x), key, training);
    at::Tensor base = model_.attention_residual() == config::ModelConfig::AUTHORS_CODE ? a : x;
    y = KeyedDropoutAdd(base, a, p, training, key, RandomSite::kResidual1, layer_);
  }

  const int64_t b = y.size(0), n = y.size(1), d = y.size(2);
  auto routing_start = std::chrono::steady_clock::now();
  double expert_seconds = 0;
  at::Tensor h = norm2_->forward(y);
  at::Tensor ffn;
  if (sparse_) {
    // All modality blocks go through one dispatch, tokens in (block, sample, patch) order;
    // the router loss is still formed per block.
    const int64_t m = num_blocks, patches = n / m;
    at::Tensor tokens =
        h.view({b, m, patches, d}).permute({1, 0, 2, 3}).reshape({m * b * patches, d});
    at::Tensor noise;
    if (training) {
      noise = KeyedTensor(key, RandomSite::kRouterNoise, layer_, {m, patches, model_.num_experts()},
                          KeyedKind::kNormal)
                  .permute({1, 0, 2, 3})
                  .reshape({m * b * patches, model_.num_experts()})
                  .to(h.device(), h.scalar_type());
    }
    Communicator* ep = layout_ != nullptr ? layout_->expert_parallel : nullptr;
    Communicator* dp = layout_ != nullptr ? layout_->data_parallel : nullptr;
    ExchangeStats* stats = layout_ != nullptr ? layout_->exchange_stats : nullptr;
    // The drop order over the capacity is the samples' order (then block, then patch), so
    // that W workers, each holding the next slice of the global batch, drop what one
    // process drops.
    CapacityOptions capacity;
    capacity.factor = model_.capacity_factor();
    capacity.group = dp;
    if (capacity.factor > 0) {
      capacity.token_priority = at::arange(b * m * patches, at::kLong)
                                    .view({b, m, patches})
                                    .permute({1, 0, 2})
                                    .reshape({-1});
    }
    MoeOutput out = moe_->Forward(tokens, noise, token_combination, block_of_token, m, training, ep,
                                  dp, stats, capacity, &expert_seconds);
    dropped_rows_ += out.dropped_rows;
    *aux_loss = out.aux_loss;
    if (routing != nullptr) *routing = out.routing.top_indices;
    ffn = out.output.view({m, b, patches, d}).permute({1, 0, 2, 3}).reshape({b, n, d});
  } else {
    ffn = Affine(dense1_, h, precision_);
    ffn = at::gelu(ffn);
    ffn = KeyedDropout(ffn, p, training, key, RandomSite::kDenseFfn, layer_);
    ffn = Affine(dense2_, ffn, precision_);
  }
  at::Tensor result = KeyedDropoutAdd(y, ffn, p, training, key, RandomSite::kResidual2, layer_);
  if (times_ != nullptr) {
    double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - routing_start).count();
    times_->Add(Phase::kExperts, expert_seconds);
    times_->Add(sparse_ ? Phase::kRouting : Phase::kExperts, total - expert_seconds);
  }
  return result;
}

FlexMoeModelImpl::FlexMoeModelImpl(const config::ModelConfig& model, const ModelShape& shape,
                                   int64_t init_seed, const ParallelLayout* layout,
                                   GemmPrecision precision)
    : model_(model), shape_(shape), precision_(precision) {
  const int m_count = static_cast<int>(shape.feature_sizes.size());
  const int64_t p = model.patches(), d = model.hidden_dim();
  const int combinations = (1 << m_count) - 1;
  if (model.num_experts() < combinations) {
    Fail(ErrorCode::kInvalidArgument, "model.num_experts: ", model.num_experts(),
         " experts, but the S-Router needs one per combination (", combinations, ")");
  }
  // Initialisation order as in the authors' code: encoders, fusion model, bank.
  for (int m = 0; m < m_count; ++m) {
    config::Modality modality;
    if (m < static_cast<int>(shape.modalities.size())) modality = shape.modalities[m];
    EncoderData data;
    data.features = shape.feature_sizes[m];
    if (m < static_cast<int>(shape.volume_voxels.size())) data.voxels = shape.volume_voxels[m];
    if (m < static_cast<int>(shape.bin_edges.size())) data.bin_edges = shape.bin_edges[m];
    encoders_.push_back(register_module("encoder" + std::to_string(m),
                                        MakeEncoder(modality, data, model, m, precision)));
  }
  pos_embed_ = register_parameter("pos_embed", at::zeros({1, m_count * p, d}));
  const std::vector<int> sparse_layers = SparseLayers(model);
  for (int l = 0; l < model.num_layers_fus(); ++l) {
    bool sparse = std::find(sparse_layers.begin(), sparse_layers.end(), l) != sparse_layers.end();
    layers_.push_back(
        register_module("layer" + std::to_string(l),
                        FusionLayer(model, sparse, l, init_seed * 1000 + l, layout, precision)));
  }
  const int64_t in = m_count * d;
  if (model.num_layers_pred() == 1) {
    head_.push_back(register_module("head0", torch::nn::Linear(in, shape.num_classes)));
  } else {
    head_.push_back(register_module("head0", torch::nn::Linear(in, d)));
    for (int l = 1; l + 1 < model.num_layers_pred(); ++l) {
      head_.push_back(register_module("head" + std::to_string(l), torch::nn::Linear(d, d)));
    }
    head_.push_back(register_module("head" + std::to_string(model.num_layers_pred() - 1),
                                    torch::nn::Linear(d, shape.num_classes)));
  }
  if (model.bank_mode() == config::ModelConfig::LEARNED) {
    bank_ = register_parameter("bank", at::randn({combinations, m_count, p, d}));
  }
  if (model.wide()) {
    int64_t features = m_count;  // the observed flags
    for (int f : shape.feature_sizes) features += f;
    wide_ = register_module("wide", torch::nn::Linear(features, shape.num_classes));
    torch::NoGradGuard no_grad;
    wide_->weight.zero_();
    wide_->bias.zero_();
  }
}

std::vector<int> FlexMoeModelImpl::SparseLayers(const config::ModelConfig& model) {
  std::vector<int> layers;
  for (int l = 0; l < model.num_layers_fus(); l += 2) layers.push_back(l);
  return layers;
}

std::vector<ModelParameter> FlexMoeModelImpl::Parameters() {
  // The experts' tensors by identity, with their layer and global ids.
  std::map<const void*, ParameterGroup> expert_groups;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!layers_[l]->sparse()) continue;
    GroupedExperts& experts = layers_[l]->moe()->experts();
    ParameterGroup group;
    group.kind = ParameterGroup::kExpert;
    group.layer = static_cast<int>(l);
    group.experts = experts->global_ids();
    for (const at::Tensor& p : experts->parameters()) {
      expert_groups[p.unsafeGetTensorImpl()] = group;
    }
  }
  std::vector<ModelParameter> parameters;
  for (const auto& item : named_parameters()) {
    auto it = expert_groups.find(item.value().unsafeGetTensorImpl());
    parameters.push_back(
        {item.key(), item.value(), it != expert_groups.end() ? it->second : ParameterGroup{}});
  }
  return parameters;
}

void FlexMoeModelImpl::CountTokens(const std::vector<at::Tensor>& routing,
                                   const at::Tensor& token_combination) {
  const int64_t e_count = model_.num_experts(), c_count = num_combinations();
  std::vector<std::vector<int64_t>>& counts = *token_counts_;
  counts.resize(routing.size(), std::vector<int64_t>(e_count * c_count, 0));
  at::Tensor combination = token_combination.to(at::kCPU, at::kLong).unsqueeze(1);
  for (size_t l = 0; l < routing.size(); ++l) {
    at::Tensor cell = routing[l].to(at::kCPU, at::kLong) * c_count + combination;
    at::Tensor step = at::bincount(cell.reshape({-1}), {}, e_count * c_count).contiguous();
    const int64_t* n = step.data_ptr<int64_t>();
    for (int64_t i = 0; i < e_count * c_count; ++i) counts[l][i] += n[i];
  }
}

int64_t FlexMoeModelImpl::dropped_rows() {
  int64_t total = 0;
  for (auto& layer : layers_) total += layer->dropped_rows();
  return total;
}

void FlexMoeModelImpl::SetPhaseTimes(PhaseTimes* times) {
  times_ = times;
  for (auto& layer : layers_) layer->set_phase_times(times);
}

at::Tensor FlexMoeModelImpl::Embed(const BatchTensors& batch, const StepKey& key, bool training) {
  PhaseScope scope(times_, Phase::kEncode);
  const int m_count = num_modalities();
  std::vector<at::Tensor> blocks;
  for (int m = 0; m < m_count; ++m) {
    blocks.push_back(encoders_[m]->Encode(batch.features[m], key, training));  // [B, P, D]
  }
  return FillMissing(at::stack(blocks, 1), bank_, pos_embed_, batch.combination, batch.observed);
}

ModelOutput FlexMoeModelImpl::Forward(const BatchTensors& batch, const StepKey& key,
                                      bool training) {
  const int m_count = num_modalities();
  const int64_t b = batch.combination.size(0), p = model_.patches(), d = model_.hidden_dim();
  at::Tensor x = Embed(batch, key, training);  // [B, M*P, D], position embedding added

  // Per token (block, sample, patch): its sample's combination and its block.
  at::Tensor token_combination =
      batch.combination.view({1, b, 1}).expand({m_count, b, p}).reshape({-1});
  at::Tensor block_of_token = at::arange(m_count, batch.combination.options().dtype(at::kLong))
                                  .view({m_count, 1, 1})
                                  .expand({m_count, b, p})
                                  .reshape({-1});
  ModelOutput out;
  out.aux_loss = at::zeros({}, x.options());
  for (auto& layer : layers_) {
    at::Tensor aux, routing;
    x = layer->forward(x, token_combination, block_of_token, m_count, key, training, &aux,
                       &routing);
    if (layer->sparse()) {
      out.aux_loss = out.aux_loss + aux;
      out.routing.push_back(routing);
    }
  }
  if (training && token_counts_ != nullptr) CountTokens(out.routing, token_combination);
  PhaseScope head_scope(times_, Phase::kHead);
  at::Tensor pooled = x.view({b, m_count, p, d}).mean(2).reshape({b, m_count * d});
  at::Tensor h = pooled;
  for (size_t l = 0; l < head_.size(); ++l) {
    h = Affine(head_[l], h, precision_);
    if (l + 1 < head_.size()) {
      h = KeyedDropout(at::relu(h), 0.5, training, key, RandomSite::kHead, static_cast<int64_t>(l));
    }
  }
  if (wide_) {
    const at::Tensor observed = batch.observed.to(h.scalar_type());
    std::vector<at::Tensor> inputs;
    for (int m = 0; m < m_count; ++m) {
      inputs.push_back(batch.features[m] * observed.select(1, m).unsqueeze(1));
    }
    inputs.push_back(observed);
    h = h + Affine(wide_, at::cat(inputs, 1), precision_);
  }
  out.logits = h;
  return out;
}

std::vector<std::vector<int64_t>> VolumeVoxels(const data::DatasetMeta& meta) {
  std::vector<std::vector<int64_t>> voxels;
  for (const auto& modality : meta.modalities()) {
    voxels.emplace_back(modality.volume_voxels().begin(), modality.volume_voxels().end());
  }
  return voxels;
}

std::vector<std::vector<float>> BinEdges(const data::DatasetMeta& meta) {
  std::vector<std::vector<float>> edges;
  for (const auto& modality : meta.modalities()) {
    edges.emplace_back(modality.bin_edges().begin(), modality.bin_edges().end());
  }
  return edges;
}

}  // namespace flexmoe
