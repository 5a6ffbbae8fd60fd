// Expert parallelism under mpirun (1 to 4 ranks): the exchange with identity experts returns
// rows and gradients exactly; every rank receives exactly its experts' rows; the sharded MoE
// layer equals the one-process layer on all ranks' tokens (output, input gradient, expert
// and router gradients); ranks with zero tokens still take part; the replicated-consumer sum's
// scaled backward equals the all-reduced one; the bf16 wire moves rounded rows in half the
// bytes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "cluster/comm/mpi_communicator.h"
#include "experts/dispatcher.h"
#include "experts/expert_parallel.h"
#include "experts/moe_layer.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

constexpr int64_t kD = 8, kE = 7, kK = 2;

std::unique_ptr<Communicator> World() { return MakeMpiWorld(testing::kTestTimeout); }

// Tokens of `rank`: a different count per rank (rank 1 has none when there are 3+ ranks).
int64_t TokensOf(int rank, int world) { return (world >= 3 && rank == 1) ? 0 : 5 + 3 * rank; }

at::Tensor TokensFor(int rank, int world, at::ScalarType type) {
  at::manual_seed(100 + rank);
  return at::randn({TokensOf(rank, world), kD}).to(type);
}

// A placement that is not contiguous: expert e on rank (e * 5 + 1) % W.
ExpertPlacement Scattered(int world) {
  ExpertPlacement p;
  for (int64_t e = 0; e < kE; ++e) p.owner.push_back(static_cast<int>((e * 5 + 1) % world));
  return p;
}

// A replicated consumer of the sum (every rank computes the same loss of it, weighted 1/W,
// as the router loss is): the scaled backward equals the all-reduced one.
TEST(ExpertExchangeTest, ReplicatedSumBackwardEqualsTheAllReducedOne) {
  auto world = World();
  const int w = world->size(), me = world->rank();
  at::manual_seed(40 + me);
  const at::Tensor part = at::randn({6}, at::kDouble);
  at::manual_seed(41);  // the same on every rank: a replicated weighting
  const at::Tensor weighting = at::randn({6}, at::kDouble);
  auto gradient = [&](bool replicated) {
    at::Tensor x = part.clone().requires_grad_(true);
    at::Tensor y =
        replicated ? AllReduceSumReplicatedGrad(x, *world) : AllReduceSumWithGrad(x, *world);
    ((y * y * weighting).sum() / static_cast<double>(w)).backward();
    return std::make_pair(y.detach(), x.grad());
  };
  const auto [y_reduced, g_reduced] = gradient(false);
  const auto [y_scaled, g_scaled] = gradient(true);
  EXPECT_TRUE(at::equal(y_scaled, y_reduced));
  EXPECT_TRUE(at::allclose(g_scaled, g_reduced, 1e-14, 1e-14)) << g_scaled << g_reduced;
  // The gradient of the whole loss with respect to this rank's part: 2 y * weighting.
  EXPECT_TRUE(at::allclose(g_scaled, 2 * y_reduced * weighting, 1e-14, 1e-14));
}

// Rows of rank `rank` for the bf16 wire test: 2 for every rank of the world.
at::Tensor WireRows(int rank, int world, int64_t seed) {
  at::manual_seed(seed + rank);
  return at::randn({2 * world, kD});
}

// training.precision BF16's exchange: float rows and their gradients arrive rounded to bf16
// (and back to float), and the bytes sent to other ranks are half the fp32 wire's.
TEST(ExpertExchangeTest, Bf16WireMovesRoundedRowsAndGradientsInHalfTheBytes) {
  auto world = World();
  const int w = world->size(), me = world->rank();
  const std::vector<int64_t> splits(w, 2);
  const auto wired = [](const at::Tensor& t, bool bf16) {
    return bf16 ? t.to(at::kBFloat16).to(at::kFloat) : t;
  };
  for (bool bf16 : {false, true}) {
    ExchangeStats stats;
    at::Tensor x = WireRows(me, w, 60).requires_grad_(true);
    const at::Tensor y = AllToAllWithGrad(x, splits, splits, *world, &stats, bf16);
    ASSERT_EQ(y.scalar_type(), at::kFloat);
    const at::Tensor upstream = WireRows(me, w, 70);
    (y * upstream).sum().backward();
    for (int s = 0; s < w; ++s) {
      const at::Tensor sent = WireRows(s, w, 60).slice(0, 2 * me, 2 * me + 2);
      EXPECT_TRUE(at::equal(y.slice(0, 2 * s, 2 * s + 2), wired(sent, bf16)))
          << "rows from rank " << s << ", bf16 " << bf16;
      const at::Tensor back = WireRows(s, w, 70).slice(0, 2 * me, 2 * me + 2);
      EXPECT_TRUE(at::equal(x.grad().slice(0, 2 * s, 2 * s + 2), wired(back, bf16)))
          << "gradients from rank " << s << ", bf16 " << bf16;
    }
    // Forward and backward, 2 rows to each other rank.
    EXPECT_EQ(stats.token_bytes_sent, 2 * 2 * (w - 1) * kD * (bf16 ? 2 : 4)) << "bf16 " << bf16;
  }
}

TEST(ExpertExchangeTest, IdentityExpertsReturnRowsAndGradientsExactly) {
  auto world = World();
  const int w = world->size(), me = world->rank();
  ExpertPlacement placement = Scattered(w);
  at::manual_seed(7 + me);
  const int64_t t = TokensOf(me, w);
  at::Tensor top = at::randint(kE, {t, kK}, at::kLong);
  at::Tensor x = at::randn({t, kD}, at::kDouble).requires_grad_(true);
  DispatchPlan plan = MakeDispatchPlan(top, kE);
  std::vector<int64_t> seen_counts;
  ExpertStep step = MakeExpertParallelStep(
      [&](const at::Tensor& rows, const std::vector<int64_t>& counts) {
        seen_counts = counts;
        // Every row that arrives belongs to one of this rank's experts: tag check below.
        return rows * 1.0;
      },
      placement, *world, nullptr);
  at::Tensor gates = at::full({t, kK}, 1.0 / kK, at::kDouble);
  at::Tensor y = Combine(step(Permute(x, plan), plan.counts), plan, gates, t);
  EXPECT_TRUE(at::allclose(y, x, 0, 1e-15)) << "dispatch + combine with identity experts";
  at::Tensor upstream = at::randn({t, kD}, at::kDouble);
  (y * upstream).sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), upstream, 0, 1e-15));
  EXPECT_EQ(seen_counts.size(), placement.LocalExperts(me).size());
}

TEST(ExpertExchangeTest, RowsTaggedWithSourceReachTheirOwners) {
  auto world = World();
  const int w = world->size(), me = world->rank();
  ExpertPlacement placement = Scattered(w);
  // Rank r sends (r + e) % 3 rows to each expert e, tagged (source, expert, row).
  std::vector<int64_t> counts(kE);
  std::vector<at::Tensor> blocks;
  for (int64_t e = 0; e < kE; ++e) {
    counts[e] = (me + e) % 3;
    for (int64_t i = 0; i < counts[e]; ++i) {
      blocks.push_back(at::tensor({double(me), double(e), double(i)}, at::kDouble).view({1, 3}));
    }
  }
  at::Tensor rows = blocks.empty() ? at::empty({0, 3}, at::kDouble) : at::cat(blocks);
  std::vector<int64_t> local = placement.LocalExperts(me);
  ExpertStep step = MakeExpertParallelStep(
      [&](const at::Tensor& received, const std::vector<int64_t>& local_counts) {
        // Grouped by local expert, sources in rank order, rows in order.
        int64_t at_row = 0;
        for (size_t j = 0; j < local.size(); ++j) {
          int64_t expected_count = 0;
          for (int s = 0; s < w; ++s) {
            int64_t n = (s + local[j]) % 3;
            expected_count += n;
            for (int64_t i = 0; i < n; ++i, ++at_row) {
              EXPECT_EQ(received[at_row][0].item<double>(), s);
              EXPECT_EQ(received[at_row][1].item<double>(), local[j]);
              EXPECT_EQ(received[at_row][2].item<double>(), i);
            }
          }
          EXPECT_EQ(local_counts[j], expected_count);
        }
        EXPECT_EQ(at_row, received.size(0));
        return received;
      },
      placement, *world, nullptr);
  at::Tensor back = step(rows, counts);
  EXPECT_TRUE(at::equal(back, rows));
}

// The sharded layer (a scattered placement over `world` ranks) and the one-process layer
// with the same weights, in double precision.
struct LayerPair {
  ExpertParallelMoeOptions options;
  ExpertParallelMoe sharded{nullptr}, reference{nullptr};
};
LayerPair MakeLayers(int64_t seed, int world, int me) {
  LayerPair pair;
  pair.options = ExpertParallelMoeOptions{kD, kE, kK, seed, Scattered(world), me};
  pair.sharded = ExpertParallelMoe(pair.options);
  pair.sharded->to(at::kDouble);
  pair.reference = ExpertParallelMoe(ExpertParallelMoeOptions{kD, kE, kK, seed, {}, 0});
  pair.reference->to(at::kDouble);
  return pair;
}

// The sharded layer against the one-process layer on the concatenation of all ranks'
// tokens, in double precision.
TEST(ExpertParallelMoeTest, EqualsOneProcessLayer) {
  auto world = World();
  const int w = world->size(), me = world->rank();
  auto [options, sharded, reference] = MakeLayers(42, w, me);

  std::vector<at::Tensor> xs, noises, combos, upstreams;
  for (int r = 0; r < w; ++r) {
    xs.push_back(TokensFor(r, w, at::kDouble));
    at::manual_seed(500 + r);
    noises.push_back(at::randn({TokensOf(r, w), kE}, at::kDouble));
    combos.push_back(at::randint(kE, {TokensOf(r, w)}, at::kLong) % 4);
    upstreams.push_back(at::randn({TokensOf(r, w), kD}, at::kDouble));
  }
  // Reference: all tokens in one process.
  at::Tensor x_all = at::cat(xs).requires_grad_(true);
  MoeOutput ref = reference->Forward(x_all, at::cat(noises), at::cat(combos), at::Tensor(), 1,
                                     /*training=*/true, nullptr, nullptr);
  ((ref.output * at::cat(upstreams)).sum() + ref.aux_loss).backward();

  // Sharded: this rank's tokens only; the router statistics summed over the world.
  at::Tensor x = xs[me].clone().requires_grad_(true);
  MoeOutput out =
      sharded->Forward(x, noises[me], combos[me], at::Tensor(), 1, true, world.get(), world.get());
  ((out.output * upstreams[me]).sum() + out.aux_loss / w).backward();

  int64_t offset = 0;
  for (int r = 0; r < me; ++r) offset += TokensOf(r, w);
  const int64_t t = TokensOf(me, w);
  EXPECT_TRUE(at::allclose(out.output, ref.output.narrow(0, offset, t), 1e-5, 1e-10));
  EXPECT_NEAR(out.aux_loss.item<double>(), ref.aux_loss.item<double>(),
              1e-5 * std::fabs(ref.aux_loss.item<double>()));
  EXPECT_TRUE(at::allclose(x.grad(), x_all.grad().narrow(0, offset, t), 1e-5, 1e-10));
  // Each owner's expert gradients equal the reference's rows of those experts.
  std::vector<int64_t> local = options.placement.LocalExperts(me);
  at::Tensor ids = at::tensor(local, at::kLong);
  for (auto [mine, theirs] : {std::pair{sharded->experts()->w1(), reference->experts()->w1()},
                              std::pair{sharded->experts()->b1(), reference->experts()->b1()},
                              std::pair{sharded->experts()->w2(), reference->experts()->w2()},
                              std::pair{sharded->experts()->b2(), reference->experts()->b2()}}) {
    EXPECT_TRUE(at::allclose(mine.grad(), theirs.grad().index_select(0, ids), 1e-5, 1e-10));
  }
  // The router is replicated: its gradient summed over the ranks equals the reference's.
  at::Tensor gate_grad = sharded->router()->w_gate().grad().clone();
  world->AllReduce(gate_grad, ReduceOp::kSum);
  EXPECT_TRUE(at::allclose(gate_grad, reference->router()->w_gate().grad(), 1e-5, 1e-10));
  at::Tensor noise_grad = sharded->router()->w_noise().grad().clone();
  world->AllReduce(noise_grad, ReduceOp::kSum);
  EXPECT_TRUE(at::allclose(noise_grad, reference->router()->w_noise().grad(), 1e-5, 1e-10));
}

// Capacity shared over the group with a scattered placement (the rows dispatched owner by
// owner): the sharded layer drops exactly the rows the one-process layer drops, and its
// output and input gradient are the same.
TEST(ExpertParallelMoeTest, CapacityEqualsOneProcessLayer) {
  auto world = World();
  const int w = world->size(), me = world->rank();
  auto [options, sharded, reference] = MakeLayers(43, w, me);
  std::vector<at::Tensor> xs, noises, combos;
  for (int r = 0; r < w; ++r) {
    xs.push_back(TokensFor(r, w, at::kDouble));
    at::manual_seed(600 + r);
    noises.push_back(at::randn({TokensOf(r, w), kE}, at::kDouble));
    combos.push_back(at::randint(kE, {TokensOf(r, w)}, at::kLong) % 4);
  }
  CapacityOptions capacity;
  capacity.factor = 0.6;  // about 60% of an even share per expert: rows are dropped
  at::Tensor x_all = at::cat(xs).requires_grad_(true);
  MoeOutput ref = reference->Forward(x_all, at::cat(noises), at::cat(combos), at::Tensor(), 1, true,
                                     nullptr, nullptr, nullptr, capacity);
  ref.output.sum().backward();
  capacity.group = world.get();
  at::Tensor x = xs[me].clone().requires_grad_(true);
  MoeOutput out = sharded->Forward(x, noises[me], combos[me], at::Tensor(), 1, true, world.get(),
                                   world.get(), nullptr, capacity);
  out.output.sum().backward();
  at::Tensor dropped = at::tensor({out.dropped_rows}, at::kLong);
  world->AllReduce(dropped, ReduceOp::kSum);
  EXPECT_GT(ref.dropped_rows, 0);
  EXPECT_EQ(dropped.item<int64_t>(), ref.dropped_rows);
  int64_t offset = 0;
  for (int r = 0; r < me; ++r) offset += TokensOf(r, w);
  const int64_t t = TokensOf(me, w);
  EXPECT_TRUE(at::allclose(out.output, ref.output.narrow(0, offset, t), 1e-5, 1e-10));
  EXPECT_TRUE(at::allclose(x.grad(), x_all.grad().narrow(0, offset, t), 1e-5, 1e-10));
}

TEST(ExpertExchangeTest, ADispatchOrderOfTheWrongLengthIsRefused) {
  auto world = World();
  const ExpertPlacement placement = Scattered(world->size());
  const ExpertStep identity = [](const at::Tensor& rows, const std::vector<int64_t>&) {
    return rows;
  };
  EXPECT_THROW(MakeExpertParallelStep(identity, placement, *world, nullptr, {0, 1, 2}), Error);
  EXPECT_NO_THROW(
      MakeExpertParallelStep(identity, placement, *world, nullptr, OwnerMajorOrder(placement)));
}

TEST(ExpertParallelMoeTest, PlacementWithAnEmptyRankIsRefused) {
  ExpertPlacement p;
  p.owner = {0, 0, 0};
  ExpertParallelMoeOptions options{kD, 3, 1, 1, p, 1};
  EXPECT_THROW(ExpertParallelMoe{options}, Error);
}

}  // namespace
}  // namespace flexmoe
