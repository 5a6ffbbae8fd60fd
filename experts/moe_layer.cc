// The local MoE layer and the shared route / dispatch / combine sequence.
#include "experts/moe_layer.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "cluster/base/error.h"
#include "experts/dispatcher.h"

namespace flexmoe {

namespace {

// Per expert, the rows this rank may keep: the capacity over the group's tokens, less the
// rows of the ranks before this one (clamped to [0, this rank's rows]).
std::vector<int64_t> KeptCounts(const DispatchPlan& plan, int64_t num_experts,
                                const CapacityOptions& capacity) {
  const int64_t e_count = num_experts;
  int64_t tokens = plan.num_tokens;
  std::vector<int64_t> before(e_count, 0);
  if (capacity.group != nullptr && capacity.group->size() > 1) {
    std::vector<int64_t> mine = plan.counts;
    mine.push_back(plan.num_tokens);
    const at::Tensor all =
        capacity.group->AllGather(at::tensor(mine, at::kLong)).to(at::kCPU).contiguous();
    const int64_t* a = all.data_ptr<int64_t>();
    tokens = 0;
    for (int s = 0; s < capacity.group->size(); ++s) {
      tokens += a[s * (e_count + 1) + e_count];
      for (int64_t e = 0; e < e_count && s < capacity.group->rank(); ++e) {
        before[e] += a[s * (e_count + 1) + e];
      }
    }
  }
  const int64_t limit = static_cast<int64_t>(
      std::ceil(capacity.factor * static_cast<double>(tokens * plan.top_k) / e_count));
  std::vector<int64_t> kept(e_count);
  for (int64_t e = 0; e < e_count; ++e) {
    kept[e] = std::clamp(limit - before[e], int64_t{0}, plan.counts[e]);
  }
  return kept;
}

// The plan's rows that are kept (ascending): for each expert, its first kept[e] rows in the
// drop order (token_priority of each row's token, ties and no priority: token order).
std::vector<int64_t> KeptRows(const DispatchPlan& plan, const std::vector<int64_t>& kept,
                              const at::Tensor& token_priority) {
  const at::Tensor token = plan.token_of_row.to(at::kCPU).contiguous();
  at::Tensor priority;
  if (token_priority.defined()) {
    priority = token_priority.to(at::kCPU, at::kLong).index_select(0, token).contiguous();
  }
  std::vector<int64_t> rows;
  int64_t offset = 0;
  for (int64_t e : plan.expert_order) {  // the experts' row groups, in row order
    const int64_t n = plan.counts[e];
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = offset + i;  // token order within the expert
    if (priority.defined() && kept[e] < n) {
      const int64_t* p = priority.data_ptr<int64_t>();
      std::stable_sort(order.begin(), order.end(),
                       [p](int64_t a, int64_t b) { return p[a] < p[b]; });
      std::sort(order.begin(), order.begin() + kept[e]);
    }
    rows.insert(rows.end(), order.begin(), order.begin() + kept[e]);
    offset += n;
  }
  return rows;
}

}  // namespace

MoeOutput RunMoe(NoisyTopKRouterImpl& router, const ExpertStep& run_experts,
                 const RouterStatsReducer& reduce_stats, const at::Tensor& x,
                 const at::Tensor& noise, const at::Tensor& token_combination,
                 const at::Tensor& block_of_token, int64_t num_blocks, bool training,
                 const CapacityOptions& capacity, const std::vector<int64_t>& expert_order) {
  const int64_t e = router.num_experts();
  const int64_t k = router.top_k();
  MoeOutput result;
  result.routing = router.Forward(x, noise, training);
  RouterLossStats stats = ComputeRouterLossStats(result.routing, token_combination, block_of_token,
                                                 num_blocks, e, k, training);
  if (reduce_stats) stats = reduce_stats(std::move(stats));
  result.aux_loss = FinishRouterLoss(stats);

  const DispatchPlan plan = MakeDispatchPlan(result.routing.top_indices, e, expert_order);
  result.expert_counts = plan.counts;
  at::Tensor rows = Permute(x, plan);
  if (capacity.factor <= 0) {
    at::Tensor y = run_experts(rows, plan.counts);
    CHECK(y.dim() == 2 && y.size(0) == plan.num_tokens * k && y.size(1) == x.size(1))
        << "the expert step returned " << y.sizes();
    result.output = Combine(y, plan, result.routing.gates, x.size(0));
    return result;
  }
  // Capacity: run the experts on the kept rows only, and give the dropped rows a zero output.
  const std::vector<int64_t> kept_counts = KeptCounts(plan, e, capacity);
  const std::vector<int64_t> kept_rows = KeptRows(plan, kept_counts, capacity.token_priority);
  result.dropped_rows = plan.num_tokens * k - static_cast<int64_t>(kept_rows.size());
  at::Tensor kept = at::tensor(kept_rows, at::kLong).to(x.device());
  at::Tensor y_kept = run_experts(rows.index_select(0, kept), kept_counts);
  at::Tensor y =
      at::zeros({plan.num_tokens * k, x.size(1)}, y_kept.options()).index_copy(0, kept, y_kept);
  result.output = Combine(y, plan, result.routing.gates, x.size(0));
  return result;
}

LocalMoeLayerImpl::LocalMoeLayerImpl(MoeLayerOptions options) {
  router_ = register_module("router",
                            NoisyTopKRouter(RouterOptions{options.hidden_dim, options.num_experts,
                                                          options.top_k, options.init_seed}));
  GroupedExpertsOptions expert_options;
  expert_options.hidden_dim = options.hidden_dim;
  expert_options.num_experts = options.num_experts;
  expert_options.init_seed = options.init_seed;
  experts_ = register_module("experts", GroupedExperts(expert_options));
}

MoeOutput LocalMoeLayerImpl::Forward(const at::Tensor& x, const at::Tensor& noise,
                                     const at::Tensor& token_combination,
                                     const at::Tensor& block_of_token, int64_t num_blocks,
                                     bool training) {
  GroupedExpertsImpl& experts = *experts_;
  return RunMoe(
      *router_,
      [&experts](const at::Tensor& rows, const std::vector<int64_t>& counts) {
        return experts.Forward(rows, counts);
      },
      RouterStatsReducer(), x, noise, token_combination, block_of_token, num_blocks, training);
}

}  // namespace flexmoe
