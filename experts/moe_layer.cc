// The local MoE layer and the shared route / dispatch / combine sequence.
#include "experts/moe_layer.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <utility>

#include "cluster/base/error.h"
#include "experts/dispatcher.h"

namespace flexmoe {

MoeOutput RunMoe(NoisyTopKRouterImpl& router, const ExpertStep& run_experts,
                 const RouterStatsReducer& reduce_stats, const at::Tensor& x,
                 const at::Tensor& noise, const at::Tensor& token_combination,
                 const at::Tensor& block_of_token, int64_t num_blocks, bool training) {
  const int64_t e = router.num_experts();
  const int64_t k = router.top_k();
  MoeOutput result;
  result.routing = router.Forward(x, noise, training);
  RouterLossStats stats = ComputeRouterLossStats(result.routing, token_combination, block_of_token,
                                                 num_blocks, e, k, training);
  if (reduce_stats) stats = reduce_stats(std::move(stats));
  result.aux_loss = FinishRouterLoss(stats);

  const DispatchPlan plan = MakeDispatchPlan(result.routing.top_indices, e);
  at::Tensor y = run_experts(Permute(x, plan), plan.counts);
  CHECK(y.dim() == 2 && y.size(0) == plan.num_tokens * k && y.size(1) == x.size(1))
      << "the expert step returned " << y.sizes();
  result.output = Combine(y, plan, result.routing.gates, x.size(0));
  result.expert_counts = plan.counts;
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
