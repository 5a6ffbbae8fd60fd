// RoutedCommunicator (routed_communicator.h).
#include "cluster/comm/routed_communicator.h"

#include <ATen/ATen.h>

#include "cluster/base/error.h"

namespace flexmoe {

RoutedCommunicator::RoutedCommunicator(Communicator& host, std::unique_ptr<Communicator> device)
    : host_(&host), device_(std::move(device)) {
  if (device_ != nullptr &&
      (device_->size() != host_->size() || device_->rank() != host_->rank())) {
    Fail(ErrorCode::kInvalidArgument, "RoutedCommunicator: group ", host_->name(),
         ": device group ", device_->name(), " has rank ", device_->rank(), " of ", device_->size(),
         ", host rank ", host_->rank(), " of ", host_->size());
  }
  backend_ =
      std::string(host_->backend()) + "+" + (device_ != nullptr ? device_->backend() : "staged");
}

RoutedCommunicator::RoutedCommunicator(std::unique_ptr<Communicator> host,
                                       std::unique_ptr<Communicator> device)
    : RoutedCommunicator(*host, std::move(device)) {
  owned_host_ = std::move(host);
}

uint64_t RoutedCommunicator::sequence() const {
  return host_->sequence() + (device_ != nullptr ? device_->sequence() : 0);
}

bool RoutedCommunicator::Staged(const at::Tensor& tensor) const {
  return tensor.defined() && tensor.is_cuda() && device_ == nullptr;
}

Communicator& RoutedCommunicator::GroupFor(const at::Tensor& tensor) {
  return tensor.defined() && tensor.is_cuda() && device_ != nullptr ? *device_ : *host_;
}

void RoutedCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op,
                                   const CollectiveOptions& options) {
  if (!Staged(tensor)) return GroupFor(tensor).AllReduce(tensor, op, options);
  at::Tensor host = tensor.to(at::kCPU);
  host_->AllReduce(host, op, options);
  tensor.copy_(host);
}

void RoutedCommunicator::Broadcast(at::Tensor& tensor, int root, const CollectiveOptions& options) {
  if (!Staged(tensor)) return GroupFor(tensor).Broadcast(tensor, root, options);
  at::Tensor host = tensor.to(at::kCPU);
  host_->Broadcast(host, root, options);
  tensor.copy_(host);
}

at::Tensor RoutedCommunicator::AllGather(const at::Tensor& tensor,
                                         const CollectiveOptions& options) {
  if (!Staged(tensor)) return GroupFor(tensor).AllGather(tensor, options);
  return host_->AllGather(tensor.to(at::kCPU), options).to(tensor.device());
}

at::Tensor RoutedCommunicator::AllToAll(const at::Tensor& input,
                                        const std::vector<int64_t>& send_splits,
                                        const std::vector<int64_t>& recv_splits,
                                        const CollectiveOptions& options) {
  if (!Staged(input)) return GroupFor(input).AllToAll(input, send_splits, recv_splits, options);
  return host_->AllToAll(input.to(at::kCPU), send_splits, recv_splits, options).to(input.device());
}

void RoutedCommunicator::Barrier(const CollectiveOptions& options) { host_->Barrier(options); }

void RoutedCommunicator::Send(const at::Tensor& tensor, int peer, int tag,
                              const CollectiveOptions& options) {
  if (!Staged(tensor)) return GroupFor(tensor).Send(tensor, peer, tag, options);
  host_->Send(tensor.to(at::kCPU), peer, tag, options);
}

void RoutedCommunicator::Recv(at::Tensor& tensor, int peer, int tag,
                              const CollectiveOptions& options) {
  if (!Staged(tensor)) return GroupFor(tensor).Recv(tensor, peer, tag, options);
  at::Tensor host = at::empty(tensor.sizes(), tensor.options().device(at::kCPU));
  host_->Recv(host, peer, tag, options);
  tensor.copy_(host);
}

std::unique_ptr<Communicator> RoutedCommunicator::Split(const std::vector<int>& ranks,
                                                        const std::string& name) {
  std::unique_ptr<Communicator> host = host_->Split(ranks, name);
  std::unique_ptr<Communicator> device = device_ != nullptr ? device_->Split(ranks, name) : nullptr;
  if (host == nullptr) return nullptr;
  return std::make_unique<RoutedCommunicator>(std::move(host), std::move(device));
}

}  // namespace flexmoe
