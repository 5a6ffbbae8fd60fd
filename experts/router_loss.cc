// The Flex-MoE router loss: per-block sums (ComputeRouterLossStats) and their combination.
#include "experts/router_loss.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// Fails unless `ids` is a [T] integer tensor with values in [0, limit); returns it as int64
// on `device`.
at::Tensor CheckedIds(const at::Tensor& ids, int64_t t, int64_t limit, const char* what,
                      at::Device device) {
  if (!ids.defined() || ids.dim() != 1 || ids.size(0) != t) {
    Fail(ErrorCode::kInvalidArgument, "RouterLoss: ", what, " must be a [", t, "] tensor, got ",
         ids.defined() ? ids.sizes() : at::IntArrayRef{});
  }
  if (at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool) {
    Fail(ErrorCode::kInvalidArgument, "RouterLoss: ", what, " must be an integer tensor");
  }
  at::Tensor result = ids.to(device, at::kLong);
  if (t > 0) {
    const int64_t lo = result.min().item<int64_t>();
    const int64_t hi = result.max().item<int64_t>();
    if (lo < 0 || hi >= limit) {
      Fail(ErrorCode::kInvalidArgument, "RouterLoss: ", what, " values must be in [0, ", limit,
           "), got [", lo, ", ", hi, "]");
    }
  }
  return result;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The integer inputs of the fused statistics (never differentiated).
struct RouterStatsIds {
  at::Tensor combination;  // [T] int64
  at::Tensor block;        // [T] int64
  at::Tensor top_indices;  // [T, k] int64
  int64_t num_blocks = 1;
};

// ComputeRouterLossStats with the smooth load, as one autograd node on host tensors: one
// pass over the tokens accumulates all six statistics; the backward is the chain rule of
// that pass written out (gate scatter, the normal CDF of the load, the softmax of the
// cross-entropy), into the router output tensors it read.
class RouterStatsFunction : public torch::autograd::Function<RouterStatsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& gates,
                               const at::Tensor& clean, const at::Tensor& noise_std,
                               const at::Tensor& noisy, const at::Tensor& top_values,
                               const RouterStatsIds& ids) {
    const int64_t t_count = clean.size(0), e = clean.size(1), k = gates.size(1);
    const int64_t nb = ids.num_blocks;
    const auto opts = clean.options();
    at::Tensor full_imp = at::zeros({nb, e}, opts), full_load = at::zeros({nb, e}, opts);
    at::Tensor nonfull_imp = at::zeros({nb, e}, opts), nonfull_load = at::zeros({nb, e}, opts);
    at::Tensor ce_sum = at::zeros({nb}, opts), num_nonfull = at::zeros({nb}, opts);
    const at::Tensor g = gates.contiguous(), c = clean.contiguous(), sd = noise_std.contiguous();
    const at::Tensor n = noisy.contiguous(), tv = top_values.contiguous();
    at::Tensor z = at::empty({t_count, e}, opts), lse;
    AT_DISPATCH_FLOATING_TYPES(clean.scalar_type(), "RouterStats", [&] {
      const int64_t *comb = ids.combination.data_ptr<int64_t>(),
                    *block = ids.block.data_ptr<int64_t>();
      const int64_t* idx = ids.top_indices.data_ptr<int64_t>();
      const scalar_t *gp = g.data_ptr<scalar_t>(), *cp = c.data_ptr<scalar_t>();
      const scalar_t *sp = sd.data_ptr<scalar_t>(), *np = n.data_ptr<scalar_t>();
      const scalar_t* tp = tv.data_ptr<scalar_t>();
      const int64_t tv_cols = tv.size(1);
      // The load's standardised margins z first, so that erf and log-sum-exp run as
      // vectorised ops over all tokens.
      scalar_t* zp = z.data_ptr<scalar_t>();
      for (int64_t t = 0; t < t_count; ++t) {
        const scalar_t thr_in = tp[t * tv_cols + k], thr_out = tp[t * tv_cols + k - 1];
        for (int64_t x = 0; x < e; ++x) {
          const scalar_t thr = np[t * e + x] > thr_in ? thr_in : thr_out;
          zp[t * e + x] = (cp[t * e + x] - thr) / sp[t * e + x];
        }
      }
      const at::Tensor erf = at::erf(z * M_SQRT1_2).contiguous();
      lse = at::logsumexp(n, 1).contiguous();
      const scalar_t *ep = erf.data_ptr<scalar_t>(), *lp = lse.data_ptr<scalar_t>();
      for (int64_t t = 0; t < t_count; ++t) {
        const int64_t b = block[t];
        const bool full = comb[t] == 0;
        scalar_t* imp = (full ? full_imp : nonfull_imp).data_ptr<scalar_t>() + b * e;
        scalar_t* load = (full ? full_load : nonfull_load).data_ptr<scalar_t>() + b * e;
        for (int64_t j = 0; j < k; ++j) imp[idx[t * k + j]] += gp[t * k + j];
        for (int64_t x = 0; x < e; ++x) load[x] += scalar_t(0.5) * (scalar_t(1) + ep[t * e + x]);
        if (!full) {
          ce_sum.data_ptr<scalar_t>()[b] += lp[t] - np[t * e + comb[t]];
          num_nonfull.data_ptr<scalar_t>()[b] += 1;
        }
      }
    });
    ctx->save_for_backward({sd, n, tv, z, lse, ids.combination, ids.block, ids.top_indices});
    ctx->saved_data["k"] = k;
    ctx->saved_data["blocks"] = nb;
    ctx->mark_non_differentiable({num_nonfull});
    return {full_imp, full_load, nonfull_imp, nonfull_load, ce_sum, num_nonfull};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &sd = saved[0], &n = saved[1], &tv = saved[2], &z = saved[3];
    const at::Tensor &lse = saved[4], &comb_t = saved[5], &block_t = saved[6], &idx_t = saved[7];
    const int64_t k = ctx->saved_data["k"].toInt();
    const int64_t t_count = n.size(0), e = n.size(1), blocks = ctx->saved_data["blocks"].toInt();
    auto grad_or_zero = [&](int i, at::IntArrayRef shape) {
      return grads[i].defined() ? grads[i].contiguous() : at::zeros(shape, n.options());
    };
    const at::Tensor d_full_imp = grad_or_zero(0, {blocks, e}),
                     d_full_load = grad_or_zero(1, {blocks, e});
    const at::Tensor d_nonfull_imp = grad_or_zero(2, {blocks, e});
    const at::Tensor d_nonfull_load = grad_or_zero(3, {blocks, e});
    const at::Tensor d_ce = grad_or_zero(4, {blocks});
    at::Tensor d_gates = at::empty({t_count, k}, n.options());
    at::Tensor d_clean = at::empty_like(n), d_std = at::empty_like(sd), d_noisy = at::empty_like(n);
    at::Tensor d_tv = at::zeros_like(tv);
    // The normal density at z and the softmax of the noisy logits, as vectorised ops.
    const at::Tensor density = (at::exp(z * z * -0.5) * 0.39894228040143267794).contiguous();
    const at::Tensor softmax = at::exp(n - lse.unsqueeze(1)).contiguous();
    AT_DISPATCH_FLOATING_TYPES(n.scalar_type(), "RouterStatsBackward", [&] {
      const int64_t *comb = comb_t.data_ptr<int64_t>(), *block = block_t.data_ptr<int64_t>();
      const int64_t* idx = idx_t.data_ptr<int64_t>();
      const scalar_t *sp = sd.data_ptr<scalar_t>(), *zp = z.data_ptr<scalar_t>();
      const scalar_t *np = n.data_ptr<scalar_t>(), *tp = tv.data_ptr<scalar_t>();
      const scalar_t *pdf = density.data_ptr<scalar_t>(), *prob = softmax.data_ptr<scalar_t>();
      scalar_t *dg = d_gates.data_ptr<scalar_t>(), *dc = d_clean.data_ptr<scalar_t>();
      scalar_t *ds = d_std.data_ptr<scalar_t>(), *dn = d_noisy.data_ptr<scalar_t>();
      scalar_t* dt = d_tv.data_ptr<scalar_t>();
      const int64_t tv_cols = tv.size(1);
      for (int64_t t = 0; t < t_count; ++t) {
        const int64_t b = block[t];
        const bool full = comb[t] == 0;
        const scalar_t* d_imp = (full ? d_full_imp : d_nonfull_imp).data_ptr<scalar_t>() + b * e;
        const scalar_t* d_load = (full ? d_full_load : d_nonfull_load).data_ptr<scalar_t>() + b * e;
        for (int64_t j = 0; j < k; ++j) dg[t * k + j] = d_imp[idx[t * k + j]];
        const scalar_t thr_in = tp[t * tv_cols + k];
        for (int64_t x = 0; x < e; ++x) {
          const int64_t i = t * e + x;
          const bool in = np[i] > thr_in;
          const scalar_t dz = d_load[x] * pdf[i] / sp[i];
          dc[i] = dz;
          ds[i] = -dz * zp[i];
          dt[t * tv_cols + (in ? k : k - 1)] -= dz;
        }
        scalar_t* dn_row = dn + t * e;
        if (full) {
          std::fill(dn_row, dn_row + e, scalar_t(0));
          continue;
        }
        const scalar_t up = d_ce.data_ptr<scalar_t>()[b];
        for (int64_t x = 0; x < e; ++x) dn_row[x] = up * prob[t * e + x];
        dn_row[comb[t]] -= up;
      }
    });
    return {d_gates, d_clean, d_std, d_noisy, d_tv, at::Tensor()};
  }
};

}  // namespace

at::Tensor CvSquared(const at::Tensor& v) {
  if (v.size(-1) <= 1) return at::zeros(v.sizes().slice(0, v.dim() - 1), v.options());
  at::Tensor mean = v.mean(-1);
  return v.var(-1, /*unbiased=*/true) / (mean * mean + 1e-10);
}

at::Tensor SmoothLoad(const RouterOutput& out, int64_t k) {
  const int64_t e = out.clean_logits.size(1);
  if (!out.noise_std.defined() || k >= e || out.top_values.size(1) != k + 1) {
    Fail(ErrorCode::kInvalidArgument,
         "SmoothLoad needs a training router output and k < E (k = ", k, ", E = ", e, ")");
  }
  at::Tensor thr_in = out.top_values.narrow(1, k, 1);
  at::Tensor thr_out = out.top_values.narrow(1, k - 1, 1);
  at::Tensor is_in = out.noisy_logits.gt(thr_in);
  // Phi(z) = (1 + erf(z / sqrt(2))) / 2, as torch.distributions.Normal.cdf.
  auto phi = [](const at::Tensor& z) { return 0.5 * (1.0 + at::erf(z * M_SQRT1_2)); };
  at::Tensor prob_in = phi((out.clean_logits - thr_in) / out.noise_std);
  at::Tensor prob_out = phi((out.clean_logits - thr_out) / out.noise_std);
  return at::where(is_in, prob_in, prob_out);
}

at::Tensor HardLoad(const RouterOutput& out, int64_t num_experts) {
  at::Tensor dense = at::zeros({out.gates.size(0), num_experts}, out.gates.options())
                         .scatter(1, out.top_indices, out.gates);
  return dense.gt(0).to(out.gates.scalar_type());
}

RouterLossStats ComputeRouterLossStats(const RouterOutput& out, const at::Tensor& token_combination,
                                       const at::Tensor& block_of_token, int64_t num_blocks,
                                       int64_t num_experts, int64_t k, bool training) {
  const int64_t t = out.gates.size(0);
  const int64_t e = num_experts;
  if (out.clean_logits.dim() != 2 || out.clean_logits.size(1) != e || out.gates.size(1) != k ||
      out.top_indices.size(1) != k) {
    Fail(ErrorCode::kInvalidArgument, "RouterLoss: router output does not match E = ", e,
         ", k = ", k);
  }
  if (num_blocks < 1) Fail(ErrorCode::kInvalidArgument, "RouterLoss: num_blocks must be >= 1");
  const at::Tensor comb =
      CheckedIds(token_combination, t, e, "token_combination", out.gates.device());
  const at::Tensor block =
      block_of_token.defined()
          ? CheckedIds(block_of_token, t, num_blocks, "block_of_token", out.gates.device())
          : at::zeros({t}, comb.options());
  const bool smooth =
      training && k < e && out.noise_std.defined() && out.top_values.size(1) == k + 1;
  const bool host = out.gates.device().is_cpu() && (out.gates.scalar_type() == at::kFloat ||
                                                    out.gates.scalar_type() == at::kDouble);
  if (smooth && host) {
    const variable_list sums = RouterStatsFunction::apply(
        out.gates, out.clean_logits, out.noise_std, out.noisy_logits, out.top_values,
        RouterStatsIds{comb.contiguous(), block.contiguous(), out.top_indices.contiguous(),
                       num_blocks});
    return RouterLossStats{sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]};
  }
  return ComputeRouterLossStatsReference(out, comb, block, num_blocks, e, k, training);
}

RouterLossStats ComputeRouterLossStatsReference(const RouterOutput& out, const at::Tensor& comb,
                                                const at::Tensor& block, int64_t num_blocks,
                                                int64_t e, int64_t k, bool training) {
  const int64_t t = out.gates.size(0);
  const auto opts = out.gates.options();

  at::Tensor dense_gates = at::zeros({t, e}, opts).scatter(1, out.top_indices, out.gates);
  at::Tensor load = (training && k < e) ? SmoothLoad(out, k) : HardLoad(out, e);
  at::Tensor full = comb.eq(0).to(opts.dtype()).unsqueeze(1);  // [T, 1]
  at::Tensor nonfull = 1.0 - full;
  at::Tensor ce = -at::log_softmax(out.noisy_logits, 1).gather(1, comb.unsqueeze(1));  // [T, 1]

  // Per-block sums of the masked per-token rows.
  auto block_sum = [&](const at::Tensor& rows) {
    return at::zeros({num_blocks, rows.size(1)}, rows.options()).index_add(0, block, rows);
  };
  RouterLossStats stats;
  stats.full_importance = block_sum(dense_gates * full);
  stats.full_load = block_sum(load * full);
  stats.nonfull_importance = block_sum(dense_gates * nonfull);
  stats.nonfull_load = block_sum(load * nonfull);
  stats.ce_sum = block_sum(ce * nonfull).squeeze(1);
  stats.num_nonfull = block_sum(nonfull).squeeze(1);
  return stats;
}

namespace {

// A tensor input that autograd must not see (never differentiated).
struct Constant {
  at::Tensor tensor;
};

// cv^2 of v[0..n) (unbiased variance over mean^2 + 1e-10; 0 for n <= 1) and, when grad is
// given, upstream * d cv^2 / d v added into grad[0..n).
template <typename T>
T CvSquaredRow(const T* v, int64_t n, T upstream, T* grad) {
  if (n <= 1) return 0;
  T mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += v[i];
  mean /= static_cast<T>(n);
  T ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += (v[i] - mean) * (v[i] - mean);
  const T var = ss / static_cast<T>(n - 1), den = mean * mean + T(1e-10);
  if (grad != nullptr) {
    const T mean_term = var * (T(2) * mean / static_cast<T>(n)) / (den * den);
    for (int64_t i = 0; i < n; ++i) {
      grad[i] += upstream * (T(2) * (v[i] - mean) / static_cast<T>(n - 1) / den - mean_term);
    }
  }
  return var / den;
}

// FinishRouterLoss over host tensors as one autograd node (the statistics are [NB, E] and
// [NB]; a few hundred numbers, where the ATen form is some thirty small ops each way).
class FinishRouterLossFunction : public torch::autograd::Function<FinishRouterLossFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& full_imp,
                            const at::Tensor& full_load, const at::Tensor& nonfull_imp,
                            const at::Tensor& nonfull_load, const at::Tensor& ce_sum,
                            const Constant& num_nonfull) {
    std::vector<at::Tensor> in = {full_imp.contiguous(),    full_load.contiguous(),
                                  nonfull_imp.contiguous(), nonfull_load.contiguous(),
                                  ce_sum.contiguous(),      num_nonfull.tensor.contiguous()};
    at::Tensor loss = at::zeros({}, full_imp.options());
    AT_DISPATCH_FLOATING_TYPES(full_imp.scalar_type(), "FinishRouterLoss",
                               [&] { loss.fill_(Evaluate<scalar_t>(in, nullptr, scalar_t(0))); });
    ctx->save_for_backward(in);
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list in = ctx->get_saved_variables();
    std::vector<at::Tensor> out;
    for (int i = 0; i < 5; ++i) out.push_back(at::zeros_like(in[i]));
    AT_DISPATCH_FLOATING_TYPES(in[0].scalar_type(), "FinishRouterLossBackward",
                               [&] { Evaluate<scalar_t>(in, &out, grads[0].item<scalar_t>()); });
    out.push_back(at::Tensor());
    return out;
  }

 private:
  // The loss; with `grad`, upstream * its gradient added into (*grad)[0..4].
  template <typename T>
  static T Evaluate(const std::vector<at::Tensor>& in, std::vector<at::Tensor>* grad, T upstream) {
    const int64_t blocks = in[0].size(0), e = in[0].size(1);
    auto ptr = [&](int i) { return in[i].data_ptr<T>(); };
    auto gptr = [&](int i) { return grad == nullptr ? nullptr : (*grad)[i].data_ptr<T>(); };
    T total = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      const T count = std::max(ptr(5)[b], T(1));
      total += ptr(4)[b] / count;
      if (grad != nullptr) gptr(4)[b] += upstream / count;
      for (int i = 0; i < 2; ++i) {  // full tokens: all experts
        total +=
            CvSquaredRow(ptr(i) + b * e, e, upstream, grad == nullptr ? nullptr : gptr(i) + b * e);
      }
      for (int i = 2; i < 4; ++i) {  // other tokens: experts 1..E-1
        total += CvSquaredRow(ptr(i) + b * e + 1, e - 1, upstream,
                              grad == nullptr ? nullptr : gptr(i) + b * e + 1);
      }
    }
    return total;
  }
};

}  // namespace

at::Tensor FinishRouterLoss(const RouterLossStats& stats) {
  const at::Tensor& s = stats.full_importance;
  const bool host = s.device().is_cpu() &&
                    (s.scalar_type() == at::kFloat || s.scalar_type() == at::kDouble) &&
                    s.dim() == 2 && s.size(1) >= 1;
  if (host) {
    return FinishRouterLossFunction::apply(
        stats.full_importance, stats.full_load, stats.nonfull_importance, stats.nonfull_load,
        stats.ce_sum, Constant{stats.num_nonfull.detach().to(s.scalar_type())});
  }
  return FinishRouterLossReference(stats);
}

at::Tensor FinishRouterLossReference(const RouterLossStats& stats) {
  const int64_t e = stats.full_importance.size(1);
  at::Tensor ce = stats.ce_sum / stats.num_nonfull.clamp_min(1.0);
  at::Tensor per_block = ce + CvSquared(stats.full_importance) + CvSquared(stats.full_load) +
                         CvSquared(stats.nonfull_importance.narrow(1, 1, e - 1)) +
                         CvSquared(stats.nonfull_load.narrow(1, 1, e - 1));
  return per_block.sum();
}

at::Tensor RouterLoss(const RouterOutput& out, const at::Tensor& token_combination,
                      int64_t num_experts, int64_t k, bool training) {
  return FinishRouterLoss(ComputeRouterLossStats(out, token_combination, at::Tensor(),
                                                 /*num_blocks=*/1, num_experts, k, training));
}

at::Tensor RouterLossPerBlock(const RouterOutput& out, const at::Tensor& token_combination,
                              const at::Tensor& block_of_token, int64_t num_blocks,
                              int64_t num_experts, int64_t k, bool training) {
  return FinishRouterLoss(ComputeRouterLossStats(out, token_combination, block_of_token, num_blocks,
                                                 num_experts, k, training));
}

at::Tensor BlockIdsFromSizes(const std::vector<int64_t>& block_sizes) {
  std::vector<int64_t> ids;
  for (size_t b = 0; b < block_sizes.size(); ++b) {
    if (block_sizes[b] < 0) Fail(ErrorCode::kInvalidArgument, "BlockIdsFromSizes: negative size");
    ids.insert(ids.end(), block_sizes[b], static_cast<int64_t>(b));
  }
  return at::tensor(ids, at::kLong);
}

}  // namespace flexmoe
