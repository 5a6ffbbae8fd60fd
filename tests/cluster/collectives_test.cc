// MPI backend: all-reduce, broadcast, all-gather, barrier, send/recv, sequence numbers. Each
// rank builds its input from (rank, index) and computes the expected result locally.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "cluster/base/splitmix.h"
#include "cluster/comm/mpi_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::ExpectSameBytesOnAllRanks;
using testing::kTestTimeout;

class CollectivesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = MakeMpiWorld(kTestTimeout);
    rank_ = world_->rank();
    size_ = world_->size();
  }

  // Exact in every dtype used here: small dyadic values.
  at::Tensor Dyadic(int rank, at::ScalarType dtype, int64_t n = 37) const {
    const bool integral = !at::isFloatingType(dtype);
    at::Tensor t = at::empty({n}, at::kDouble);
    auto a = t.accessor<double, 1>();
    for (int64_t i = 0; i < n; ++i) {
      a[i] = integral ? (rank + 1) * 1000.0 - 7.0 * i : (rank + 1) * 0.5 - 0.25 * i;
    }
    return t.to(dtype);
  }

  std::unique_ptr<Communicator> world_;
  int rank_ = 0;
  int size_ = 1;
};

TEST_F(CollectivesTest, AllReduceSumIsExact) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kInt}) {
    at::Tensor t = Dyadic(rank_, dtype);
    at::Tensor expected = at::zeros_like(t);
    for (int r = 0; r < size_; ++r) expected += Dyadic(r, dtype);
    world_->AllReduce(t, ReduceOp::kSum);
    EXPECT_TRUE(at::equal(t, expected)) << dtype;
  }
}

TEST_F(CollectivesTest, AllReduceAverageDividesTheSum) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong}) {
    at::Tensor t = Dyadic(rank_, dtype);
    at::Tensor sum = at::zeros_like(t);
    for (int r = 0; r < size_; ++r) sum += Dyadic(r, dtype);
    at::Tensor expected =
        at::isFloatingType(dtype) ? sum.div(size_) : sum.div(size_, "trunc");  // same op as ours
    world_->AllReduce(t, ReduceOp::kAverage);
    EXPECT_TRUE(at::equal(t, expected)) << dtype;
    ExpectSameBytesOnAllRanks(*world_, t);
  }
}

TEST_F(CollectivesTest, AllReduceMax) {
  auto values = [](int rank, at::ScalarType dtype) {
    at::Tensor t = at::empty({29}, at::kDouble);
    auto a = t.accessor<double, 1>();
    const double offset = dtype == at::kByte ? 0 : 50;  // uint8 has no negatives
    for (int64_t i = 0; i < 29; ++i)
      a[i] = static_cast<double>((rank * 37 + i * 11) % 101) - offset;
    return t.to(dtype);
  };
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kInt, at::kByte}) {
    at::Tensor t = values(rank_, dtype);
    at::Tensor expected = values(0, dtype);
    for (int r = 1; r < size_; ++r) expected = at::maximum(expected, values(r, dtype));
    world_->AllReduce(t, ReduceOp::kMax);
    EXPECT_TRUE(at::equal(t, expected)) << dtype;
  }
}

// Values whose float sums round: the result must still be the same bits on every rank.
TEST_F(CollectivesTest, AllReduceFloatSumIsBitIdenticalAcrossRanks) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    auto values = [](int rank) {
      at::Tensor t = at::empty({4099}, at::kDouble);
      auto a = t.accessor<double, 1>();
      uint64_t state = static_cast<uint64_t>(rank) << 32;
      for (int64_t i = 0; i < t.numel(); ++i) {
        const uint64_t bits = SplitMix64(&state);
        const double unit = static_cast<double>(bits >> 11) * 0x1.0p-53 - 0.5;
        a[i] = unit * static_cast<double>(1 << (bits % 17));
      }
      return t;
    };
    at::Tensor t = values(rank_).to(dtype);
    at::Tensor reference = at::zeros({4099}, at::kDouble);
    for (int r = 0; r < size_; ++r) reference += values(r).to(dtype).to(at::kDouble);
    world_->AllReduce(t, ReduceOp::kSum);
    ExpectSameBytesOnAllRanks(*world_, t);
    EXPECT_TRUE(at::allclose(t.to(at::kDouble), reference, 1e-5, 1e-4)) << dtype;
  }
}

// The sum is formed slice by slice (a reduce-scatter, then an all-gather): buffers with
// fewer elements than ranks, or none, leave some ranks an empty slice.
TEST_F(CollectivesTest, AllReduceOfFewerElementsThanRanks) {
  for (int64_t n : {0, 1, 2, 3, 5}) {
    at::Tensor t = at::arange(n, at::kFloat) * (rank_ + 1) + 0.25f;
    at::Tensor expected = at::zeros({n}, at::kFloat);
    for (int r = 0; r < size_; ++r) expected += at::arange(n, at::kFloat) * (r + 1) + 0.25f;
    world_->AllReduce(t, ReduceOp::kSum);
    EXPECT_TRUE(at::equal(t, expected)) << n << " elements";
  }
}

TEST_F(CollectivesTest, AllReduceWritesBackIntoANonContiguousView) {
  at::Tensor base = at::arange(15, at::kFloat).reshape({3, 5}) * (rank_ + 1);
  at::Tensor view = base.t();  // [5, 3], not contiguous
  ASSERT_FALSE(view.is_contiguous());
  world_->AllReduce(view, ReduceOp::kSum);
  const float factor = static_cast<float>(size_ * (size_ + 1) / 2);
  EXPECT_TRUE(at::equal(base, at::arange(15, at::kFloat).reshape({3, 5}) * factor));
}

TEST_F(CollectivesTest, AllReduceOfBoolsIsALogicalOr) {
  at::Tensor t = at::zeros({6}, at::kBool);
  t[rank_ % 6] = true;
  world_->AllReduce(t, ReduceOp::kSum);
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(t[i].item<bool>(), i < size_) << i;
  ExpectError([&] { world_->AllReduce(t, ReduceOp::kAverage); }, ErrorCode::kInvalidArgument,
              {"AllReduce on group world", "kAverage of a bool tensor"});
}

TEST_F(CollectivesTest, UnsupportedDtypeIsAnInvalidArgumentOnEveryRank) {
  at::Tensor half = at::ones({4}, at::kHalf);
  ExpectError([&] { world_->AllReduce(half, ReduceOp::kSum); }, ErrorCode::kInvalidArgument,
              {"unsupported dtype Half"});
  world_->Barrier();  // still in step
}

TEST_F(CollectivesTest, BroadcastFromEveryRoot) {
  for (int root = 0; root < size_; ++root) {
    for (at::ScalarType dtype : {at::kFloat, at::kLong, at::kByte}) {
      at::Tensor t = (at::arange(10, at::kLong) + 100 * rank_).to(dtype);
      world_->Broadcast(t, root);
      EXPECT_TRUE(at::equal(t, (at::arange(10, at::kLong) + 100 * root).to(dtype)))
          << "root " << root << " " << dtype;
    }
  }
  at::Tensor t = at::zeros({2});
  ExpectError([&] { world_->Broadcast(t, size_); }, ErrorCode::kInvalidArgument,
              {"root " + std::to_string(size_) + " is not a rank"});
}

TEST_F(CollectivesTest, AllGatherStacksEveryRanksTensor) {
  at::Tensor t = at::arange(6, at::kDouble).reshape({2, 3}) + 100.0 * rank_;
  at::Tensor all = world_->AllGather(t);
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{size_, 2, 3}));
  for (int r = 0; r < size_; ++r) {
    EXPECT_TRUE(at::equal(all[r], at::arange(6, at::kDouble).reshape({2, 3}) + 100.0 * r)) << r;
  }
  at::Tensor empty = world_->AllGather(at::empty({0, 4}));
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{size_, 0, 4}));
}

TEST_F(CollectivesTest, SequenceNumbersCountCollectivesOnly) {
  EXPECT_EQ(world_->sequence(), 0u);
  world_->Barrier();
  at::Tensor t = at::ones({1});
  world_->AllReduce(t, ReduceOp::kSum);
  EXPECT_EQ(world_->sequence(), 2u);
  EXPECT_STREQ(world_->backend(), "mpi");
  EXPECT_TRUE(world_->capabilities().host_tensors);
  EXPECT_FALSE(world_->capabilities().device_tensors);
  EXPECT_EQ(world_->name(), "world");
}

TEST_F(CollectivesTest, SendRecvRing) {
  if (size_ == 1) {
    ExpectError([&] { world_->Send(at::ones({1}), 0, 0); }, ErrorCode::kInvalidArgument,
                {"Send to rank 0 (tag 0) on group world", "another rank"});
    return;
  }
  const int next = (rank_ + 1) % size_;
  const int prev = (rank_ + size_ - 1) % size_;
  constexpr int64_t kCount = 100000;  // past the eager limit: the receiver must be there
  at::Tensor out = at::arange(kCount, at::kFloat) + 1e6f * rank_;
  at::Tensor in = at::empty({kCount});
  // Even ranks send first, odd ranks receive first: no cycle of waiting senders.
  if (rank_ % 2 == 0) {
    world_->Send(out, next, 7);
    world_->Recv(in, prev, 7);
  } else {
    world_->Recv(in, prev, 7);
    world_->Send(out, next, 7);
  }
  EXPECT_TRUE(at::equal(in, at::arange(kCount, at::kFloat) + 1e6f * prev));
}

// The all-reduce's slices travel point to point on a tag of their own: a user message still
// in flight (sent before, received after) is not taken for one of them.
TEST_F(CollectivesTest, AUserMessageInFlightDoesNotMixWithTheAllReduce) {
  if (size_ < 2) GTEST_SKIP() << "needs 2 ranks";
  constexpr int64_t kCount = 64;  // under the eager limit: Send returns before the Recv
  if (rank_ == 0) world_->Send(at::full({kCount}, -7.0f), 1, 0);
  at::Tensor t = at::full({kCount * size_}, static_cast<float>(rank_ + 1));
  world_->AllReduce(t, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(t, at::full({kCount * size_}, size_ * (size_ + 1) / 2.0f)));
  if (rank_ == 1) {
    at::Tensor in = at::zeros({kCount});
    world_->Recv(in, 0, 0);
    EXPECT_TRUE(at::equal(in, at::full({kCount}, -7.0f)));
  }
  world_->Barrier();
}

TEST_F(CollectivesTest, RecvOfTheWrongSizeIsAnInvalidArgument) {
  if (size_ < 2) GTEST_SKIP() << "needs 2 ranks";
  if (rank_ == 0) {
    world_->Send(at::ones({10}), 1, 5);
    world_->Send(at::ones({6}), 1, 6);
  } else if (rank_ == 1) {
    at::Tensor small = at::zeros({8});
    ExpectError([&] { world_->Recv(small, 0, 5); }, ErrorCode::kInvalidArgument,
                {"Recv from rank 0 (tag 5) on group world", "larger than the tensor"});
    ExpectError([&] { world_->Recv(small, 0, 6); }, ErrorCode::kInvalidArgument,
                {"received 6 elements into a tensor of 8"});
  }
  world_->Barrier();  // the group is still usable
}

}  // namespace
}  // namespace flexmoe
