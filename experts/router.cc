// NoisyTopKRouter: gate weights and the noisy top-k forward.
#include "experts/router.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "cluster/base/error.h"
#include "experts/cpu_blas.h"
#include "experts/param_init.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The router noise: an input autograd must not see.
struct RouterNoise {
  at::Tensor noise;  // [T, E]
};

// The noisy top-k router in training as one autograd node on host tensors: both logit
// GEMMs, softplus, the noise, a per-row selection of the k+1 largest noisy logits and the
// softmax over the first k. Outputs in RouterOutput's order: clean, noise_std, noisy,
// top_values, top_indices (not differentiable), gates.
class NoisyTopKFunction : public torch::autograd::Function<NoisyTopKFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w_gate,
                               const at::Tensor& w_noise, const RouterNoise& noise, int64_t k) {
    const at::Tensor xc = x.contiguous(), wg = w_gate.contiguous(), wn = w_noise.contiguous();
    const at::Tensor nz = noise.noise.to(x.options()).contiguous();
    const int64_t t = x.size(0), d = x.size(1), e = wg.size(1), kept = std::min(k + 1, e);
    at::Tensor clean = at::empty({t, e}, x.options()), raw = at::empty({t, e}, x.options());
    at::Tensor sd = at::empty({t, e}, x.options()), noisy = at::empty({t, e}, x.options());
    at::Tensor top_values = at::empty({t, kept}, x.options());
    at::Tensor top_all = at::empty({t, kept}, x.options().dtype(at::kLong));
    at::Tensor gates = at::empty({t, k}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "NoisyTopK", [&] {
      Gemm(false, false, t, e, d, scalar_t(1), xc.data_ptr<scalar_t>(), d, wg.data_ptr<scalar_t>(),
           e, scalar_t(0), clean.data_ptr<scalar_t>(), e);
      Gemm(false, false, t, e, d, scalar_t(1), xc.data_ptr<scalar_t>(), d, wn.data_ptr<scalar_t>(),
           e, scalar_t(0), raw.data_ptr<scalar_t>(), e);
      // softplus (LibTorch's defaults: beta 1, threshold 20) as one vectorised op.
      const at::Tensor soft = at::softplus(raw).contiguous();
      const scalar_t *c = clean.data_ptr<scalar_t>(), *r = soft.data_ptr<scalar_t>();
      const scalar_t* z = nz.data_ptr<scalar_t>();
      scalar_t *s = sd.data_ptr<scalar_t>(), *n = noisy.data_ptr<scalar_t>();
      scalar_t *tv = top_values.data_ptr<scalar_t>(), *g = gates.data_ptr<scalar_t>();
      int64_t* ti = top_all.data_ptr<int64_t>();
      std::vector<int64_t> order(e);
      for (int64_t i = 0; i < t * e; ++i) {
        s[i] = r[i] + scalar_t(1e-2);
        n[i] = c[i] + z[i] * s[i];
      }
      for (int64_t row = 0; row < t; ++row) {
        const scalar_t* v = n + row * e;
        // Insertion into a sorted list of the kept experts: largest first, equal values by
        // expert id, so the choice is deterministic (k + 1 is small).
        int64_t size = 0;
        for (int64_t x = 0; x < e; ++x) {
          int64_t pos = size;
          while (pos > 0 && v[x] > v[order[pos - 1]]) --pos;
          if (pos >= kept) continue;
          for (int64_t j = std::min(size, kept - 1); j > pos; --j) order[j] = order[j - 1];
          order[pos] = x;
          size = std::min(size + 1, kept);
        }
        for (int64_t j = 0; j < kept; ++j) {
          ti[row * kept + j] = order[j];
          tv[row * kept + j] = v[order[j]];
        }
        // Softmax over the first k (the largest is first).
        scalar_t sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += std::exp(tv[row * kept + j] - tv[row * kept]);
        for (int64_t j = 0; j < k; ++j) {
          g[row * k + j] = std::exp(tv[row * kept + j] - tv[row * kept]) / sum;
        }
      }
    });
    at::Tensor top_indices = top_all.narrow(1, 0, k).contiguous();
    ctx->save_for_backward({xc, wg, wn, nz, raw, top_all, gates});
    ctx->mark_non_differentiable({top_indices});
    return {clean, sd, noisy, top_values, top_indices, gates};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &wg = saved[1], &wn = saved[2], &nz = saved[3];
    const at::Tensor &raw = saved[4], &top_all = saved[5], &gates = saved[6];
    const int64_t t = x.size(0), d = x.size(1), e = wg.size(1), kept = top_all.size(1);
    const int64_t k = gates.size(1);
    auto grad_or_zeros = [&](int i, at::IntArrayRef shape) {
      return grads[i].defined() ? grads[i].contiguous().clone() : at::zeros(shape, x.options());
    };
    at::Tensor d_clean = grad_or_zeros(0, {t, e}), d_std = grad_or_zeros(1, {t, e});
    at::Tensor d_noisy = grad_or_zeros(2, {t, e}), d_top = grad_or_zeros(3, {t, kept});
    const at::Tensor d_gates = grad_or_zeros(5, {t, k});
    at::Tensor dx = at::empty_like(x), dwg = at::empty_like(wg), dwn = at::empty_like(wn);
    // softplus' = sigmoid below the threshold, 1 above it.
    const at::Tensor slope = at::where(raw > 20, at::ones_like(raw), at::sigmoid(raw)).contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "NoisyTopKBackward", [&] {
      scalar_t *dc = d_clean.data_ptr<scalar_t>(), *ds = d_std.data_ptr<scalar_t>();
      scalar_t *dn = d_noisy.data_ptr<scalar_t>(), *dt = d_top.data_ptr<scalar_t>();
      const scalar_t *dg = d_gates.data_ptr<scalar_t>(), *g = gates.data_ptr<scalar_t>();
      const scalar_t *r = slope.data_ptr<scalar_t>(), *z = nz.data_ptr<scalar_t>();
      const int64_t* ti = top_all.data_ptr<int64_t>();
      for (int64_t row = 0; row < t; ++row) {
        // Softmax backward into the first k top values, then every top value to its expert.
        scalar_t dot = 0;
        for (int64_t j = 0; j < k; ++j) dot += g[row * k + j] * dg[row * k + j];
        for (int64_t j = 0; j < k; ++j) {
          dt[row * kept + j] += g[row * k + j] * (dg[row * k + j] - dot);
        }
        for (int64_t j = 0; j < kept; ++j) dn[row * e + ti[row * kept + j]] += dt[row * kept + j];
      }
      for (int64_t i = 0; i < t * e; ++i) {
        dc[i] += dn[i];                         // noisy = clean + noise * std
        ds[i] = (ds[i] + dn[i] * z[i]) * r[i];  // now d raw
      }
      const scalar_t* xp = x.data_ptr<scalar_t>();
      Gemm(false, true, t, d, e, scalar_t(1), dc, e, wg.data_ptr<scalar_t>(), e, scalar_t(0),
           dx.data_ptr<scalar_t>(), d);
      Gemm(false, true, t, d, e, scalar_t(1), ds, e, wn.data_ptr<scalar_t>(), e, scalar_t(1),
           dx.data_ptr<scalar_t>(), d);
      Gemm(true, false, d, e, t, scalar_t(1), xp, d, dc, e, scalar_t(0), dwg.data_ptr<scalar_t>(),
           e);
      Gemm(true, false, d, e, t, scalar_t(1), xp, d, ds, e, scalar_t(0), dwn.data_ptr<scalar_t>(),
           e);
    });
    return {dx, dwg, dwn, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

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
  const bool host = x.device().is_cpu() &&
                    (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
                    w_gate_.scalar_type() == x.scalar_type();
  if (training && noise.defined() && host) {
    if (noise.sizes() != at::IntArrayRef({x.size(0), e})) {
      Fail(ErrorCode::kInvalidArgument, "Router: noise must be [", x.size(0), ", ", e, "], got ",
           noise.sizes());
    }
    const variable_list o = NoisyTopKFunction::apply(x, w_gate_, w_noise_, RouterNoise{noise}, k);
    return RouterOutput{o[0], o[1], o[2], o[3], o[4], o[5]};
  }
  return ForwardAten(x, noise, training);
}

RouterOutput NoisyTopKRouterImpl::ForwardAten(const at::Tensor& x, const at::Tensor& noise,
                                              bool training) {
  const int64_t e = num_experts();
  const int64_t k = top_k();
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
