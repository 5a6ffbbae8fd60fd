// The Flex-MoE router loss (G-Router balancing on full-modality tokens, S-Router
// cross-entropy and balancing on the others), computed per modality block and summed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "experts/router.h"

namespace flexmoe {

// The sums the loss is built from, one row per block (NB blocks, E experts). The loss is a
// function of these sums only, so under data parallelism each worker computes them on its
// own tokens, they are summed over the data-parallel group (with gradient), and
// FinishRouterLoss then gives every worker the loss of the global batch.
struct RouterLossStats {
  at::Tensor full_importance;     // [NB, E]: sum over full tokens (c = 0) of the dense gates
  at::Tensor full_load;           // [NB, E]: sum over full tokens of the load (see below)
  at::Tensor nonfull_importance;  // [NB, E]: the same over non-full tokens (c > 0); column 0
  at::Tensor nonfull_load;        // [NB, E]:   is kept here and dropped by FinishRouterLoss
  at::Tensor ce_sum;              // [NB]: sum over non-full tokens of CE(noisy logits, c)
  at::Tensor num_nonfull;         // [NB]: number of non-full tokens (floating point)
};

// cv^2 over the last dimension: var(v) / (mean(v)^2 + 1e-10) with the unbiased variance;
// 0 when that dimension has length <= 1. Returns v's shape without its last dimension.
at::Tensor CvSquared(const at::Tensor& v);

// Smooth estimate [T, E] of the probability that expert e is in token t's top-k under the
// noise (Shazeer et al.): Phi((clean - thr_in) / sigma) where noisy > thr_in, else
// Phi((clean - thr_out) / sigma), thr_in = (k+1)-th and thr_out = k-th largest noisy logit.
// Needs a training output and k < E.
at::Tensor SmoothLoad(const RouterOutput& out, int64_t k);

// Hard load [T, E]: 1 where the expert has a positive gate weight (is among the top-k).
at::Tensor HardLoad(const RouterOutput& out, int64_t num_experts);

// token_combination [T] int64: combination index of each token's sample (0 = full), in
// [0, E). block_of_token [T] int64 in [0, num_blocks), or undefined for a single block.
// The load is SmoothLoad in training with k < E, HardLoad otherwise.
RouterLossStats ComputeRouterLossStats(const RouterOutput& out, const at::Tensor& token_combination,
                                       const at::Tensor& block_of_token, int64_t num_blocks,
                                       int64_t num_experts, int64_t k, bool training);

// The same statistics from ATen ops alone, on checked ids (comb and block as int64 on the
// router output's device): the path for CUDA tensors and for the hard load, and the
// reference the fused host kernel is tested against.
RouterLossStats ComputeRouterLossStatsReference(const RouterOutput& out, const at::Tensor& comb,
                                                const at::Tensor& block, int64_t num_blocks,
                                                int64_t num_experts, int64_t k, bool training);

// Sum over blocks of  CE_sum / max(n_nonfull, 1) + cv^2(full_importance) + cv^2(full_load)
//   + cv^2(nonfull_importance[1:]) + cv^2(nonfull_load[1:]).
// With no non-full token this is the G-Router loss alone (the other terms are exactly 0);
// with no full token the full-token terms are cv^2(0) = 0, as in the authors' code.
// Host float/double statistics run as one fused autograd node; others as ATen ops
// (FinishRouterLossReference, which the fused node is tested against).
at::Tensor FinishRouterLoss(const RouterLossStats& stats);
at::Tensor FinishRouterLossReference(const RouterLossStats& stats);

// The loss of one gate call (one block) as a scalar.
at::Tensor RouterLoss(const RouterOutput& out, const at::Tensor& token_combination,
                      int64_t num_experts, int64_t k, bool training);

// The sum of the per-block losses, each computed on the tokens of its block only, so that
// one router call and one dispatch can serve all modality blocks.
at::Tensor RouterLossPerBlock(const RouterOutput& out, const at::Tensor& token_combination,
                              const at::Tensor& block_of_token, int64_t num_blocks,
                              int64_t num_experts, int64_t k, bool training);

// Block ids [sum(sizes)] int64 for contiguous blocks of the given sizes.
at::Tensor BlockIdsFromSizes(const std::vector<int64_t>& block_sizes);

}  // namespace flexmoe
