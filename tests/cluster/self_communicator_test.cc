// SelfCommunicator (a group of one): local results and the same argument checks as the
// multi-rank backends.
#include "cluster/comm/self_communicator.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;

TEST(SelfCommunicatorTest, CollectivesOverOneRank) {
  SelfCommunicator self;
  EXPECT_TRUE(self.capabilities().host_tensors);
  EXPECT_TRUE(self.capabilities().device_tensors);
  at::Tensor t = at::arange(6, at::kFloat);
  self.AllReduce(t, ReduceOp::kAverage);
  EXPECT_TRUE(at::equal(t, at::arange(6, at::kFloat)));
  self.Broadcast(t, 0);
  EXPECT_TRUE(at::equal(self.AllGather(t), at::arange(6, at::kFloat).unsqueeze(0)));
  at::Tensor rows = at::arange(12, at::kLong).reshape({3, 4});
  EXPECT_TRUE(at::equal(self.AllToAll(rows, {3}, {3}), rows));
  EXPECT_EQ(self.AllToAll(at::empty({0, 4}), {0}, {0}).sizes(), (std::vector<int64_t>{0, 4}));
  self.Barrier();
  EXPECT_EQ(self.sequence(), 6u);
  EXPECT_EQ(self.rank(), 0);
  EXPECT_EQ(self.size(), 1);
}

TEST(SelfCommunicatorTest, ChecksArguments) {
  SelfCommunicator self("solo");
  at::Tensor t = at::zeros({4, 2});
  ExpectError([&] { self.AllToAll(t, {3}, {4}); }, ErrorCode::kInvalidArgument,
              {"AllToAll on group solo (seq 1): invalid splits: rank 0: send splits [3]"});
  ExpectError(
      [&] {
        self.AllToAll(t, {4, 0}, {4});
      },
      ErrorCode::kInvalidArgument, {"rank 0 passed 2 send splits for a group of 1"});
  ExpectError([&] { self.Broadcast(t, 1); }, ErrorCode::kInvalidArgument, {"root 1"});
  ExpectError([&] { self.Send(t, 0, 0); }, ErrorCode::kInvalidArgument, {"no other rank"});
  ExpectError([&] { self.Recv(t, 0, 0); }, ErrorCode::kInvalidArgument, {"no other rank"});
  ExpectError([&] { self.Split({1}, "x"); }, ErrorCode::kInvalidArgument);
  EXPECT_EQ(self.Split({}, "none"), nullptr);
  auto sub = self.Split({0}, "sub");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->name(), "sub");
  ProcessGroups groups = MakeProcessGroups(self, 0);
  EXPECT_EQ(groups.expert_parallel->name(), "ep0");
  EXPECT_EQ(groups.expert_data_parallel->name(), "edp0");
}

}  // namespace
}  // namespace flexmoe
