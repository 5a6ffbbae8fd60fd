// AttentionCore (attention_kernel.h): forward and backward by per-(sample, head) GEMMs on
// strided head columns, softmax and its backward as one ATen op each over all heads.
#include "trainer/attention_kernel.h"

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

Shape ShapeOf(const at::Tensor& q, int64_t heads) {
  Shape s{q.size(0), q.size(1), q.size(2), heads, q.size(2) / heads, 0};
  s.scale = 1.0 / std::sqrt(static_cast<double>(s.dh));
  return s;
}

// Runs f(b, h, q_off, k_off, v_off, w_off): element offsets of head h of sample b in q
// (row stride D), in kv (keys and values, row stride 2D) and in a [B, H, N, N] tensor.
template <typename F>
void ForEachHead(const Shape& s, F f) {
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t h = 0; h < s.heads; ++h) {
      const int64_t q_off = b * s.n * s.d + h * s.dh;
      const int64_t k_off = b * s.n * 2 * s.d + h * s.dh;
      f(q_off, k_off, k_off + s.d, (b * s.heads + h) * s.n * s.n);
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
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& kv,
                            int64_t heads, const WeightMask& weight_mask) {
    const at::Tensor& mask = weight_mask.mask;
    const Shape s = ShapeOf(q, heads);
    const at::Tensor qc = q.contiguous(), kvc = kv.contiguous();
    at::Tensor scores = at::empty({s.b, s.heads, s.n, s.n}, q.options());
    at::Tensor out = at::empty({s.b, s.n, s.d}, q.options());
    at::Tensor weights, dropped;
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "AttentionCore", [&] {
      const scalar_t *qp = qc.data_ptr<scalar_t>(), *kvp = kvc.data_ptr<scalar_t>();
      scalar_t* sp = scores.data_ptr<scalar_t>();
      ForEachHead(s, [&](int64_t qo, int64_t ko, int64_t, int64_t wo) {
        Gemm(false, true, s.n, s.n, s.dh, static_cast<scalar_t>(s.scale), qp + qo, s.d, kvp + ko,
             2 * s.d, scalar_t(0), sp + wo, s.n);
      });
      weights = at::_softmax(scores, -1, false);
      dropped = mask.defined() ? weights * mask : weights;
      const scalar_t* wp = dropped.data_ptr<scalar_t>();
      scalar_t* op = out.data_ptr<scalar_t>();
      ForEachHead(s, [&](int64_t qo, int64_t, int64_t vo, int64_t wo) {
        Gemm(false, false, s.n, s.dh, s.n, scalar_t(1), wp + wo, s.n, kvp + vo, 2 * s.d,
             scalar_t(0), op + qo, s.d);
      });
    });
    ctx->save_for_backward({qc, kvc, weights, dropped, mask});
    ctx->saved_data["heads"] = heads;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &kv = saved[1], &weights = saved[2], &dropped = saved[3];
    const at::Tensor& mask = saved[4];
    const Shape s = ShapeOf(q, ctx->saved_data["heads"].toInt());
    const at::Tensor dout = grads[0].contiguous();
    at::Tensor d_dropped = at::empty_like(weights);
    at::Tensor dq = at::empty_like(q), dkv = at::empty_like(kv);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "AttentionCoreBackward", [&] {
      const scalar_t *qp = q.data_ptr<scalar_t>(), *kvp = kv.data_ptr<scalar_t>();
      const scalar_t *dop = dout.data_ptr<scalar_t>(), *wp = dropped.data_ptr<scalar_t>();
      scalar_t *ddp = d_dropped.data_ptr<scalar_t>(), *dkvp = dkv.data_ptr<scalar_t>();
      ForEachHead(s, [&](int64_t qo, int64_t, int64_t vo, int64_t wo) {
        // d(weights after dropout) = dout v^T; dv = (weights after dropout)^T dout.
        Gemm(false, true, s.n, s.n, s.dh, scalar_t(1), dop + qo, s.d, kvp + vo, 2 * s.d,
             scalar_t(0), ddp + wo, s.n);
        Gemm(true, false, s.n, s.dh, s.n, scalar_t(1), wp + wo, s.n, dop + qo, s.d, scalar_t(0),
             dkvp + vo, 2 * s.d);
      });
      const at::Tensor d_weights = mask.defined() ? d_dropped * mask : d_dropped;
      const at::Tensor d_scores =
          at::_softmax_backward_data(d_weights, weights, -1, weights.scalar_type()).contiguous();
      const scalar_t* dsp = d_scores.data_ptr<scalar_t>();
      scalar_t* dqp = dq.data_ptr<scalar_t>();
      const auto scale = static_cast<scalar_t>(s.scale);
      ForEachHead(s, [&](int64_t qo, int64_t ko, int64_t, int64_t wo) {
        // dq = d_scores k * scale; dk = d_scores^T q * scale.
        Gemm(false, false, s.n, s.dh, s.n, scale, dsp + wo, s.n, kvp + ko, 2 * s.d, scalar_t(0),
             dqp + qo, s.d);
        Gemm(true, false, s.n, s.dh, s.n, scale, dsp + wo, s.n, qp + qo, s.d, scalar_t(0),
             dkvp + ko, 2 * s.d);
      });
    });
    return {dq, dkv, at::Tensor(), at::Tensor()};
  }
};

// The same maths as ATen ops (CUDA tensors, half types).
at::Tensor AttentionCoreAten(const at::Tensor& q, const at::Tensor& kv, int64_t heads,
                             const at::Tensor& mask) {
  const Shape s = ShapeOf(q, heads);
  at::Tensor qh = q.view({s.b, s.n, heads, s.dh}).transpose(1, 2);  // [B,H,N,dh]
  at::Tensor kvh = kv.view({s.b, s.n, 2, heads, s.dh}).permute({2, 0, 3, 1, 4});
  at::Tensor weights = at::softmax(at::matmul(qh, kvh[0].transpose(-2, -1)) * s.scale, -1);
  if (mask.defined()) weights = weights * mask;
  return at::matmul(weights, kvh[1]).transpose(1, 2).reshape({s.b, s.n, s.d});
}

}  // namespace

at::Tensor AttentionCore(const at::Tensor& q, const at::Tensor& kv, int64_t heads,
                         const at::Tensor& weight_mask) {
  if (q.dim() != 3 || heads < 1 || q.size(2) % heads != 0 || kv.dim() != 3 ||
      kv.size(0) != q.size(0) || kv.size(1) != q.size(1) || kv.size(2) != 2 * q.size(2)) {
    Fail(ErrorCode::kInvalidArgument, "AttentionCore: q ", q.sizes(), ", kv ", kv.sizes(), ", ",
         heads, " heads");
  }
  at::Tensor mask;
  if (weight_mask.defined()) {
    if (weight_mask.sizes() != at::IntArrayRef({q.size(0), heads, q.size(1), q.size(1)})) {
      Fail(ErrorCode::kInvalidArgument, "AttentionCore: weight mask ", weight_mask.sizes(),
           " for q ", q.sizes(), " and ", heads, " heads");
    }
    mask = weight_mask.to(q.scalar_type()).contiguous();
  }
  const bool fused = q.device().is_cpu() && kv.device() == q.device() &&
                     kv.scalar_type() == q.scalar_type() &&
                     (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble);
  if (!fused) return AttentionCoreAten(q, kv, heads, mask);
  return AttentionCoreFunction::apply(q, kv, heads, WeightMask{mask});
}

}  // namespace flexmoe
