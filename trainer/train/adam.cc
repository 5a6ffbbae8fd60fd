// The fused Adam update (adam.h).
#include "trainer/train/adam.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <cmath>

namespace flexmoe {
namespace {

struct AdamCoefficients {
  float b1, c1, b2, c2, step_size, inv_bias2_sqrt, eps, decay;
};

// One parameter tensor's update, in one pass. Cloned for AVX-512 and AVX2 (picked at load
// time): sqrt and division dominate, and wider vectors do more of them per cycle. The file is
// built with -ffp-contract=off, so every clone rounds exactly like the baseline one.
__attribute__((target_clones("avx512f", "avx2", "default"))) void AdamUpdate(
    const AdamCoefficients& k, int64_t n, float* __restrict p, const float* __restrict g,
    float* __restrict m, float* __restrict v) {
  for (int64_t j = 0; j < n; ++j) {
    float mj = k.b1 * m[j] + k.c1 * g[j];
    float vj = k.b2 * v[j] + k.c2 * g[j] * g[j];
    m[j] = mj;
    v[j] = vj;
    // decay is exactly 1 without weight decay: the product leaves p unchanged.
    p[j] = p[j] * k.decay - k.step_size * mj / (std::sqrt(vj) * k.inv_bias2_sqrt + k.eps);
  }
}

// The same update from ATen ops, for parameters on a device (CUDA) and, with
// AdamOptions::tensor_ops, on the host (the tests compare the two): five kernels per tensor.
void AdamUpdateTensorOps(const AdamCoefficients& k, at::Tensor& p, const at::Tensor& g,
                         at::Tensor& m, at::Tensor& v) {
  at::NoGradGuard no_grad;  // parameters are leaves that require gradients
  m.mul_(k.b1).add_(g, k.c1);
  v.mul_(k.b2).addcmul_(g, g, k.c2);
  if (k.decay != 1.0f) p.mul_(k.decay);
  p.addcdiv_(m, v.sqrt().mul_(k.inv_bias2_sqrt).add_(k.eps), -k.step_size);
}

}  // namespace

FusedAdam::FusedAdam(std::vector<at::Tensor> parameters, AdamOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  for (const at::Tensor& p : parameters_) {
    CHECK(p.is_contiguous() && p.scalar_type() == at::kFloat)
        << "FusedAdam needs contiguous float32 parameters";
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
  const float b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
  const AdamCoefficients k{b1,
                           1.0f - b1,
                           b2,
                           1.0f - b2,
                           static_cast<float>(options_.lr / bias1),
                           static_cast<float>(1.0 / std::sqrt(bias2)),
                           static_cast<float>(options_.eps),
                           static_cast<float>(1.0 - options_.lr * options_.weight_decay)};
  for (size_t i = 0; i < parameters_.size(); ++i) {
    at::Tensor grad = parameters_[i].grad();
    if (!grad.defined()) continue;
    grad = grad.contiguous();
    if (options_.tensor_ops || !parameters_[i].device().is_cpu()) {
      AdamUpdateTensorOps(k, parameters_[i], grad, exp_avg_[i], exp_avg_sq_[i]);
      continue;
    }
    AdamUpdate(k, parameters_[i].numel(), parameters_[i].data_ptr<float>(), grad.data_ptr<float>(),
               exp_avg_[i].data_ptr<float>(), exp_avg_sq_[i].data_ptr<float>());
  }
}

}  // namespace flexmoe
