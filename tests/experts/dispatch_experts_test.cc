// Tests of the dispatcher (plan, permute, combine) and of the grouped experts, including
// experts that receive no tokens.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <tuple>
#include <vector>

#include "cluster/base/error.h"
#include "experts/cpu_blas.h"
#include "experts/dispatcher.h"
#include "experts/gelu.h"
#include "experts/grouped_experts.h"

namespace flexmoe {
namespace {

at::Tensor Longs(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong); }

// The tensor-op plan (the one CUDA routing takes) equals the host counting sort: the same
// permutation, inverse, tokens and counts, including experts with no rows; ids out of
// range are refused.
TEST(Dispatcher, TensorOpPlanEqualsHostPlan) {
  at::manual_seed(5);
  for (const auto& [tokens, k, experts] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {7, 3, 5}, {64, 4, 16}, {300, 2, 40}, {0, 2, 4}}) {
    const at::Tensor top = at::randint(0, experts, {tokens, k}, at::kLong);
    const DispatchPlan host = MakeDispatchPlan(top, experts);
    const DispatchPlan ops = MakeDispatchPlanTensorOps(top, experts);
    EXPECT_TRUE(at::equal(host.sorted_order, ops.sorted_order)) << tokens << "x" << k;
    EXPECT_TRUE(at::equal(host.inverse_order, ops.inverse_order)) << tokens << "x" << k;
    EXPECT_TRUE(at::equal(host.token_of_row, ops.token_of_row)) << tokens << "x" << k;
    EXPECT_EQ(host.counts, ops.counts) << tokens << "x" << k;
    EXPECT_EQ(ops.num_tokens, tokens);
    EXPECT_EQ(ops.top_k, k);
  }
  EXPECT_THROW(MakeDispatchPlanTensorOps(Longs({0, 5}).view({1, 2}), 4), Error);
  EXPECT_THROW(MakeDispatchPlanTensorOps(Longs({-1, 0}).view({1, 2}), 4), Error);
  EXPECT_THROW(MakeDispatchPlanTensorOps(at::zeros({2, 2}), 4), Error);
}

// Rows grouped in a given expert order (the expert-parallel layer's, owner by owner): each
// expert's rows are the ascending plan's rows of that expert, moved as one group; counts stay
// by expert id; the tensor-op plan agrees; the result of permute and combine does not
// change; an order that is not a permutation is refused.
TEST(Dispatcher, PlanInAGivenExpertOrder) {
  at::manual_seed(8);
  const at::Tensor top = at::randint(0, 6, {40, 3}, at::kLong);
  const std::vector<int64_t> order = {4, 1, 5, 0, 3, 2};
  const DispatchPlan ascending = MakeDispatchPlan(top, 6);
  const DispatchPlan plan = MakeDispatchPlan(top, 6, order);
  EXPECT_EQ(plan.counts, ascending.counts);
  EXPECT_EQ(plan.expert_order, order);
  EXPECT_EQ(ascending.expert_order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  std::vector<int64_t> start(6, 0);
  for (int64_t e = 1; e < 6; ++e) start[e] = start[e - 1] + ascending.counts[e - 1];
  int64_t row = 0;
  for (int64_t e : order) {
    EXPECT_TRUE(at::equal(plan.sorted_order.narrow(0, row, plan.counts[e]),
                          ascending.sorted_order.narrow(0, start[e], plan.counts[e])))
        << "expert " << e;
    row += plan.counts[e];
  }
  const DispatchPlan ops = MakeDispatchPlanTensorOps(top, 6, order);
  EXPECT_TRUE(at::equal(ops.sorted_order, plan.sorted_order));
  EXPECT_TRUE(at::equal(ops.inverse_order, plan.inverse_order));
  EXPECT_TRUE(at::equal(ops.token_of_row, plan.token_of_row));
  EXPECT_EQ(ops.counts, plan.counts);
  const at::Tensor x = at::randn({40, 5}, at::kDouble), gates = at::rand({40, 3}, at::kDouble);
  EXPECT_TRUE(at::equal(Combine(Permute(x, plan) * 2, plan, gates, 40),
                        Combine(Permute(x, ascending) * 2, ascending, gates, 40)));
  EXPECT_THROW(MakeDispatchPlan(top, 6, {0, 1, 2, 3, 4}), Error);
  EXPECT_THROW(MakeDispatchPlan(top, 6, {0, 1, 2, 3, 4, 4}), Error);
  EXPECT_THROW(MakeDispatchPlanTensorOps(top, 6, {0, 1, 2, 3, 4, 6}), Error);
}

TEST(Dispatcher, PlanOnAHandExample) {
  // Assignments a = t * 2 + j: experts (2, 0 | 1, 2 | 0, 2).
  const DispatchPlan plan = MakeDispatchPlan(Longs({2, 0, 1, 2, 0, 2}).view({3, 2}), 4);
  EXPECT_TRUE(at::equal(plan.sorted_order, Longs({1, 4, 2, 0, 3, 5})));
  EXPECT_TRUE(at::equal(plan.token_of_row, Longs({0, 2, 1, 0, 1, 2})));
  EXPECT_TRUE(at::equal(plan.inverse_order, Longs({3, 0, 2, 4, 1, 5})));
  EXPECT_EQ(plan.counts, (std::vector<int64_t>{2, 1, 3, 0}));
  EXPECT_EQ(plan.num_tokens, 3);
  EXPECT_EQ(plan.top_k, 2);

  const at::Tensor x = at::arange(6, at::kDouble).view({3, 2});  // row t = (2t, 2t+1)
  const at::Tensor rows = Permute(x, plan);
  EXPECT_TRUE(at::equal(rows, x.index_select(0, Longs({0, 2, 1, 0, 1, 2}))));
}

TEST(Dispatcher, RoundTripWithIdentityExpertsIsExact) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({9, 5}, at::kFloat);
  // k = 2 with gates 1/2: x/2 + x/2 is exact in binary floating point.
  const at::Tensor idx2 = at::randint(0, 4, {9, 2}, at::kLong);
  const DispatchPlan plan2 = MakeDispatchPlan(idx2, 4);
  const at::Tensor out2 = Combine(Permute(x, plan2), plan2, at::full({9, 2}, 0.5), 9);
  EXPECT_TRUE(at::equal(out2, x));
  // k = 3 with one-hot gates (the weight on a varying slot).
  const at::Tensor idx3 = at::randint(0, 6, {9, 3}, at::kLong);
  const DispatchPlan plan3 = MakeDispatchPlan(idx3, 6);
  const at::Tensor gates3 = at::one_hot(at::arange(9, at::kLong).remainder(3), 3).to(at::kFloat);
  EXPECT_TRUE(at::equal(Combine(Permute(x, plan3), plan3, gates3, 9), x));
  int64_t total = 0;
  for (int64_t c : plan3.counts) total += c;
  EXPECT_EQ(total, 27);
}

// Permute's backward sums each token's k row gradients.
TEST(Dispatcher, PermuteGradientSumsTheTokensRows) {
  at::manual_seed(6);
  const DispatchPlan plan = MakeDispatchPlan(at::randint(0, 5, {7, 3}, at::kLong), 5);
  const at::Tensor x = at::randn({7, 4}, at::kDouble).requires_grad_();
  const at::Tensor w = at::randn({21, 4}, at::kDouble);
  const at::Tensor rows = Permute(x, plan);
  EXPECT_TRUE(at::equal(rows, x.detach().index_select(0, plan.token_of_row)));
  (rows * w).sum().backward();
  const at::Tensor expected = at::zeros({7, 4}, at::kDouble).index_add(0, plan.token_of_row, w);
  EXPECT_TRUE(at::allclose(x.grad(), expected, 0, 1e-14));
}

TEST(Dispatcher, CombineIsTheGateWeightedSumAndDifferentiable) {
  at::manual_seed(4);
  const at::Tensor idx = at::randint(0, 3, {4, 2}, at::kLong);
  const DispatchPlan plan = MakeDispatchPlan(idx, 3);
  const at::Tensor y = at::randn({8, 3}, at::kDouble).requires_grad_();
  const at::Tensor gates = at::rand({4, 2}, at::kDouble).requires_grad_();
  const at::Tensor out = Combine(y, plan, gates, 4);
  // Row of assignment (t, j) is inverse_order[t * 2 + j].
  for (int64_t t = 0; t < 4; ++t) {
    at::Tensor expected = at::zeros({3}, at::kDouble);
    for (int64_t j = 0; j < 2; ++j) {
      const int64_t row = plan.inverse_order[t * 2 + j].item<int64_t>();
      EXPECT_EQ(plan.sorted_order[row].item<int64_t>(), t * 2 + j);
      expected += gates[t][j] * y[row];
    }
    EXPECT_TRUE(at::allclose(out[t], expected, 0, 1e-15));
  }
  out.sum().backward();
  // d out.sum() / d gates[t, j] = sum of y's row for that assignment.
  const at::Tensor expected_gate_grad = y.sum(1).index_select(0, plan.inverse_order).view({4, 2});
  EXPECT_TRUE(at::allclose(gates.grad(), expected_gate_grad, 0, 1e-14));
  EXPECT_TRUE(at::allclose(
      y.grad(), gates.reshape({-1}).index_select(0, plan.sorted_order).unsqueeze(1).expand({8, 3}),
      0, 1e-15));
}

TEST(Dispatcher, RejectsBadInput) {
  EXPECT_THROW(MakeDispatchPlan(Longs({0, 5}).view({1, 2}), 4), Error);
  EXPECT_THROW(MakeDispatchPlan(at::zeros({2, 2}), 4), Error);  // not int64
  const DispatchPlan plan = MakeDispatchPlan(Longs({0, 1}).view({1, 2}), 2);
  EXPECT_THROW(Permute(at::zeros({2, 3}), plan), Error);
  EXPECT_THROW(Combine(at::zeros({3, 3}), plan, at::ones({1, 2}), 1), Error);
}

// FFN_e(x) = GELU(x w1[e] + b1[e]) w2[e] + b2[e] with GELU(h) = h Phi(h), written out.
at::Tensor ExplicitFfn(GroupedExpertsImpl& experts, int64_t e, const at::Tensor& x) {
  const at::Tensor h = x.matmul(experts.w1()[e]) + experts.b1()[e];
  const at::Tensor g = h * 0.5 * (1.0 + at::erf(h / std::sqrt(2.0)));
  return g.matmul(experts.w2()[e]) + experts.b2()[e];
}

TEST(GroupedExperts, ShapesAndInitialisation) {
  GroupedExperts experts(GroupedExpertsOptions{16, 5, {}, -1});
  EXPECT_EQ(experts->w1().sizes(), (std::vector<int64_t>{5, 16, 32}));
  EXPECT_EQ(experts->b1().sizes(), (std::vector<int64_t>{5, 32}));
  EXPECT_EQ(experts->w2().sizes(), (std::vector<int64_t>{5, 32, 16}));
  EXPECT_EQ(experts->b2().sizes(), (std::vector<int64_t>{5, 16}));
  const double bound = 1.0 / std::sqrt(16.0 * 32.0);  // FastMoE: 1/sqrt(out * in)
  for (const at::Tensor& w : {experts->w1(), experts->w2()}) {
    EXPECT_LE(w.abs().max().item<double>(), bound);
    EXPECT_GT(w.abs().max().item<double>(), 0.9 * bound);
  }
  EXPECT_EQ(experts->b1().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(experts->b2().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(experts->parameters().size(), 4u);
  EXPECT_EQ(experts->global_ids(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(GroupedExperts, SeededInitDoesNotDependOnTheSubsetHeld) {
  GroupedExperts all(GroupedExpertsOptions{4, 5, {}, /*init_seed=*/11});
  GroupedExperts some(GroupedExpertsOptions{4, 5, {1, 3}, /*init_seed=*/11});
  EXPECT_EQ(some->num_local_experts(), 2);
  EXPECT_TRUE(at::equal(some->w1()[0], all->w1()[1]));
  EXPECT_TRUE(at::equal(some->w2()[1], all->w2()[3]));
  EXPECT_FALSE(at::equal(all->w1()[0], all->w1()[1]));
  EXPECT_THROW(GroupedExperts(GroupedExpertsOptions{4, 5, {3, 1}, -1}), Error);
  EXPECT_THROW(GroupedExperts(GroupedExpertsOptions{4, 5, {5}, -1}), Error);
}

TEST(GroupedExperts, ExpertWithZeroTokensIsValidAndGetsZeroGradient) {
  at::manual_seed(5);
  GroupedExperts experts(GroupedExpertsOptions{4, 3, {}, -1});
  experts->to(at::kDouble);
  {
    at::NoGradGuard no_grad;  // non-zero biases so that their gradients mean something
    experts->b1().uniform_(-0.1, 0.1);
    experts->b2().uniform_(-0.1, 0.1);
  }
  const std::vector<int64_t> counts = {3, 0, 2};
  const at::Tensor x = at::randn({5, 4}, at::kDouble).requires_grad_();
  const at::Tensor y = experts->Forward(x, counts);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{5, 4}));
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  const at::Tensor expected = at::cat(
      {ExplicitFfn(*experts, 0, x.narrow(0, 0, 3)), ExplicitFfn(*experts, 2, x.narrow(0, 3, 2))});
  EXPECT_TRUE(at::allclose(y, expected, 0, 1e-14));

  const at::Tensor weights = at::randn({5, 4}, at::kDouble);
  (y * weights).sum().backward();
  for (const at::Tensor& p : experts->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad()[1].abs().max().item<double>(), 0.0);  // expert 1 saw no token
    EXPECT_GT(p.grad()[0].abs().max().item<double>(), 0.0);
    EXPECT_GT(p.grad()[2].abs().max().item<double>(), 0.0);
  }
  // No token at all.
  const at::Tensor empty = experts->Forward(at::zeros({0, 4}, at::kDouble), {0, 0, 0});
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 4}));
}

// Experts over 8 features, 6 in the layer, 4 held here, with random biases.
GroupedExperts TestExperts(at::ScalarType type, uint64_t seed) {
  at::manual_seed(seed);
  GroupedExperts experts(GroupedExpertsOptions{8, 6, {0, 2, 3, 5}, 3});
  experts->to(type);
  at::NoGradGuard no_grad;
  experts->b1().uniform_(-0.1, 0.1);
  experts->b2().uniform_(-0.1, 0.1);
  return experts;
}

// The output, the input's gradient and the four parameters' gradients of sum(y * weights),
// y = forward(x0).
using ExpertsForward = std::function<at::Tensor(const at::Tensor&)>;
std::vector<at::Tensor> OutputAndGradients(GroupedExperts& experts, const at::Tensor& x0,
                                           const at::Tensor& weights,
                                           const ExpertsForward& forward) {
  for (at::Tensor& p : experts->parameters()) p.mutable_grad() = at::Tensor();
  const at::Tensor x = x0.clone().requires_grad_();
  const at::Tensor y = forward(x);
  (y * weights).sum().backward();
  std::vector<at::Tensor> out = {y.detach(), x.grad()};
  for (const at::Tensor& p : experts->parameters()) out.push_back(p.grad().clone());
  return out;
}

// `path` against ForwardPerExpert on random rows with these counts: outputs and gradients
// agree. Returns path's tensors.
std::vector<at::Tensor> ExpectSameAsPerExpert(GroupedExperts& experts, at::ScalarType type,
                                              const std::vector<int64_t>& counts,
                                              const ExpertsForward& path) {
  int64_t rows = 0;
  for (int64_t c : counts) rows += c;
  const at::Tensor x0 = at::randn({rows, 8}, type), weights = at::randn({rows, 8}, type);
  const std::vector<at::Tensor> got = OutputAndGradients(experts, x0, weights, path);
  const std::vector<at::Tensor> reference =
      OutputAndGradients(experts, x0, weights,
                         [&](const at::Tensor& x) { return experts->ForwardPerExpert(x, counts); });
  EXPECT_EQ(got.size(), 6u);
  const double tol = type == at::kFloat ? 1e-5 : 1e-12;
  for (size_t i = 0; i < got.size() && i < reference.size(); ++i) {
    EXPECT_TRUE(at::allclose(got[i], reference[i], tol, tol))
        << "tensor " << i << ", " << type << ", counts " << at::tensor(counts);
  }
  return got;
}

// The padded batched-GEMM path (the one CUDA rows take) against the per-expert path, on
// host tensors: the same output and gradients, with an empty expert, a local subset, a
// single busy expert and no rows at all.
TEST(GroupedExperts, PaddedPathMatchesPerExpertPath) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    GroupedExperts experts = TestExperts(type, 12);
    for (const std::vector<int64_t>& counts :
         {std::vector<int64_t>{5, 0, 9, 3}, {0, 0, 11, 0}, {1, 1, 1, 1}}) {
      ExpectSameAsPerExpert(experts, type, counts,
                            [&](const at::Tensor& x) { return experts->ForwardPadded(x, counts); });
    }
    const at::Tensor empty = experts->ForwardPadded(at::zeros({0, 8}, type), {0, 0, 0, 0});
    EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 8}));
  }
}

// The fused host kernel (one autograd node, per-expert BLAS calls) against the ATen
// per-expert path: the same output and the same gradients for the input and all four
// grouped parameters, in float and double, with an empty expert and a local subset.
TEST(GroupedExperts, FusedKernelMatchesPerExpertPath) {
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    GroupedExperts experts = TestExperts(type, 11);
    const std::vector<int64_t> counts = {5, 0, 9, 3};
    const std::vector<at::Tensor> fused = ExpectSameAsPerExpert(
        experts, type, counts, [&](const at::Tensor& x) { return experts->Forward(x, counts); });
    ASSERT_EQ(fused.size(), 6u);
    EXPECT_EQ(fused[3].select(0, 1).abs().max().item<double>(), 0.0);  // b1 of the empty expert
  }
}

// Rows in blocks that interleave the experts (several blocks for one expert, empty blocks,
// an expert with none), as the expert-parallel step hands over received rows: output and
// gradients equal the per-expert path on the rows regrouped by expert, in float and double.
TEST(GroupedExperts, BlocksRunWhereTheyLie) {
  const std::vector<RowBlock> blocks = {{2, 0, 3}, {0, 3, 2},  {2, 5, 0}, {3, 5, 4},
                                        {0, 9, 1}, {2, 10, 2}, {3, 12, 1}};
  // The same rows grouped by expert: expert 0's blocks, then 2's, then 3's (1 has none).
  const std::vector<int64_t> grouped = {3, 4, 9, 0, 1, 2, 10, 11, 5, 6, 7, 8, 12};
  const std::vector<int64_t> counts = {3, 0, 5, 5};
  at::Tensor back = at::empty({13}, at::kLong);
  for (int64_t i = 0; i < 13; ++i) back[grouped[i]] = i;
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    GroupedExperts experts = TestExperts(type, 13);
    const at::Tensor order = at::tensor(grouped, at::kLong);
    // ExpectSameAsPerExpert draws rows in expert order; the blocks see them scattered.
    const std::vector<at::Tensor> got =
        ExpectSameAsPerExpert(experts, type, counts, [&](const at::Tensor& x_grouped) {
          const at::Tensor scattered = x_grouped.index_select(0, back);
          return experts->ForwardBlocks(scattered, blocks).index_select(0, order);
        });
    ASSERT_EQ(got.size(), 6u);
    EXPECT_EQ(got[2].select(0, 1).abs().max().item<double>(), 0.0);  // w1 of the idle expert
    EXPECT_EQ(got[5].select(0, 1).abs().max().item<double>(), 0.0);  // b2 of the idle expert
  }
}

// training.precision BF16 in the fused expert node: every product reads its operands rounded
// to bf16 (the rows, the weights, the GELU output, the upstream gradient and the GELU input's
// gradient), accumulated in fp32; the bias terms, GELU and the bias gradients stay fp32.
// Against the same rounding written out in double, over blocks that split an expert in two
// and an expert without rows.
TEST(GroupedExperts, Bf16NodeRoundsEveryProductsOperands) {
  if (!Bf16GemmAvailable()) GTEST_SKIP() << Bf16GemmUnavailableReason();
  at::manual_seed(21);
  const int64_t d = 8, hidden = 16;
  const at::Tensor w1 = at::randn({3, d, hidden}) * 0.3, b1 = at::randn({3, hidden}) * 0.1;
  const at::Tensor w2 = at::randn({3, hidden, d}) * 0.3, b2 = at::randn({3, d}) * 0.1;
  const at::Tensor x0 = at::randn({9, d}), upstream = at::randn({9, d});
  // Expert 0: rows 0-4 in two blocks; expert 1: none; expert 2: rows 5-8.
  const std::vector<RowBlock> blocks = {{0, 0, 3}, {1, 3, 0}, {0, 3, 2}, {2, 5, 4}};
  std::vector<at::Tensor> params = {w1.clone(), b1.clone(), w2.clone(), b2.clone()};
  for (at::Tensor& p : params) p.requires_grad_();
  const at::Tensor x = x0.clone().requires_grad_();
  const at::Tensor y =
      GroupedFfn(x, params[0], params[1], params[2], params[3], blocks, GemmPrecision::kBf16);
  (y * upstream).sum().backward();

  const auto r = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kDouble); };
  const auto dbl = [](const at::Tensor& t) { return t.to(at::kDouble); };
  at::Tensor want_y = at::zeros({9, d}, at::kDouble), want_dx = at::zeros_like(want_y);
  std::vector<at::Tensor> want_grads = {
      at::zeros({3, d, hidden}, at::kDouble), at::zeros({3, hidden}, at::kDouble),
      at::zeros({3, hidden, d}, at::kDouble), at::zeros({3, d}, at::kDouble)};
  for (const auto& [e, begin, rows] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{0, 0, 5}, {2, 5, 4}}) {
    const at::Tensor xe = x0.narrow(0, begin, rows), dye = upstream.narrow(0, begin, rows);
    const at::Tensor h = at::matmul(r(xe), r(w1[e])) + dbl(b1[e]);
    const at::Tensor phi = 0.5 * (1.0 + at::erf(h / std::sqrt(2.0)));
    const at::Tensor g = h * phi;
    want_y.narrow(0, begin, rows).copy_(at::matmul(r(g), r(w2[e])) + dbl(b2[e]));
    const at::Tensor slope = phi + h * at::exp(-0.5 * h * h) / std::sqrt(2.0 * M_PI);
    const at::Tensor dh = at::matmul(r(dye), r(w2[e]).t()) * slope;
    want_dx.narrow(0, begin, rows).copy_(at::matmul(r(dh), r(w1[e]).t()));
    want_grads[0][e] = at::matmul(r(xe).t(), r(dh));
    want_grads[1][e] = dh.sum(0);
    want_grads[2][e] = at::matmul(r(g).t(), r(dye));
    want_grads[3][e] = dbl(dye.sum(0));
  }
  // A GELU value one float ulp from a bf16 tie may round the other way: a few 1e-4.
  const auto close = [](const at::Tensor& got, const at::Tensor& want) {
    return at::allclose(got.to(at::kDouble), want, 1e-3, 2e-3);
  };
  EXPECT_TRUE(close(y, want_y)) << (y.to(at::kDouble) - want_y).abs().max();
  EXPECT_TRUE(close(x.grad(), want_dx)) << (x.grad().to(at::kDouble) - want_dx).abs().max();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(close(params[i].grad(), want_grads[i]))
        << "parameter " << i << ": "
        << (params[i].grad().to(at::kDouble) - want_grads[i]).abs().max();
  }
  // The fp32 node on the same input differs by the rounding.
  const at::Tensor y32 = GroupedFfn(x0, w1, b1, w2, b2, blocks);
  EXPECT_FALSE(at::allclose(y.detach(), y32, 1e-5, 1e-5));
}

TEST(GroupedExperts, RejectsBlocksThatDoNotTileTheRows) {
  GroupedExperts experts(GroupedExpertsOptions{4, 3, {}, -1});
  const at::Tensor x = at::zeros({5, 4});
  EXPECT_THROW(experts->ForwardBlocks(x, {{0, 0, 2}, {1, 3, 3}}), Error);  // a gap
  EXPECT_THROW(experts->ForwardBlocks(x, {{0, 0, 2}, {1, 1, 4}}), Error);  // an overlap
  EXPECT_THROW(experts->ForwardBlocks(x, {{0, 0, 2}, {3, 2, 3}}), Error);  // no expert 3
  EXPECT_THROW(experts->ForwardBlocks(x, {{0, 0, 2}, {1, 2, 2}}), Error);  // a row short
  EXPECT_THROW(experts->ForwardBlocks(x, {{0, 0, 6}, {1, 6, -1}}), Error);
  EXPECT_EQ(experts->ForwardBlocks(x, {{2, 0, 5}, {0, 5, 0}}).sizes(), x.sizes());
}

// The float GELU kernel against the exact formula in double, over a grid that covers both
// tails and every vector-tail length; and the double path against LibTorch's GELU.
TEST(Gelu, FloatKernelIsAccurateAndDoubleIsExact) {
  std::vector<float> x;
  for (int i = -4000; i <= 4000; ++i) x.push_back(static_cast<float>(i) * 0.005f);
  for (float v : {-30.0f, -13.5f, -9.0f, 9.0f, 13.5f, 30.0f, 0.0f, -0.0f, 1e-30f}) x.push_back(v);
  for (size_t n : {x.size(), size_t{1}, size_t{7}, size_t{13}}) {
    std::vector<float> g(n), d(n);
    GeluAndDerivative(x.data(), 1, static_cast<int64_t>(n), nullptr, g.data(), d.data());
    for (size_t i = 0; i < n; ++i) {
      const double h = x[i];
      const double cdf = 0.5 * std::erfc(-h / std::sqrt(2.0));
      const double pdf = std::exp(-0.5 * h * h) / std::sqrt(2.0 * M_PI);
      const double scale = std::max(1.0, std::fabs(h));
      EXPECT_NEAR(g[i], h * cdf, 2.5e-7 * scale) << "h = " << h;
      EXPECT_NEAR(d[i], cdf + h * pdf, 2.5e-7 * scale) << "h = " << h;
    }
  }
  const at::Tensor xd = at::randn({1000}, at::kDouble) * 4;
  at::Tensor g = at::empty_like(xd), d = at::empty_like(xd);
  GeluAndDerivative(xd.data_ptr<double>(), 1, xd.numel(), nullptr, g.data_ptr<double>(),
                    d.data_ptr<double>());
  EXPECT_TRUE(at::allclose(g, at::gelu(xd), 1e-14, 1e-14));
  EXPECT_TRUE(at::allclose(d, at::gelu_backward(at::ones_like(xd), xd), 1e-14, 1e-14));
  // Rows with a per-column bias, in float (vector body and row tails) and double.
  for (at::ScalarType type : {at::kFloat, at::kDouble}) {
    const at::Tensor x2 = at::randn({5, 13}, type) * 3, bias = at::randn({13}, type);
    at::Tensor g2 = at::empty_like(x2), d2 = at::empty_like(x2);
    AT_DISPATCH_FLOATING_TYPES(type, "GeluTest", [&] {
      GeluAndDerivative(x2.data_ptr<scalar_t>(), 5, 13, bias.data_ptr<scalar_t>(),
                        g2.data_ptr<scalar_t>(), d2.data_ptr<scalar_t>());
    });
    const at::Tensor h = x2 + bias;
    EXPECT_TRUE(at::allclose(g2, at::gelu(h), 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(d2, at::gelu_backward(at::ones_like(h), h), 1e-6, 1e-6));
  }
}

// The AVX-512 kernel is the AVX2 kernel on sixteen lanes: the same bits for every value,
// with a bias and without, over row lengths that leave every tail length of both.
TEST(Gelu, WideKernelGivesTheSameBitsAsTheAvx2Kernel) {
  if (BestGeluKernel() != GeluKernel::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  at::manual_seed(21);
  for (int64_t cols : {1, 7, 8, 9, 15, 16, 17, 31, 33, 256}) {
    const at::Tensor x = at::randn({3, cols}) * 6, bias = at::randn({cols});
    for (const float* b :
         {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data_ptr<float>())}) {
      at::Tensor g1 = at::empty_like(x), d1 = at::empty_like(x);
      at::Tensor g2 = at::full_like(x, 7), d2 = at::full_like(x, 7);
      GeluAndDerivative(GeluKernel::kAvx2, x.data_ptr<float>(), 3, cols, b, g1.data_ptr<float>(),
                        d1.data_ptr<float>());
      GeluAndDerivative(GeluKernel::kAvx512, x.data_ptr<float>(), 3, cols, b, g2.data_ptr<float>(),
                        d2.data_ptr<float>());
      EXPECT_TRUE(at::equal(g1, g2)) << cols << " columns";
      EXPECT_TRUE(at::equal(d1, d2)) << cols << " columns";
    }
  }
  // The tails of the exponent: underflow to zero below -87 and the far positive side.
  std::vector<float> v = {-1e4f, -200.0f, -13.2f, -13.19f, 13.19f, 13.2f, 200.0f, 1e4f, -0.0f};
  std::vector<float> g1(v.size()), d1(v.size()), g2(v.size()), d2(v.size());
  GeluAndDerivative(GeluKernel::kAvx2, v.data(), 1, static_cast<int64_t>(v.size()), nullptr,
                    g1.data(), d1.data());
  GeluAndDerivative(GeluKernel::kAvx512, v.data(), 1, static_cast<int64_t>(v.size()), nullptr,
                    g2.data(), d2.data());
  EXPECT_EQ(std::memcmp(g1.data(), g2.data(), 4 * v.size()), 0);
  EXPECT_EQ(std::memcmp(d1.data(), d2.data(), 4 * v.size()), 0);
}

TEST(GroupedExperts, RejectsBadCounts) {
  GroupedExperts experts(GroupedExpertsOptions{4, 3, {}, -1});
  EXPECT_THROW(experts->Forward(at::zeros({5, 4}), {3, 0, 1}), Error);
  EXPECT_THROW(experts->Forward(at::zeros({5, 4}), {3, 2}), Error);
  EXPECT_THROW(experts->Forward(at::zeros({5, 4}), {6, -1, 0}), Error);
  EXPECT_THROW(experts->Forward(at::zeros({5, 3}), {3, 2, 0}), Error);
}

}  // namespace
}  // namespace flexmoe
