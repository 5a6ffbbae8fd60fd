// FusedAdam against LibTorch's Adam: the same parameters after several steps.
#include "trainer/train/adam.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

namespace flexmoe {
namespace {

// 25 steps of both optimizers on the same squared-error losses (`a` under `fused`, its
// copy `b` under `reference`); the parameters agree after every step.
void StepBoth(FusedAdam& fused, torch::optim::Optimizer& reference, const at::Tensor& a,
              const at::Tensor& b) {
  for (int step = 0; step < 25; ++step) {
    at::Tensor target = at::randn(a.sizes());
    fused.ZeroGrad();
    ((a - target).pow(2).sum()).backward();
    fused.Step();
    reference.zero_grad();
    ((b - target).pow(2).sum()).backward();
    reference.step();
    ASSERT_TRUE(at::allclose(a, b, 1e-5, 1e-6)) << "step " << step;
  }
}

TEST(FusedAdamTest, MatchesLibTorchAdam) {
  torch::manual_seed(0);
  at::Tensor a = at::randn({37, 5}).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);
  at::Tensor unused = at::randn({3}).requires_grad_(true);  // never gets a gradient
  at::Tensor unused_before = unused.detach().clone();
  FusedAdam fused({a, unused}, AdamOptions{1e-2});
  torch::optim::Adam reference({b}, torch::optim::AdamOptions(1e-2));
  StepBoth(fused, reference, a, b);
  EXPECT_EQ(fused.steps(), 25);
  EXPECT_TRUE(at::equal(unused, unused_before));
}

TEST(FusedAdamTest, WeightDecayMatchesLibTorchAdamW) {
  torch::manual_seed(1);
  at::Tensor a = at::randn({19, 7}).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);
  AdamOptions options{1e-2};
  options.weight_decay = 0.1;
  FusedAdam fused({a}, options);
  torch::optim::AdamW reference({b}, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  StepBoth(fused, reference, a, b);
}

// The tensor-op path (the one CUDA parameters take) against LibTorch's AdamW, and against
// the fused host loop: the same parameters after every step.
TEST(FusedAdamTest, TensorOpPathMatchesFusedLoopAndLibTorch) {
  torch::manual_seed(2);
  at::Tensor a = at::randn({23, 9}).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);
  at::Tensor c = a.detach().clone().requires_grad_(true);
  AdamOptions options{1e-2};
  options.weight_decay = 0.05;
  options.tensor_ops = true;
  FusedAdam ops({a}, options);
  options.tensor_ops = false;
  FusedAdam fused({c}, options);
  torch::optim::AdamW reference({b}, torch::optim::AdamWOptions(1e-2).weight_decay(0.05));
  for (int step = 0; step < 25; ++step) {
    at::Tensor target = at::randn(a.sizes());
    for (FusedAdam* adam : {&ops, &fused}) adam->ZeroGrad();
    ((a - target).pow(2).sum()).backward();
    ((c - target).pow(2).sum()).backward();
    ops.Step();
    fused.Step();
    reference.zero_grad();
    ((b - target).pow(2).sum()).backward();
    reference.step();
    ASSERT_TRUE(at::allclose(a, b, 1e-5, 1e-6)) << "step " << step;
    ASSERT_TRUE(at::allclose(a, c, 1e-6, 1e-7)) << "step " << step;
    ASSERT_TRUE(at::allclose(ops.exp_avg_sq()[0], fused.exp_avg_sq()[0], 1e-6, 1e-9));
  }
}

}  // namespace
}  // namespace flexmoe
