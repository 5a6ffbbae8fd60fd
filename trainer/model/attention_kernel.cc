// AttentionCore (attention_kernel.h): forward and backward by per-(sample, head) GEMMs on
// strided head columns, softmax and its backward as one ATen op each over all heads.
#include "trainer/model/attention_kernel.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>

#include "cluster/base/error.h"
#include "experts/cpu_blas.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Shape {
  int64_t b, n, d, heads, dh;
  double scale;
};

Shape ShapeOf(const at::Tensor& qkv, int64_t heads) {
  const int64_t d = qkv.size(2) / 3;
  Shape s{qkv.size(0), qkv.size(1), d, heads, d / heads, 0};
  s.scale = 1.0 / std::sqrt(static_cast<double>(s.dh));
  return s;
}

// Runs f(q_off, k_off, v_off, o_off, w_off): element offsets of head h of sample b in qkv
// (queries, keys, values side by side; row stride 3D), in the [B, N, D] output (row
// stride D) and in a [B, H, N, N] tensor.
template <typename F>
void ForEachHead(const Shape& s, F f) {
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t q_off = b * s.n * 3 * s.d + h * s.dh;
      f(q_off, q_off + s.d, q_off + 2 * s.d, b * s.n * s.d + h * s.dh,
        (b * s.heads + h) * s.n * s.n);
    }
  }
}

// The dropout mask, passed around autograd's tensor inputs: it may be undefined and never
// gets a gradient.
struct WeightMask {
  at::Tensor mask;
};

class AttentionCoreFunction : public torch::autograd::Function<AttentionCoreFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& qkv, int64_t heads,
                            const WeightMask& weight_mask) {
    const at::Tensor& mask = weight_mask.mask;
    const Shape s = ShapeOf(qkv, heads);
    const int64_t ld = 3 * s.d;
    const at::Tensor qkvc = qkv.contiguous();
    at::Tensor scores = at::empty({s.b, s.heads, s.n, s.n}, qkv.options());
    at::Tensor out = at::empty({s.b, s.n, s.d}, qkv.options());
    at::Tensor weights, dropped;
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "AttentionCore", [&] {
      const scalar_t* p = qkvc.data_ptr<scalar_t>();
      scalar_t* sp = scores.data_ptr<scalar_t>();
      ForEachHead(s, [&](int64_t qo, int64_t ko, int64_t, int64_t, int64_t wo) {
        Gemm(false, true, s.n, s.n, s.dh, static_cast<scalar_t>(s.scale), p + qo, ld, p + ko, ld,
             scalar_t(0), sp + wo, s.n);
      });
      weights = at::_softmax(scores, -1, false);
      dropped = mask.defined() ? weights * mask : weights;
      const scalar_t* wp = dropped.data_ptr<scalar_t>();
      scalar_t* op = out.data_ptr<scalar_t>();
      ForEachHead(s, [&](int64_t, int64_t, int64_t vo, int64_t oo, int64_t wo) {
        Gemm(false, false, s.n, s.dh, s.n, scalar_t(1), wp + wo, s.n, p + vo, ld, scalar_t(0),
             op + oo, s.d);
      });
    });
    ctx->save_for_backward({qkvc, weights, dropped, mask});
    ctx->saved_data["heads"] = heads;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &qkv = saved[0], &weights = saved[1], &dropped = saved[2];
    const at::Tensor& mask = saved[3];
    const Shape s = ShapeOf(qkv, ctx->saved_data["heads"].toInt());
    const int64_t ld = 3 * s.d;
    const at::Tensor dout = grads[0].contiguous();
    at::Tensor d_dropped = at::empty_like(weights), dqkv = at::empty_like(qkv);
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "AttentionCoreBackward", [&] {
      const scalar_t *p = qkv.data_ptr<scalar_t>(), *dop = dout.data_ptr<scalar_t>();
      const scalar_t* wp = dropped.data_ptr<scalar_t>();
      scalar_t *ddp = d_dropped.data_ptr<scalar_t>(), *dp = dqkv.data_ptr<scalar_t>();
      ForEachHead(s, [&](int64_t, int64_t, int64_t vo, int64_t oo, int64_t wo) {
        // d(weights after dropout) = dout v^T; dv = (weights after dropout)^T dout.
        Gemm(false, true, s.n, s.n, s.dh, scalar_t(1), dop + oo, s.d, p + vo, ld, scalar_t(0),
             ddp + wo, s.n);
        Gemm(true, false, s.n, s.dh, s.n, scalar_t(1), wp + wo, s.n, dop + oo, s.d, scalar_t(0),
             dp + vo, ld);
      });
      const at::Tensor d_weights = mask.defined() ? d_dropped * mask : d_dropped;
      const at::Tensor d_scores =
          at::_softmax_backward_data(d_weights, weights, -1, weights.scalar_type()).contiguous();
      const scalar_t* dsp = d_scores.data_ptr<scalar_t>();
      const auto scale = static_cast<scalar_t>(s.scale);
      ForEachHead(s, [&](int64_t qo, int64_t ko, int64_t, int64_t, int64_t wo) {
        // dq = d_scores k * scale; dk = d_scores^T q * scale.
        Gemm(false, false, s.n, s.dh, s.n, scale, dsp + wo, s.n, p + ko, ld, scalar_t(0), dp + qo,
             ld);
        Gemm(true, false, s.n, s.dh, s.n, scale, dsp + wo, s.n, p + qo, ld, scalar_t(0), dp + ko,
             ld);
      });
    });
    return {dqkv, at::Tensor(), at::Tensor()};
  }
};

// The same maths as ATen ops (CUDA tensors, half types).
at::Tensor AttentionCoreAten(const at::Tensor& qkv, int64_t heads, const at::Tensor& mask) {
  const Shape s = ShapeOf(qkv, heads);
  at::Tensor parts = qkv.view({s.b, s.n, 3, heads, s.dh}).permute({2, 0, 3, 1, 4});  // [3,B,H,N,dh]
  at::Tensor weights = at::softmax(at::matmul(parts[0], parts[1].transpose(-2, -1)) * s.scale, -1);
  if (mask.defined()) weights = weights * mask;
  return at::matmul(weights, parts[2]).transpose(1, 2).reshape({s.b, s.n, s.d});
}

}  // namespace

at::Tensor AttentionCore(const at::Tensor& qkv, int64_t heads, const at::Tensor& weight_mask) {
  if (qkv.dim() != 3 || heads < 1 || qkv.size(2) % (3 * heads) != 0) {
    Fail(ErrorCode::kInvalidArgument, "AttentionCore: qkv ", qkv.sizes(), ", ", heads,
         " heads (the last dimension must be 3 D with D divisible by the heads)");
  }
  at::Tensor mask;
  if (weight_mask.defined()) {
    if (weight_mask.sizes() != at::IntArrayRef({qkv.size(0), heads, qkv.size(1), qkv.size(1)})) {
      Fail(ErrorCode::kInvalidArgument, "AttentionCore: weight mask ", weight_mask.sizes(),
           " for qkv ", qkv.sizes(), " and ", heads, " heads");
    }
    mask = weight_mask.to(qkv.options()).contiguous();  // device and type of qkv
  }
  const bool fused = qkv.device().is_cpu() &&
                     (qkv.scalar_type() == at::kFloat || qkv.scalar_type() == at::kDouble);
  if (!fused) return AttentionCoreAten(qkv, heads, mask);
  return AttentionCoreFunction::apply(qkv, heads, WeightMask{mask});
}

}  // namespace flexmoe
