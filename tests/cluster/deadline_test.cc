// MPI backend deadlines: rank 1 joins late, rank 0 gives up after 200 ms with
// kDeadlineExceeded naming op, group and seq; the group is then unusable on rank 0. Each test
// uses a fresh subgroup, and the late rank still completes its side (rank 0 keeps driving
// MPI's progress in the world barrier), so that the process exits cleanly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "cluster/comm/mpi_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::kTestTimeout;

constexpr std::chrono::milliseconds kShort{200};
constexpr std::chrono::milliseconds kLate{700};

class DeadlineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = MakeMpiWorld(kTestTimeout);
    rank_ = world_->rank();
    size_ = world_->size();
    if (size_ < 2) GTEST_SKIP() << "needs 2 ranks";
    std::vector<int> all(size_);
    std::iota(all.begin(), all.end(), 0);
    late_ = world_->Split(all, "late");  // a fresh group per test
  }

  CollectiveOptions Timeout(std::chrono::milliseconds timeout) const {
    CollectiveOptions options;
    options.timeout = timeout;
    return options;
  }

  std::unique_ptr<Communicator> world_;
  std::unique_ptr<Communicator> late_;
  int rank_ = 0;
  int size_ = 1;
};

TEST_F(DeadlineTest, BarrierPastItsDeadline) {
  if (rank_ == 1) std::this_thread::sleep_for(kLate);
  if (rank_ == 0) {
    const auto start = std::chrono::steady_clock::now();
    ExpectError([&] { late_->Barrier(Timeout(kShort)); }, ErrorCode::kDeadlineExceeded,
                {"Barrier on group late (seq 1) exceeded 0.2 s"});
    EXPECT_LT(std::chrono::steady_clock::now() - start, kLate);
    ExpectError(
        [&] { late_->Barrier(); }, ErrorCode::kFailedPrecondition,
        {"Barrier on group late (seq 2)", "unusable after an earlier error", "exceeded 0.2 s"});
  } else {
    late_->Barrier(Timeout(kTestTimeout));
  }
  world_->Barrier();
}

TEST_F(DeadlineTest, AllReducePastItsDeadline) {
  at::Tensor t = at::full({1000}, rank_, at::kLong);
  if (rank_ == 1) std::this_thread::sleep_for(kLate);
  if (rank_ == 0) {
    ExpectError([&] { late_->AllReduce(t, ReduceOp::kMax, Timeout(kShort)); },
                ErrorCode::kDeadlineExceeded, {"AllReduce on group late (seq 1) exceeded 0.2 s"});
  } else {
    late_->AllReduce(t, ReduceOp::kMax, Timeout(kTestTimeout));
    EXPECT_TRUE(at::equal(t, at::full({1000}, size_ - 1, at::kLong)));
  }
  world_->Barrier();
}

TEST_F(DeadlineTest, SendPastItsDeadline) {
  constexpr int64_t kCount = 1 << 20;  // far past the eager limit: waits for the receiver
  if (rank_ == 0) {
    ExpectError([&] { late_->Send(at::ones({kCount}), 1, 3, Timeout(kShort)); },
                ErrorCode::kDeadlineExceeded,
                {"Send to rank 1 (tag 3) on group late (seq 0) exceeded 0.2 s"});
  } else if (rank_ == 1) {
    std::this_thread::sleep_for(kLate);
    at::Tensor in = at::zeros({kCount});
    late_->Recv(in, 0, 3, Timeout(kTestTimeout));
    EXPECT_TRUE(at::equal(in, at::ones({kCount})));
  }
  world_->Barrier();
}

// Rank 0 gives up during the split exchange and never posts the payload exchange: the
// others then pass their own (longer) deadline instead of hanging.
TEST_F(DeadlineTest, AllToAllPastItsDeadlineOnEveryRank) {
  std::vector<int64_t> splits(size_, 1);
  at::Tensor input = at::zeros({size_, 4});
  if (rank_ == 1) std::this_thread::sleep_for(kLate);
  if (rank_ == 0) {
    ExpectError([&] { late_->AllToAll(input, splits, splits, Timeout(kShort)); },
                ErrorCode::kDeadlineExceeded, {"AllToAll on group late (seq 1) exceeded 0.2 s"});
  } else {
    ExpectError(
        [&] { late_->AllToAll(input, splits, splits, Timeout(std::chrono::milliseconds(1500))); },
        ErrorCode::kDeadlineExceeded, {"AllToAll on group late (seq 1) exceeded 1.5 s"});
  }
  world_->Barrier();
}

}  // namespace
}  // namespace flexmoe
