// The MPI backend of Communicator: non-blocking MPI operations polled against deadlines.
#include "cluster/comm/mpi_communicator.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <utility>

#include "cluster/base/error.h"
#include "cluster/comm/deadline.h"
#include "cluster/comm/split_check.h"

namespace flexmoe {

struct MpiCommunicator::Handle {
  MPI_Comm comm = MPI_COMM_NULL;
  int tag_ub = 32767;  // the minimum MPI guarantees; replaced by MPI_TAG_UB
};

struct MpiCommunicator::Pending {
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_Status status{};
  // Point-to-point requests of one collective (the all-reduce's slices), completed together;
  // `request` stays null when these are used.
  std::vector<MPI_Request> requests;
  std::vector<at::Tensor> buffers;  // everything MPI reads or writes until completion
  std::vector<int> counts;          // counts and displacements (MPI_Ialltoallv)
};

namespace {

static_assert(sizeof(bool) == 1, "bool tensors travel as MPI_C_BOOL");

bool WireType(at::ScalarType dtype, MPI_Datatype* type) {
  switch (dtype) {
    case at::kFloat:
      *type = MPI_FLOAT;
      return true;
    case at::kDouble:
      *type = MPI_DOUBLE;
      return true;
    case at::kLong:
      *type = MPI_INT64_T;
      return true;
    case at::kInt:
      *type = MPI_INT32_T;
      return true;
    case at::kByte:
      *type = MPI_UINT8_T;
      return true;
    case at::kBool:
      *type = MPI_C_BOOL;
      return true;
    default:
      return false;
  }
}

// WireType, plus the types that are only moved, never summed: bfloat16 rows travel as their
// 16 raw bits (AllToAll).
bool MoveType(at::ScalarType dtype, MPI_Datatype* type) {
  if (dtype == at::kBFloat16) {
    *type = MPI_UINT16_T;
    return true;
  }
  return WireType(dtype, type);
}

// A contiguous CPU view of `tensor` (a copy if it is not contiguous), after checking what
// every MPI call needs. Sets the wire type and element count.
at::Tensor CheckedBuffer(const at::Tensor& tensor, const std::string& what, MPI_Datatype* type,
                         int* count) {
  if (!tensor.defined()) Fail(ErrorCode::kInvalidArgument, what, ": undefined tensor");
  if (!tensor.device().is_cpu()) {
    Fail(ErrorCode::kInvalidArgument, what, ": tensor on ", tensor.device(),
         "; the MPI backend takes CPU tensors");
  }
  if (!WireType(tensor.scalar_type(), type)) {
    Fail(ErrorCode::kInvalidArgument, what, ": unsupported dtype ", tensor.scalar_type());
  }
  if (tensor.numel() > INT_MAX) {
    Fail(ErrorCode::kInvalidArgument, what, ": ", tensor.numel(),
         " elements exceed MPI's int count limit ", INT_MAX);
  }
  *count = static_cast<int>(tensor.numel());
  return tensor.is_contiguous() ? tensor : tensor.contiguous();
}

// count elements split into `parts` slices as even as can be (the first ones one longer).
std::vector<int> SliceCounts(int count, int parts) {
  std::vector<int> counts(static_cast<size_t>(parts), count / parts);
  for (int r = 0; r < count % parts; ++r) ++counts[r];
  return counts;
}

std::string MpiErrorText(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(text, length);
}

// The plan of an AllToAll whose splits the caller guarantees to agree across ranks
// (CollectiveOptions::splits_agreed): only this rank's own checks, no exchange.
AllToAllPlan LocalSplitPlan(const at::Tensor& input, const std::vector<int64_t>& send,
                            const std::vector<int64_t>& recv, int group_size, SplitProblem problem,
                            const std::string& what) {
  const size_t peers = static_cast<size_t>(group_size);
  if (problem != SplitProblem::kNone) {
    Fail(ErrorCode::kInvalidArgument, what, ": invalid input (undefined, not on the CPU, or an ",
         "unsupported dtype)");
  }
  if (send.size() != peers || recv.size() != peers || input.dim() < 1) {
    Fail(ErrorCode::kInvalidArgument, what, ": ", send.size(), " send and ", recv.size(),
         " receive splits for a tensor of ", input.dim(), " dimensions");
  }
  AllToAllPlan plan;
  int64_t sent = 0;
  for (size_t p = 0; p < peers; ++p) {
    if (send[p] < 0 || recv[p] < 0 || send[p] > INT_MAX || recv[p] > INT_MAX) {
      Fail(ErrorCode::kInvalidArgument, what, ": split ", p, " out of range (send ", send[p],
           ", receive ", recv[p], ")");
    }
    sent += send[p];
    plan.recv_total += recv[p];
  }
  if (sent != input.size(0)) {
    Fail(ErrorCode::kInvalidArgument, what, ": send splits sum to ", sent, " but the tensor has ",
         input.size(0), " rows");
  }
  plan.row_numel = 1;
  for (int64_t d = 1; d < input.dim(); ++d) plan.row_numel *= input.size(d);
  if (plan.recv_total > INT_MAX || plan.row_numel > INT_MAX) {
    Fail(ErrorCode::kInvalidArgument, what, ": counts exceed MPI's int range");
  }
  plan.send_rows = send;
  plan.recv_rows = recv;
  return plan;
}

}  // namespace

MpiCommunicator::MpiCommunicator(std::unique_ptr<Handle> handle, std::string name,
                                 std::chrono::milliseconds default_timeout,
                                 const AbortSignal* abort)
    : handle_(std::move(handle)),
      name_(std::move(name)),
      default_timeout_(default_timeout),
      abort_(abort) {
  MPI_Comm_rank(handle_->comm, &rank_);
  MPI_Comm_size(handle_->comm, &size_);
  void* tag_ub = nullptr;
  int found = 0;
  MPI_Comm_get_attr(handle_->comm, MPI_TAG_UB, &tag_ub, &found);
  if (found) handle_->tag_ub = *static_cast<int*>(tag_ub);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  bool unfinished = finalized && !parked_.empty();
  for (auto& pending : parked_) {
    if (finalized) continue;
    int done = 0;
    if (!pending->requests.empty()) {
      if (MPI_Testall(static_cast<int>(pending->requests.size()), pending->requests.data(), &done,
                      MPI_STATUSES_IGNORE) != MPI_SUCCESS ||
          !done) {
        unfinished = true;
      }
      continue;
    }
    if (pending->request == MPI_REQUEST_NULL) continue;
    if (MPI_Test(&pending->request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) {
      unfinished = true;
    }
  }
  if (unfinished) {
    // MPI may still write into the parked buffers: they (and the MPI communicator) stay
    // allocated for the rest of the process, on purpose.
    std::fprintf(stderr,
                 "flexmoe: group %s destroyed with unfinished MPI requests; keeping their "
                 "buffers\n",
                 name_.c_str());
    static_cast<void>(new std::vector<std::unique_ptr<Pending>>(std::move(parked_)));
    return;
  }
  if (!finalized && handle_->comm != MPI_COMM_NULL) MPI_Comm_free(&handle_->comm);
}

std::string MpiCommunicator::BeginCollective(const char* op) {
  ++seq_;
  std::string what = DescribeCall(op, name_, seq_);
  CheckUsable(what);
  return what;
}

void MpiCommunicator::CheckUsable(const std::string& what) const {
  if (!broken_.empty()) FailUnusable(what, broken_);
}

void MpiCommunicator::CheckMpi(int rc, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  std::string message = what + ": " + MpiErrorText(rc);
  broken_ = message;
  Fail(ErrorCode::kInternal, message);
}

std::unique_ptr<MpiCommunicator::Pending> MpiCommunicator::Complete(
    std::unique_ptr<Pending> pending, const std::string& what, const Deadline& deadline) {
  PollPacer pacer;
  while (true) {
    int done = 0;
    const int rc = pending->requests.empty()
                       ? MPI_Test(&pending->request, &done, &pending->status)
                       : MPI_Testall(static_cast<int>(pending->requests.size()),
                                     pending->requests.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      int error_class = 0;
      MPI_Error_class(rc, &error_class);
      if (error_class == MPI_ERR_TRUNCATE) {
        // The request completed; the group is still in step.
        Fail(ErrorCode::kInvalidArgument, what, ": the message is larger than the tensor");
      }
      parked_.push_back(std::move(pending));
      CheckMpi(rc, what);
    }
    if (done) return pending;
    if (abort_ != nullptr && abort_->raised()) {
      broken_ = what + " aborted: " + abort_->reason();
      parked_.push_back(std::move(pending));
      Fail(ErrorCode::kAborted, what, " aborted: ", abort_->reason());
    }
    if (deadline.Passed()) {
      broken_ = what + " exceeded " + deadline.Seconds() + " s";
      parked_.push_back(std::move(pending));
      FailDeadline(what, deadline);
    }
    pacer.Pause();
  }
}

void MpiCommunicator::SliceSum(at::Tensor& buf, const std::string& what, const Deadline& deadline) {
  MPI_Datatype type = MPI_BYTE;
  WireType(buf.scalar_type(), &type);
  const int count = static_cast<int>(buf.numel());
  const std::vector<int> counts = SliceCounts(count, size_);
  std::vector<int> offsets(size_, 0);
  for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
  const int tag = handle_->tag_ub;  // the collectives' own (Send and Recv refuse it)
  const int64_t mine = counts[rank_];
  char* base = static_cast<char*>(buf.data_ptr());
  const size_t element = buf.element_size();
  // 1. Every other rank's part of this rank's slice, one after the other (rank order).
  at::Tensor parts = at::empty({std::max<int64_t>(0, (size_ - 1) * mine)}, buf.options());
  auto pending = std::make_unique<Pending>();
  pending->buffers = {buf, parts};
  int at = 0;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    pending->requests.emplace_back();
    CheckMpi(MPI_Irecv(static_cast<char*>(parts.data_ptr()) + element * mine * at, counts[rank_],
                       type, q, tag, handle_->comm, &pending->requests.back()),
             what);
    pending->requests.emplace_back();
    CheckMpi(MPI_Isend(base + element * offsets[q], counts[q], type, q, tag, handle_->comm,
                       &pending->requests.back()),
             what);
    ++at;
  }
  pending = Complete(std::move(pending), what, deadline);
  at::Tensor slice = buf.view({-1}).narrow(0, offsets[rank_], mine);
  for (int i = 0; i < size_ - 1; ++i) slice.add_(parts.narrow(0, i * mine, mine));
  // 2. The summed slices to every rank.
  pending->requests.clear();
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    pending->requests.emplace_back();
    CheckMpi(MPI_Irecv(base + element * offsets[q], counts[q], type, q, tag, handle_->comm,
                       &pending->requests.back()),
             what);
    pending->requests.emplace_back();
    CheckMpi(MPI_Isend(base + element * offsets[rank_], counts[rank_], type, q, tag, handle_->comm,
                       &pending->requests.back()),
             what);
  }
  Complete(std::move(pending), what, deadline);
}

void MpiCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op, const CollectiveOptions& options) {
  const std::string what = BeginCollective("AllReduce");
  const Deadline deadline(options, default_timeout_);
  MPI_Datatype type;
  int count = 0;
  at::Tensor buf = CheckedBuffer(tensor, what, &type, &count);
  const bool is_bool = tensor.scalar_type() == at::kBool;
  const bool floating = at::isFloatingType(tensor.scalar_type());
  if (is_bool && op == ReduceOp::kAverage) {
    Fail(ErrorCode::kInvalidArgument, what, ": kAverage of a bool tensor");
  }
  // The sum and the max of bools are both the logical or.
  const MPI_Op mpi_op = is_bool ? MPI_LOR : op == ReduceOp::kMax ? MPI_MAX : MPI_SUM;
  void* data = buf.data_ptr();
  if (floating && op != ReduceOp::kMax) {
    // NOTE [same bits on every rank]: each rank sums one slice of the buffer (a
    // reduce-scatter), then every rank gathers the summed slices (an all-gather). Every
    // element is summed once, by one rank, and copied to the others, so all ranks hold the
    // same bits; and the bytes moved per rank are 2 (W - 1) / W of the buffer (a reduce to
    // rank 0 and a broadcast moved 3-4x longer on 2 ranks: docs/benchmarks.md). Both phases
    // are point-to-point messages on the collectives' own tag, all posted at once: Open
    // MPI's nonblocking reduce-scatter and all-gather (libnbc) took twice as long.
    SliceSum(buf, what, deadline);
  } else {
    auto pending = std::make_unique<Pending>();
    pending->buffers = {buf};
    CheckMpi(
        MPI_Iallreduce(MPI_IN_PLACE, data, count, type, mpi_op, handle_->comm, &pending->request),
        what);
    Complete(std::move(pending), what, deadline);
  }
  if (op == ReduceOp::kAverage) {
    if (floating) {
      buf.div_(size_);
    } else {
      buf.div_(size_, "trunc");
    }
  }
  if (!buf.is_same(tensor)) tensor.copy_(buf);
}

void MpiCommunicator::Broadcast(at::Tensor& tensor, int root, const CollectiveOptions& options) {
  const std::string what = BeginCollective("Broadcast");
  const Deadline deadline(options, default_timeout_);
  if (root < 0 || root >= size_) {
    Fail(ErrorCode::kInvalidArgument, what, ": root ", root, " is not a rank of a group of ",
         size_);
  }
  MPI_Datatype type;
  int count = 0;
  at::Tensor buf = CheckedBuffer(tensor, what, &type, &count);
  auto pending = std::make_unique<Pending>();
  pending->buffers = {buf};
  CheckMpi(MPI_Ibcast(buf.data_ptr(), count, type, root, handle_->comm, &pending->request), what);
  Complete(std::move(pending), what, deadline);
  if (!buf.is_same(tensor)) tensor.copy_(buf);
}

at::Tensor MpiCommunicator::AllGather(const at::Tensor& tensor, const CollectiveOptions& options) {
  const std::string what = BeginCollective("AllGather");
  const Deadline deadline(options, default_timeout_);
  MPI_Datatype type;
  int count = 0;
  at::Tensor in = CheckedBuffer(tensor, what, &type, &count);
  std::vector<int64_t> sizes{size_};
  sizes.insert(sizes.end(), tensor.sizes().begin(), tensor.sizes().end());
  at::Tensor out = at::empty(sizes, in.options());
  auto pending = std::make_unique<Pending>();
  pending->buffers = {in, out};
  CheckMpi(MPI_Iallgather(in.data_ptr(), count, type, out.data_ptr(), count, type, handle_->comm,
                          &pending->request),
           what);
  Complete(std::move(pending), what, deadline);
  return out;
}

at::Tensor MpiCommunicator::AllToAll(const at::Tensor& input,
                                     const std::vector<int64_t>& send_splits,
                                     const std::vector<int64_t>& recv_splits,
                                     const CollectiveOptions& options) {
  const std::string what = BeginCollective("AllToAll");
  const Deadline deadline(options, default_timeout_);
  // Phase 1 (NOTE [split validation]): problems this rank finds are reported in its record so
  // that every rank fails together.
  const ClassifiedInput classified = ClassifyAllToAllInput(
      input, [](const at::Tensor& t, int) { return t.device().is_cpu(); }, 0,
      [](at::ScalarType dtype) {
        MPI_Datatype unused;
        return MoveType(dtype, &unused);
      });
  const SplitProblem problem = classified.problem;
  const at::Tensor& described = classified.described;
  MPI_Datatype type = MPI_BYTE;
  if (problem == SplitProblem::kNone) MoveType(input.scalar_type(), &type);
  AllToAllPlan plan;
  if (options.splits_agreed) {
    plan = LocalSplitPlan(input, send_splits, recv_splits, size_, problem, what);
  } else {
    const std::vector<int64_t> record =
        MakeSplitRecord(described, send_splits, recv_splits, size_, problem);
    const int length = static_cast<int>(record.size());
    auto pending = std::make_unique<Pending>();
    at::Tensor mine = at::empty({length}, at::kLong);
    std::copy(record.begin(), record.end(), mine.data_ptr<int64_t>());
    at::Tensor all = at::empty({int64_t{length} * size_}, at::kLong);
    pending->buffers = {mine, all};
    CheckMpi(MPI_Iallgather(mine.data_ptr(), length, MPI_INT64_T, all.data_ptr(), length,
                            MPI_INT64_T, handle_->comm, &pending->request),
             what);
    Complete(std::move(pending), what, deadline);
    const std::vector<int64_t> records(all.data_ptr<int64_t>(),
                                       all.data_ptr<int64_t>() + all.numel());
    plan = CheckSplitRecords(records, size_, rank_, INT_MAX, what);
  }

  // Phase 2: the payload, counted in rows of one derived datatype.
  at::Tensor in = input.is_contiguous() ? input : input.contiguous();
  std::vector<int64_t> sizes = input.sizes().vec();
  sizes[0] = plan.recv_total;
  at::Tensor out = at::empty(sizes, input.options());
  auto pending = std::make_unique<Pending>();
  pending->buffers = {in, out};
  pending->counts.assign(4 * size_, 0);
  int* send_counts = pending->counts.data();
  int* send_displs = send_counts + size_;
  int* recv_counts = send_displs + size_;
  int* recv_displs = recv_counts + size_;
  int64_t send_offset = 0;
  int64_t recv_offset = 0;
  for (int p = 0; p < size_; ++p) {  // all bounded by INT_MAX in CheckSplitRecords
    send_counts[p] = static_cast<int>(plan.send_rows[p]);
    send_displs[p] = static_cast<int>(send_offset);
    recv_counts[p] = static_cast<int>(plan.recv_rows[p]);
    recv_displs[p] = static_cast<int>(recv_offset);
    send_offset += plan.send_rows[p];
    recv_offset += plan.recv_rows[p];
  }
  MPI_Datatype row;
  CheckMpi(MPI_Type_contiguous(static_cast<int>(plan.row_numel), type, &row), what);
  CheckMpi(MPI_Type_commit(&row), what);
  const int rc = MPI_Ialltoallv(in.data_ptr(), send_counts, send_displs, row, out.data_ptr(),
                                recv_counts, recv_displs, row, handle_->comm, &pending->request);
  MPI_Type_free(&row);  // pending operations keep using it
  CheckMpi(rc, what);
  Complete(std::move(pending), what, deadline);
  return out;
}

void MpiCommunicator::Barrier(const CollectiveOptions& options) {
  const std::string what = BeginCollective("Barrier");
  const Deadline deadline(options, default_timeout_);
  auto pending = std::make_unique<Pending>();
  CheckMpi(MPI_Ibarrier(handle_->comm, &pending->request), what);
  Complete(std::move(pending), what, deadline);
}

void MpiCommunicator::Send(const at::Tensor& tensor, int peer, int tag,
                           const CollectiveOptions& options) {
  const std::string what = DescribeCall(
      "Send to rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")", name_, seq_);
  CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  if (peer < 0 || peer >= size_ || peer == rank_ || tag < 0 || tag >= handle_->tag_ub) {
    Fail(ErrorCode::kInvalidArgument, what, ": needs another rank of a group of ", size_,
         " and a tag in [0, ", handle_->tag_ub - 1, "] (", handle_->tag_ub,
         " is the collectives')");
  }
  MPI_Datatype type;
  int count = 0;
  at::Tensor buf = CheckedBuffer(tensor, what, &type, &count);
  auto pending = std::make_unique<Pending>();
  pending->buffers = {buf};
  CheckMpi(MPI_Isend(buf.data_ptr(), count, type, peer, tag, handle_->comm, &pending->request),
           what);
  Complete(std::move(pending), what, deadline);
}

void MpiCommunicator::Recv(at::Tensor& tensor, int peer, int tag,
                           const CollectiveOptions& options) {
  const std::string what = DescribeCall(
      "Recv from rank " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")", name_, seq_);
  CheckUsable(what);
  const Deadline deadline(options, default_timeout_);
  if (peer < 0 || peer >= size_ || peer == rank_ || tag < 0 || tag >= handle_->tag_ub) {
    Fail(ErrorCode::kInvalidArgument, what, ": needs another rank of a group of ", size_,
         " and a tag in [0, ", handle_->tag_ub - 1, "] (", handle_->tag_ub,
         " is the collectives')");
  }
  MPI_Datatype type;
  int count = 0;
  at::Tensor buf = CheckedBuffer(tensor, what, &type, &count);
  auto pending = std::make_unique<Pending>();
  pending->buffers = {buf};
  CheckMpi(MPI_Irecv(buf.data_ptr(), count, type, peer, tag, handle_->comm, &pending->request),
           what);
  pending = Complete(std::move(pending), what, deadline);
  int received = 0;
  MPI_Get_count(&pending->status, type, &received);
  if (received != count) {
    Fail(ErrorCode::kInvalidArgument, what, ": received ", received, " elements into a tensor of ",
         count);
  }
  if (!buf.is_same(tensor)) tensor.copy_(buf);
}

std::unique_ptr<Communicator> MpiCommunicator::Split(const std::vector<int>& ranks,
                                                     const std::string& name) {
  const std::string what = BeginCollective("Split");
  const Deadline deadline(default_timeout_);
  // NOTE [split rendezvous]: every rank must be here, with the same arguments, before
  // MPI_Comm_split (which has no non-blocking form) is called.
  const SplitMembership membership = CheckSplitRanks(ranks, size_, rank_);
  const int key = membership.key;
  const std::vector<int64_t> fingerprint = SplitFingerprint(ranks, name);
  auto pending = std::make_unique<Pending>();
  at::Tensor mine = at::empty({2}, at::kLong);
  std::copy(fingerprint.begin(), fingerprint.end(), mine.data_ptr<int64_t>());
  at::Tensor all = at::empty({2 * int64_t{size_}}, at::kLong);
  pending->buffers = {mine, all};
  CheckMpi(MPI_Iallgather(mine.data_ptr(), 2, MPI_INT64_T, all.data_ptr(), 2, MPI_INT64_T,
                          handle_->comm, &pending->request),
           what);
  Complete(std::move(pending), what, deadline);
  CheckSplitAgreement(all.data_ptr<int64_t>(), size_, membership, what);
  auto handle = std::make_unique<Handle>();
  CheckMpi(MPI_Comm_split(handle_->comm, key >= 0 ? 0 : MPI_UNDEFINED, key, &handle->comm), what);
  if (handle->comm == MPI_COMM_NULL) return nullptr;
  MPI_Comm_set_errhandler(handle->comm, MPI_ERRORS_RETURN);
  return std::unique_ptr<Communicator>(
      new MpiCommunicator(std::move(handle), name, default_timeout_, abort_));
}

std::unique_ptr<Communicator> MakeMpiWorld(std::chrono::milliseconds default_timeout,
                                           const AbortSignal* abort) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    Fail(ErrorCode::kFailedPrecondition,
         "MakeMpiWorld: MPI is not initialised (create an MpiSession in main())");
  }
  if (default_timeout.count() < 0) {
    Fail(ErrorCode::kInvalidArgument, "MakeMpiWorld: negative default timeout ",
         default_timeout.count(), " ms");
  }
  auto handle = std::make_unique<MpiCommunicator::Handle>();
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_Comm_idup(MPI_COMM_WORLD, &handle->comm, &request);
  const Deadline deadline(default_timeout);
  PollPacer pacer;
  while (true) {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) break;
    if (deadline.Passed()) {
      static_cast<void>(handle.release());  // MPI may still write the new handle into it
      FailDeadline(DescribeCall("CommDup", "world", 0), deadline);
    }
    pacer.Pause();
  }
  MPI_Comm_set_errhandler(handle->comm, MPI_ERRORS_RETURN);
  return std::unique_ptr<Communicator>(
      new MpiCommunicator(std::move(handle), "world", default_timeout, abort));
}

}  // namespace flexmoe
