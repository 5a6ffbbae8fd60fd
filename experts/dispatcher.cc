// Dispatcher: the dispatch plan, Permute and Combine.
#include "experts/dispatcher.h"

#include <ATen/ATen.h>

#include "cluster/base/error.h"

namespace flexmoe {

DispatchPlan MakeDispatchPlan(const at::Tensor& top_indices, int64_t num_experts) {
  if (top_indices.dim() != 2 || top_indices.scalar_type() != at::kLong) {
    Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: top_indices must be [T, k] int64, got ",
         top_indices.sizes(), " ", top_indices.scalar_type());
  }
  if (top_indices.size(1) < 1) Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: k < 1");
  if (num_experts < 1) Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: num_experts < 1");
  DispatchPlan plan;
  plan.num_tokens = top_indices.size(0);
  plan.top_k = top_indices.size(1);
  at::Tensor flat = top_indices.reshape({-1});
  if (flat.numel() > 0) {
    const int64_t lo = flat.min().item<int64_t>();
    const int64_t hi = flat.max().item<int64_t>();
    if (lo < 0 || hi >= num_experts) {
      Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: expert ids must be in [0, ", num_experts,
           "), got [", lo, ", ", hi, "]");
    }
  }
  plan.sorted_order = std::get<1>(at::sort(flat, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  plan.inverse_order =
      at::empty_like(plan.sorted_order)
          .scatter_(0, plan.sorted_order, at::arange(flat.numel(), plan.sorted_order.options()));
  plan.token_of_row = at::div(plan.sorted_order, plan.top_k == 0 ? 1 : plan.top_k, "floor");
  at::Tensor counts = at::bincount(flat, {}, num_experts).to(at::kCPU).contiguous();
  const int64_t* data = counts.data_ptr<int64_t>();
  plan.counts.assign(data, data + num_experts);
  return plan;
}

at::Tensor Permute(const at::Tensor& x, const DispatchPlan& plan) {
  if (x.dim() != 2 || x.size(0) != plan.num_tokens) {
    Fail(ErrorCode::kInvalidArgument, "Permute: expected [", plan.num_tokens, ", D] rows, got ",
         x.sizes());
  }
  return x.index_select(0, plan.token_of_row);
}

at::Tensor Combine(const at::Tensor& y_sorted, const DispatchPlan& plan, const at::Tensor& gates,
                   int64_t num_tokens) {
  const int64_t rows = plan.num_tokens * plan.top_k;
  if (num_tokens != plan.num_tokens || y_sorted.dim() != 2 || y_sorted.size(0) != rows) {
    Fail(ErrorCode::kInvalidArgument, "Combine: expected [", rows, ", D] rows for ", num_tokens,
         " tokens, got ", y_sorted.sizes());
  }
  if (gates.dim() != 2 || gates.size(0) != plan.num_tokens || gates.size(1) != plan.top_k) {
    Fail(ErrorCode::kInvalidArgument, "Combine: gates must be [", plan.num_tokens, ", ", plan.top_k,
         "], got ", gates.sizes());
  }
  // Back to assignment order (a permutation: no two rows land on one place), then the
  // gate-weighted sum over each token's k slots.
  at::Tensor y = y_sorted.index_select(0, plan.inverse_order)
                     .view({plan.num_tokens, plan.top_k, y_sorted.size(1)});
  at::Tensor g = gates.to(y.scalar_type()).unsqueeze(2);
  at::Tensor out = g.select(1, 0) * y.select(1, 0);
  for (int64_t j = 1; j < plan.top_k; ++j) out = out + g.select(1, j) * y.select(1, j);
  return out;
}

}  // namespace flexmoe
