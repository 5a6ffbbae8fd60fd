// MPI backend Split() and MakeProcessGroups: membership, numbering and names of the
// expert-parallel and expert-data-parallel groups, checked by all-gathering world ranks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <vector>

#include "cluster/comm/mpi_communicator.h"
#include "cluster/comm/routed_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::kTestTimeout;

class ProcessGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = MakeMpiWorld(kTestTimeout);
    rank_ = world_->rank();
    size_ = world_->size();
  }

  // The world ranks of `group`'s members, in the group's order.
  std::vector<int64_t> Members(Communicator& group) {
    at::Tensor all = group.AllGather(at::full({1}, rank_, at::kLong));
    return std::vector<int64_t>(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
  }

  std::unique_ptr<Communicator> world_;
  int rank_ = 0;
  int size_ = 1;
};

TEST_F(ProcessGroupsTest, SplitKeepsTheOrderOfRanksAndSkipsNonMembers) {
  std::vector<int> odd_first;  // odd ranks, highest first
  for (int r = size_ - 1; r >= 0; --r) {
    if (r % 2 == 1) odd_first.push_back(r);
  }
  auto group = world_->Split(odd_first, "odd");
  if (rank_ % 2 == 0) {
    EXPECT_EQ(group, nullptr);
    return;
  }
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->name(), "odd");
  EXPECT_EQ(group->size(), static_cast<int>(odd_first.size()));
  EXPECT_EQ(Members(*group), std::vector<int64_t>(odd_first.begin(), odd_first.end()));
}

TEST_F(ProcessGroupsTest, InvalidSplitsAreRejectedOnEveryRank) {
  ExpectError(
      [&] {
        world_->Split({0, size_}, "bad");
      },
      ErrorCode::kInvalidArgument,
      {"Split on group world (seq 1)", "rank " + std::to_string(size_) + " is not in"});
  ExpectError(
      [&] {
        world_->Split({0, 0}, "bad");
      },
      ErrorCode::kInvalidArgument, {"rank 0 is listed twice"});
  if (size_ >= 2) {
    // Ranks disagreeing on the arguments: every rank raises, nobody hangs in MPI_Comm_split.
    ExpectError([&] { world_->Split({0}, rank_ == 1 ? "other" : "same"); },
                ErrorCode::kInvalidArgument, {"ranks 1 passed other ranks or another name"});
  }
  world_->Barrier();
}

TEST_F(ProcessGroupsTest, WorldOfFourWithExpertParallelDegreeTwo) {
  if (size_ != 4) GTEST_SKIP() << "needs 4 ranks";
  ProcessGroups groups = MakeProcessGroups(*world_, 2);
  EXPECT_EQ(groups.world, world_.get());
  EXPECT_EQ(groups.ep_degree, 2);
  ASSERT_NE(groups.expert_parallel, nullptr);
  ASSERT_NE(groups.expert_data_parallel, nullptr);
  const std::vector<std::vector<int64_t>> ep = {{0, 1}, {2, 3}};
  const std::vector<std::vector<int64_t>> edp = {{0, 2}, {1, 3}};
  EXPECT_EQ(Members(*groups.expert_parallel), ep[rank_ / 2]);
  EXPECT_EQ(Members(*groups.expert_data_parallel), edp[rank_ % 2]);
  EXPECT_EQ(groups.expert_parallel->name(), "ep" + std::to_string(rank_ / 2));
  EXPECT_EQ(groups.expert_data_parallel->name(), "edp" + std::to_string(rank_ % 2));
  EXPECT_EQ(groups.expert_parallel->rank(), rank_ % 2);
  EXPECT_EQ(groups.expert_data_parallel->rank(), rank_ / 2);
}

TEST_F(ProcessGroupsTest, EveryDivisorOfTheWorldSize) {
  for (int ep = 1; ep <= size_; ++ep) {
    if (size_ % ep != 0) continue;
    ProcessGroups groups = MakeProcessGroups(*world_, ep);
    std::vector<int64_t> ep_members(ep);
    std::iota(ep_members.begin(), ep_members.end(), rank_ / ep * ep);
    std::vector<int64_t> edp_members;
    for (int r = rank_ % ep; r < size_; r += ep) edp_members.push_back(r);
    EXPECT_EQ(Members(*groups.expert_parallel), ep_members) << "ep " << ep;
    EXPECT_EQ(Members(*groups.expert_data_parallel), edp_members) << "ep " << ep;
  }
}

TEST_F(ProcessGroupsTest, DegreeZeroMeansTheWholeWorld) {
  ProcessGroups groups = MakeProcessGroups(*world_, 0);
  EXPECT_EQ(groups.ep_degree, size_);
  EXPECT_EQ(groups.expert_parallel->size(), size_);
  EXPECT_EQ(groups.expert_parallel->rank(), rank_);
  EXPECT_EQ(groups.expert_data_parallel->size(), 1);
  EXPECT_EQ(groups.expert_data_parallel->name(), "edp" + std::to_string(rank_));
}

TEST_F(ProcessGroupsTest, DegreesThatDoNotDivideTheWorldAreRejected) {
  ExpectError([&] { MakeProcessGroups(*world_, size_ + 1); }, ErrorCode::kInvalidArgument,
              {"expert-parallel degree " + std::to_string(size_ + 1) + " does not divide"});
  ExpectError([&] { MakeProcessGroups(*world_, -2); }, ErrorCode::kInvalidArgument);
  if (size_ == 4) {
    ExpectError([&] { MakeProcessGroups(*world_, 3); }, ErrorCode::kInvalidArgument);
  }
}

// A routed world over MPI with no device group (how a CPU or staged worker's collectives
// reach MPI): host tensors go to MPI, results as MPI's, and its splits route the same way.
TEST_F(ProcessGroupsTest, RoutedWorldOverMpiMatchesMpi) {
  RoutedCommunicator routed(*world_, nullptr);
  EXPECT_STREQ(routed.backend(), "mpi+staged");
  EXPECT_TRUE(routed.capabilities().host_tensors);
  EXPECT_TRUE(routed.capabilities().device_tensors);  // staged through host memory
  EXPECT_EQ(routed.rank(), rank_);
  EXPECT_EQ(routed.size(), size_);
  const uint64_t before = world_->sequence();
  at::Tensor t = at::full({5}, static_cast<double>(rank_ + 1));
  routed.AllReduce(t, ReduceOp::kSum);
  EXPECT_TRUE(at::equal(t, at::full({5}, size_ * (size_ + 1) / 2.0)));
  EXPECT_EQ(world_->sequence(), before + 1);  // it went over the MPI group
  EXPECT_FALSE(routed.Staged(t));
  EXPECT_EQ(&routed.GroupFor(t), world_.get());
  // All-to-all: rank r sends one row valued 100 r + p to each p.
  std::vector<int64_t> ones(size_, 1);
  at::Tensor rows = at::arange(size_, at::kLong).add(100 * rank_).view({size_, 1});
  at::Tensor got = routed.AllToAll(rows, ones, ones);
  for (int r = 0; r < size_; ++r) EXPECT_EQ(got[r][0].item<int64_t>(), 100 * r + rank_);
  // A subgroup of the even ranks, routed too.
  std::vector<int> even;
  for (int r = 0; r < size_; r += 2) even.push_back(r);
  std::unique_ptr<Communicator> sub = routed.Split(even, "even");
  ASSERT_EQ(sub != nullptr, rank_ % 2 == 0);
  if (sub) {
    EXPECT_STREQ(sub->backend(), "mpi+staged");
    EXPECT_EQ(sub->size(), static_cast<int>(even.size()));
    EXPECT_EQ(Members(*sub), std::vector<int64_t>(even.begin(), even.end()));
  }
}

}  // namespace
}  // namespace flexmoe
