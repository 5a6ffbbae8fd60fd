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

MoeOutput RunMoe(NoisyTopKRouterImpl& router, const ExpertStep& run_experts,
                 const RouterStatsReducer& reduce_stats, const at::Tensor& x,
                 const at::Tensor& noise, const at::Tensor& token_combination,
                 const at::Tensor& block_of_token, int64_t num_blocks, bool training,
                 double capacity_factor) {
  const int64_t e = router.num_experts();
  const int64_t k = router.top_k();
  MoeOutput result;
  result.routing = router.Forward(x, noise, training);
  RouterLossStats stats = ComputeRouterLossStats(result.routing, token_combination, block_of_token,
                                                 num_blocks, e, k, training);
  if (reduce_stats) stats = reduce_stats(std::move(stats));
  result.aux_loss = FinishRouterLoss(stats);

  const DispatchPlan plan = MakeDispatchPlan(result.routing.top_indices, e);
  result.expert_counts = plan.counts;
  at::Tensor rows = Permute(x, plan);
  if (capacity_factor <= 0) {
    at::Tensor y = run_experts(rows, plan.counts);
    CHECK(y.dim() == 2 && y.size(0) == plan.num_tokens * k && y.size(1) == x.size(1))
        << "the expert step returned " << y.sizes();
    result.output = Combine(y, plan, result.routing.gates, x.size(0));
    return result;
  }
  // Capacity: keep the first `capacity` rows of each expert (rows are in token order within
  // an expert), run the experts on those, and give the dropped rows a zero output.
  const int64_t capacity = static_cast<int64_t>(
      std::ceil(capacity_factor * static_cast<double>(plan.num_tokens * k) / e));
  std::vector<int64_t> kept_counts(e), kept_rows;
  int64_t offset = 0;
  for (int64_t j = 0; j < e; ++j) {
    kept_counts[j] = std::min(plan.counts[j], capacity);
    for (int64_t i = 0; i < kept_counts[j]; ++i) kept_rows.push_back(offset + i);
    result.dropped_rows += plan.counts[j] - kept_counts[j];
    offset += plan.counts[j];
  }
  at::Tensor kept = at::tensor(kept_rows, at::kLong);
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
