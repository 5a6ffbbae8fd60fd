// NoisyTopKRouter: the Flex-MoE gate (one set of weights serves as G-Router and S-Router),
// noisy top-k gating with the noise supplied by the caller.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace flexmoe {

// What one router call produces for T tokens and E experts.
struct RouterOutput {
  at::Tensor clean_logits;  // [T, E] = x w_gate
  at::Tensor noise_std;     // [T, E] = softplus(x w_noise) + 1e-2 in training; undefined in eval
  at::Tensor noisy_logits;  // [T, E] = clean + noise * noise_std (training), clean (eval)
  at::Tensor top_values;    // [T, min(k + 1, E)]: largest noisy logits, descending
  at::Tensor top_indices;   // [T, k] int64: the experts each token goes to
  at::Tensor gates;         // [T, k]: softmax over the k selected noisy logits
};

struct RouterOptions {
  int64_t hidden_dim = 0;   // D
  int64_t num_experts = 0;  // E
  int64_t top_k = 0;        // k, 1 <= k <= E
  // >= 0: weights drawn from a generator keyed by init_seed; < 0: the global LibTorch RNG.
  int64_t init_seed = -1;
};

// w_gate [D, E] and w_noise [D, E], no bias, kaiming_uniform_(a = sqrt(5)) (bound 1/sqrt(E)).
class NoisyTopKRouterImpl : public torch::nn::Module {
 public:
  explicit NoisyTopKRouterImpl(RouterOptions options);

  // x [T, D]. noise [T, E]: standard normal samples drawn by the caller (from generators
  // keyed by seed, epoch, step and sample, so results do not depend on the worker count);
  // ignored in eval; undefined in training means zero noise (noise_std is still computed,
  // the smooth load estimator needs it).
  // Training on host float/double tensors with noise runs one fused autograd node (ties
  // between noisy logits go to the lower expert id); everything else runs ForwardAten.
  RouterOutput Forward(const at::Tensor& x, const at::Tensor& noise, bool training);
  // The same from ATen ops (matmul, softplus, topk, softmax): CUDA tensors, evaluation, and
  // the reference the fused node is tested against.
  RouterOutput ForwardAten(const at::Tensor& x, const at::Tensor& noise, bool training);

  int64_t hidden_dim() const { return options_.hidden_dim; }
  int64_t num_experts() const { return options_.num_experts; }
  int64_t top_k() const { return options_.top_k; }

  at::Tensor& w_gate() { return w_gate_; }
  at::Tensor& w_noise() { return w_noise_; }

  void ResetParameters();

 private:
  RouterOptions options_;
  at::Tensor w_gate_, w_noise_;
};
TORCH_MODULE(NoisyTopKRouter);

}  // namespace flexmoe
