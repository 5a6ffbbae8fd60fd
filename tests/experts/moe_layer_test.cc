// Tests of the local MoE layer: against the explicit per-token formula (output and
// gradients) and a finite-difference check of every parameter through output + router loss.
#include "experts/moe_layer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace flexmoe {
namespace {

constexpr int64_t kT = 7, kD = 3, kE = 4, kK = 2;

// FFN_e(x) = GELU(x w1[e] + b1[e]) w2[e] + b2[e] with GELU(h) = h Phi(h), written out.
at::Tensor ExplicitFfn(GroupedExpertsImpl& experts, int64_t e, const at::Tensor& x) {
  const at::Tensor h = x.matmul(experts.w1()[e]) + experts.b1()[e];
  const at::Tensor g = h * 0.5 * (1.0 + at::erf(h / std::sqrt(2.0)));
  return g.matmul(experts.w2()[e]) + experts.b2()[e];
}

struct Inputs {
  at::Tensor x, noise, comb, blocks, weights;
};

// A double-precision layer with non-zero biases and larger expert weights than the FastMoE
// init, so that every parameter's gradient is well away from zero.
LocalMoeLayer MakeLayer(Inputs* in) {
  at::manual_seed(17);
  LocalMoeLayer layer(MoeLayerOptions{kD, kE, kK});
  layer->to(at::kDouble);
  {
    at::NoGradGuard no_grad;
    for (at::Tensor& p : layer->parameters()) p.uniform_(-0.8, 0.8);
  }
  in->x = at::randn({kT, kD}, at::kDouble);
  in->noise = at::randn({kT, kE}, at::kDouble);
  in->comb = at::tensor(std::vector<int64_t>{0, 2, 0, 1, 3, 0, 1}, at::kLong);
  in->blocks = at::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1}, at::kLong);
  in->weights = at::randn({kT, kD}, at::kDouble);
  return layer;
}

std::vector<at::Tensor> Grads(LocalMoeLayer& layer, const at::Tensor& x) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : layer->parameters()) grads.push_back(p.grad().clone());
  grads.push_back(x.grad().clone());
  return grads;
}

void ZeroGrads(LocalMoeLayer& layer, at::Tensor& x) {
  for (at::Tensor& p : layer->parameters()) p.mutable_grad() = at::Tensor();
  x.mutable_grad() = at::Tensor();
}

TEST(LocalMoeLayer, EqualsTheExplicitPerTokenSum) {
  Inputs in;
  LocalMoeLayer layer = MakeLayer(&in);
  at::Tensor x = in.x.clone().requires_grad_();
  const MoeOutput out = layer->Forward(x, in.noise, in.comb, in.blocks, 2, /*training=*/true);
  ASSERT_EQ(out.output.sizes(), (std::vector<int64_t>{kT, kD}));
  (out.output * in.weights).sum().backward();
  const std::vector<at::Tensor> layer_grads = Grads(layer, x);
  ZeroGrads(layer, x);

  // Explicit: y_t = sum_j gate_tj * FFN_{idx_tj}(x_t), one token at a time.
  const RouterOutput r = layer->router()->Forward(x, in.noise, true);
  std::vector<at::Tensor> rows;
  std::vector<int64_t> counts(kE, 0);
  for (int64_t t = 0; t < kT; ++t) {
    at::Tensor y = at::zeros({1, kD}, at::kDouble);
    for (int64_t j = 0; j < kK; ++j) {
      const int64_t e = r.top_indices[t][j].item<int64_t>();
      ++counts[e];
      y = y + r.gates[t][j] * ExplicitFfn(*layer->experts(), e, x[t].unsqueeze(0));
    }
    rows.push_back(y);
  }
  const at::Tensor explicit_out = at::cat(rows);
  EXPECT_TRUE(at::allclose(out.output, explicit_out, 0, 1e-13));
  EXPECT_EQ(out.expert_counts, counts);
  (explicit_out * in.weights).sum().backward();
  const std::vector<at::Tensor> explicit_grads = Grads(layer, x);
  ASSERT_EQ(layer_grads.size(), explicit_grads.size());
  for (size_t i = 0; i < layer_grads.size(); ++i) {
    EXPECT_TRUE(at::allclose(layer_grads[i], explicit_grads[i], 0, 1e-13)) << "gradient " << i;
    EXPECT_GT(layer_grads[i].abs().max().item<double>(), 0.0) << "gradient " << i;
  }
  // The aux loss is the per-block router loss of this routing.
  EXPECT_NEAR(out.aux_loss.item<double>(),
              RouterLossPerBlock(r, in.comb, in.blocks, 2, kE, kK, true).item<double>(), 1e-13);
}

TEST(LocalMoeLayer, EvalNeedsNoNoiseAndUsesTheExpertStepHook) {
  Inputs in;
  LocalMoeLayer layer = MakeLayer(&in);
  const MoeOutput eval = layer->Forward(in.x, at::Tensor(), in.comb, at::Tensor(), 1, false);
  EXPECT_FALSE(eval.routing.noise_std.defined());
  EXPECT_NEAR(eval.aux_loss.item<double>(),
              RouterLoss(eval.routing, in.comb, kE, kK, false).item<double>(), 1e-13);
  // RunMoe with a custom expert step and stats reducer (what the expert-parallel layer
  // plugs in) gives the same result when the step runs the same experts.
  int reducer_calls = 0;
  GroupedExpertsImpl& experts = *layer->experts();
  const MoeOutput hooked = RunMoe(
      *layer->router(),
      [&experts](const at::Tensor& rows, const std::vector<int64_t>& counts) {
        return experts.Forward(rows, counts);
      },
      [&reducer_calls](RouterLossStats stats) {
        ++reducer_calls;
        return stats;
      },
      in.x, at::Tensor(), in.comb, at::Tensor(), 1, false);
  EXPECT_EQ(reducer_calls, 1);
  EXPECT_TRUE(at::equal(hooked.output, eval.output));
  EXPECT_TRUE(at::equal(hooked.aux_loss, eval.aux_loss));
}

// Central differences on every parameter element and every input element of
// L = sum(output * w) + aux_loss (training, fixed noise, two blocks, mixed combinations).
TEST(LocalMoeLayer, FiniteDifferenceGradientCheck) {
  Inputs in;
  LocalMoeLayer layer = MakeLayer(&in);
  at::Tensor x = in.x.clone().requires_grad_();
  auto loss = [&](const at::Tensor& input) {
    const MoeOutput out = layer->Forward(input, in.noise, in.comb, in.blocks, 2, true);
    return (out.output * in.weights).sum() + out.aux_loss;
  };
  loss(x).backward();

  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& item : layer->named_parameters()) targets.emplace_back(item.key(), item.value());
  targets.emplace_back("x", x);
  at::NoGradGuard no_grad;
  constexpr double kStep = 1e-6;
  int checked = 0;
  for (auto& [name, tensor] : targets) {
    ASSERT_TRUE(tensor.is_contiguous());
    const at::Tensor grad = tensor.grad().reshape({-1});
    double* data = tensor.data_ptr<double>();
    for (int64_t i = 0; i < tensor.numel(); ++i) {
      const double saved = data[i];
      data[i] = saved + kStep;
      const double plus = loss(x).item<double>();
      data[i] = saved - kStep;
      const double minus = loss(x).item<double>();
      data[i] = saved;
      const double numeric = (plus - minus) / (2 * kStep);
      const double analytic = grad[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
          << name << "[" << i << "]";
      ++checked;
    }
  }
  // router 2 x [3, 4], experts [4,3,6] + [4,6] + [4,6,3] + [4,3], x [7, 3].
  EXPECT_EQ(checked, 24 + 72 + 24 + 72 + 12 + 21);
}

}  // namespace
}  // namespace flexmoe

namespace flexmoe {
namespace {

// With a capacity of ceil(0.5 * T * k / E) = 2 rows per expert, the rows beyond the first
// two of each expert (in token order) are dropped: their expert output counts as zero.
TEST(LocalMoeLayer, CapacityFactorDropsOverflowRowsInTokenOrder) {
  Inputs in;
  LocalMoeLayer layer = MakeLayer(&in);
  GroupedExpertsImpl& experts = *layer->experts();
  ExpertStep local = [&experts](const at::Tensor& rows, const std::vector<int64_t>& counts) {
    return experts.Forward(rows, counts);
  };
  CapacityOptions capacity_options;
  capacity_options.factor = 0.5;
  const MoeOutput out = RunMoe(*layer->router(), local, RouterStatsReducer(), in.x, in.noise,
                               in.comb, in.blocks, 2, true, capacity_options);
  const RouterOutput r = layer->router()->Forward(in.x, in.noise, true);
  const int64_t capacity = static_cast<int64_t>(std::ceil(0.5 * kT * kK / kE));
  std::vector<int64_t> used(kE, 0);
  int64_t dropped = 0;
  std::vector<at::Tensor> rows;
  for (int64_t t = 0; t < kT; ++t) {
    at::Tensor y = at::zeros({1, kD}, at::kDouble);
    for (int64_t j = 0; j < kK; ++j) {
      const int64_t e = r.top_indices[t][j].item<int64_t>();
      if (used[e]++ >= capacity) {
        ++dropped;
        continue;
      }
      y = y + r.gates[t][j] * ExplicitFfn(experts, e, in.x[t].unsqueeze(0));
    }
    rows.push_back(y);
  }
  EXPECT_EQ(out.dropped_rows, dropped);
  EXPECT_GT(dropped, 0);
  EXPECT_TRUE(at::allclose(out.output, at::cat(rows), 0, 1e-13));
}

}  // namespace
}  // namespace flexmoe
