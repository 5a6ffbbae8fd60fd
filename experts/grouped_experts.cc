// GroupedExperts: grouped expert weights and the per-expert matmul forward.
#include "experts/grouped_experts.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <glog/logging.h>

#include <algorithm>
#include <utility>

#include "cluster/base/error.h"
#include "experts/grouped_ffn.h"
#include "experts/host_index.h"
#include "experts/param_init.h"

namespace flexmoe {

GroupedExpertsImpl::GroupedExpertsImpl(GroupedExpertsOptions options)
    : options_(std::move(options)) {
  const int64_t d = options_.hidden_dim;
  const int64_t e = options_.num_experts;
  if (d <= 0) Fail(ErrorCode::kInvalidArgument, "GroupedExperts: hidden_dim must be > 0, got ", d);
  if (e <= 0) Fail(ErrorCode::kInvalidArgument, "GroupedExperts: num_experts must be > 0, got ", e);
  if (options_.global_ids.empty()) {
    for (int64_t i = 0; i < e; ++i) global_ids_.push_back(i);
  } else {
    global_ids_ = options_.global_ids;
    for (size_t i = 0; i < global_ids_.size(); ++i) {
      const int64_t id = global_ids_[i];
      if (id < 0 || id >= e) {
        Fail(ErrorCode::kInvalidArgument, "GroupedExperts: global expert id ", id,
             " is outside [0, ", e, ")");
      }
      if (i > 0 && id <= global_ids_[i - 1]) {
        Fail(ErrorCode::kInvalidArgument,
             "GroupedExperts: global_ids must be strictly increasing, got ", global_ids_[i - 1],
             " then ", id);
      }
    }
  }
  const int64_t n = num_local_experts();
  w1_ = register_parameter("w1", at::empty({n, d, 2 * d}));
  b1_ = register_parameter("b1", at::empty({n, 2 * d}));
  w2_ = register_parameter("w2", at::empty({n, 2 * d, d}));
  b2_ = register_parameter("b2", at::empty({n, d}));
  ResetParameters();
}

void GroupedExpertsImpl::ResetParameters() {
  // The same bound for both layers: 1/sqrt(D * 2D).
  const double bound = KaimingUniformA5Bound(w1_);
  CHECK_EQ(bound, KaimingUniformA5Bound(w2_));
  if (options_.init_seed < 0) {
    FillUniform(w1_, bound, c10::nullopt);
    FillUniform(w2_, bound, c10::nullopt);
  } else {
    for (int64_t i = 0; i < num_local_experts(); ++i) {
      at::Generator gen =
          MakeInitGenerator(static_cast<uint64_t>(options_.init_seed), global_ids_[i]);
      FillUniform(w1_[i], bound, gen);
      FillUniform(w2_[i], bound, gen);
    }
  }
  at::NoGradGuard no_grad;
  b1_.zero_();
  b2_.zero_();
}

at::Tensor GroupedExpertsImpl::ForwardOne(int64_t local_index, const at::Tensor& x) {
  CHECK(local_index >= 0 && local_index < num_local_experts()) << local_index;
  at::Tensor h = at::gelu(at::addmm(b1_[local_index], x, w1_[local_index]));
  return at::addmm(b2_[local_index], h, w2_[local_index]);
}

at::Tensor GroupedExpertsImpl::Forward(const at::Tensor& x_sorted,
                                       const std::vector<int64_t>& counts) {
  if (static_cast<int64_t>(counts.size()) != num_local_experts()) {
    Fail(ErrorCode::kInvalidArgument, "GroupedExperts: got ", counts.size(), " counts for ",
         num_local_experts(), " local experts");
  }
  for (int64_t c : counts) {
    if (c < 0) Fail(ErrorCode::kInvalidArgument, "GroupedExperts: negative count ", c);
  }
  return ForwardBlocks(x_sorted, ContiguousBlocks(counts));
}

at::Tensor GroupedExpertsImpl::ForwardBlocks(const at::Tensor& x,
                                             const std::vector<RowBlock>& blocks) {
  if (x.dim() != 2 || x.size(1) != hidden_dim()) {
    Fail(ErrorCode::kInvalidArgument, "GroupedExperts: expected rows [N, ", hidden_dim(), "], got ",
         x.sizes());
  }
  CheckBlocks(blocks, x.size(0), num_local_experts(), "GroupedExperts");
  const bool fused = x.device().is_cpu() &&
                     (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
                     w1_.scalar_type() == x.scalar_type();
  if (fused) return GroupedFfn(x, w1_, b1_, w2_, b2_, blocks, options_.precision);
  // Other devices and types: the rows grouped by expert (a gather unless they already are),
  // the padded batched GEMMs, and back to the blocks' order.
  std::vector<int64_t> counts;
  const RowRanges ranges = ExpertMajorRanges(blocks, num_local_experts(), &counts);
  if (InOrder(ranges)) return ForwardPadded(x, counts);
  const at::Tensor order = GatherIndex(ranges, x.size(0));
  const at::Tensor y = ForwardPadded(x.index_select(0, HostIndexTo(order, x.device())), counts);
  return y.index_select(0, HostIndexTo(InverseIndex(order), x.device()));
}

namespace {

// Slot of each row in the [n, most] padded layout: expert i's j-th row goes to i * most + j.
// Built on the host from the counts, copied to `device` without a synchronisation.
at::Tensor PaddedSlots(const std::vector<int64_t>& counts, int64_t most, int64_t rows,
                       const at::Device& device) {
  at::Tensor slots = at::empty({rows}, at::kLong);
  int64_t* out = slots.data_ptr<int64_t>();
  int64_t r = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    for (int64_t j = 0; j < counts[i]; ++j) out[r++] = static_cast<int64_t>(i) * most + j;
  }
  return HostIndexTo(slots, device);
}

}  // namespace

at::Tensor GroupedExpertsImpl::ForwardPadded(const at::Tensor& x_sorted,
                                             const std::vector<int64_t>& counts) {
  const int64_t n = num_local_experts(), rows = x_sorted.size(0), d = x_sorted.size(1);
  int64_t most = 0;
  for (int64_t c : counts) most = std::max(most, c);
  if (most == 0) return ForwardPerExpert(x_sorted, counts);  // no rows: empty slices
  // Rows scattered into [n, most, D] (padding rows zero), two batched GEMMs with the biases,
  // and the real rows gathered back. A padding row's output is never gathered, so its
  // gradient is zero and it adds nothing to the weights' or biases' gradients.
  const at::Tensor slots = PaddedSlots(counts, most, rows, x_sorted.device());
  at::Tensor padded = at::zeros({n * most, d}, x_sorted.options())
                          .index_copy(0, slots, x_sorted)
                          .view({n, most, d});
  at::Tensor h = at::gelu(at::baddbmm(b1_.unsqueeze(1), padded, w1_));
  at::Tensor y = at::baddbmm(b2_.unsqueeze(1), h, w2_);
  return y.view({n * most, d}).index_select(0, slots);
}

at::Tensor GroupedExpertsImpl::ForwardPerExpert(const at::Tensor& x_sorted,
                                                const std::vector<int64_t>& counts) {
  // One unbind and one split per forward: their backward ops assemble each gradient in one
  // piece (a stack, a cat), where per-expert select/narrow would each zero-fill a
  // full-sized gradient buffer in the backward pass.
  std::vector<at::Tensor> w1 = w1_.unbind(0), b1 = b1_.unbind(0);
  std::vector<at::Tensor> w2 = w2_.unbind(0), b2 = b2_.unbind(0);
  std::vector<at::Tensor> slices = x_sorted.split_with_sizes(counts, 0);
  std::vector<at::Tensor> outputs;
  outputs.reserve(counts.size());
  for (int64_t i = 0; i < num_local_experts(); ++i) {
    // An empty slice gives an empty [0, D] output; matmul's backward then gives zeros.
    at::Tensor h = at::gelu(at::addmm(b1[i], slices[i], w1[i]));
    outputs.push_back(at::addmm(b2[i], h, w2[i]));
  }
  return at::cat(outputs, 0);
}

}  // namespace flexmoe
