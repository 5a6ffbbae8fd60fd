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

#include "experts/cpu_blas.h"
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
  // `precision`: the projection's products (training.precision).
  PatchEmbeddingImpl(int features, int patches, int hidden_dim,
                     GemmPrecision precision = GemmPrecision::kFp32);
  at::Tensor forward(const at::Tensor& x);  // [B, F] -> [B, P, D]
  at::Tensor Encode(const at::Tensor& x, const StepKey&, bool) override { return forward(x); }
  int patch_size() const { return patch_size_; }

 private:
  int features_, patches_, patch_size_;
  GemmPrecision precision_;
  torch::nn::Linear proj_{nullptr};
};
TORCH_MODULE(PatchEmbedding);

// Per-feature tokens: each feature f of a row becomes a token [D] (how: the subclasses), and
// patch p's token is the mean of its features' tokens (features p*ps .. p*ps+ps-1 as in
// the patch embedding; a patch without features gives zeros). The fusion layers, the bank
// and the routers see [B, P, D] as with the patch embedding.
class PerFeatureTokens : public ModalityEncoder {
 public:
  PerFeatureTokens(int features, int patches);
  at::Tensor forward(const at::Tensor& x);  // [B, F] -> [B, P, D]
  at::Tensor Encode(const at::Tensor& x, const StepKey&, bool) override { return forward(x); }

 protected:
  virtual at::Tensor Tokens(const at::Tensor& x) = 0;  // [B, F] -> [B, F, D]
  int features_;

 private:
  int patches_, patch_size_;
  at::Tensor inverse_count_;  // [P, 1]: 1 / the features in patch p (0 for none)
};

// EncoderKind FEATURE_TOKENS: GELU(x_f * weight[f] + bias[f]) (weight, bias [F, D], uniform
// in +-1/sqrt(D)): FT-Transformer's numerical embedding, made non-linear.
class FeatureTokensImpl : public PerFeatureTokens {
 public:
  FeatureTokensImpl(int features, int patches, int hidden_dim);

 protected:
  at::Tensor Tokens(const at::Tensor& x) override;

 private:
  at::Tensor weight_, bias_;
};
TORCH_MODULE(FeatureTokens);

// EncoderKind PIECEWISE_LINEAR: ReLU(sum_t e_t(x_f) weight[f, t] + bias[f]) over the T bin
// coordinates e_t of x_f in its quantile bins (proto/config.proto; edges from
// ModalityMeta.bin_edges, [F, T + 1] row-major): e_t = (x - b_t-1) / (b_t - b_t-1), clamped
// to [0, 1] except below the first non-empty bin and above the last; 0 for an empty bin.
class PiecewiseLinearTokensImpl : public PerFeatureTokens {
 public:
  PiecewiseLinearTokensImpl(int features, int patches, int hidden_dim,
                            const std::vector<float>& edges);

 protected:
  at::Tensor Tokens(const at::Tensor& x) override;

 private:
  at::Tensor lower_, inverse_width_, floor_, ceiling_;  // [F, T] buffers
  at::Tensor weight_, bias_;                            // [F, T, D], [F, D]
};
TORCH_MODULE(PiecewiseLinearTokens);

// EncoderKind PERIODIC: ReLU([sin(2 pi c_f x_f), cos(2 pi c_f x_f)] weight[f] + bias[f]),
// c_f [K] learned, drawn from N(0, sigma^2).
class PeriodicTokensImpl : public PerFeatureTokens {
 public:
  PeriodicTokensImpl(int features, int patches, int hidden_dim, int frequencies, double sigma);

 protected:
  at::Tensor Tokens(const at::Tensor& x) override;

 private:
  at::Tensor frequency_;      // [F, K]
  at::Tensor weight_, bias_;  // [F, 2K, D], [F, D]
};
TORCH_MODULE(PeriodicTokens);

// The 3D CNN (REFERENCE.md 1.1): three stages of two 3x3x3 convolutions with ReLU, max
// pooling by 2, 3 and 4, and channel dropout 0.2 (keyed per sample); then Linear to D and
// a patch embedding of that D-vector. Input rows are volumes flattened row-major.
class Cnn3dEncoderImpl : public ModalityEncoder {
 public:
  // `voxels`: where feature j goes in the flat volume; empty: the features are the volume.
  // `precision`: the products of the Linear and the patch embedding (the convolutions stay
  // fp32).
  Cnn3dEncoderImpl(std::vector<int64_t> volume_shape, int patches, int hidden_dim, int64_t modality,
                   std::vector<int64_t> voxels = {},
                   GemmPrecision precision = GemmPrecision::kFp32);
  at::Tensor Encode(const at::Tensor& x, const StepKey& key, bool training) override;

 private:
  std::vector<int64_t> shape_;
  int64_t modality_;
  GemmPrecision precision_;
  at::Tensor voxels_;  // [F] int64, or undefined
  std::vector<torch::nn::Conv3d> convs_;
  torch::nn::Linear fc_{nullptr};
  PatchEmbedding patches_{nullptr};
};
TORCH_MODULE(Cnn3dEncoder);

// What a modality's encoder is built from besides its config: the prepared data's CNN3D
// voxel positions and PIECEWISE_LINEAR bin edges (ModalityMeta), empty when it has none.
struct EncoderData {
  int features = 0;
  std::vector<int64_t> voxels;
  std::vector<float> bin_edges;
};

// The encoder a modality's config asks for (a CNN3D modality's features fill `voxels` of its
// volume when given). Throws kInvalidArgument when a CNN3D volume shape does not match the
// feature count, or a PIECEWISE_LINEAR modality has no bin edges for its features.
// `precision` reaches the encoders whose products go through FusedLinear (patch embedding,
// CNN3D's Linear); the per-feature token encoders compute in fp32.
std::shared_ptr<ModalityEncoder> MakeEncoder(const config::Modality& modality,
                                             const EncoderData& data,
                                             const config::ModelConfig& model, int64_t index,
                                             GemmPrecision precision = GemmPrecision::kFp32);

}  // namespace flexmoe
