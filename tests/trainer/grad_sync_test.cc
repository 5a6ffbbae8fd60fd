// GradientSynchronizer under mpirun (1-3 ranks): gradients summed over the world, riders
// summed with them (one collective for both), the fallback without a replicated bucket, and
// the rider capacity enforced.
#include "trainer/train/grad_sync.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "cluster/comm/mpi_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::kTestTimeout;

// A parameter of `shape` whose gradient holds small dyadic values of `rank` (exact sums).
at::Tensor Parameter(std::vector<int64_t> shape, int rank, double scale) {
  at::Tensor p = at::zeros(shape, at::kFloat).requires_grad_(true);
  p.mutable_grad() = at::arange(p.numel(), at::kFloat).view(shape).mul(0.25).add(rank * scale);
  return p;
}

// The sum over ranks of Parameter(shape, r, scale)'s gradient.
at::Tensor SummedGradient(std::vector<int64_t> shape, int size, double scale) {
  at::Tensor sum = at::zeros(shape, at::kFloat);
  for (int r = 0; r < size; ++r) sum += Parameter(shape, r, scale).grad();
  return sum;
}

at::Tensor Riders(int rank) {
  return at::tensor({1.5 + rank, 0.25 * rank, rank == 0 ? 1.0 : 0.0}, at::kDouble);
}

class GradSyncTest : public ::testing::Test {
 protected:
  void SetUp() override { world_ = MakeMpiWorld(kTestTimeout); }
  std::unique_ptr<Communicator> world_;
};

TEST_F(GradSyncTest, RidersAreSummedWithTheGradients) {
  const int rank = world_->rank(), size = world_->size();
  std::vector<at::Tensor> replicated = {Parameter({3, 4}, rank, 1.0), Parameter({5}, rank, 2.0)};
  // A tiny bucket size: one bucket per parameter, the riders in the first.
  GradientSynchronizer sync(replicated, {}, world_.get(), nullptr, /*bucket_bytes=*/8,
                            /*rider_capacity=*/4);
  at::Tensor riders = Riders(rank);
  sync.Synchronize(&riders);
  EXPECT_TRUE(at::equal(replicated[0].grad(), SummedGradient({3, 4}, size, 1.0)));
  EXPECT_TRUE(at::equal(replicated[1].grad(), SummedGradient({5}, size, 2.0)));
  at::Tensor expected = at::zeros({3}, at::kDouble);
  for (int r = 0; r < size; ++r) expected += Riders(r);
  EXPECT_TRUE(at::equal(riders, expected)) << riders;

  // The next step without riders: the unused slots are zeroed, the gradients still summed.
  replicated[0].mutable_grad() = Parameter({3, 4}, rank, 1.0).grad();
  replicated[1].mutable_grad() = Parameter({5}, rank, 2.0).grad();
  sync.Synchronize();
  EXPECT_TRUE(at::equal(replicated[0].grad(), SummedGradient({3, 4}, size, 1.0)));
}

TEST_F(GradSyncTest, RidersWithoutAReplicatedBucketGetTheirOwnAllReduce) {
  const int rank = world_->rank(), size = world_->size();
  // Only expert parameters, with one owner each (no expert replicas): no bucket at all.
  std::vector<at::Tensor> experts = {Parameter({2, 2}, rank, 1.0)};
  const at::Tensor before = experts[0].grad().clone();
  GradientSynchronizer sync({}, experts, world_.get(), nullptr, 4 << 20, 3);
  EXPECT_EQ(sync.num_buckets(), 0);
  at::Tensor riders = Riders(rank);
  sync.Synchronize(&riders);
  at::Tensor expected = at::zeros({3}, at::kDouble);
  for (int r = 0; r < size; ++r) expected += Riders(r);
  EXPECT_TRUE(at::equal(riders, expected));
  EXPECT_TRUE(at::equal(experts[0].grad(), before));  // an owned expert's gradient is left alone
}

TEST_F(GradSyncTest, MoreRidersThanItsCapacityAreRefused) {
  std::vector<at::Tensor> replicated = {Parameter({4}, world_->rank(), 1.0)};
  GradientSynchronizer sync(replicated, {}, world_.get(), nullptr, 4 << 20, 2);
  at::Tensor riders = Riders(world_->rank());
  ExpectError([&] { sync.Synchronize(&riders); }, ErrorCode::kInvalidArgument,
              {"3 riders, room for 2"});
}

}  // namespace
}  // namespace flexmoe
