// The AllToAll split verdict as a pure function: gathered records in, one message out.
#include "cluster/comm/split_check.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;

// Records of a group where rank r holds rows[r] and sends send[r][p] rows to p.
std::vector<int64_t> Gather(const std::vector<at::Tensor>& inputs,
                            const std::vector<std::vector<int64_t>>& send,
                            const std::vector<std::vector<int64_t>>& recv) {
  std::vector<int64_t> all;
  const int size = static_cast<int>(inputs.size());
  for (int r = 0; r < size; ++r) {
    auto record = MakeSplitRecord(inputs[r], send[r], recv[r], size, SplitProblem::kNone);
    all.insert(all.end(), record.begin(), record.end());
  }
  return all;
}

TEST(SplitCheckTest, ValidRecordsGiveEachRanksPlan) {
  const auto records =
      Gather({at::zeros({3, 2}), at::zeros({1, 2})}, {{1, 2}, {0, 1}}, {{1, 0}, {2, 1}});
  const AllToAllPlan plan = CheckSplitRecords(records, 2, 1, INT32_MAX, "op");
  EXPECT_EQ(plan.send_rows, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(plan.recv_rows, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(plan.recv_total, 3);
  EXPECT_EQ(plan.row_numel, 2);
}

TEST(SplitCheckTest, EveryProblemIsNamedWithItsRanks) {
  const auto records = Gather({at::zeros({3, 2}), at::zeros({1, 2}), at::zeros({2, 2})},
                              {{1, 1, 1}, {0, 1, 0}, {1, 1, 0}}, {{1, 0, 2}, {1, 1, 1}, {1, 0, 0}});
  const std::string message = ExpectError(
      [&] { CheckSplitRecords(records, 3, 0, INT32_MAX, "AllToAll on group g (seq 4)"); },
      ErrorCode::kInvalidArgument,
      {"AllToAll on group g (seq 4): invalid splits: ",
       "rank 0 expects 2 rows from rank 2, which sends 1 (rank 2 send splits "
       "[1, 1, 0], rank 0 receive splits [1, 0, 2])"});
  // The one mismatching pair (0 <- 2) is reported; matching pairs are not.
  EXPECT_EQ(message.find("rank 2 expects"), std::string::npos) << message;
}

TEST(SplitCheckTest, ListsAreCappedAndOverflowIsCaught) {
  const std::vector<int64_t> huge = {INT64_MAX, INT64_MAX};
  const auto records = Gather({at::zeros({5}), at::zeros({5})}, {huge, {5, 0}}, {{0, 5}, {0, 0}});
  ExpectError([&] { CheckSplitRecords(records, 2, 0, INT64_MAX, "op"); },
              ErrorCode::kInvalidArgument, {"rank 0: send splits [", "do not sum"});
}

}  // namespace
}  // namespace flexmoe
