// Flat-bucket gradient all-reduce (grad_sync.h).
#include "trainer/train/grad_sync.h"

#include <ATen/ATen.h>

#include "cluster/base/error.h"

namespace flexmoe {

GradientSynchronizer::GradientSynchronizer(std::vector<at::Tensor> replicated,
                                           std::vector<at::Tensor> experts, Communicator* world,
                                           Communicator* expert_replicas, int64_t bucket_bytes,
                                           int64_t rider_capacity)
    : world_(world), rider_capacity_(rider_capacity) {
  if (world != nullptr && world->size() > 1) {
    AddBuckets(replicated, world, bucket_bytes, rider_capacity);
  }
  if (expert_replicas != nullptr && expert_replicas->size() > 1) {
    AddBuckets(experts, expert_replicas, bucket_bytes, 0);
  }
}

void GradientSynchronizer::AddBuckets(const std::vector<at::Tensor>& parameters, Communicator* comm,
                                      int64_t bucket_bytes, int64_t rider_capacity) {
  Bucket current;
  int64_t bytes = 0;
  auto close = [&]() {
    if (current.parameters.empty()) return;
    int64_t n = 0;
    for (const auto& p : current.parameters) n += p.numel();
    current.riders = rider_capacity;
    rider_capacity = 0;  // the first bucket carries them
    current.flat = at::empty({n + current.riders}, current.parameters.front().options());
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

void GradientSynchronizer::Synchronize(at::Tensor* riders) {
  const int64_t r = riders != nullptr ? riders->numel() : 0;
  if (r > rider_capacity_) {
    Fail(ErrorCode::kInvalidArgument, "gradient sync: ", r, " riders, room for ", rider_capacity_);
  }
  bool carried = false;
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
    const bool carries = r > 0 && bucket.riders > 0;
    if (bucket.riders > 0) {
      at::Tensor tail = bucket.flat.narrow(0, offset, bucket.riders);
      tail.zero_();
      if (carries) tail.narrow(0, 0, r).copy_(riders->reshape({-1}));
    }
    bucket.comm->AllReduce(bucket.flat, ReduceOp::kSum);
    if (carries) {
      riders->copy_(bucket.flat.narrow(0, offset, r).view(riders->sizes()));
      carried = true;
    }
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
  if (r > 0 && !carried && world_ != nullptr && world_->size() > 1) {
    world_->AllReduce(*riders, ReduceOp::kSum);
  }
}

}  // namespace flexmoe
