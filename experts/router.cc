// NoisyTopKRouter: gate weights and the noisy top-k forward.
#include "experts/router.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

#include "cluster/base/error.h"
#include "experts/param_init.h"

namespace flexmoe {

NoisyTopKRouterImpl::NoisyTopKRouterImpl(RouterOptions options) : options_(std::move(options)) {
  const int64_t d = options_.hidden_dim;
  const int64_t e = options_.num_experts;
  const int64_t k = options_.top_k;
  if (d <= 0) Fail(ErrorCode::kInvalidArgument, "Router: hidden_dim must be > 0, got ", d);
  if (e <= 0) Fail(ErrorCode::kInvalidArgument, "Router: num_experts must be > 0, got ", e);
  if (k < 1 || k > e) {
    Fail(ErrorCode::kInvalidArgument, "Router: top_k must be in [1, ", e, "], got ", k);
  }
  w_gate_ = register_parameter("w_gate", at::empty({d, e}));
  w_noise_ = register_parameter("w_noise", at::empty({d, e}));
  ResetParameters();
}

void NoisyTopKRouterImpl::ResetParameters() {
  c10::optional<at::Generator> gen;
  // A stream id that no expert id uses, so the router and the experts of a layer may share
  // one seed.
  constexpr uint64_t kRouterStream = 0xFFFFFFFFULL;
  if (options_.init_seed >= 0) gen = MakeInitGenerator(options_.init_seed, kRouterStream);
  FillUniform(w_gate_, KaimingUniformA5Bound(w_gate_), gen);
  FillUniform(w_noise_, KaimingUniformA5Bound(w_noise_), gen);
}

RouterOutput NoisyTopKRouterImpl::Forward(const at::Tensor& x, const at::Tensor& noise,
                                          bool training) {
  const int64_t e = num_experts();
  const int64_t k = top_k();
  if (x.dim() != 2 || x.size(1) != hidden_dim()) {
    Fail(ErrorCode::kInvalidArgument, "Router: expected tokens [T, ", hidden_dim(), "], got ",
         x.sizes());
  }
  RouterOutput out;
  out.clean_logits = x.matmul(w_gate_);
  if (training) {
    out.noise_std = at::softplus(x.matmul(w_noise_)) + 1e-2;
    if (noise.defined()) {
      if (noise.sizes() != out.clean_logits.sizes()) {
        Fail(ErrorCode::kInvalidArgument, "Router: noise must be [", x.size(0), ", ", e, "], got ",
             noise.sizes());
      }
      out.noisy_logits = out.clean_logits + noise.to(out.clean_logits.options()) * out.noise_std;
    } else {
      out.noisy_logits = out.clean_logits;
    }
  } else {
    out.noisy_logits = out.clean_logits;
  }
  auto top = at::topk(out.noisy_logits, std::min(k + 1, e), /*dim=*/1, /*largest=*/true,
                      /*sorted=*/true);
  out.top_values = std::get<0>(top);
  out.top_indices = std::get<1>(top).narrow(1, 0, k).contiguous();
  out.gates = at::softmax(out.top_values.narrow(1, 0, k), /*dim=*/1);
  return out;
}

}  // namespace flexmoe
