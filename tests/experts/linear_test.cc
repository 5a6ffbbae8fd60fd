// FusedLinear against at::linear: outputs and the gradients of input, weight and bias, with
// and without bias, for 2-D and 3-D inputs, in float and double; and its shape checks.
#include "experts/linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

TEST(FusedLinear, MatchesAtLinear) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    for (bool with_bias : {true, false}) {
      for (std::vector<int64_t> shape :
           {std::vector<int64_t>{9, 5}, std::vector<int64_t>{3, 4, 5}}) {
        at::manual_seed(8);
        const at::Tensor x0 = at::randn(shape, type), w0 = at::randn({7, 5}, type);
        const at::Tensor b0 = at::randn({7}, type);
        std::vector<int64_t> out_shape = shape;
        out_shape.back() = 7;
        const at::Tensor upstream = at::randn(out_shape, type);
        auto run = [&](bool fused) {
          at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
          at::Tensor b = with_bias ? b0.clone().requires_grad_() : at::Tensor();
          at::Tensor y = fused ? FusedLinear(x, w, b) : at::linear(x, w, b);
          (y * upstream).sum().backward();
          std::vector<at::Tensor> out = {y.detach(), x.grad(), w.grad()};
          if (with_bias) out.push_back(b.grad());
          return out;
        };
        const auto fused = run(true), reference = run(false);
        const double tol = type == at::kFloat ? 1e-5 : 1e-12;
        ASSERT_EQ(fused.size(), reference.size());
        for (size_t i = 0; i < fused.size(); ++i) {
          EXPECT_EQ(fused[i].sizes(), reference[i].sizes());
          EXPECT_TRUE(at::allclose(fused[i], reference[i], tol, tol)) << "tensor " << i;
        }
      }
    }
  }
}

// training.precision BF16: every product of the forward and the backward takes its operands
// rounded to bf16 (the upstream gradient included) and accumulates in fp32; the bias and
// its gradient stay fp32.
TEST(FusedLinear, Bf16ProductsRoundEveryOperandForwardAndBackward) {
  if (!Bf16GemmAvailable()) GTEST_SKIP() << Bf16GemmUnavailableReason();
  at::manual_seed(9);
  const at::Tensor x0 = at::randn({33, 40}), w0 = at::randn({24, 40}), b0 = at::randn({24});
  const at::Tensor upstream = at::randn({33, 24});
  at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
  at::Tensor b = b0.clone().requires_grad_();
  const at::Tensor y = FusedLinear(x, w, b, GemmPrecision::kBf16);
  (y * upstream).sum().backward();
  const auto r = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kDouble); };
  const auto close = [](const at::Tensor& got, const at::Tensor& want) {
    return at::allclose(got, want.to(at::kFloat), 1e-5, 1e-4);
  };
  EXPECT_TRUE(close(y, at::matmul(r(x0), r(w0).t()) + b0.to(at::kDouble)));
  EXPECT_TRUE(close(x.grad(), at::matmul(r(upstream), r(w0))));
  EXPECT_TRUE(close(w.grad(), at::matmul(r(upstream).t(), r(x0))));
  EXPECT_TRUE(close(b.grad(), upstream.sum(0).to(at::kDouble)));
  // And the fp32 node differs from it by the rounding, no more.
  const at::Tensor y32 = FusedLinear(x0, w0, b0);
  EXPECT_FALSE(at::allclose(y.detach(), y32, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(y.detach(), y32, 0.0, 0.3));
}

TEST(FusedLinear, RejectsMismatchedShapes) {
  EXPECT_THROW(FusedLinear(at::zeros({2, 4}), at::zeros({3, 5}), at::Tensor()), Error);
  EXPECT_THROW(FusedLinear(at::zeros({2, 5}), at::zeros({3, 5}), at::zeros({4})), Error);
}

}  // namespace
}  // namespace flexmoe
