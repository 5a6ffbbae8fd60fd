// Tests of the noisy top-k router and its loss against scalar C++ arithmetic written from
// REFERENCE.md 1.5, hand-worked values and a Monte Carlo estimate of the smooth load.
#include "experts/router_loss.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cluster/base/error.h"
#include "experts/router.h"

namespace flexmoe {
namespace {

using Matrix = std::vector<std::vector<double>>;

double Phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

double Cv2(const std::vector<double>& v) {
  if (v.size() <= 1) return 0.0;
  const double n = static_cast<double>(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double ss = 0.0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return ss / (n - 1.0) / (mean * mean + 1e-10);
}

// Experts of one row ordered by descending value.
std::vector<int> Ranking(const std::vector<double>& row) {
  std::vector<int> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
  return order;
}

// The authors' loss for one gate call, case by case as REFERENCE.md 1.5 states it.
double ReferenceLoss(const Matrix& clean, const Matrix& sigma, const Matrix& noisy,
                     const std::vector<int>& comb, int k, bool training) {
  const int t_count = static_cast<int>(clean.size());
  const int e_count = static_cast<int>(clean[0].size());
  Matrix gates(t_count, std::vector<double>(e_count, 0.0));
  Matrix load(t_count, std::vector<double>(e_count, 0.0));
  for (int t = 0; t < t_count; ++t) {
    const std::vector<int> order = Ranking(noisy[t]);
    double z = 0.0;
    for (int j = 0; j < k; ++j) z += std::exp(noisy[t][order[j]]);
    for (int j = 0; j < k; ++j) gates[t][order[j]] = std::exp(noisy[t][order[j]]) / z;
    for (int e = 0; e < e_count; ++e) {
      if (training && k < e_count) {
        const double thr_in = noisy[t][order[k]];
        const double thr_out = noisy[t][order[k - 1]];
        const double thr = noisy[t][e] > thr_in ? thr_in : thr_out;
        load[t][e] = Phi((clean[t][e] - thr) / sigma[t][e]);
      } else {
        load[t][e] = gates[t][e] > 0 ? 1.0 : 0.0;
      }
    }
  }
  auto column_sums = [&](const Matrix& m, bool want_full, int first_expert) {
    std::vector<double> sums(e_count - first_expert, 0.0);
    for (int t = 0; t < t_count; ++t) {
      if ((comb[t] == 0) != want_full) continue;
      for (int e = first_expert; e < e_count; ++e) sums[e - first_expert] += m[t][e];
    }
    return sums;
  };
  const bool all_full = std::all_of(comb.begin(), comb.end(), [](int c) { return c == 0; });
  if (all_full) {
    return Cv2(column_sums(gates, true, 0)) + Cv2(column_sums(load, true, 0));
  }
  double ce = 0.0;
  int nonfull = 0;
  for (int t = 0; t < t_count; ++t) {
    if (comb[t] == 0) continue;
    double lse = 0.0;
    for (int e = 0; e < e_count; ++e) lse += std::exp(noisy[t][e]);
    ce += std::log(lse) - noisy[t][comb[t]];
    ++nonfull;
  }
  return ce / nonfull + Cv2(column_sums(gates, true, 0)) + Cv2(column_sums(load, true, 0)) +
         Cv2(column_sums(gates, false, 1)) + Cv2(column_sums(load, false, 1));
}

at::Tensor ToTensor(const Matrix& m) {
  std::vector<double> flat;
  for (const auto& row : m) flat.insert(flat.end(), row.begin(), row.end());
  return at::tensor(flat, at::kDouble)
      .view({static_cast<int64_t>(m.size()), static_cast<int64_t>(m[0].size())});
}

at::Tensor Longs(const std::vector<int>& v) {
  return at::tensor(std::vector<int64_t>(v.begin(), v.end()), at::kLong);
}

NoisyTopKRouter MakeRouter(int64_t d, int64_t e, int64_t k) {
  NoisyTopKRouter router(RouterOptions{d, e, k});
  router->to(at::kDouble);
  return router;
}

void SetWeights(NoisyTopKRouter& router, const Matrix& w_gate, const Matrix& w_noise) {
  at::NoGradGuard no_grad;
  router->w_gate().copy_(ToTensor(w_gate));
  router->w_noise().copy_(ToTensor(w_noise));
}

// A 5-token, 3-feature, 4-expert case with k = 2 and fixed noise, checked end to end.
class RouterLossExample : public ::testing::Test {
 protected:
  static constexpr int kT = 5, kD = 3, kE = 4, kK = 2;
  const Matrix x_ = {
      {0.5, -1.0, 0.3}, {1.2, 0.4, -0.7}, {-0.3, 0.8, 0.9}, {0.1, -0.2, -1.1}, {0.9, 0.6, 0.2}};
  const Matrix w_gate_ = {{0.7, -0.4, 0.2, 0.1}, {-0.3, 0.5, 0.6, -0.8}, {0.25, 0.15, -0.9, 0.4}};
  const Matrix w_noise_ = {{0.2, -0.1, 0.3, 0.05}, {0.4, 0.2, -0.5, 0.1}, {-0.3, 0.6, 0.1, 0.2}};
  const Matrix noise_ = {{0.3, -1.2, 0.8, 0.1},
                         {-0.5, 0.9, 1.4, -0.2},
                         {1.1, -0.3, 0.05, 0.7},
                         {-0.9, 0.4, -0.1, 1.3},
                         {0.2, 0.6, -1.5, -0.4}};

  void Expected(bool training, Matrix* clean, Matrix* sigma, Matrix* noisy) const {
    clean->assign(kT, std::vector<double>(kE, 0.0));
    sigma->assign(kT, std::vector<double>(kE, 0.0));
    noisy->assign(kT, std::vector<double>(kE, 0.0));
    for (int t = 0; t < kT; ++t) {
      for (int e = 0; e < kE; ++e) {
        double c = 0.0, n = 0.0;
        for (int d = 0; d < kD; ++d) {
          c += x_[t][d] * w_gate_[d][e];
          n += x_[t][d] * w_noise_[d][e];
        }
        (*clean)[t][e] = c;
        (*sigma)[t][e] = std::log1p(std::exp(n)) + 0.01;
        (*noisy)[t][e] = training ? c + noise_[t][e] * (*sigma)[t][e] : c;
      }
    }
  }

  RouterOutput Run(bool training, int64_t k = kK) const {
    NoisyTopKRouter router = MakeRouter(kD, kE, k);
    SetWeights(router, w_gate_, w_noise_);
    return router->Forward(ToTensor(x_), ToTensor(noise_), training);
  }
};

TEST_F(RouterLossExample, ForwardMatchesScalarArithmetic) {
  Matrix clean, sigma, noisy;
  Expected(/*training=*/true, &clean, &sigma, &noisy);
  const RouterOutput out = Run(/*training=*/true);
  EXPECT_TRUE(at::allclose(out.clean_logits, ToTensor(clean), 0, 1e-14));
  EXPECT_TRUE(at::allclose(out.noise_std, ToTensor(sigma), 0, 1e-14));
  EXPECT_TRUE(at::allclose(out.noisy_logits, ToTensor(noisy), 0, 1e-14));
  ASSERT_EQ(out.top_values.sizes(), (std::vector<int64_t>{kT, kK + 1}));
  ASSERT_EQ(out.top_indices.sizes(), (std::vector<int64_t>{kT, kK}));
  for (int t = 0; t < kT; ++t) {
    const std::vector<int> order = Ranking(noisy[t]);
    const double z = std::exp(noisy[t][order[0]]) + std::exp(noisy[t][order[1]]);
    for (int j = 0; j < kK; ++j) {
      EXPECT_EQ(out.top_indices[t][j].item<int64_t>(), order[j]);
      EXPECT_NEAR(out.gates[t][j].item<double>(), std::exp(noisy[t][order[j]]) / z, 1e-14);
    }
    EXPECT_NEAR(out.top_values[t][kK].item<double>(), noisy[t][order[kK]], 1e-14);
  }
  // Eval: no noise, no noise_std, noisy = clean.
  const RouterOutput eval = Run(/*training=*/false);
  EXPECT_FALSE(eval.noise_std.defined());
  EXPECT_TRUE(at::equal(eval.noisy_logits, eval.clean_logits));
}

TEST_F(RouterLossExample, LossMatchesReferenceInEveryCase) {
  const std::vector<std::vector<int>> combos = {
      {0, 0, 0, 0, 0},  // all full: G-Router only
      {0, 3, 0, 1, 2},  // mixed
      {1, 2, 3, 1, 2},  // no full token: full-token terms are cv^2(0) = 0
  };
  for (bool training : {true, false}) {
    Matrix clean, sigma, noisy;
    Expected(training, &clean, &sigma, &noisy);
    const RouterOutput out = Run(training);
    for (const auto& comb : combos) {
      const double expected = ReferenceLoss(clean, sigma, noisy, comb, kK, training);
      const double got = RouterLoss(out, Longs(comb), kE, kK, training).item<double>();
      EXPECT_NEAR(got, expected, 1e-12 * std::max(1.0, std::abs(expected)))
          << "training=" << training << " comb[1]=" << comb[1];
      EXPECT_GT(expected, 0.0);
    }
  }
}

TEST_F(RouterLossExample, TopKEqualToExpertCountUsesHardCountsInTraining) {
  Matrix clean, sigma, noisy;
  Expected(/*training=*/true, &clean, &sigma, &noisy);
  const RouterOutput out = Run(/*training=*/true, /*k=*/kE);
  EXPECT_EQ(out.top_values.size(1), kE);
  const std::vector<int> comb = {0, 3, 0, 1, 2};
  EXPECT_NEAR(RouterLoss(out, Longs(comb), kE, kE, true).item<double>(),
              ReferenceLoss(clean, sigma, noisy, comb, kE, true), 1e-12);
}

TEST_F(RouterLossExample, PerBlockLossIsTheSumOfBlockLosses) {
  const RouterOutput out = Run(/*training=*/true);
  const std::vector<int> comb = {0, 3, 0, 1, 2};
  const at::Tensor blocks = Longs({1, 0, 1, 1, 0});  // interleaved blocks
  auto subset = [&](const std::vector<int>& rows) {
    const at::Tensor idx = Longs(rows);
    RouterOutput s;
    s.clean_logits = out.clean_logits.index_select(0, idx);
    s.noise_std = out.noise_std.index_select(0, idx);
    s.noisy_logits = out.noisy_logits.index_select(0, idx);
    s.top_values = out.top_values.index_select(0, idx);
    s.top_indices = out.top_indices.index_select(0, idx);
    s.gates = out.gates.index_select(0, idx);
    return s;
  };
  const double block0 = RouterLoss(subset({1, 4}), Longs({3, 2}), kE, kK, true).item<double>();
  const double block1 =
      RouterLoss(subset({0, 2, 3}), Longs({0, 0, 1}), kE, kK, true).item<double>();
  const double got = RouterLossPerBlock(out, Longs(comb), blocks, 2, kE, kK, true).item<double>();
  EXPECT_NEAR(got, block0 + block1, 1e-12);
  // Contiguous blocks through BlockIdsFromSizes.
  EXPECT_TRUE(at::equal(BlockIdsFromSizes({2, 3}), Longs({0, 0, 1, 1, 1})));
  const double first = RouterLoss(subset({0, 1}), Longs({0, 3}), kE, kK, true).item<double>();
  const double second =
      RouterLoss(subset({2, 3, 4}), Longs({0, 1, 2}), kE, kK, true).item<double>();
  EXPECT_NEAR(RouterLossPerBlock(out, Longs(comb), BlockIdsFromSizes({2, 3}), 2, kE, kK, true)
                  .item<double>(),
              first + second, 1e-12);
}

// The fused host statistics (one autograd node) against the ATen reference: the six sums
// and the gradients of the loss with respect to the tokens and both router weights, for
// mixed and all-full batches over several interleaved blocks, in float and double.
TEST(RouterStats, FusedKernelMatchesReference) {
  for (at::ScalarType type : {at::kDouble, at::kFloat}) {
    for (bool all_full : {false, true}) {
      at::manual_seed(21);
      const int64_t t = 40, d = 6, e = 8, k = 3, blocks = 3;
      NoisyTopKRouter router(RouterOptions{d, e, k, 4});
      router->to(type);
      const at::Tensor x0 = at::randn({t, d}, type), noise = at::randn({t, e}, type);
      const at::Tensor comb =
          all_full ? at::zeros({t}, at::kLong) : at::randint(0, e, {t}, at::kLong);
      const at::Tensor block = at::randint(0, blocks, {t}, at::kLong);
      auto run = [&](bool fused) {
        for (at::Tensor& p : router->parameters()) p.mutable_grad() = at::Tensor();
        const at::Tensor x = x0.clone().requires_grad_();
        const RouterOutput out = router->Forward(x, noise, /*training=*/true);
        const RouterLossStats stats =
            fused ? ComputeRouterLossStats(out, comb, block, blocks, e, k, true)
                  : ComputeRouterLossStatsReference(out, comb, block, blocks, e, k, true);
        FinishRouterLoss(stats).backward();
        std::vector<at::Tensor> result = {stats.full_importance.detach(),
                                          stats.full_load.detach(),
                                          stats.nonfull_importance.detach(),
                                          stats.nonfull_load.detach(),
                                          stats.ce_sum.detach(),
                                          stats.num_nonfull.detach(),
                                          x.grad()};
        for (const at::Tensor& p : router->parameters()) result.push_back(p.grad().clone());
        return result;
      };
      const auto fused = run(true), reference = run(false);
      ASSERT_EQ(fused.size(), 9u);
      const double tol = type == at::kDouble ? 1e-11 : 2e-4;
      for (size_t i = 0; i < fused.size(); ++i) {
        EXPECT_TRUE(at::allclose(fused[i], reference[i], tol, tol))
            << "tensor " << i << " all_full " << all_full << " " << type << "\n"
            << fused[i] << "\n"
            << reference[i];
      }
      EXPECT_GT(fused[7].abs().max().item<double>(), 0.0);  // w_gate gets a gradient
    }
  }
}

// The fused FinishRouterLoss against its ATen form: value and the gradients of the five
// differentiable statistics, over several blocks, including a block without non-full tokens
// and columns of zeros.
// The fused training router against its ATen form: every output and the gradients of the
// tokens and both weight matrices under a loss that uses all differentiable outputs.
TEST(NoisyTopKRouter, FusedTrainingForwardMatchesAten) {
  for (at::ScalarType type : {at::kDouble, at::kFloat}) {
    for (int64_t k : {1, 3, 8}) {
      at::manual_seed(17);
      const int64_t t = 30, d = 5, e = 8;
      NoisyTopKRouter router(RouterOptions{d, e, k, 2});
      router->to(type);
      const at::Tensor x0 = at::randn({t, d}, type) * 3, noise = at::randn({t, e}, type);
      const at::Tensor w = at::randn({6, t, e}, type),
                       wt = at::randn({t, std::min(k + 1, e)}, type);
      const at::Tensor wgates = at::randn({t, k}, type);
      auto run = [&](bool fused) {
        for (at::Tensor& p : router->parameters()) p.mutable_grad() = at::Tensor();
        const at::Tensor x = x0.clone().requires_grad_();
        const RouterOutput o =
            fused ? router->Forward(x, noise, true) : router->ForwardAten(x, noise, true);
        const at::Tensor loss = (o.clean_logits * w[0]).sum() + (o.noise_std * w[1]).sum() +
                                (o.noisy_logits * w[2]).sum() + (o.top_values * wt).sum() +
                                (o.gates * wgates).sum();
        loss.backward();
        std::vector<at::Tensor> out = {o.clean_logits.detach(),
                                       o.noise_std.detach(),
                                       o.noisy_logits.detach(),
                                       o.top_values.detach(),
                                       o.top_indices,
                                       o.gates.detach(),
                                       x.grad()};
        for (const at::Tensor& p : router->parameters()) out.push_back(p.grad().clone());
        return out;
      };
      const auto fused = run(true), reference = run(false);
      const double tol = type == at::kDouble ? 1e-12 : 1e-5;
      ASSERT_EQ(fused.size(), reference.size());
      for (size_t i = 0; i < fused.size(); ++i) {
        ASSERT_EQ(fused[i].sizes(), reference[i].sizes()) << "tensor " << i;
        EXPECT_TRUE(at::allclose(fused[i].to(type), reference[i].to(type), tol, tol))
            << "tensor " << i << " k " << k << " " << type;
      }
    }
  }
}

TEST(RouterStats, FusedFinishMatchesReference) {
  for (at::ScalarType type : {at::kDouble, at::kFloat}) {
    at::manual_seed(31);
    const int64_t blocks = 3, e = 6;
    RouterLossStats base;
    base.full_importance = at::rand({blocks, e}, type);
    base.full_load = at::rand({blocks, e}, type);
    base.nonfull_importance = at::rand({blocks, e}, type);
    base.nonfull_load = at::rand({blocks, e}, type);
    base.full_load[1].zero_();
    base.ce_sum = at::rand({blocks}, type) * 5;
    base.num_nonfull = at::tensor(std::vector<double>{4, 0, 7}).to(type);
    auto run = [&](bool fused) {
      RouterLossStats s;
      std::vector<at::Tensor*> parts = {&s.full_importance, &s.full_load, &s.nonfull_importance,
                                        &s.nonfull_load, &s.ce_sum};
      std::vector<const at::Tensor*> from = {&base.full_importance, &base.full_load,
                                             &base.nonfull_importance, &base.nonfull_load,
                                             &base.ce_sum};
      for (size_t i = 0; i < parts.size(); ++i) *parts[i] = from[i]->clone().requires_grad_();
      s.num_nonfull = base.num_nonfull;
      at::Tensor loss = fused ? FinishRouterLoss(s) : FinishRouterLossReference(s);
      (loss * 1.7).backward();
      std::vector<at::Tensor> out = {loss.detach()};
      for (at::Tensor* p : parts) out.push_back(p->grad());
      return out;
    };
    const auto fused = run(true), reference = run(false);
    const double tol = type == at::kDouble ? 1e-12 : 1e-5;
    for (size_t i = 0; i < fused.size(); ++i) {
      EXPECT_TRUE(at::allclose(fused[i], reference[i], tol, tol)) << "tensor " << i;
    }
  }
}

TEST_F(RouterLossExample, RejectsBadCombinations) {
  const RouterOutput out = Run(/*training=*/true);
  EXPECT_THROW(RouterLoss(out, Longs({0, 4, 0, 1, 2}), kE, kK, true), Error);
  EXPECT_THROW(RouterLoss(out, Longs({0, 1}), kE, kK, true), Error);
  EXPECT_THROW(
      RouterLossPerBlock(out, Longs({0, 0, 0, 0, 0}), Longs({0, 2, 0, 0, 0}), 2, kE, kK, true),
      Error);
}

// Eval, 4 experts, k = 2, w_gate = identity so the logits are the inputs; worked by hand.
// Token 0 logits (2, 1, 0, -1) picks experts 0, 1 with gates (s, 1-s), s = sigmoid(1);
// token 1 logits (-1, 0, 1, 2) picks experts 3, 2 with gates (s, 1-s).
class HandWorked : public ::testing::Test {
 protected:
  RouterOutput Run() {
    NoisyTopKRouter router = MakeRouter(4, 4, 2);
    const Matrix eye = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    SetWeights(router, eye, eye);
    return router->Forward(ToTensor({{2, 1, 0, -1}, {-1, 0, 1, 2}}), at::Tensor(), false);
  }
  const double s_ = 1.0 / (1.0 + std::exp(-1.0));
};

TEST_F(HandWorked, AllFullEval) {
  // importance (s, 1-s, 1-s, s): mean 1/2, unbiased var 4 (s - 1/2)^2 / 3, cv^2 = var / (1/4);
  // load (1, 1, 1, 1): cv^2 = 0.
  const double expected = 16.0 / 3.0 * (s_ - 0.5) * (s_ - 0.5);
  // (The +1e-10 in cv^2's denominator moves the value by about 1e-10.)
  EXPECT_NEAR(RouterLoss(Run(), Longs({0, 0}), 4, 2, false).item<double>(), expected, 1e-8);
  EXPECT_NEAR(expected, 0.2847363, 1e-6);
}

TEST_F(HandWorked, MixedEval) {
  // Token 1 belongs to combination 2.
  // CE = log(e^-1 + 1 + e + e^2) - 1.
  const double ce = std::log(std::exp(-1.0) + 1.0 + std::exp(1.0) + std::exp(2.0)) - 1.0;
  // Full importance (s, 1-s, 0, 0), mean 1/4.
  const double full_imp =
      ((s_ - 0.25) * (s_ - 0.25) + (0.75 - s_) * (0.75 - s_) + 2 * 0.0625) / 3.0 / 0.0625;
  const double full_load = (1.0 / 3.0) / 0.25;  // (1, 1, 0, 0)
  // Non-full importance over experts 1..3: (0, 1-s, s), mean 1/3.
  const double third = 1.0 / 3.0;
  const double nf_imp =
      (third * third + (1 - s_ - third) * (1 - s_ - third) + (s_ - third) * (s_ - third)) / 2.0 /
      (third * third);
  const double nf_load = (1.0 / 3.0) / (4.0 / 9.0);  // (0, 1, 1)
  const double expected = ce + full_imp + full_load + nf_imp + nf_load;
  EXPECT_NEAR(RouterLoss(Run(), Longs({0, 2}), 4, 2, false).item<double>(), expected, 1e-8);
}

TEST(CvSquared, MatchesDefinition) {
  EXPECT_NEAR(CvSquared(at::tensor({1.0, 2.0, 3.0}, at::kDouble)).item<double>(),
              1.0 / (4.0 + 1e-10), 1e-12);
  EXPECT_EQ(CvSquared(at::tensor({5.0}, at::kDouble)).item<double>(), 0.0);
  EXPECT_EQ(CvSquared(at::zeros({4}, at::kDouble)).item<double>(), 0.0);
}

// The smooth load is P(e in top-k | the other experts' noise); its mean over noise draws must
// match the frequency with which e actually lands in the top-k.
TEST(SmoothLoad, AgreesWithMonteCarlo) {
  constexpr int64_t kE = 4, kK = 2, kN = 40000;
  NoisyTopKRouter router = MakeRouter(kE, kE, kK);
  {
    at::NoGradGuard no_grad;
    router->w_gate().copy_(at::eye(kE, at::kDouble));
    router->w_noise().zero_();  // sigma = softplus(0) + 0.01
  }
  const at::Tensor x = at::tensor({0.3, 0.1, -0.2, 0.0}, at::kDouble).repeat({kN, 1});
  at::Generator gen = at::detail::createCPUGenerator(1234);
  const at::Tensor noise = at::randn({kN, kE}, gen, at::kDouble);
  const RouterOutput out = router->Forward(x, noise, /*training=*/true);
  const at::Tensor smooth = SmoothLoad(out, kK).mean(0);
  const at::Tensor hard = HardLoad(out, kE).mean(0);
  // Standard error of the hard frequency <= 0.5 / sqrt(N) = 0.0025; allow 4 of them.
  constexpr double kTolerance = 0.01;
  for (int64_t e = 0; e < kE; ++e) {
    EXPECT_NEAR(smooth[e].item<double>(), hard[e].item<double>(), kTolerance) << "expert " << e;
  }
  // Expert 0 has the largest clean logit and is in the top-2 more often than expert 2.
  EXPECT_GT(smooth[0].item<double>(), smooth[2].item<double>() + 0.1);
  // The probabilities of being in the top-k add up to k.
  EXPECT_NEAR(smooth.sum().item<double>(), kK, kTolerance);
  EXPECT_NEAR(hard.sum().item<double>(), kK, 1e-12);
}

TEST(NoisyTopKRouter, InitBoundsAndOptions) {
  NoisyTopKRouter router(RouterOptions{128, 16, 4});
  EXPECT_LE(router->w_gate().abs().max().item<double>(), 0.25);
  EXPECT_GT(router->w_gate().abs().max().item<double>(), 0.2);
  EXPECT_LE(router->w_noise().abs().max().item<double>(), 0.25);
  NoisyTopKRouter a(RouterOptions{8, 4, 2, 7}), b(RouterOptions{8, 4, 2, 7});
  EXPECT_TRUE(at::equal(a->w_gate(), b->w_gate()));
  EXPECT_THROW(NoisyTopKRouter(RouterOptions{8, 4, 5}), Error);
  EXPECT_THROW(a->Forward(at::zeros({3, 7}), at::Tensor(), false), Error);
}

}  // namespace
}  // namespace flexmoe
