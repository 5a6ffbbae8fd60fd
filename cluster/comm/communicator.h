// The collective-communication interface of the workers (modelled on c10d's Backend):
// all-reduce, broadcast, all-gather, all-to-all with per-peer splits, barrier, send and
// receive, over a process group. Backends: MPI (CPU tensors, always built) and NCCL (CUDA
// tensors, built when CUDA and NCCL are found).
//
// NOTE [ordering contract]: every rank of a group must issue the same collectives in the
// same order (point-to-point calls excepted). Each collective gets the group's next
// sequence number; errors name the operation, the group and that number.
//
// NOTE [deadlines]: every call waits at most its timeout (CollectiveOptions::timeout, or
// the communicator's default when unset). Past it the call throws
// flexmoe::Error(kDeadlineExceeded, "<op> on group <name> (seq <n>) exceeded <t> s"). After
// such an error the group is unusable: the caller aborts the job.
//
// NOTE [split validation]: AllToAll checks, on every rank and before any payload moves, that
// there is one split per peer and that the splits sum to the tensor's rows, and exchanges
// the send splits so that every rank checks that what it expects to receive is what its
// peers send. A rank whose splits are wrong makes every rank of the group raise
// kInvalidArgument (naming the rank and the splits) instead of leaving peers to hang.
//
// Threading: a Communicator is used by one thread at a time.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flexmoe {

enum class ReduceOp { kSum, kAverage, kMax };

// Where the tensors a group's calls take may live: ask this, not the backend's name.
struct CommCapabilities {
  bool host_tensors = false;    // CPU tensors (MPI, the single-rank group, a routed group)
  bool device_tensors = false;  // CUDA tensors (NCCL, a routed group)
};

struct CollectiveOptions {
  // Unset (negative) means the communicator's default timeout.
  std::chrono::milliseconds timeout{-1};
  // AllToAll only: the caller guarantees that every rank's recv_splits equal what its peers
  // send (they come from counts every rank already exchanged, as the MoE exchange's do).
  // A backend may then skip the split exchange of NOTE [split validation] and check only
  // locally (one split per peer, send splits summing to the rows); a local error then fails
  // this rank alone and its peers reach their deadline. Default: full validation.
  bool splits_agreed = false;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The group's name for messages ("world", "ep0", "dp1", ...).
  virtual const std::string& name() const = 0;
  // The backend ("mpi", "nccl"), for messages and logs.
  virtual const char* backend() const = 0;
  virtual CommCapabilities capabilities() const = 0;
  // Sequence number of the last collective issued on this group (0 before the first).
  virtual uint64_t sequence() const = 0;

  // In place over the group. kAverage divides the sum by size().
  virtual void AllReduce(at::Tensor& tensor, ReduceOp op,
                         const CollectiveOptions& options = {}) = 0;
  // In place: every rank ends with root's tensor (same shape and type on every rank).
  virtual void Broadcast(at::Tensor& tensor, int root, const CollectiveOptions& options = {}) = 0;
  // Every rank's tensor (same shape everywhere) stacked along a new dimension 0: [size, ...].
  virtual at::Tensor AllGather(const at::Tensor& tensor, const CollectiveOptions& options = {}) = 0;
  // Rows [0, send_splits[0]) go to rank 0, the next send_splits[1] rows to rank 1, ...; the
  // result holds recv_splits[r] rows from each rank r, in rank order. See the validation
  // note above. The row shape (all dimensions but the first) must agree on all ranks.
  virtual at::Tensor AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                              const std::vector<int64_t>& recv_splits,
                              const CollectiveOptions& options = {}) = 0;
  virtual void Barrier(const CollectiveOptions& options = {}) = 0;
  // Point to point; the receiver's tensor must have the sender's shape and type. The MPI
  // backend keeps its largest tag (MPI_TAG_UB) for its collectives and refuses it here.
  virtual void Send(const at::Tensor& tensor, int peer, int tag,
                    const CollectiveOptions& options = {}) = 0;
  virtual void Recv(at::Tensor& tensor, int peer, int tag,
                    const CollectiveOptions& options = {}) = 0;

  // A subgroup made of `ranks` of this group (in this group's numbering); every rank of
  // this group must call it with the same arguments, members and non-members alike.
  // Non-members get nullptr.
  virtual std::unique_ptr<Communicator> Split(const std::vector<int>& ranks,
                                              const std::string& name) = 0;
};

// The expert-parallel and data-parallel groups of a world with expert-parallel degree
// `ep` (0 = the whole world): EP group g holds ranks [g*ep, (g+1)*ep); the expert-data-
// parallel group of position p holds ranks p, p+ep, p+2ep, ... (the replicas of the
// experts at position p). Replicated parameters are reduced over the whole world.
struct ProcessGroups {
  Communicator* world = nullptr;
  std::unique_ptr<Communicator> expert_parallel;       // this rank's EP group
  std::unique_ptr<Communicator> expert_data_parallel;  // this rank's EDP group
  int ep_degree = 0;
};
ProcessGroups MakeProcessGroups(Communicator& world, int expert_parallel_degree);

}  // namespace flexmoe
