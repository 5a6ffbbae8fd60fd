// FusedLinear (linear.h): forward and backward by row-major GEMMs, the bias folded into the
// output rows before the forward GEMM and summed over rows in the backward.
#include "experts/linear.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include "cluster/base/error.h"
#include "experts/cpu_blas.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y [rows, out] = x [rows, in] W^T (+ bias in every row).
at::Tensor LinearForward(const at::Tensor& x, const at::Tensor& w, const at::Tensor* bias,
                         GemmPrecision precision) {
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  at::Tensor y = at::empty({rows, out}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedLinear", [&] {
    scalar_t* yp = y.data_ptr<scalar_t>();
    scalar_t beta = 0;
    if (bias != nullptr) {
      FillRows(bias->data_ptr<scalar_t>(), rows, out, yp);
      beta = 1;
    }
    Gemm(precision, false, true, rows, out, in, scalar_t(1), x.data_ptr<scalar_t>(), in,
         w.data_ptr<scalar_t>(), in, beta, yp, out);
  });
  return y;
}

// dx = dy W (when wanted), dW = dy^T x, db = column sums of dy (when wanted).
void LinearBackward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w, bool want_dx,
                    bool want_db, GemmPrecision precision, at::Tensor* dx, at::Tensor* dw,
                    at::Tensor* db) {
  const int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  *dw = at::empty_like(w);
  if (want_dx) *dx = at::empty_like(x);
  if (want_db) *db = at::empty({out}, w.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedLinearBackward", [&] {
    const scalar_t* g = dy.data_ptr<scalar_t>();
    if (want_dx) {
      Gemm(precision, false, false, rows, in, out, scalar_t(1), g, out, w.data_ptr<scalar_t>(), in,
           scalar_t(0), dx->data_ptr<scalar_t>(), in);
    }
    Gemm(precision, true, false, out, in, rows, scalar_t(1), g, out, x.data_ptr<scalar_t>(), in,
         scalar_t(0), dw->data_ptr<scalar_t>(), in);
    if (want_db) ColumnSums(g, rows, out, db->data_ptr<scalar_t>());
  });
}

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, bool bf16) {
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
    ctx->save_for_backward({xc, wc});
    ctx->saved_data["bf16"] = bf16;
    return LinearForward(xc, wc, &bc, PrecisionOf(bf16));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    at::Tensor dx, dw, db;
    LinearBackward(grads[0].contiguous(), saved[0], saved[1], ctx->needs_input_grad(0), true,
                   PrecisionOf(ctx->saved_data["bf16"].toBool()), &dx, &dw, &db);
    return {dx, dw, db, at::Tensor()};
  }
};

class LinearNoBiasFunction : public torch::autograd::Function<LinearNoBiasFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            bool bf16) {
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    ctx->save_for_backward({xc, wc});
    ctx->saved_data["bf16"] = bf16;
    return LinearForward(xc, wc, nullptr, PrecisionOf(bf16));
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    at::Tensor dx, dw, db;
    LinearBackward(grads[0].contiguous(), saved[0], saved[1], ctx->needs_input_grad(0), false,
                   PrecisionOf(ctx->saved_data["bf16"].toBool()), &dx, &dw, &db);
    return {dx, dw, at::Tensor()};
  }
};

}  // namespace

at::Tensor FusedLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                       GemmPrecision precision) {
  const bool host = x.device().is_cpu() && weight.device().is_cpu() &&
                    (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
                    weight.scalar_type() == x.scalar_type() &&
                    (!bias.defined() || bias.scalar_type() == x.scalar_type());
  if (!host || x.dim() < 1 || weight.dim() != 2) return at::linear(x, weight, bias);
  if (x.size(-1) != weight.size(1) || (bias.defined() && bias.numel() != weight.size(0))) {
    Fail(ErrorCode::kInvalidArgument, "FusedLinear: input ", x.sizes(), ", weight ", weight.sizes(),
         ", bias ", bias.defined() ? bias.sizes() : at::IntArrayRef{});
  }
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = weight.size(0);
  const at::Tensor rows = x.reshape({-1, x.size(-1)});
  const bool bf16 = precision == GemmPrecision::kBf16;
  const at::Tensor y = bias.defined() ? LinearFunction::apply(rows, weight, bias, bf16)
                                      : LinearNoBiasFunction::apply(rows, weight, bf16);
  return y.view(out_shape);
}

}  // namespace flexmoe
