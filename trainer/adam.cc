// The fused Adam update (adam.h).
#include "trainer/adam.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <cmath>

namespace flexmoe {

FusedAdam::FusedAdam(std::vector<at::Tensor> parameters, AdamOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  for (const at::Tensor& p : parameters_) {
    CHECK(p.is_contiguous() && p.scalar_type() == at::kFloat && p.device().is_cpu())
        << "FusedAdam needs contiguous float32 CPU parameters";
    exp_avg_.push_back(at::zeros_like(p));
    exp_avg_sq_.push_back(at::zeros_like(p));
  }
}

void FusedAdam::ZeroGrad() {
  for (at::Tensor& p : parameters_) p.mutable_grad() = at::Tensor();
}

void FusedAdam::Step() {
  ++steps_;
  const double bias1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  const float step_size = static_cast<float>(options_.lr / bias1);
  const float inv_bias2_sqrt = static_cast<float>(1.0 / std::sqrt(bias2));
  const float b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
  const float c1 = 1.0f - b1, c2 = 1.0f - b2, eps = static_cast<float>(options_.eps);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    at::Tensor grad = parameters_[i].grad();
    if (!grad.defined()) continue;
    grad = grad.contiguous();
    float* __restrict p = parameters_[i].data_ptr<float>();
    const float* __restrict g = grad.data_ptr<float>();
    float* __restrict m = exp_avg_[i].data_ptr<float>();
    float* __restrict v = exp_avg_sq_[i].data_ptr<float>();
    const int64_t n = parameters_[i].numel();
    for (int64_t j = 0; j < n; ++j) {
      float mj = b1 * m[j] + c1 * g[j];
      float vj = b2 * v[j] + c2 * g[j] * g[j];
      m[j] = mj;
      v[j] = vj;
      p[j] -= step_size * mj / (std::sqrt(vj) * inv_bias2_sqrt + eps);
    }
  }
}

}  // namespace flexmoe
