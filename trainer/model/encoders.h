// Per-modality encoders: the patch embedding of a feature vector (MODEL.md) and the
// paper's 3D CNN image encoder followed by a patch embedding of its D-vector.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <vector>

#include "proto/config.pb.h"
#include "trainer/model/keyed_tensors.h"

namespace flexmoe {

// Maps a modality's rows [B, F] to P tokens [B, P, D].
class ModalityEncoder : public torch::nn::Module {
 public:
  virtual at::Tensor Encode(const at::Tensor& x, const StepKey& key, bool training) = 0;
};

// Patch embedding: a feature vector of length F is zero-padded to P * ceil(F / P), viewed
// as [P, ceil(F / P)] (patch p holds features p*ps .. p*ps+ps-1) and each patch projected
// by one Linear(ps -> D).
class PatchEmbeddingImpl : public ModalityEncoder {
 public:
  PatchEmbeddingImpl(int features, int patches, int hidden_dim);
  at::Tensor forward(const at::Tensor& x);  // [B, F] -> [B, P, D]
  at::Tensor Encode(const at::Tensor& x, const StepKey&, bool) override { return forward(x); }
  int patch_size() const { return patch_size_; }

 private:
  int features_, patches_, patch_size_;
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(PatchEmbedding);

// Per-feature tokens (EncoderKind FEATURE_TOKENS): feature f of a row becomes the token
// GELU(x_f * weight[f] + bias[f]) (weight, bias [F, D], uniform in +-1/sqrt(D)), and patch
// p's token is the mean of its features' tokens (features p*ps .. p*ps+ps-1 as in the
// patch embedding; a patch without features gives zeros). The fusion layers, the bank and
// the routers see [B, P, D] as with the patch embedding.
class FeatureTokensImpl : public ModalityEncoder {
 public:
  FeatureTokensImpl(int features, int patches, int hidden_dim);
  at::Tensor forward(const at::Tensor& x);  // [B, F] -> [B, P, D]
  at::Tensor Encode(const at::Tensor& x, const StepKey&, bool) override { return forward(x); }

 private:
  int features_, patches_, patch_size_;
  at::Tensor weight_, bias_;
  at::Tensor inverse_count_;  // [P, 1]: 1 / the features in patch p (0 for none)
};
TORCH_MODULE(FeatureTokens);

// The 3D CNN (REFERENCE.md 1.1): three stages of two 3x3x3 convolutions with ReLU, max
// pooling by 2, 3 and 4, and channel dropout 0.2 (keyed per sample); then Linear to D and
// a patch embedding of that D-vector. Input rows are volumes flattened row-major.
class Cnn3dEncoderImpl : public ModalityEncoder {
 public:
  // `voxels`: where feature j goes in the flat volume; empty: the features are the volume.
  Cnn3dEncoderImpl(std::vector<int64_t> volume_shape, int patches, int hidden_dim, int64_t modality,
                   std::vector<int64_t> voxels = {});
  at::Tensor Encode(const at::Tensor& x, const StepKey& key, bool training) override;

 private:
  std::vector<int64_t> shape_;
  int64_t modality_;
  at::Tensor voxels_;  // [F] int64, or undefined
  std::vector<torch::nn::Conv3d> convs_;
  torch::nn::Linear fc_{nullptr};
  PatchEmbedding patches_{nullptr};
};
TORCH_MODULE(Cnn3dEncoder);

// The encoder a modality's config asks for, for `features` input features (a CNN3D
// modality's features fill `voxels` of its volume when given). Throws kInvalidArgument when a
// CNN3D volume shape does not match the feature count.
std::shared_ptr<ModalityEncoder> MakeEncoder(const config::Modality& modality, int features,
                                             const config::ModelConfig& model, int64_t index,
                                             const std::vector<int64_t>& voxels = {});

}  // namespace flexmoe
