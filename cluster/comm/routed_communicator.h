// RoutedCommunicator: one Communicator over two backends, chosen per call by where the
// tensor lives: host tensors (control values: split counts, losses, flags) over the host
// group (MPI), CUDA tensors over the device group (NCCL) or, when there is none
// (cluster.backend: MPI), staged through host memory over the host group. This is how a
// GPU worker's world is built (cluster.backend, docs/gpu.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// Each rank of a group issues the same collectives in the same order (NOTE [ordering
// contract]), so each of the two groups sees one order too. Threading: one thread at a time.
class RoutedCommunicator final : public Communicator {
 public:
  // `host` must outlive this object; `device` may be null (CUDA tensors are then staged).
  RoutedCommunicator(Communicator& host, std::unique_ptr<Communicator> device);
  // The same, owning its host group (the groups Split makes).
  RoutedCommunicator(std::unique_ptr<Communicator> host, std::unique_ptr<Communicator> device);

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const std::string& name() const override { return host_->name(); }
  // "mpi+nccl", or "mpi+staged" without a device group.
  const char* backend() const override { return backend_.c_str(); }
  // Host tensors over the host group; CUDA tensors over the device group or staged.
  CommCapabilities capabilities() const override { return {true, true}; }
  uint64_t sequence() const override;

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
  // Splits both groups (every rank calls it, as the contract says).
  std::unique_ptr<Communicator> Split(const std::vector<int>& ranks,
                                      const std::string& name) override;

  // The group a tensor's collective goes to: the device group for a CUDA tensor when
  // there is one, else the host group.
  Communicator& GroupFor(const at::Tensor& tensor);
  // True when `tensor` is a CUDA tensor and there is no device group.
  bool Staged(const at::Tensor& tensor) const;

 private:
  std::unique_ptr<Communicator> owned_host_;
  Communicator* host_;
  std::unique_ptr<Communicator> device_;
  std::string backend_;
};

}  // namespace flexmoe
