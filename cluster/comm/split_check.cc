// The AllToAll split record and the verdict every rank computes from the gathered records.
#include "cluster/comm/split_check.h"

#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>

#include <algorithm>
#include <sstream>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// Record layout (SplitRecordLength(size) int64 values).
enum Field : int64_t {
  kProblem = 0,
  kDtype,
  kRows,
  kRowNumel,
  kRowShape,
  kSendCount,
  kRecvCount,
  kHeader,  // then `size` send splits, then `size` receive splits
};

constexpr int kMaxReported = 8;  // problems listed in one message
constexpr int kMaxListed = 16;   // splits printed per list

int64_t RowShapeFingerprint(const at::Tensor& tensor) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a over the row dimensions
  for (int64_t d = 1; d < tensor.dim(); ++d) {
    hash = (hash ^ static_cast<uint64_t>(tensor.size(d))) * 1099511628211ull;
  }
  return static_cast<int64_t>(hash >> 1);
}

std::string DtypeName(int64_t code) {
  if (code < 0 || code >= static_cast<int64_t>(c10::ScalarType::NumOptions)) return "?";
  return c10::toString(static_cast<c10::ScalarType>(code));
}

// One rank's record inside the gathered buffer.
class RecordView {
 public:
  RecordView(const std::vector<int64_t>& records, int size, int rank)
      : data_(records.data() + rank * SplitRecordLength(size)), size_(size) {}
  int64_t at(Field field) const { return data_[field]; }
  int64_t send(int peer) const { return data_[kHeader + peer]; }
  int64_t recv(int peer) const { return data_[kHeader + size_ + peer]; }

 private:
  const int64_t* data_;
  int size_;
};

std::string ListSplits(const RecordView& record, int size, bool send) {
  std::ostringstream out;
  out << "[";
  for (int p = 0; p < size; ++p) {
    if (p == kMaxListed) {
      out << ", ...";
      break;
    }
    out << (p ? ", " : "") << (send ? record.send(p) : record.recv(p));
  }
  out << "]";
  return out.str();
}

// Sum of a complete split list; false on overflow.
bool SumSplits(const RecordView& record, int size, bool send, int64_t* sum) {
  *sum = 0;
  for (int p = 0; p < size; ++p) {
    if (__builtin_add_overflow(*sum, send ? record.send(p) : record.recv(p), sum)) return false;
  }
  return true;
}

// Problems of one rank's own record; returns false when its splits cannot be used.
bool CheckOwnRecord(const RecordView& r, int rank, int size, int64_t max_count,
                    std::vector<std::string>* problems) {
  auto report = [&](const auto&... parts) {
    std::ostringstream out;
    out << "rank " << rank;
    (out << ... << parts);
    problems->push_back(out.str());
    return false;
  };
  switch (static_cast<SplitProblem>(r.at(kProblem))) {
    case SplitProblem::kNone:
      break;
    case SplitProblem::kWrongDevice:
      return report(": tensor is not on the communicator's device");
    case SplitProblem::kUnsupportedDtype:
      return report(": unsupported dtype ", DtypeName(r.at(kDtype)));
    case SplitProblem::kNoRows:
      return report(": a 0-dim tensor has no rows to split");
    case SplitProblem::kUndefined:
      return report(": undefined tensor");
    default:
      return report(": unknown problem code ", r.at(kProblem));
  }
  if (r.at(kSendCount) != size) {
    return report(" passed ", r.at(kSendCount), " send splits for a group of ", size);
  }
  if (r.at(kRecvCount) != size) {
    return report(" passed ", r.at(kRecvCount), " receive splits for a group of ", size);
  }
  for (int p = 0; p < size; ++p) {
    if (r.send(p) < 0) return report(": negative send split in ", ListSplits(r, size, true));
    if (r.recv(p) < 0) return report(": negative receive split in ", ListSplits(r, size, false));
  }
  int64_t send_sum = 0;
  if (!SumSplits(r, size, true, &send_sum) || send_sum != r.at(kRows)) {
    return report(": send splits ", ListSplits(r, size, true), " do not sum to the tensor's ",
                  r.at(kRows), " rows");
  }
  if (r.at(kRows) > max_count) {
    return report(": ", r.at(kRows), " rows exceed the count limit ", max_count,
                  " of this backend");
  }
  int64_t recv_sum = 0;
  if (!SumSplits(r, size, false, &recv_sum) || recv_sum > max_count) {
    return report(": receive splits ", ListSplits(r, size, false), " exceed the count limit ",
                  max_count, " of this backend");
  }
  if (r.at(kRowNumel) > max_count) {
    return report(": rows of ", r.at(kRowNumel), " elements exceed the count limit ", max_count,
                  " of this backend");
  }
  return true;
}

}  // namespace

int64_t SplitRecordLength(int group_size) { return kHeader + 2 * int64_t{group_size}; }

std::vector<int64_t> MakeSplitRecord(const at::Tensor& input,
                                     const std::vector<int64_t>& send_splits,
                                     const std::vector<int64_t>& recv_splits, int group_size,
                                     SplitProblem problem) {
  if (problem == SplitProblem::kNone && input.dim() == 0) problem = SplitProblem::kNoRows;
  std::vector<int64_t> record(SplitRecordLength(group_size), kMissingSplit);
  record[kProblem] = static_cast<int64_t>(problem);
  record[kDtype] = static_cast<int64_t>(input.scalar_type());
  record[kRows] = input.dim() == 0 ? -1 : input.size(0);
  int64_t row_numel = 1;
  for (int64_t d = 1; d < input.dim(); ++d) {
    if (__builtin_mul_overflow(row_numel, input.size(d), &row_numel)) row_numel = INT64_MAX;
  }
  record[kRowNumel] = row_numel;
  record[kRowShape] = RowShapeFingerprint(input);
  record[kSendCount] = static_cast<int64_t>(send_splits.size());
  record[kRecvCount] = static_cast<int64_t>(recv_splits.size());
  for (int p = 0; p < group_size; ++p) {
    if (p < static_cast<int>(send_splits.size())) record[kHeader + p] = send_splits[p];
    if (p < static_cast<int>(recv_splits.size())) record[kHeader + group_size + p] = recv_splits[p];
  }
  return record;
}

AllToAllPlan CheckSplitRecords(const std::vector<int64_t>& records, int group_size, int rank,
                               int64_t max_count, const std::string& what) {
  const int size = group_size;
  std::vector<std::string> problems;
  std::vector<bool> usable(size);
  for (int p = 0; p < size; ++p) {
    usable[p] = CheckOwnRecord(RecordView(records, size, p), p, size, max_count, &problems);
  }
  // Row layout: compare everyone with the first rank whose record is usable.
  auto first = std::find(usable.begin(), usable.end(), true);
  if (first != usable.end()) {
    const int ref = static_cast<int>(first - usable.begin());
    const RecordView r0(records, size, ref);
    for (int p = ref + 1; p < size; ++p) {
      const RecordView r(records, size, p);
      if (!usable[p]) continue;
      std::ostringstream out;
      if (r.at(kDtype) != r0.at(kDtype)) {
        out << "rank " << p << " sends " << DtypeName(r.at(kDtype)) << " rows but rank " << ref
            << " sends " << DtypeName(r0.at(kDtype));
      } else if (r.at(kRowNumel) != r0.at(kRowNumel) || r.at(kRowShape) != r0.at(kRowShape)) {
        out << "rank " << p << " sends rows of " << r.at(kRowNumel) << " elements"
            << (r.at(kRowNumel) == r0.at(kRowNumel) ? " in another shape" : "") << " but rank "
            << ref << " rows of " << r0.at(kRowNumel);
      } else {
        continue;
      }
      problems.push_back(out.str());
    }
  }
  // Every receiver must expect exactly what each sender sends it.
  for (int q = 0; q < size; ++q) {
    for (int p = 0; p < size && usable[q]; ++p) {
      if (!usable[p]) continue;
      const int64_t expects = RecordView(records, size, q).recv(p);
      const int64_t sends = RecordView(records, size, p).send(q);
      if (expects == sends) continue;
      std::ostringstream out;
      out << "rank " << q << " expects " << expects << " rows from rank " << p << ", which sends "
          << sends << " (rank " << p << " send splits "
          << ListSplits(RecordView(records, size, p), size, true) << ", rank " << q
          << " receive splits " << ListSplits(RecordView(records, size, q), size, false) << ")";
      problems.push_back(out.str());
    }
  }
  if (!problems.empty()) {
    std::ostringstream out;
    out << what << ": invalid splits: ";
    for (int i = 0; i < static_cast<int>(problems.size()) && i < kMaxReported; ++i) {
      out << (i ? "; " : "") << problems[i];
    }
    if (problems.size() > kMaxReported) {
      out << "; and " << problems.size() - kMaxReported << " more";
    }
    Fail(ErrorCode::kInvalidArgument, out.str());
  }
  const RecordView mine(records, size, rank);
  AllToAllPlan plan;
  plan.row_numel = mine.at(kRowNumel);
  for (int p = 0; p < size; ++p) {
    plan.send_rows.push_back(mine.send(p));
    plan.recv_rows.push_back(mine.recv(p));
    plan.recv_total += mine.recv(p);
  }
  return plan;
}

ClassifiedInput ClassifyAllToAllInput(const at::Tensor& input,
                                      bool (*on_backend)(const at::Tensor&, int), int device,
                                      bool (*has_wire_type)(at::ScalarType)) {
  ClassifiedInput c{input, SplitProblem::kNone};
  if (!input.defined()) {
    c.problem = SplitProblem::kUndefined;
    c.described = at::empty({0});
  } else if (!on_backend(input, device)) {
    c.problem = SplitProblem::kWrongDevice;
  } else if (!has_wire_type(input.scalar_type())) {
    c.problem = SplitProblem::kUnsupportedDtype;
  }
  return c;
}

SplitMembership CheckSplitRanks(const std::vector<int>& ranks, int group_size, int rank) {
  SplitMembership m;
  std::vector<bool> seen(group_size);
  for (size_t i = 0; i < ranks.size() && m.invalid.empty(); ++i) {
    if (ranks[i] < 0 || ranks[i] >= group_size) {
      m.invalid = "rank " + std::to_string(ranks[i]) + " is not in a group of " +
                  std::to_string(group_size);
    } else if (seen[ranks[i]]) {
      m.invalid = "rank " + std::to_string(ranks[i]) + " is listed twice";
    } else {
      seen[ranks[i]] = true;
      if (ranks[i] == rank) m.key = static_cast<int>(i);
    }
  }
  return m;
}

namespace {

uint64_t Fnv1a(const void* data, size_t bytes) {
  uint64_t hash = 14695981039346656037ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

}  // namespace

std::vector<int64_t> SplitFingerprint(const std::vector<int>& ranks, const std::string& name) {
  return {static_cast<int64_t>(Fnv1a(ranks.data(), ranks.size() * sizeof(int))),
          static_cast<int64_t>(Fnv1a(name.data(), name.size()))};
}

void CheckSplitAgreement(const int64_t* prints, int group_size, const SplitMembership& membership,
                         const std::string& what) {
  std::string differing;
  for (int p = 1; p < group_size; ++p) {
    if (prints[2 * p] != prints[0] || prints[2 * p + 1] != prints[1]) {
      differing += (differing.empty() ? "" : ", ") + std::to_string(p);
    }
  }
  if (!differing.empty()) {
    Fail(ErrorCode::kInvalidArgument, what, ": ranks ", differing,
         " passed other ranks or another name than rank 0");
  }
  if (!membership.invalid.empty())
    Fail(ErrorCode::kInvalidArgument, what, ": ", membership.invalid);
}

}  // namespace flexmoe
