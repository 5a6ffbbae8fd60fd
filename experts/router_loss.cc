// The Flex-MoE router loss: per-block sums (ComputeRouterLossStats) and their combination.
#include "experts/router_loss.h"

#include <ATen/ATen.h>

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

at::Tensor FinishRouterLoss(const RouterLossStats& stats) {
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
