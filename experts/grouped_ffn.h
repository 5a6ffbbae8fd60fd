// The expert FFNs of one layer on host rows laid out in blocks, as one autograd node: the
// fused CPU path of GroupedExperts, and of the expert-parallel step, whose received rows
// come source by source and are run where they lie (no regrouping copy).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "experts/cpu_blas.h"

namespace flexmoe {

// Rows [begin, begin + rows) of an input, all of them for local expert `expert`.
struct RowBlock {
  int64_t expert = 0;
  int64_t begin = 0;
  int64_t rows = 0;
};

// Blocks of `counts[i]` rows for local expert i, one after the other (rows sorted by
// expert).
std::vector<RowBlock> ContiguousBlocks(const std::vector<int64_t>& counts);

// The blocks' rows grouped by expert, as {begin, rows} ranges: expert 0's blocks in their
// order, then expert 1's, ... up to `experts`; counts gets each expert's rows.
std::vector<std::pair<int64_t, int64_t>> ExpertMajorRanges(const std::vector<RowBlock>& blocks,
                                                           int64_t experts,
                                                           std::vector<int64_t>* counts);

// Throws kInvalidArgument unless `blocks` tile [0, rows) in order (each block starting where
// the previous one ends, no negative sizes) with experts in [0, experts). `what` names the
// caller in the message.
void CheckBlocks(const std::vector<RowBlock>& blocks, int64_t rows, int64_t experts,
                 const char* what);

// y [N, D] with y[r] = GELU(x[r] w1[e] + b1[e]) w2[e] + b2[e], e the expert of r's block;
// x [N, D], w1 [n, D, H], b1 [n, H], w2 [n, H, D], b2 [n, D], host float or double tensors
// of one type; `blocks` as CheckBlocks wants them (checked by the caller). Each expert runs
// its whole chain, block after block, before the next expert, so that its weights stay in
// cache; the backward writes the weight gradients straight into [n, ...] tensors (zero for
// an expert without rows) and keeps the GELU derivative from the forward. `precision`
// applies to every float product, forward and backward (cpu_blas.h).
at::Tensor GroupedFfn(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1,
                      const at::Tensor& w2, const at::Tensor& b2,
                      const std::vector<RowBlock>& blocks,
                      GemmPrecision precision = GemmPrecision::kFp32);

}  // namespace flexmoe
