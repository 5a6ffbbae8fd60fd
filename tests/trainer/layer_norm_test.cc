// FusedLayerNorm against at::layer_norm: output and the gradients of input, weight and
// bias, in float and double, for 2-D and 3-D inputs; and its shape check.
#include "trainer/layer_norm.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

TEST(FusedLayerNorm, MatchesAtLayerNorm) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    for (std::vector<int64_t> shape :
         {std::vector<int64_t>{7, 12}, std::vector<int64_t>{3, 5, 12}}) {
      at::manual_seed(19);
      const at::Tensor x0 = at::randn(shape, type) * 2 + 0.5, w0 = at::randn({12}, type);
      const at::Tensor b0 = at::randn({12}, type), upstream = at::randn(shape, type);
      auto run = [&](bool fused) {
        at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
        at::Tensor b = b0.clone().requires_grad_();
        at::Tensor y = fused ? FusedLayerNorm(x, w, b, 1e-5) : at::layer_norm(x, {12}, w, b, 1e-5);
        (y * upstream).sum().backward();
        return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
      };
      const auto fused = run(true), reference = run(false);
      const double tol = type == at::kFloat ? 1e-5 : 1e-12;
      for (size_t i = 0; i < fused.size(); ++i) {
        EXPECT_TRUE(at::allclose(fused[i], reference[i], tol, tol)) << "tensor " << i;
      }
    }
  }
}

TEST(FusedLayerNorm, RejectsMismatchedAffineParameters) {
  EXPECT_THROW(FusedLayerNorm(at::zeros({2, 4}), at::ones({3}), at::zeros({4}), 1e-5), Error);
}

}  // namespace
}  // namespace flexmoe
