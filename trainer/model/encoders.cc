// Patch-embedding and 3D CNN encoders (encoders.h).
#include "trainer/model/encoders.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "cluster/base/error.h"
#include "experts/linear.h"

namespace flexmoe {

PatchEmbeddingImpl::PatchEmbeddingImpl(int features, int patches, int hidden_dim,
                                       GemmPrecision precision)
    : features_(features),
      patches_(patches),
      patch_size_((features + patches - 1) / patches),
      precision_(precision) {
  proj_ = register_module("proj", torch::nn::Linear(patch_size_, hidden_dim));
}

at::Tensor PatchEmbeddingImpl::forward(const at::Tensor& x) {
  int64_t pad = static_cast<int64_t>(patches_) * patch_size_ - features_;
  at::Tensor padded = pad > 0 ? at::constant_pad_nd(x, {0, pad}) : x;
  return FusedLinear(padded.view({x.size(0), patches_, patch_size_}), proj_->weight, proj_->bias,
                     precision_);
}

PerFeatureTokens::PerFeatureTokens(int features, int patches)
    : features_(features), patches_(patches), patch_size_((features + patches - 1) / patches) {
  at::Tensor inverse = at::zeros({patches, 1});
  for (int p = 0; p < patches; ++p) {
    const int n = std::max(0, std::min(features - p * patch_size_, patch_size_));
    if (n > 0) inverse[p][0] = 1.0 / n;
  }
  inverse_count_ = register_buffer("inverse_count", inverse);
}

at::Tensor PerFeatureTokens::forward(const at::Tensor& x) {
  at::Tensor tokens = Tokens(x);  // [B, F, D]
  const int64_t b = x.size(0), d = tokens.size(2);
  const int64_t pad = static_cast<int64_t>(patches_) * patch_size_ - features_;
  if (pad > 0) tokens = at::constant_pad_nd(tokens, {0, 0, 0, pad});
  return tokens.view({b, patches_, patch_size_, d}).sum(2) * inverse_count_.to(tokens.dtype());
}

FeatureTokensImpl::FeatureTokensImpl(int features, int patches, int hidden_dim)
    : PerFeatureTokens(features, patches) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_dim));
  weight_ = register_parameter("weight", at::empty({features, hidden_dim}).uniform_(-bound, bound));
  bias_ = register_parameter("bias", at::empty({features, hidden_dim}).uniform_(-bound, bound));
}

at::Tensor FeatureTokensImpl::Tokens(const at::Tensor& x) {
  return at::gelu(x.unsqueeze(2) * weight_ + bias_);
}

namespace {

// Per-feature linear maps: [B, F, K] x [F, K, D] + [F, D] -> [B, F, D].
at::Tensor PerFeatureLinear(const at::Tensor& inputs, const at::Tensor& weight,
                            const at::Tensor& bias) {
  return at::bmm(inputs.transpose(0, 1), weight).transpose(0, 1) + bias;
}

}  // namespace

PiecewiseLinearTokensImpl::PiecewiseLinearTokensImpl(int features, int patches, int hidden_dim,
                                                     const std::vector<float>& edges)
    : PerFeatureTokens(features, patches) {
  const int64_t per = features > 0 ? static_cast<int64_t>(edges.size()) / features : 0;
  if (features == 0 || per < 2 || per * features != static_cast<int64_t>(edges.size())) {
    Fail(ErrorCode::kInvalidArgument, "PIECEWISE_LINEAR encoder: ", edges.size(), " bin edges for ",
         features, " features (prepared without them? prepare the dataset again)");
  }
  const int64_t bins = per - 1;
  at::Tensor lower = at::zeros({features, bins}), inverse = at::zeros({features, bins});
  at::Tensor floor = at::zeros({features, bins}), ceiling = at::ones({features, bins});
  constexpr float kOpen = 1e30f;
  for (int f = 0; f < features; ++f) {
    const float* b = &edges[static_cast<size_t>(f) * per];
    int first = -1, last = -1;
    for (int64_t t = 0; t < bins; ++t) {
      lower[f][t] = b[t];
      if (b[t + 1] > b[t]) {
        inverse[f][t] = 1.0 / (static_cast<double>(b[t + 1]) - b[t]);
        if (first < 0) first = static_cast<int>(t);
        last = static_cast<int>(t);
      }
    }
    if (first >= 0) floor[f][first] = -kOpen;
    if (last >= 0) ceiling[f][last] = kOpen;
  }
  lower_ = register_buffer("lower", lower);
  inverse_width_ = register_buffer("inverse_width", inverse);
  floor_ = register_buffer("floor", floor);
  ceiling_ = register_buffer("ceiling", ceiling);
  const double bound = 1.0 / std::sqrt(static_cast<double>(bins));
  weight_ =
      register_parameter("weight", at::empty({features, bins, hidden_dim}).uniform_(-bound, bound));
  bias_ = register_parameter("bias", at::empty({features, hidden_dim}).uniform_(-bound, bound));
}

at::Tensor PiecewiseLinearTokensImpl::Tokens(const at::Tensor& x) {
  const auto type = x.scalar_type();
  at::Tensor e = (x.unsqueeze(2) - lower_.to(type)) * inverse_width_.to(type);  // [B, F, T]
  e = at::min(at::max(e, floor_.to(type)), ceiling_.to(type));
  return at::relu(PerFeatureLinear(e, weight_, bias_));
}

PeriodicTokensImpl::PeriodicTokensImpl(int features, int patches, int hidden_dim, int frequencies,
                                       double sigma)
    : PerFeatureTokens(features, patches) {
  frequency_ = register_parameter("frequency", at::randn({features, frequencies}).mul_(sigma));
  const double bound = 1.0 / std::sqrt(2.0 * frequencies);
  weight_ = register_parameter(
      "weight", at::empty({features, 2 * frequencies, hidden_dim}).uniform_(-bound, bound));
  bias_ = register_parameter("bias", at::empty({features, hidden_dim}).uniform_(-bound, bound));
}

at::Tensor PeriodicTokensImpl::Tokens(const at::Tensor& x) {
  at::Tensor v = x.unsqueeze(2) * frequency_ * (2 * M_PI);  // [B, F, K]
  return at::relu(PerFeatureLinear(at::cat({at::sin(v), at::cos(v)}, 2), weight_, bias_));
}

Cnn3dEncoderImpl::Cnn3dEncoderImpl(std::vector<int64_t> volume_shape, int patches, int hidden_dim,
                                   int64_t modality, std::vector<int64_t> voxels,
                                   GemmPrecision precision)
    : shape_(std::move(volume_shape)), modality_(modality), precision_(precision) {
  if (!voxels.empty()) voxels_ = at::tensor(voxels, at::kLong);
  const int64_t channels[][2] = {{1, 32},  {32, 32},  {32, 64},
                                 {64, 64}, {64, 128}, {128, hidden_dim}};
  for (int i = 0; i < 6; ++i) {
    convs_.push_back(register_module(
        "conv" + std::to_string(i),
        torch::nn::Conv3d(torch::nn::Conv3dOptions(channels[i][0], channels[i][1], 3).padding(1))));
  }
  int64_t pooled = 1;
  for (int64_t side : shape_) pooled *= side / 2 / 3 / 4;
  fc_ = register_module("fc", torch::nn::Linear(hidden_dim * pooled, hidden_dim));
  patches_ = register_module("patches", PatchEmbedding(hidden_dim, patches, hidden_dim, precision));
}

at::Tensor Cnn3dEncoderImpl::Encode(const at::Tensor& x, const StepKey& key, bool training) {
  at::Tensor h = x;
  if (voxels_.defined()) {  // the features into their voxels of a zero volume
    h = at::zeros({x.size(0), shape_[0] * shape_[1] * shape_[2]}, x.options())
            .index_copy(1, voxels_.to(x.device()), x);
  }
  h = h.view({x.size(0), 1, shape_[0], shape_[1], shape_[2]});
  const int64_t pools[] = {2, 3, 4};
  for (int stage = 0; stage < 3; ++stage) {
    h = at::relu(convs_[2 * stage]->forward(h));
    h = at::relu(convs_[2 * stage + 1]->forward(h));
    h = at::max_pool3d(h, {pools[stage], pools[stage], pools[stage]});
    if (training) {  // Dropout3d: whole channels, per sample
      at::Tensor mask = KeyedTensor(key, RandomSite::kEncoder, modality_ * 16 + stage,
                                    {h.size(1), 1, 1, 1}, KeyedKind::kMask, 0.2);
      h = h * mask.to(h.device(), h.scalar_type());
    }
  }
  return patches_->forward(FusedLinear(h.flatten(1), fc_->weight, fc_->bias, precision_));
}

std::shared_ptr<ModalityEncoder> MakeEncoder(const config::Modality& modality,
                                             const EncoderData& data,
                                             const config::ModelConfig& model, int64_t index,
                                             GemmPrecision precision) {
  const int features = data.features;
  const int p = model.patches(), d = model.hidden_dim();
  switch (modality.encoder()) {
    case config::CNN3D: {
      std::vector<int64_t> shape(modality.volume_shape().begin(), modality.volume_shape().end());
      const int64_t volume = shape.size() == 3 ? shape[0] * shape[1] * shape[2] : -1;
      const std::vector<int64_t>& voxels = data.voxels;
      const int64_t filled = voxels.empty() ? volume : static_cast<int64_t>(voxels.size());
      if (filled != features) {
        Fail(ErrorCode::kInvalidArgument, "config field data.modalities[", index,
             voxels.empty() ? "].volume_shape: " : "].volume_mask: ", filled,
             " voxels, but the prepared modality '", modality.name(), "' has ", features,
             " features");
      }
      for (int64_t v : voxels) {
        if (v < 0 || v >= volume) {
          Fail(ErrorCode::kInvalidArgument, "modality '", modality.name(), "': voxel ", v,
               " outside its volume of ", volume);
        }
      }
      return std::make_shared<Cnn3dEncoderImpl>(shape, p, d, index, voxels, precision);
    }
    case config::FEATURE_TOKENS:
      return std::make_shared<FeatureTokensImpl>(features, p, d);
    case config::PIECEWISE_LINEAR:
      return std::make_shared<PiecewiseLinearTokensImpl>(features, p, d, data.bin_edges);
    case config::PERIODIC:
      return std::make_shared<PeriodicTokensImpl>(features, p, d, model.periodic_frequencies(),
                                                  model.periodic_sigma());
    default:
      return std::make_shared<PatchEmbeddingImpl>(features, p, d, precision);
  }
}

}  // namespace flexmoe
