// GroupedExperts: grouped expert weights and the per-expert matmul forward.
#include "experts/grouped_experts.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <glog/logging.h>
#include <torch/autograd.h>

#include <algorithm>
#include <utility>

#include "cluster/base/error.h"
#include "experts/cpu_blas.h"
#include "experts/gelu.h"
#include "experts/host_index.h"
#include "experts/param_init.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One expert's rows: out [n, out_dim] = in [n, in_dim] w ([in_dim, out_dim]) + bias; the
// bias is copied into the rows first and the GEMM accumulates onto it.
template <typename T>
void BlockLinear(const T* in, int64_t n, int64_t in_dim, const T* w, const T* bias, int64_t out_dim,
                 T* out) {
  FillRows(bias, n, out_dim, out);
  Gemm(false, false, n, out_dim, in_dim, T(1), in, in_dim, w, out_dim, T(1), out, out_dim);
}

// The gradients of BlockLinear: grad_in = grad_out w^T, grad_w = in^T grad_out, grad_b =
// column sums of grad_out (zeros when n = 0).
template <typename T>
void BlockLinearBackward(const T* in, int64_t n, int64_t in_dim, const T* w, int64_t out_dim,
                         const T* grad_out, T* grad_in, T* grad_w, T* grad_b) {
  Gemm(false, true, n, in_dim, out_dim, T(1), grad_out, out_dim, w, out_dim, T(0), grad_in, in_dim);
  Gemm(true, false, in_dim, out_dim, n, T(1), in, in_dim, grad_out, out_dim, T(0), grad_w, out_dim);
  ColumnSums(grad_out, n, out_dim, grad_b);
}

// The expert FFNs over expert-sorted rows as one autograd node. Each expert runs its whole
// chain before the next one starts (forward: GEMM, GELU with its derivative, GEMM;
// backward: both layers' GEMMs with the GELU derivative in between), so that its rows and
// weights stay in cache; weight gradients are written straight into the grouped gradient
// tensors. Host tensors, float or double.
class GroupedFfnFunction : public torch::autograd::Function<GroupedFfnFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w1,
                            const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                            const std::vector<int64_t>& counts) {
    at::Tensor xc = x.contiguous(), w1c = w1.contiguous(), b1c = b1.contiguous();
    at::Tensor w2c = w2.contiguous(), b2c = b2.contiguous();
    const int64_t rows = x.size(0), d = w1.size(1), hidden = w1.size(2);
    const int64_t most = counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
    at::Tensor h = at::empty({most, hidden}, x.options());  // one expert's pre-activation
    at::Tensor y = at::empty({rows, d}, x.options());
    // GELU and its derivative; the backward needs only the derivative.
    at::Tensor g = at::empty({rows, hidden}, x.options()), gelu_grad = at::empty_like(g);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "GroupedFfn", [&] {
      int64_t row = 0;
      for (size_t e = 0; e < counts.size(); ++e) {
        const int64_t n = counts[e];
        scalar_t* he = h.data_ptr<scalar_t>();
        // First layer without its bias; the GELU pass adds it.
        Gemm(false, false, n, hidden, d, scalar_t(1), xc.data_ptr<scalar_t>() + row * d, d,
             w1c.data_ptr<scalar_t>() + e * d * hidden, hidden, scalar_t(0), he, hidden);
        scalar_t* ge = g.data_ptr<scalar_t>() + row * hidden;
        GeluAndDerivative(he, n, hidden, b1c.data_ptr<scalar_t>() + e * hidden, ge,
                          gelu_grad.data_ptr<scalar_t>() + row * hidden);
        BlockLinear(ge, n, hidden, w2c.data_ptr<scalar_t>() + e * hidden * d,
                    b2c.data_ptr<scalar_t>() + e * d, d, y.data_ptr<scalar_t>() + row * d);
        row += n;
      }
    });
    ctx->save_for_backward({xc, w1c, w2c, gelu_grad, g});
    ctx->saved_data["counts"] = counts;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w1 = saved[1], &w2 = saved[2], &g = saved[4];
    const at::Tensor& gelu_grad = saved[3];
    const std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    const at::Tensor dy = grads[0].contiguous();
    const int64_t rows = x.size(0), d = w1.size(1), hidden = w1.size(2);
    const int64_t experts = w1.size(0);
    const int64_t most = counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
    at::Tensor dh = at::empty({most, hidden}, x.options()), dx = at::empty({rows, d}, x.options());
    at::Tensor dw1 = at::empty_like(w1), db1 = at::empty({experts, hidden}, x.options());
    at::Tensor dw2 = at::empty_like(w2), db2 = at::empty({experts, d}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "GroupedFfnBackward", [&] {
      int64_t row = 0;
      scalar_t* dhp = dh.data_ptr<scalar_t>();
      for (size_t e = 0; e < counts.size(); ++e) {
        const int64_t n = counts[e];
        // Second layer; its input gradient is d GELU output, turned into d GELU input.
        BlockLinearBackward(
            g.data_ptr<scalar_t>() + row * hidden, n, hidden,
            w2.data_ptr<scalar_t>() + e * hidden * d, d, dy.data_ptr<scalar_t>() + row * d, dhp,
            dw2.data_ptr<scalar_t>() + e * hidden * d, db2.data_ptr<scalar_t>() + e * d);
        const scalar_t* slope = gelu_grad.data_ptr<scalar_t>() + row * hidden;
        for (int64_t i = 0; i < n * hidden; ++i) dhp[i] *= slope[i];
        BlockLinearBackward(
            x.data_ptr<scalar_t>() + row * d, n, d, w1.data_ptr<scalar_t>() + e * d * hidden,
            hidden, dhp, dx.data_ptr<scalar_t>() + row * d,
            dw1.data_ptr<scalar_t>() + e * d * hidden, db1.data_ptr<scalar_t>() + e * hidden);
        row += n;
      }
    });
    return {dx, dw1, db1, dw2, db2, at::Tensor()};
  }
};

}  // namespace

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
  if (x_sorted.dim() != 2 || x_sorted.size(1) != hidden_dim()) {
    Fail(ErrorCode::kInvalidArgument, "GroupedExperts: expected rows [N, ", hidden_dim(), "], got ",
         x_sorted.sizes());
  }
  if (static_cast<int64_t>(counts.size()) != num_local_experts()) {
    Fail(ErrorCode::kInvalidArgument, "GroupedExperts: got ", counts.size(), " counts for ",
         num_local_experts(), " local experts");
  }
  int64_t total = 0;
  for (int64_t c : counts) {
    if (c < 0) Fail(ErrorCode::kInvalidArgument, "GroupedExperts: negative count ", c);
    total += c;
  }
  if (total != x_sorted.size(0)) {
    Fail(ErrorCode::kInvalidArgument, "GroupedExperts: counts sum to ", total, " but there are ",
         x_sorted.size(0), " rows");
  }
  const bool fused = x_sorted.device().is_cpu() && (x_sorted.scalar_type() == at::kFloat ||
                                                    x_sorted.scalar_type() == at::kDouble);
  if (fused && w1_.scalar_type() == x_sorted.scalar_type()) {
    return GroupedFfnFunction::apply(x_sorted, w1_, b1_, w2_, b2_, counts);
  }
  return ForwardPadded(x_sorted, counts);
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
