// The CUDA paths against the host paths, on a CUDA device (ctest label "gpu"; every test
// skips without one, and bench/gpu_check.sh counts a skip as a failure): the device-side
// dispatch plan, the padded batched-GEMM experts, the expert-parallel layer's forward and
// backward, and Adam's tensor-op update (the whole model: gpu_check.sh's quickstart runs).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <vector>

#include "experts/dispatcher.h"
#include "experts/expert_parallel.h"
#include "experts/grouped_experts.h"
#include "trainer/train/adam.h"

namespace flexmoe {
namespace {

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only LibTorch)";
  }
  const at::Device cuda_{at::kCUDA, 0};
};

TEST_F(CudaTest, DevicePlanEqualsHostPlan) {
  at::manual_seed(3);
  const at::Tensor top = at::randint(0, 16, {4096, 4}, at::kLong);
  const DispatchPlan host = MakeDispatchPlan(top, 16);
  const DispatchPlan device = MakeDispatchPlan(top.to(cuda_), 16);
  EXPECT_TRUE(device.sorted_order.is_cuda());
  EXPECT_TRUE(at::equal(host.sorted_order, device.sorted_order.cpu()));
  EXPECT_TRUE(at::equal(host.inverse_order, device.inverse_order.cpu()));
  EXPECT_TRUE(at::equal(host.token_of_row, device.token_of_row.cpu()));
  EXPECT_EQ(host.counts, device.counts);
  EXPECT_THROW(MakeDispatchPlan(at::full({2, 2}, 16, at::kLong).to(cuda_), 16), std::exception);
}

TEST_F(CudaTest, PaddedExpertsOnTheDeviceMatchTheHost) {
  at::manual_seed(4);
  GroupedExperts host(GroupedExpertsOptions{32, 8, {}, 5});
  GroupedExperts device(GroupedExpertsOptions{32, 8, {}, 5});
  device->to(cuda_);
  const std::vector<int64_t> counts = {40, 0, 3, 17, 1, 0, 64, 5};
  const at::Tensor x = at::randn({130, 32}), w = at::randn({130, 32});
  const at::Tensor xh = x.clone().requires_grad_(), xd = x.to(cuda_).requires_grad_();
  const at::Tensor yh = host->ForwardPerExpert(xh, counts), yd = device->Forward(xd, counts);
  (yh * w).sum().backward();
  (yd * w.to(cuda_)).sum().backward();
  EXPECT_TRUE(at::allclose(yh, yd.cpu(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(xh.grad(), xd.grad().cpu(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(host->w1().grad(), device->w1().grad().cpu(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(host->b2().grad(), device->b2().grad().cpu(), 1e-4, 1e-5));
}

TEST_F(CudaTest, ExpertParallelLayerOnTheDeviceMatchesTheHost) {
  at::manual_seed(5);
  auto make = [] {
    return ExpertParallelMoe(
        ExpertParallelMoeOptions{32, 16, 4, 7, ExpertPlacement::Balanced(16, 1), 0});
  };
  ExpertParallelMoe host = make(), device = make();
  device->to(cuda_);
  const at::Tensor x = at::randn({512, 32}), noise = at::randn({512, 16});
  const at::Tensor comb = at::randint(0, 15, {512}, at::kLong);
  const at::Tensor xh = x.clone().requires_grad_(), xd = x.to(cuda_).requires_grad_();
  MoeOutput oh = host->Forward(xh, noise, comb, at::Tensor(), 1, true, nullptr, nullptr);
  MoeOutput od =
      device->Forward(xd, noise.to(cuda_), comb.to(cuda_), at::Tensor(), 1, true, nullptr, nullptr);
  EXPECT_EQ(oh.expert_counts, od.expert_counts);
  EXPECT_TRUE(at::allclose(oh.output, od.output.cpu(), 1e-4, 1e-5));
  EXPECT_NEAR(oh.aux_loss.item<double>(), od.aux_loss.item<double>(), 1e-4);
  (oh.output.sum() + oh.aux_loss).backward();
  (od.output.sum() + od.aux_loss).backward();
  EXPECT_TRUE(at::allclose(xh.grad(), xd.grad().cpu(), 1e-4, 1e-5));
}

TEST_F(CudaTest, AdamOnTheDeviceMatchesTheFusedHostLoop) {
  at::manual_seed(6);
  at::Tensor a = at::randn({33, 7}).requires_grad_(true);
  at::Tensor b = a.detach().to(cuda_).requires_grad_(true);
  AdamOptions options{1e-2};
  options.weight_decay = 0.01;
  FusedAdam host({a}, options), device({b}, options);
  for (int step = 0; step < 10; ++step) {
    const at::Tensor target = at::randn(a.sizes());
    host.ZeroGrad();
    device.ZeroGrad();
    ((a - target).pow(2).sum()).backward();
    ((b - target.to(cuda_)).pow(2).sum()).backward();
    host.Step();
    device.Step();
    ASSERT_TRUE(at::allclose(a, b.cpu(), 1e-5, 1e-6)) << "step " << step;
  }
  EXPECT_TRUE(device.exp_avg()[0].is_cuda());
}

}  // namespace
}  // namespace flexmoe
