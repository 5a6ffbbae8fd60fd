// NOTE [split validation] made concrete: the fixed-length record each rank all-gathers before
// an AllToAll moves any payload, and the verdict every rank computes from the same records.
//
// Protocol (one extra small collective per AllToAll):
//   1. Each rank fills its record: a local problem code (wrong device, unsupported dtype,
//      0-dim tensor), dtype, rows, row size and shape fingerprint, how many send and receive
//      splits it was given, then exactly `size` send splits and `size` receive splits (absent
//      entries are kMissingSplit).
//   2. The records are all-gathered (MPI_Iallgather / ncclAllGather, under the call's
//      deadline), so every rank holds the whole split matrix.
//   3. CheckSplitRecords, a pure function of the gathered records, either returns this rank's
//      plan or throws kInvalidArgument with the same message on every rank, naming each
//      offending rank and its splits. A pairwise count exchange alone would tell only the two
//      ranks of a disagreeing pair; the all-gather lets all ranks reach one verdict in one round.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flexmoe {

// Local problems a rank reports in its record instead of throwing alone (peers would hang).
enum class SplitProblem : int64_t {
  kNone = 0,
  kWrongDevice = 1,       // not on the backend's device
  kUnsupportedDtype = 2,  // no wire type for this dtype
  kNoRows = 3,            // a 0-dim tensor has no rows to split
  kUndefined = 4,         // an undefined tensor
};

constexpr int64_t kMissingSplit = INT64_MIN;

int64_t SplitRecordLength(int group_size);

// This rank's record (see the protocol above).
std::vector<int64_t> MakeSplitRecord(const at::Tensor& input,
                                     const std::vector<int64_t>& send_splits,
                                     const std::vector<int64_t>& recv_splits, int group_size,
                                     SplitProblem problem);

// What this rank moves once every record checked out. Counts are in rows.
struct AllToAllPlan {
  std::vector<int64_t> send_rows;  // per peer
  std::vector<int64_t> recv_rows;  // per peer
  int64_t recv_total = 0;
  int64_t row_numel = 0;
};

// Checks the gathered records (group_size records of SplitRecordLength each, in rank order)
// and returns `rank`'s plan, or throws kInvalidArgument "<what>: invalid splits: ..." with the
// same text on every rank. `max_count` bounds rows, received rows and row elements (the
// backend's count type: INT_MAX for MPI).
AllToAllPlan CheckSplitRecords(const std::vector<int64_t>& records, int group_size, int rank,
                               int64_t max_count, const std::string& what);

}  // namespace flexmoe
