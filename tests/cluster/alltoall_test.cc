// MPI backend AllToAll: uneven and zero splits with rows tagged (source, destination, row),
// checked exactly; and split validation: a bad rank makes every rank raise kInvalidArgument.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <climits>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/comm/mpi_communicator.h"
#include "tests/cluster/comm_test_util.h"

namespace flexmoe {
namespace {

using testing::ExpectError;
using testing::kTestTimeout;
using RowsFn = std::function<int64_t(int src, int dst)>;

// Row k from `src` to `dst`: [src, dst, k, 1000 * src + 10 * dst + k % 10, ...] up to `dim`.
at::Tensor TaggedRows(int src, int dst, int64_t rows, int64_t dim, at::ScalarType dtype) {
  at::Tensor t = at::empty({rows, dim}, at::kDouble);
  auto a = t.accessor<double, 2>();
  for (int64_t k = 0; k < rows; ++k) {
    for (int64_t c = 0; c < dim; ++c) {
      const double tags[4] = {double(src), double(dst), double(k),
                              1000.0 * src + 10.0 * dst + static_cast<double>(k % 10)};
      a[k][c] = c < 4 ? tags[c] : static_cast<double>(c);
    }
  }
  return t.to(dtype);
}

class AllToAllTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = MakeMpiWorld(kTestTimeout);
    rank_ = world_->rank();
    size_ = world_->size();
  }

  // Builds this rank's input and splits from `rows`, runs AllToAll and checks the output.
  void ExchangeAndCheck(const RowsFn& rows, int64_t dim, at::ScalarType dtype,
                        const CollectiveOptions& options = {}) {
    std::vector<at::Tensor> parts;
    std::vector<at::Tensor> expected;
    std::vector<int64_t> send;
    std::vector<int64_t> recv;
    for (int p = 0; p < size_; ++p) {
      send.push_back(rows(rank_, p));
      recv.push_back(rows(p, rank_));
      parts.push_back(TaggedRows(rank_, p, rows(rank_, p), dim, dtype));
      expected.push_back(TaggedRows(p, rank_, rows(p, rank_), dim, dtype));
    }
    at::Tensor out = world_->AllToAll(at::cat(parts), send, recv, options);
    EXPECT_TRUE(at::equal(out, at::cat(expected))) << dtype << " dim " << dim;
  }

  // Every rank passes valid splits for rows(i, j) = (i + j) % 3, except where `tweak` edits
  // them; every rank must then raise kInvalidArgument naming `parts`.
  void ExpectEveryRankRejects(
      const std::function<void(at::Tensor&, std::vector<int64_t>&, std::vector<int64_t>&)>& tweak,
      std::initializer_list<std::string> parts) {
    std::vector<int64_t> send;
    std::vector<int64_t> recv;
    int64_t rows = 0;
    for (int p = 0; p < size_; ++p) {
      send.push_back((rank_ + p) % 3);
      recv.push_back((p + rank_) % 3);
      rows += send.back();
    }
    at::Tensor input = at::zeros({rows, 4});
    tweak(input, send, recv);
    ExpectError([&] { world_->AllToAll(input, send, recv); }, ErrorCode::kInvalidArgument, parts);
    // No payload moved and the group is still in step.
    ExchangeAndCheck([](int i, int j) { return int64_t{(i + 2 * j) % 3}; }, 4, at::kFloat);
  }

  std::unique_ptr<Communicator> world_;
  int rank_ = 0;
  int size_ = 1;
};

TEST_F(AllToAllTest, UnevenSplitsWithZerosDeliverTaggedRows) {
  const RowsFn rows = [](int i, int j) { return int64_t{(i * 7 + j * 3) % 4}; };
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kInt}) {
    ExchangeAndCheck(rows, 4, dtype);
  }
  ExchangeAndCheck(rows, 1000, at::kFloat);  // large rows: past MPI's eager limit
}

// With agreed splits (no split exchange) the same rows arrive; local errors still raise.
TEST_F(AllToAllTest, AgreedSplitsSkipTheExchangeButNotTheLocalChecks) {
  CollectiveOptions agreed;
  agreed.splits_agreed = true;
  const RowsFn rows = [](int i, int j) { return int64_t{(i * 7 + j * 3) % 4}; };
  ExchangeAndCheck(rows, 4, at::kFloat, agreed);
  ExchangeAndCheck([](int i, int) { return i == 0 ? int64_t{0} : int64_t{3}; }, 6, at::kDouble,
                   agreed);
  // Every rank makes the same local mistake, so none enters the payload exchange.
  std::vector<int64_t> send(size_, 1), recv(size_, 1);
  ExpectError(
      [&] {
        world_->AllToAll(at::zeros({size_ + 1, 4}), send, recv, agreed);
      },
      ErrorCode::kInvalidArgument, {"send splits sum to"});
  std::vector<int64_t> short_splits(size_ + 1, 0);
  ExpectError(
      [&] {
        world_->AllToAll(at::zeros({0, 4}), short_splits, short_splits, agreed);
      },
      ErrorCode::kInvalidArgument, {"receive splits"});
  ExchangeAndCheck(rows, 4, at::kFloat);  // the group is still in step
}

TEST_F(AllToAllTest, ARankSendingNothing) {
  ExchangeAndCheck([](int i, int j) { return i == 0 ? int64_t{0} : int64_t{i + j + 1}; }, 5,
                   at::kFloat);
}

TEST_F(AllToAllTest, ARankReceivingNothing) {
  ExchangeAndCheck([](int i, int j) { return j == 0 ? int64_t{0} : int64_t{2 * i + j}; }, 4,
                   at::kDouble);
}

TEST_F(AllToAllTest, AllSplitsZero) {
  std::vector<int64_t> zeros(size_, 0);
  at::Tensor out = world_->AllToAll(at::empty({0, 8}), zeros, zeros);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{0, 8}));
}

TEST_F(AllToAllTest, RowsOfSeveralDimensionsAndNonContiguousInput) {
  std::vector<int64_t> send;
  std::vector<int64_t> recv;
  for (int p = 0; p < size_; ++p) {
    send.push_back(p + 1);
    recv.push_back(rank_ + 1);
  }
  const int64_t rows = size_ * (size_ + 1) / 2;
  // [rows, 2, 3], built transposed so that it is not contiguous.
  at::Tensor input =
      (at::arange(rows * 6, at::kFloat).reshape({3, 2, rows}) + 1000 * rank_).permute({2, 1, 0});
  ASSERT_FALSE(input.is_contiguous());
  at::Tensor out = world_->AllToAll(input, send, recv);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{(rank_ + 1) * size_, 2, 3}));
  for (int p = 0; p < size_; ++p) {
    const int64_t offset = int64_t{rank_} * (rank_ + 1) / 2;  // rows p sends to lower ranks
    at::Tensor from_p =
        (at::arange(rows * 6, at::kFloat).reshape({3, 2, rows}) + 1000 * p).permute({2, 1, 0});
    EXPECT_TRUE(at::equal(out.slice(0, p * (rank_ + 1), (p + 1) * (rank_ + 1)),
                          from_p.slice(0, offset, offset + rank_ + 1)))
        << "from rank " << p;
  }
}

TEST_F(AllToAllTest, SplitsNotSummingToTheRowsAreRejectedEverywhere) {
  const int bad = size_ - 1;
  ExpectEveryRankRejects(
      [&](at::Tensor&, std::vector<int64_t>& send, std::vector<int64_t>&) {
        if (rank_ == bad) send[0] += 1;
      },
      {"AllToAll on group world (seq 1): invalid splits: rank " + std::to_string(bad) +
           ": send splits [",
       "do not sum to the tensor's"});
}

TEST_F(AllToAllTest, AWrongNumberOfSplitsIsRejectedEverywhere) {
  const int bad = size_ - 1;
  ExpectEveryRankRejects(
      [&](at::Tensor&, std::vector<int64_t>& send, std::vector<int64_t>&) {
        if (rank_ == bad) send.push_back(0);
      },
      {"rank " + std::to_string(bad) + " passed " + std::to_string(size_ + 1) +
       " send splits for a group of " + std::to_string(size_)});
}

TEST_F(AllToAllTest, ANegativeSplitIsRejectedEverywhere) {
  ExpectEveryRankRejects(
      [&](at::Tensor&, std::vector<int64_t>&, std::vector<int64_t>& recv) {
        if (rank_ == 0) recv[0] = -1;
      },
      {"rank 0: negative receive split in [-1"});
}

TEST_F(AllToAllTest, ReceiveSplitsDisagreeingWithTheSenderAreRejectedEverywhere) {
  const int sender = size_ - 1;
  // Rank 0 expects one row more from `sender` than it sends.
  const std::string sends = std::to_string((sender + 0) % 3);
  ExpectEveryRankRejects(
      [&](at::Tensor&, std::vector<int64_t>&, std::vector<int64_t>& recv) {
        if (rank_ == 0) recv[sender] += 1;
      },
      {"rank 0 expects " + std::to_string(sender % 3 + 1) + " rows from rank " +
       std::to_string(sender) + ", which sends " + sends});
}

TEST_F(AllToAllTest, RowShapeAndDtypeMismatchesAreRejectedEverywhere) {
  if (size_ < 2) GTEST_SKIP() << "needs 2 ranks";
  const int bad = size_ - 1;
  ExpectEveryRankRejects(
      [&](at::Tensor& input, std::vector<int64_t>&, std::vector<int64_t>&) {
        if (rank_ == bad) input = at::zeros({input.size(0), 5});
      },
      {"rank " + std::to_string(bad) + " sends rows of 5 elements but rank 0 rows of 4"});
  ExpectEveryRankRejects(
      [&](at::Tensor& input, std::vector<int64_t>&, std::vector<int64_t>&) {
        if (rank_ == bad) input = at::zeros({input.size(0), 2, 2});
      },
      {"rank " + std::to_string(bad) + " sends rows of 4 elements in another shape"});
  ExpectEveryRankRejects(
      [&](at::Tensor& input, std::vector<int64_t>&, std::vector<int64_t>&) {
        if (rank_ == bad) input = input.to(at::kDouble);
      },
      {"rank " + std::to_string(bad) + " sends Double rows but rank 0 sends Float"});
}

TEST_F(AllToAllTest, LocalProblemsAreRejectedEverywhere) {
  const int bad = size_ - 1;
  ExpectEveryRankRejects(
      [&](at::Tensor& input, std::vector<int64_t>&, std::vector<int64_t>&) {
        if (rank_ == bad) input = input.to(at::kHalf);
      },
      {"rank " + std::to_string(bad) + ": unsupported dtype Half"});
  ExpectEveryRankRejects(
      [&](at::Tensor& input, std::vector<int64_t>&, std::vector<int64_t>&) {
        if (rank_ == bad) input = at::Tensor();
      },
      {"rank " + std::to_string(bad) + ": undefined tensor"});
}

TEST_F(AllToAllTest, RowCountsBeyondMpisIntAreRejectedEverywhere) {
  // 2^31 rows of zero elements: no memory, but more rows than an MPI count can hold.
  const int64_t rows = int64_t{INT_MAX} + 1;
  std::vector<int64_t> splits(size_, 0);
  at::Tensor input = at::empty({0, 0});
  if (rank_ == 0) {
    splits[0] = rows;
    input = at::empty({rows, 0});
  }
  ExpectError([&] { world_->AllToAll(input, splits, splits); }, ErrorCode::kInvalidArgument,
              {"rank 0: 2147483648 rows exceed the count limit 2147483647"});
}

}  // namespace
}  // namespace flexmoe
