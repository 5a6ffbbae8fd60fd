// Flat-bucket gradient all-reduce (grad_sync.h).
#include "trainer/grad_sync.h"

#include <ATen/ATen.h>

namespace flexmoe {

GradientSynchronizer::GradientSynchronizer(std::vector<at::Tensor> replicated,
                                           std::vector<at::Tensor> experts, Communicator* world,
                                           Communicator* expert_replicas, int64_t bucket_bytes) {
  if (world != nullptr && world->size() > 1) AddBuckets(replicated, world, bucket_bytes);
  if (expert_replicas != nullptr && expert_replicas->size() > 1) {
    AddBuckets(experts, expert_replicas, bucket_bytes);
  }
}

void GradientSynchronizer::AddBuckets(const std::vector<at::Tensor>& parameters, Communicator* comm,
                                      int64_t bucket_bytes) {
  Bucket current;
  int64_t bytes = 0;
  auto close = [&]() {
    if (current.parameters.empty()) return;
    int64_t n = 0;
    for (const auto& p : current.parameters) n += p.numel();
    current.flat = at::empty({n}, current.parameters.front().options());
    current.comm = comm;
    buckets_.push_back(std::move(current));
    current = Bucket();
    bytes = 0;
  };
  for (const at::Tensor& p : parameters) {
    current.parameters.push_back(p);
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
    if (bytes >= bucket_bytes) close();
  }
  close();
}

void GradientSynchronizer::Synchronize() {
  for (Bucket& bucket : buckets_) {
    int64_t offset = 0;
    for (at::Tensor& p : bucket.parameters) {
      at::Tensor slice = bucket.flat.narrow(0, offset, p.numel());
      if (p.grad().defined()) {
        slice.copy_(p.grad().reshape({-1}));
      } else {
        slice.zero_();
      }
      offset += p.numel();
    }
    bucket.comm->AllReduce(bucket.flat, ReduceOp::kSum);
    offset = 0;
    for (at::Tensor& p : bucket.parameters) {
      at::Tensor slice = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(slice);
      } else {
        p.mutable_grad() = slice.clone();
      }
      offset += p.numel();
    }
  }
}

}  // namespace flexmoe
