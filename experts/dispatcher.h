// Dispatcher: orders the (token, slot) assignments of a top-k routing by expert, gathers the
// token rows in that order and combines the expert outputs back with the gate weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace flexmoe {

// For T tokens with k experts each, assignment a = t * k + j is token t's j-th choice.
// Rows are grouped by expert, the groups in `expert_order` (ascending expert ids unless a
// plan is made with another order: the expert-parallel layer lays them out owner by owner,
// so that each owner's rows are already one contiguous block).
struct DispatchPlan {
  at::Tensor sorted_order;            // [T*k] int64: assignment of each row, rows grouped by expert
                                      //   (stable: by token, then slot, within one expert)
  at::Tensor inverse_order;           // [T*k] int64: row of each assignment (inverse permutation)
  at::Tensor token_of_row;            // [T*k] int64: sorted_order / k
  std::vector<int64_t> counts;        // [E]: rows per expert, indexed by expert id
  std::vector<int64_t> expert_order;  // [E]: the experts in row order (a permutation)
  int64_t num_tokens = 0;             // T
  int64_t top_k = 0;                  // k
};

// top_indices [T, k] int64 with values in [0, num_experts). expert_order: the order of the
// experts' row groups, a permutation of [0, num_experts); empty: ascending. Host tensors: a
// counting sort; others: MakeDispatchPlanTensorOps.
DispatchPlan MakeDispatchPlan(const at::Tensor& top_indices, int64_t num_experts,
                              const std::vector<int64_t>& expert_order = {});

// The same plan from tensor ops on top_indices' device (a stable sort, a scatter, a
// scatter-add of the counts): no host synchronisation but the one copy of the E counts (and
// of the count of ids out of range) to the host. Runs on host tensors too (the tests compare
// it with the counting sort).
DispatchPlan MakeDispatchPlanTensorOps(const at::Tensor& top_indices, int64_t num_experts,
                                       const std::vector<int64_t>& expert_order = {});

// x [T, D] -> [T*k, D]: row i is x[token_of_row[i]] (differentiable in x).
at::Tensor Permute(const at::Tensor& x, const DispatchPlan& plan);

// y_sorted [T*k, D] (expert outputs in plan order), gates [T, k] -> [T, D] with
// out[t] = sum_j gates[t, j] * y[row of (t, j)], summed in slot order j = 0..k-1, so the
// result is the same as the explicit per-token formula. Differentiable in y and gates.
at::Tensor Combine(const at::Tensor& y_sorted, const DispatchPlan& plan, const at::Tensor& gates,
                   int64_t num_tokens);

}  // namespace flexmoe
