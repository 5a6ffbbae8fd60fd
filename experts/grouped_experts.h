// GroupedExperts: the expert FFNs of one sparse layer (D -> 2D -> D, exact GELU) with their
// weights stored grouped per layer, run one matmul per expert on expert-sorted rows.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "experts/grouped_ffn.h"

namespace flexmoe {

struct GroupedExpertsOptions {
  int64_t hidden_dim = 0;   // D
  int64_t num_experts = 0;  // E: experts in the whole layer
  // Global ids of the experts held here, strictly increasing, each in [0, E). Empty = all
  // E experts (the single-process case). Under expert parallelism each owner holds a subset.
  std::vector<int64_t> global_ids;
  // >= 0: expert e's weights are drawn from a generator keyed by (init_seed, e), so they do
  // not depend on how the experts are spread over workers. < 0: the global LibTorch RNG.
  int64_t init_seed = -1;
  // The float products of the fused host path (GroupedFfn), forward and backward.
  GemmPrecision precision = GemmPrecision::kFp32;
};

// Parameters (n = number of local experts): w1 [n, D, 2D], b1 [n, 2D], w2 [n, 2D, D],
// b2 [n, D]; FFN_e(x) = GELU(x w1[e] + b1[e]) w2[e] + b2[e]. Initialised as FastMoE's
// FMoELinear: uniform with bound 1/sqrt(D * 2D) (kaiming_uniform_(a = sqrt(5)) on the
// 3-D tensor), biases zero.
class GroupedExpertsImpl : public torch::nn::Module {
 public:
  explicit GroupedExpertsImpl(GroupedExpertsOptions options);

  // x_sorted [N, D]: rows sorted by local expert; counts[i] rows belong to local expert i
  // (global id global_ids()[i]); sum(counts) = N. Returns [N, D] in the same order. An
  // expert with zero rows contributes nothing and gets a zero gradient.
  at::Tensor Forward(const at::Tensor& x_sorted, const std::vector<int64_t>& counts);

  // x [N, D] in row blocks, each block's rows for one local expert (RowBlock::expert, an
  // index into global_ids()); the blocks tile [0, N) in order and an expert may have any
  // number of them. Returns [N, D] in x's order. Forward is this with one block per expert.
  // Host float/double tensors run as one fused autograd node (GroupedFfn: per-expert BLAS
  // calls on the blocks where they lie); other devices and types are grouped by expert for
  // ForwardPadded and put back.
  at::Tensor ForwardBlocks(const at::Tensor& x, const std::vector<RowBlock>& blocks);

  // The same result from two batched GEMMs over the experts' rows padded to the largest
  // count ([n, max count, D]): a fixed number of kernel launches whatever the number of
  // experts, the path for CUDA tensors. Runs on host tensors too (tested against
  // ForwardPerExpert).
  at::Tensor ForwardPadded(const at::Tensor& x_sorted, const std::vector<int64_t>& counts);

  // The same result from ATen ops, one addmm/GELU/addmm per expert (the reference the fused
  // and padded paths are tested against).
  at::Tensor ForwardPerExpert(const at::Tensor& x_sorted, const std::vector<int64_t>& counts);

  // Runs local expert `local_index` on rows x [n, D] (reference path for tests and tools).
  at::Tensor ForwardOne(int64_t local_index, const at::Tensor& x);

  int64_t hidden_dim() const { return options_.hidden_dim; }
  int64_t num_experts() const { return options_.num_experts; }
  int64_t num_local_experts() const { return static_cast<int64_t>(global_ids_.size()); }
  const std::vector<int64_t>& global_ids() const { return global_ids_; }

  at::Tensor& w1() { return w1_; }
  at::Tensor& b1() { return b1_; }
  at::Tensor& w2() { return w2_; }
  at::Tensor& b2() { return b2_; }

  // Re-draws the weights (see GroupedExpertsOptions::init_seed) and zeroes the biases.
  void ResetParameters();

 private:
  GroupedExpertsOptions options_;
  std::vector<int64_t> global_ids_;
  at::Tensor w1_, b1_, w2_, b2_;
};
TORCH_MODULE(GroupedExperts);

}  // namespace flexmoe
