// MpiCommunicator: the Communicator over an MPI communicator, for CPU tensors; and
// MakeMpiWorld, which builds the world group from a duplicate of MPI_COMM_WORLD.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cluster/base/abort_signal.h"
#include "cluster/comm/communicator.h"

namespace flexmoe {

class Deadline;

// The MPI backend (see communicator.h for the contracts).
//
// Tensors: CPU, float32/float64/int64/int32/uint8/bool (others: kInvalidArgument); a
// non-contiguous tensor is made contiguous (and in-place results are copied back into it).
// Element counts travel as MPI `int`: a tensor (or, for AllToAll, a row count, a received
// total or a row size) above INT_MAX elements is rejected with kInvalidArgument.
//
// Waiting: every call starts non-blocking MPI operations and polls them with MPI_Test until
// they finish or the deadline passes (PollPacer: yielding, then sleeping 5-20 us). After a
// timeout the pending request and its buffers are parked in the communicator (MPI may still
// write into them) and every later call throws kFailedPrecondition; the caller aborts the job.
//
// AllReduce is bit-identical on every rank: floating-point sums are a reduce-scatter of
// slices followed by an all-gather, in point-to-point messages (NOTE [same bits on every
// rank]; MPI_Iallreduce does not promise the same rounding on every rank); max and integer
// sums use MPI_Iallreduce, which is exact. kAverage divides the sum by size()
// on every rank (integers: truncating division; bool: kInvalidArgument).
//
// AllToAll: NOTE [split validation] via split_check.h (one MPI_Iallgather of the split
// records), then MPI_Ialltoallv with one derived datatype per row.
//
// Send/Recv: to or from another rank; tag in [0, MPI_TAG_UB]. Send returns once MPI has the
// data (it may wait for the receiver for large messages). Point-to-point calls do not take
// sequence numbers; their messages show the last collective's.
//
// Threading: one thread at a time, and that thread must be MPI's main thread
// (MPI_THREAD_FUNNELED). Destroy communicators before MPI_Finalize (MpiSession's end).
class MpiCommunicator final : public Communicator {
 public:
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  const char* backend() const override { return "mpi"; }
  CommCapabilities capabilities() const override { return {true, false}; }
  uint64_t sequence() const override { return seq_; }

  void AllReduce(at::Tensor& tensor, ReduceOp op, const CollectiveOptions& options = {}) override;
  void Broadcast(at::Tensor& tensor, int root, const CollectiveOptions& options = {}) override;
  at::Tensor AllGather(const at::Tensor& tensor, const CollectiveOptions& options = {}) override;
  at::Tensor AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                      const std::vector<int64_t>& recv_splits,
                      const CollectiveOptions& options = {}) override;
  void Barrier(const CollectiveOptions& options = {}) override;
  void Send(const at::Tensor& tensor, int peer, int tag,
            const CollectiveOptions& options = {}) override;
  void Recv(at::Tensor& tensor, int peer, int tag, const CollectiveOptions& options = {}) override;

  // MPI_Comm_split over this group, after a deadline-bound rendezvous (an all-gather of the
  // arguments' fingerprint) that makes every rank throw kInvalidArgument when the arguments
  // are invalid or differ between ranks. Members are numbered in the order of `ranks`. The
  // subgroup inherits this group's default timeout.
  std::unique_ptr<Communicator> Split(const std::vector<int>& ranks,
                                      const std::string& name) override;

 private:
  struct Handle;   // the MPI_Comm (kept out of this header)
  struct Pending;  // a started request and the buffers it uses
  friend std::unique_ptr<Communicator> MakeMpiWorld(std::chrono::milliseconds default_timeout,
                                                    const AbortSignal* abort);

  MpiCommunicator(std::unique_ptr<Handle> handle, std::string name,
                  std::chrono::milliseconds default_timeout, const AbortSignal* abort);

  // Starts a collective: bumps the sequence number and returns "<op> on group .. (seq n)".
  std::string BeginCollective(const char* op);
  void CheckUsable(const std::string& what) const;
  // Polls `pending` until it completes and returns it, or parks it and throws at `deadline`.
  std::unique_ptr<Pending> Complete(std::unique_ptr<Pending> pending, const std::string& what,
                                    const Deadline& deadline);
  // The floating-point sum of AllReduce: buf (contiguous, checked) summed slice by slice,
  // NOTE [same bits on every rank] in the .cc.
  void SliceSum(at::Tensor& buf, const std::string& what, const Deadline& deadline);
  // Throws kInternal for an MPI error code and marks the group unusable.
  void CheckMpi(int rc, const std::string& what);

  std::unique_ptr<Handle> handle_;
  std::string name_;
  std::chrono::milliseconds default_timeout_;
  const AbortSignal* abort_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
  uint64_t seq_ = 0;
  std::string broken_;                            // the error that made the group unusable
  std::vector<std::unique_ptr<Pending>> parked_;  // requests abandoned at a deadline
};

// The world group ("world"): a duplicate of MPI_COMM_WORLD (MPI_Comm_idup, within
// `default_timeout`), so that our traffic never mixes with other users of MPI_COMM_WORLD.
// Collective over MPI_COMM_WORLD. Needs MPI initialised (MpiSession): kFailedPrecondition
// otherwise. `default_timeout` must be >= 0. With `abort` (which must outlive the group and
// its subgroups), every wait also ends as soon as it is raised: kAborted with its reason,
// and the group is unusable (the caller leaves through MPI_Abort).
std::unique_ptr<Communicator> MakeMpiWorld(std::chrono::milliseconds default_timeout,
                                           const AbortSignal* abort = nullptr);

}  // namespace flexmoe
