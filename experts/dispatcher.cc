// Dispatcher: the dispatch plan, Permute and Combine.
#include "experts/dispatcher.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "cluster/base/error.h"
#include "experts/host_index.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool HostFloating(const at::Tensor& t) {
  return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

// out[t] = sum over slots j of w[t, j] * rows[inverse[t * k + j]] (w = 1 when absent), in
// slot order: the gather-sum that Combine's forward and Permute's backward both are.
template <typename T>
void GatherSum(const T* rows, const int64_t* inverse, const T* w, int64_t tokens, int64_t k,
               int64_t d, T* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    T* o = out + t * d;
    for (int64_t j = 0; j < k; ++j) {
      const T* r = rows + inverse[t * k + j] * d;
      const T g = w == nullptr ? T(1) : w[t * k + j];
      if (j == 0) {
        for (int64_t c = 0; c < d; ++c) o[c] = g * r[c];
      } else {
        for (int64_t c = 0; c < d; ++c) o[c] += g * r[c];
      }
    }
  }
}

// Permute on host tensors as one autograd node: the backward gathers each token's k rows
// (no zero-filled buffer and scatter-add).
class PermuteFunction : public torch::autograd::Function<PermuteFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& token_of_row, const at::Tensor& inverse_order,
                            int64_t k) {
    ctx->save_for_backward({inverse_order});
    ctx->saved_data["k"] = k;
    return x.index_select(0, token_of_row);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor inverse = ctx->get_saved_variables()[0];
    const int64_t k = ctx->saved_data["k"].toInt();
    const at::Tensor dy = grads[0].contiguous();
    const int64_t d = dy.size(1), tokens = dy.size(0) / k;
    at::Tensor dx = at::empty({tokens, d}, dy.options());
    AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "PermuteBackward", [&] {
      GatherSum<scalar_t>(dy.data_ptr<scalar_t>(), inverse.data_ptr<int64_t>(), nullptr, tokens, k,
                          d, dx.data_ptr<scalar_t>());
    });
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Combine on host tensors as one autograd node.
class CombineFunction : public torch::autograd::Function<CombineFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y_sorted,
                            const at::Tensor& gates, const at::Tensor& inverse_order) {
    const at::Tensor y = y_sorted.contiguous(), g = gates.contiguous();
    const int64_t tokens = g.size(0), k = g.size(1), d = y.size(1);
    at::Tensor out = at::empty({tokens, d}, y.options());
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "Combine", [&] {
      GatherSum<scalar_t>(y.data_ptr<scalar_t>(), inverse_order.data_ptr<int64_t>(),
                          g.data_ptr<scalar_t>(), tokens, k, d, out.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({y, g, inverse_order});
    return out;
  }

  // d y[row of (t, j)] = gates[t, j] * d out[t]; d gates[t, j] = <d out[t], y[row of (t, j)]>.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &g = saved[1], &inverse = saved[2];
    const at::Tensor dout = grads[0].contiguous();
    const int64_t tokens = g.size(0), k = g.size(1), d = y.size(1);
    at::Tensor dy = at::empty_like(y), dg = at::empty_like(g);
    AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "CombineBackward", [&] {
      const scalar_t *yp = y.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
      const scalar_t* dop = dout.data_ptr<scalar_t>();
      const int64_t* inv = inverse.data_ptr<int64_t>();
      scalar_t *dyp = dy.data_ptr<scalar_t>(), *dgp = dg.data_ptr<scalar_t>();
      for (int64_t t = 0; t < tokens; ++t) {
        const scalar_t* o = dop + t * d;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t row = inv[t * k + j];
          const scalar_t* r = yp + row * d;
          scalar_t* dr = dyp + row * d;
          const scalar_t gate = gp[t * k + j];
          scalar_t dot = 0;
          for (int64_t c = 0; c < d; ++c) {
            dr[c] = gate * o[c];
            dot += o[c] * r[c];
          }
          dgp[t * k + j] = dot;
        }
      }
    });
    return {dy, dg, at::Tensor()};
  }
};

}  // namespace

namespace {

// `order` checked as a permutation of [0, num_experts), or ascending ids when empty.
std::vector<int64_t> ExpertOrder(const std::vector<int64_t>& order, int64_t num_experts) {
  if (order.empty()) {
    std::vector<int64_t> ascending(num_experts);
    for (int64_t e = 0; e < num_experts; ++e) ascending[e] = e;
    return ascending;
  }
  std::vector<bool> seen(num_experts, false);
  bool valid = static_cast<int64_t>(order.size()) == num_experts;
  for (size_t i = 0; valid && i < order.size(); ++i) {
    valid = order[i] >= 0 && order[i] < num_experts && !seen[order[i]];
    if (valid) seen[order[i]] = true;
  }
  if (!valid) {
    Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: the expert order (", order.size(),
         " entries) is not a permutation of the ", num_experts, " experts");
  }
  return order;
}

}  // namespace

DispatchPlan MakeDispatchPlan(const at::Tensor& top_indices, int64_t num_experts,
                              const std::vector<int64_t>& expert_order) {
  if (top_indices.dim() != 2 || top_indices.scalar_type() != at::kLong) {
    Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: top_indices must be [T, k] int64, got ",
         top_indices.sizes(), " ", top_indices.scalar_type());
  }
  if (top_indices.size(1) < 1) Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: k < 1");
  if (num_experts < 1) Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: num_experts < 1");
  DispatchPlan plan;
  plan.num_tokens = top_indices.size(0);
  plan.top_k = top_indices.size(1);
  if (top_indices.device().is_cpu()) {
    // A stable counting sort by expert, in two passes over the assignments; the range check
    // is part of the first.
    const at::Tensor flat = top_indices.contiguous().view({-1});
    const int64_t n = flat.numel(), k = plan.top_k;
    const int64_t* expert = flat.data_ptr<int64_t>();
    plan.counts.assign(num_experts, 0);
    for (int64_t a = 0; a < n; ++a) {
      if (expert[a] < 0 || expert[a] >= num_experts) {
        Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: expert ids must be in [0, ",
             num_experts, "), got ", expert[a], " at assignment ", a);
      }
      ++plan.counts[expert[a]];
    }
    plan.expert_order = ExpertOrder(expert_order, num_experts);
    std::vector<int64_t> next(num_experts, 0);  // the next row of each expert's group
    int64_t start = 0;
    for (int64_t e : plan.expert_order) {
      next[e] = start;
      start += plan.counts[e];
    }
    plan.sorted_order = at::empty({n}, at::kLong);
    plan.inverse_order = at::empty({n}, at::kLong);
    plan.token_of_row = at::empty({n}, at::kLong);
    int64_t* sorted = plan.sorted_order.data_ptr<int64_t>();
    int64_t* inverse = plan.inverse_order.data_ptr<int64_t>();
    int64_t* token = plan.token_of_row.data_ptr<int64_t>();
    for (int64_t a = 0; a < n; ++a) {
      const int64_t row = next[expert[a]]++;
      sorted[row] = a;
      inverse[a] = row;
      token[row] = a / k;
    }
    return plan;
  }
  return MakeDispatchPlanTensorOps(top_indices, num_experts, expert_order);
}

DispatchPlan MakeDispatchPlanTensorOps(const at::Tensor& top_indices, int64_t num_experts,
                                       const std::vector<int64_t>& expert_order) {
  if (top_indices.dim() != 2 || top_indices.scalar_type() != at::kLong || top_indices.size(1) < 1 ||
      num_experts < 1) {
    Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlanTensorOps: top_indices must be [T, k >= 1] ",
         "int64 and num_experts >= 1, got ", top_indices.sizes(), " ", top_indices.scalar_type(),
         ", ", num_experts);
  }
  DispatchPlan plan;
  plan.num_tokens = top_indices.size(0);
  plan.top_k = top_indices.size(1);
  const at::Tensor flat = top_indices.reshape({-1});
  // Counts per expert, with ids out of range in an extra bin E; the E + 1 counts come to the
  // host in one copy, the plan's only synchronisation (the exchange needs the counts).
  const at::Tensor in_range = flat.ge(0).logical_and(flat.lt(num_experts));
  const at::Tensor bins = at::where(in_range, flat, at::full_like(flat, num_experts));
  const at::Tensor counts =
      at::zeros({num_experts + 1}, flat.options()).scatter_add_(0, bins, at::ones_like(flat));
  // A stable sort by the experts' places in the order keeps each expert's rows in assignment
  // (token, slot) order. Ids out of range are refused below, once the counts are on the host.
  plan.expert_order = ExpertOrder(expert_order, num_experts);
  std::vector<int64_t> place(num_experts + 1, num_experts);
  for (int64_t i = 0; i < num_experts; ++i) place[plan.expert_order[i]] = i;
  const at::Tensor place_of_bin = HostIndexTo(at::tensor(place, at::kLong), flat.device());
  const at::Tensor key = place_of_bin.index_select(0, bins);
  plan.sorted_order = std::get<1>(at::sort(key, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  plan.inverse_order =
      at::empty_like(plan.sorted_order)
          .scatter_(0, plan.sorted_order, at::arange(flat.numel(), plan.sorted_order.options()));
  plan.token_of_row = at::div(plan.sorted_order, plan.top_k, "floor");
  const at::Tensor host = counts.to(at::kCPU).contiguous();
  const int64_t* data = host.data_ptr<int64_t>();
  if (data[num_experts] > 0) {
    Fail(ErrorCode::kInvalidArgument, "MakeDispatchPlan: expert ids must be in [0, ", num_experts,
         "), got ", data[num_experts], " outside");
  }
  plan.counts.assign(data, data + num_experts);
  return plan;
}

at::Tensor Permute(const at::Tensor& x, const DispatchPlan& plan) {
  if (x.dim() != 2 || x.size(0) != plan.num_tokens) {
    Fail(ErrorCode::kInvalidArgument, "Permute: expected [", plan.num_tokens, ", D] rows, got ",
         x.sizes());
  }
  if (HostFloating(x) && plan.top_k > 0) {
    return PermuteFunction::apply(x, plan.token_of_row, plan.inverse_order, plan.top_k);
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
  if (HostFloating(y_sorted) && gates.scalar_type() == y_sorted.scalar_type() &&
      gates.device() == y_sorted.device()) {
    return CombineFunction::apply(y_sorted, gates, plan.inverse_order);
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
