// NcclCommunicator: the Communicator over an NCCL communicator, for CUDA tensors of one
// device. Defined only when CMake finds NCCL (FLEXMOE_HAVE_NCCL); use MakeNcclCommunicator,
// which throws kFailedPrecondition "built without NCCL" otherwise.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// True when this build has the NCCL backend and a CUDA device is visible.
bool NcclAvailable();

// The NCCL group of `parent`'s ranks on CUDA device `device` (see NcclCommunicator).
std::unique_ptr<Communicator> MakeNcclCommunicator(Communicator& parent, int device,
                                                   std::chrono::milliseconds default_timeout);

// The NCCL backend (see communicator.h for the contracts).
//
// Bootstrap (collective over `parent`, e.g. the MPI world): rank 0 makes the ncclUniqueId and
// broadcasts it over `parent`; every rank then joins a non-blocking NCCL communicator
// (ncclConfig_t::blocking = 0) of parent.size() ranks, rank parent.rank(), on `device`, and
// waits for it within `default_timeout`. The group takes `parent`'s name; `parent` is not kept.
//
// Tensors: CUDA tensors on `device`; float32/64, float16, bfloat16, int64, int32, int8,
// uint8, bool (others: kInvalidArgument); non-contiguous ones are made contiguous.
//
// Streams and waiting: each call first orders its stream after the work queued so far on the
// legacy default stream (where LibTorch queues kernels unless the caller changes the current
// stream), enqueues the NCCL operation on the communicator's own stream, records an event and
// polls cudaEventQuery and ncclCommGetAsyncError until the event is reached or the deadline
// passes. So when a call returns its results are complete and visible to every stream. On a
// timeout or an NCCL error the communicator is aborted (ncclCommAbort), the call's buffers are
// kept alive for the rest of the process, and every later call throws kFailedPrecondition.
//
// AllReduce: ncclAllReduce (sum or max; bool: max); kAverage divides the sum by size() after
// the reduction (integers: truncating), as the MPI backend does. AllToAll: NOTE [split
// validation] via split_check.h (one ncclAllGather of the split records through pinned host
// memory), then ncclGroupStart + per-peer ncclSend/ncclRecv of byte ranges. Send/Recv: NCCL
// has no tags; `tag` must be >= 0 and messages between a pair match in issue order. Split:
// after a fingerprint rendezvous (as the MPI backend does), a new communicator from a unique
// id the subgroup's first rank draws and all-gathers (ncclCommInitRankConfig; not
// ncclCommSplit, see Split).
//
// Threading: one thread at a time. The destructor flushes the communicator
// (ncclCommFinalize) within the default timeout, else aborts it.
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& parent, int device, std::chrono::milliseconds default_timeout);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  const char* backend() const override { return "nccl"; }
  CommCapabilities capabilities() const override { return {false, true}; }
  uint64_t sequence() const override { return seq_; }
  int device() const;

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
  std::unique_ptr<Communicator> Split(const std::vector<int>& ranks,
                                      const std::string& name) override;

 private:
  struct State;  // the NCCL communicator, stream, events and staging buffers

  NcclCommunicator(std::unique_ptr<State> state, std::string name,
                   std::chrono::milliseconds default_timeout);

  std::unique_ptr<State> state_;
  std::string name_;
  std::chrono::milliseconds default_timeout_;
  int rank_ = 0;
  int size_ = 1;
  uint64_t seq_ = 0;
};

}  // namespace flexmoe
