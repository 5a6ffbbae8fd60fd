// FillMissing's fused host node against the same selection written with ATen ops: the
// output and the gradients of the encoder outputs, the bank and the position embedding.
#include "trainer/model/fill_missing.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

TEST(FillMissing, MatchesAtenSelection) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    at::manual_seed(13);
    const int64_t b = 5, m = 3, p = 2, d = 4, c = 7;
    const at::Tensor enc0 = at::randn({b, m, p, d}, type), bank0 = at::randn({c, m, p, d}, type);
    const at::Tensor pos0 = at::randn({1, m * p, d}, type);
    const at::Tensor comb = at::tensor(std::vector<int64_t>{0, 3, 6, 3, 1}, at::kLong);
    const at::Tensor observed = at::rand({b, m}) < 0.5;
    const at::Tensor upstream = at::randn({b, m * p, d}, type);
    auto run = [&](bool fused) {
      at::Tensor enc = enc0.clone().requires_grad_(), bank = bank0.clone().requires_grad_();
      at::Tensor pos = pos0.clone().requires_grad_();
      at::Tensor x;
      if (fused) {
        x = FillMissing(enc, bank, pos, comb, observed);
      } else {
        at::Tensor fill = bank.index_select(0, comb);
        x = at::where(observed.view({b, m, 1, 1}), enc, fill).reshape({b, m * p, d}) + pos;
      }
      (x * upstream).sum().backward();
      return std::vector<at::Tensor>{x.detach(), enc.grad(), bank.grad(), pos.grad()};
    };
    const auto fused = run(true), reference = run(false);
    for (size_t i = 0; i < fused.size(); ++i) {
      EXPECT_TRUE(at::allclose(fused[i], reference[i], 1e-6, 1e-6)) << "tensor " << i;
    }
    // Bank rows of combinations no sample has get no gradient.
    EXPECT_EQ(fused[2].select(0, 2).abs().max().item<double>(), 0.0);
  }
}

TEST(FillMissing, RejectsBadShapesAndCombinations) {
  const at::Tensor enc = at::zeros({2, 3, 2, 4}), bank = at::zeros({5, 3, 2, 4});
  const at::Tensor pos = at::zeros({1, 6, 4}), observed = at::ones({2, 3}, at::kBool);
  EXPECT_THROW(FillMissing(enc, bank, pos, at::tensor(std::vector<int64_t>{0, 5}), observed),
               Error);
  EXPECT_THROW(FillMissing(enc, bank, at::zeros({1, 5, 4}), at::zeros({2}, at::kLong), observed),
               Error);
  EXPECT_EQ(FillMissing(enc, bank, pos, at::zeros({2}, at::kLong), observed).sizes(),
            (std::vector<int64_t>{2, 6, 4}));
}

}  // namespace
}  // namespace flexmoe
