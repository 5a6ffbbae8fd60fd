// MPI backend deadlines: rank 0 calls alone and gives up after 200 ms with kDeadlineExceeded
// naming op, group and seq; the group is then unusable on rank 0. The other ranks join only
// after rank 0 has given up (a world barrier orders them, so no timing is assumed: a call
// that did not honour its deadline would wait for them forever and the test's timeout would
// catch it). Each test uses a fresh subgroup, and the late ranks still complete their side
// (rank 0 keeps driving MPI's progress in the world barrier), so the process exits cleanly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <numeric>
#include <vector>

#include "cluster/comm/mpi_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::kTestTimeout;

constexpr std::chrono::milliseconds kShort{200};

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

  // Rank 0 runs `alone` (its call must pass its deadline: no other rank has joined), then
  // the others run `late`.
  void AloneThenLate(const std::function<void()>& alone, const std::function<void()>& late) {
    if (rank_ == 0) {
      alone();
      world_->Barrier();
    } else {
      world_->Barrier();
      late();
    }
    world_->Barrier();
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
  AloneThenLate(
      [&] {
        ExpectError([&] { late_->Barrier(Timeout(kShort)); }, ErrorCode::kDeadlineExceeded,
                    {"Barrier on group late (seq 1) exceeded 0.2 s"});
        ExpectError(
            [&] { late_->Barrier(); }, ErrorCode::kFailedPrecondition,
            {"Barrier on group late (seq 2)", "unusable after an earlier error", "exceeded 0.2 s"});
      },
      [&] { late_->Barrier(Timeout(kTestTimeout)); });
}

TEST_F(DeadlineTest, AllReducePastItsDeadline) {
  at::Tensor t = at::full({1000}, rank_, at::kLong);
  AloneThenLate(
      [&] {
        ExpectError([&] { late_->AllReduce(t, ReduceOp::kMax, Timeout(kShort)); },
                    ErrorCode::kDeadlineExceeded,
                    {"AllReduce on group late (seq 1) exceeded 0.2 s"});
      },
      [&] {
        late_->AllReduce(t, ReduceOp::kMax, Timeout(kTestTimeout));
        EXPECT_TRUE(at::equal(t, at::full({1000}, size_ - 1, at::kLong)));
      });
}

TEST_F(DeadlineTest, SendPastItsDeadline) {
  constexpr int64_t kCount = 1 << 20;  // far past the eager limit: waits for the receiver
  AloneThenLate(
      [&] {
        ExpectError([&] { late_->Send(at::ones({kCount}), 1, 3, Timeout(kShort)); },
                    ErrorCode::kDeadlineExceeded,
                    {"Send to rank 1 (tag 3) on group late (seq 0) exceeded 0.2 s"});
      },
      [&] {
        if (rank_ != 1) return;
        at::Tensor in = at::zeros({kCount});
        late_->Recv(in, 0, 3, Timeout(kTestTimeout));
        EXPECT_TRUE(at::equal(in, at::ones({kCount})));
      });
}

// Rank 0 gives up during the split exchange and never posts the payload exchange: the
// others then pass their own (longer) deadline instead of hanging.
TEST_F(DeadlineTest, AllToAllPastItsDeadlineOnEveryRank) {
  std::vector<int64_t> splits(size_, 1);
  at::Tensor input = at::zeros({size_, 4});
  AloneThenLate(
      [&] {
        ExpectError([&] { late_->AllToAll(input, splits, splits, Timeout(kShort)); },
                    ErrorCode::kDeadlineExceeded,
                    {"AllToAll on group late (seq 1) exceeded 0.2 s"});
      },
      [&] {
        ExpectError(
            [&] {
              late_->AllToAll(input, splits, splits, Timeout(std::chrono::milliseconds(1500)));
            },
            ErrorCode::kDeadlineExceeded, {"AllToAll on group late (seq 1) exceeded 1.5 s"});
      });
}

}  // namespace
}  // namespace flexmoe
