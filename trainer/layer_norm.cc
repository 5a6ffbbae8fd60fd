// FusedLayerNorm (layer_norm.h): per-row statistics and normalisation forward; the standard
// LayerNorm backward with the weight and bias gradients summed over rows.
#include "trainer/layer_norm.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LayerNormFunction : public torch::autograd::Function<LayerNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, double eps) {
    const at::Tensor xc = x.contiguous(), w = weight.contiguous(), b = bias.contiguous();
    const int64_t d = x.size(-1), rows = x.numel() / d;
    at::Tensor y = at::empty_like(xc), xhat = at::empty_like(xc);
    at::Tensor rstd = at::empty({rows}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedLayerNorm", [&] {
      const scalar_t *xp = xc.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>();
      const scalar_t* bp = b.data_ptr<scalar_t>();
      scalar_t *yp = y.data_ptr<scalar_t>(), *hp = xhat.data_ptr<scalar_t>();
      scalar_t* rp = rstd.data_ptr<scalar_t>();
      for (int64_t r = 0; r < rows; ++r) {
        const scalar_t* xr = xp + r * d;
        scalar_t sum = 0;
        for (int64_t i = 0; i < d; ++i) sum += xr[i];
        const scalar_t mean = sum / static_cast<scalar_t>(d);
        scalar_t ss = 0;
        for (int64_t i = 0; i < d; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
        const scalar_t inv = scalar_t(1) / std::sqrt(ss / static_cast<scalar_t>(d) + scalar_t(eps));
        rp[r] = inv;
        scalar_t *hr = hp + r * d, *yr = yp + r * d;
        for (int64_t i = 0; i < d; ++i) {
          hr[i] = (xr[i] - mean) * inv;
          yr[i] = hr[i] * wp[i] + bp[i];
        }
      }
    });
    ctx->save_for_backward({xhat, rstd, w});
    return y;
  }

  // dxhat = dy w; dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)); dw = sum dy xhat;
  // db = sum dy.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &xhat = saved[0], &rstd = saved[1], &w = saved[2];
    const at::Tensor dy = grads[0].contiguous();
    const int64_t d = xhat.size(-1), rows = xhat.numel() / d;
    at::Tensor dx = at::empty_like(xhat), dw = at::zeros_like(w), db = at::zeros_like(w);
    AT_DISPATCH_FLOATING_TYPES(xhat.scalar_type(), "FusedLayerNormBackward", [&] {
      const scalar_t *hp = xhat.data_ptr<scalar_t>(), *rp = rstd.data_ptr<scalar_t>();
      const scalar_t *wp = w.data_ptr<scalar_t>(), *gp = dy.data_ptr<scalar_t>();
      scalar_t *dxp = dx.data_ptr<scalar_t>(), *dwp = dw.data_ptr<scalar_t>();
      scalar_t* dbp = db.data_ptr<scalar_t>();
      for (int64_t r = 0; r < rows; ++r) {
        const scalar_t *hr = hp + r * d, *gr = gp + r * d;
        scalar_t mean_g = 0, mean_gh = 0;
        for (int64_t i = 0; i < d; ++i) {
          const scalar_t g = gr[i] * wp[i];
          mean_g += g;
          mean_gh += g * hr[i];
          dwp[i] += gr[i] * hr[i];
          dbp[i] += gr[i];
        }
        mean_g /= static_cast<scalar_t>(d);
        mean_gh /= static_cast<scalar_t>(d);
        scalar_t* dr = dxp + r * d;
        for (int64_t i = 0; i < d; ++i) {
          dr[i] = rp[r] * (gr[i] * wp[i] - mean_g - hr[i] * mean_gh);
        }
      }
    });
    return {dx, dw, db, at::Tensor()};
  }
};

}  // namespace

at::Tensor FusedLayerNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          double eps) {
  const bool host = x.device().is_cpu() && weight.defined() && bias.defined() &&
                    (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
                    weight.scalar_type() == x.scalar_type() &&
                    bias.scalar_type() == x.scalar_type();
  if (!host || x.dim() < 1) return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
  if (weight.numel() != x.size(-1) || bias.numel() != x.size(-1)) {
    Fail(ErrorCode::kInvalidArgument, "FusedLayerNorm: input ", x.sizes(), ", weight ",
         weight.sizes(), ", bias ", bias.sizes());
  }
  return LayerNormFunction::apply(x, weight, bias, eps);
}

}  // namespace flexmoe
