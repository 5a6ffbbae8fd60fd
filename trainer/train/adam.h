// Adam (Kingma & Ba, PyTorch's update rule, no AMSGrad; optionally AdamW's decoupled weight
// decay). Host parameters: fused into one pass over each parameter's memory, instead of
// LibTorch's five tensor ops per parameter. Device (CUDA) parameters: those tensor ops, on
// the device, with the moments beside the parameters.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace flexmoe {

struct AdamOptions {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // Decoupled weight decay (AdamW, Loshchilov & Hutter; PyTorch's torch.optim.AdamW): each
  // step first multiplies every parameter by 1 - lr * weight_decay. 0: plain Adam.
  double weight_decay = 0;
  // Host parameters too take the tensor-op path that device parameters take (the tests
  // compare the two paths on the host).
  bool tensor_ops = false;
};

// Not thread-safe. Parameters must be contiguous float32 tensors (host or device).
class FusedAdam {
 public:
  FusedAdam(std::vector<at::Tensor> parameters, AdamOptions options);

  // Drops the gradients, so that the next backward writes fresh ones without an add.
  void ZeroGrad();
  // One update of every parameter that has a gradient:
  //   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p *= 1 - lr * weight_decay;
  //   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  void Step();

  int64_t steps() const { return steps_; }
  std::vector<at::Tensor>& exp_avg() { return exp_avg_; }
  std::vector<at::Tensor>& exp_avg_sq() { return exp_avg_sq_; }
  const std::vector<at::Tensor>& parameters() const { return parameters_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // The learning rate of the next steps (training.lr_schedule).
  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }

 private:
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  AdamOptions options_;
  int64_t steps_ = 0;
};

}  // namespace flexmoe
