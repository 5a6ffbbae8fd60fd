// SelfCommunicator: the Communicator of a group of one rank (like MPI_COMM_SELF), for
// single-process runs and for bootstrapping a single-rank NCCL communicator without MPI.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// A group of one: collectives copy locally and never block, so timeouts never apply.
// Works on tensors of any device and dtype. Checks arguments as the other backends do
// (AllToAll splits via split_check.h, roots, peers); Send and Recv always throw
// kInvalidArgument (there is no other rank). Threading: one thread at a time.
class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string name = "self") : name_(std::move(name)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  const char* backend() const override { return "self"; }
  // One rank moves nothing: any tensor is its own result.
  CommCapabilities capabilities() const override { return {true, true}; }
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
  // {0} gives a new SelfCommunicator named `name`; {} gives nullptr.
  std::unique_ptr<Communicator> Split(const std::vector<int>& ranks,
                                      const std::string& name) override;

 private:
  std::string Begin(const char* op);

  std::string name_;
  uint64_t seq_ = 0;
};

}  // namespace flexmoe
