// The fused host attention core against the same maths in plain ATen ops (the reference
// path): outputs and the gradients of q and kv, with and without a dropout mask on the
// weights, in float and double; and its input checks.
#include "trainer/model/attention_kernel.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// softmax(q_h k_h^T / sqrt(dh)) * mask v_h per head, by autograd-tracked ATen ops.
at::Tensor Reference(const at::Tensor& q, const at::Tensor& kv, int64_t heads,
                     const at::Tensor& mask) {
  const int64_t d = q.size(2), dh = d / heads;
  std::vector<at::Tensor> outs;
  for (int64_t h = 0; h < heads; ++h) {
    at::Tensor qh = q.narrow(2, h * dh, dh), kh = kv.narrow(2, h * dh, dh);
    at::Tensor vh = kv.narrow(2, d + h * dh, dh);
    at::Tensor w = at::softmax(at::bmm(qh, kh.transpose(1, 2)) / std::sqrt(double(dh)), -1);
    if (mask.defined()) w = w * mask.select(1, h);
    outs.push_back(at::bmm(w, vh));
  }
  return at::cat(outs, 2);
}

TEST(AttentionCore, MatchesReferenceOpsWithAndWithoutMask) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    for (bool with_mask : {false, true}) {
      at::manual_seed(3);
      const int64_t b = 3, n = 7, d = 12, heads = 3;
      const at::Tensor q0 = at::randn({b, n, d}, type), kv0 = at::randn({b, n, 2 * d}, type);
      const at::Tensor upstream = at::randn({b, n, d}, type);
      at::Tensor mask;
      if (with_mask) mask = (at::rand({b, heads, n, n}) < 0.7).to(type) / 0.7;
      auto run = [&](bool fused) {
        at::Tensor q = q0.clone().requires_grad_(), kv = kv0.clone().requires_grad_();
        at::Tensor out =
            fused ? AttentionCore(at::cat({q, kv}, 2), heads, mask) : Reference(q, kv, heads, mask);
        (out * upstream).sum().backward();
        return std::vector<at::Tensor>{out.detach(), q.grad(), kv.grad()};
      };
      const auto fused = run(true), reference = run(false);
      const double tol = type == at::kFloat ? 1e-5 : 1e-12;
      for (size_t i = 0; i < fused.size(); ++i) {
        EXPECT_TRUE(at::allclose(fused[i], reference[i], tol, tol))
            << "tensor " << i << " mask " << with_mask << " " << type;
      }
    }
  }
}

TEST(AttentionCore, RejectsBadShapes) {
  const at::Tensor qkv = at::zeros({2, 5, 24});                                // D = 8
  EXPECT_THROW(AttentionCore(qkv, 3, at::Tensor()), Error);                    // 8 % 3 != 0
  EXPECT_THROW(AttentionCore(at::zeros({2, 5, 16}), 2, at::Tensor()), Error);  // not 3 D
  EXPECT_THROW(AttentionCore(qkv, 2, at::ones({2, 2, 5, 4})), Error);          // mask shape
  EXPECT_EQ(AttentionCore(qkv, 2, at::Tensor()).sizes(), (std::vector<int64_t>{2, 5, 8}));
}

}  // namespace
}  // namespace flexmoe
