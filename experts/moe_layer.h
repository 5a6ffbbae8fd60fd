// The sparse MoE layer on one process (router + grouped experts + dispatcher), and RunMoe,
// the routing/dispatch/combine sequence that the expert-parallel layer reuses.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "cluster/comm/communicator.h"
#include "experts/grouped_experts.h"
#include "experts/router.h"
#include "experts/router_loss.h"

namespace flexmoe {

// The step between Permute and Combine: rows [R, D] grouped by expert, the groups in the
// dispatch order RunMoe was given (ascending global ids by default), with counts[e] rows for
// expert e (size E, indexed by expert id) in; the experts' outputs for those rows, in the
// same order, out. The local layer runs its own GroupedExperts; the expert-parallel layer
// exchanges the rows with the experts' owners (all-to-all) inside this step.
using ExpertStep =
    std::function<at::Tensor(const at::Tensor& rows, const std::vector<int64_t>& counts)>;

// Applied to the per-block router-loss sums before the loss is formed; the data-parallel
// layer sums them over its group here. An empty function is the identity.
using RouterStatsReducer = std::function<RouterLossStats(RouterLossStats stats)>;

struct MoeOutput {
  at::Tensor output;                   // [T, D]: sum_j gates[t, j] * FFN_{idx[t, j]}(x_t)
  at::Tensor aux_loss;                 // scalar: sum over blocks of the router loss
  std::vector<int64_t> expert_counts;  // [E]: rows routed to each expert (T * k in all)
  int64_t dropped_rows = 0;            // rows over the capacity (capacity_factor > 0)
  RouterOutput routing;                // the router's tensors, for metrics and tests
};

// Expert capacity: bounds the rows each expert takes in one layer call.
struct CapacityOptions {
  // > 0: capacity = ceil(factor * T * k / E), T the tokens of the whole `group`; 0: dropless.
  double factor = 0.0;
  // [T] int64: each token's place in the drop order (an expert's rows over the capacity are
  // those of its latest tokens). Undefined: token order.
  at::Tensor token_priority;
  // The data-parallel group the capacity is shared over, its ranks holding consecutive
  // parts of the drop order in rank order (each rank's samples follow the previous rank's).
  // Null, or a group of one: this process's tokens alone.
  Communicator* group = nullptr;
};

// Routes x [T, D] with `router`, forms the per-block router loss (see RouterLossPerBlock;
// block_of_token undefined = one block), dispatches the rows to `run_experts` and combines
// their outputs with the gate weights. expert_order: the order of the experts' row groups
// handed to `run_experts` (a permutation of [0, E); empty: ascending); the result does not
// depend on it.
//
// capacity.factor > 0: each expert keeps the capacity's first rows in the drop order over
// the whole group (one all-gather of the per-expert counts over capacity.group: every rank
// calls it), so W workers keep exactly the rows one process with the whole batch keeps.
// Rank r's share of expert e is the capacity less the rows of ranks before it. Dropped rows
// give a zero expert output (the other experts' gate weights stay as they are) and are
// counted in MoeOutput::dropped_rows.
MoeOutput RunMoe(NoisyTopKRouterImpl& router, const ExpertStep& run_experts,
                 const RouterStatsReducer& reduce_stats, const at::Tensor& x,
                 const at::Tensor& noise, const at::Tensor& token_combination,
                 const at::Tensor& block_of_token, int64_t num_blocks, bool training,
                 const CapacityOptions& capacity = {},
                 const std::vector<int64_t>& expert_order = {});

struct MoeLayerOptions {
  int64_t hidden_dim = 0;   // D
  int64_t num_experts = 0;  // E
  int64_t top_k = 0;        // k
  int64_t init_seed = -1;   // >= 0: seeded init of router and experts (see their options)
};

// All E experts on this process. Submodules "router" and "experts".
class LocalMoeLayerImpl : public torch::nn::Module {
 public:
  explicit LocalMoeLayerImpl(MoeLayerOptions options);

  // x [T, D]; noise [T, E] standard normal (training) or undefined; token_combination [T]
  // int64; block_of_token [T] int64 in [0, num_blocks) or undefined for one block.
  MoeOutput Forward(const at::Tensor& x, const at::Tensor& noise,
                    const at::Tensor& token_combination, const at::Tensor& block_of_token,
                    int64_t num_blocks, bool training);

  NoisyTopKRouter& router() { return router_; }
  GroupedExperts& experts() { return experts_; }

 private:
  NoisyTopKRouter router_{nullptr};
  GroupedExperts experts_{nullptr};
};
TORCH_MODULE(LocalMoeLayer);

}  // namespace flexmoe
