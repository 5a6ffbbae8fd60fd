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

// What every backend does with an AllToAll's input before the record: an undefined tensor
// is described as an empty one; one that is not where the backend works (`on_backend`) or has
// no wire type (`has_wire_type`) is reported, never thrown alone.
struct ClassifiedInput {
  at::Tensor described;
  SplitProblem problem = SplitProblem::kNone;
};
ClassifiedInput ClassifyAllToAllInput(const at::Tensor& input,
                                      bool (*on_backend)(const at::Tensor&, int), int device,
                                      bool (*has_wire_type)(at::ScalarType));

// NOTE [split rendezvous]: Communicator::Split on every backend. Each rank checks the ranks
// it was given (CheckSplitRanks), all-gathers the two-word fingerprint of (ranks, name)
// (SplitFingerprint), and CheckSplitAgreement fails every rank when any rank passed other
// arguments than rank 0 (naming them) or when the ranks are invalid; only then is the
// backend's subgroup made.
struct SplitMembership {
  int key = -1;         // this rank's index in `ranks`; -1: not a member
  std::string invalid;  // why `ranks` is not a valid list ("" when it is)
};
SplitMembership CheckSplitRanks(const std::vector<int>& ranks, int group_size, int rank);
std::vector<int64_t> SplitFingerprint(const std::vector<int>& ranks, const std::string& name);
// `prints`: group_size fingerprints of two words each, in rank order.
void CheckSplitAgreement(const int64_t* prints, int group_size, const SplitMembership& membership,
                         const std::string& what);

}  // namespace flexmoe
