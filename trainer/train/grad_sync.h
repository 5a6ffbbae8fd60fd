// Gradient synchronisation across workers, after backward and before the optimizer step.
//
// NOTE [gradient scaling rule]: each worker's loss is its share of the global loss (the
// task loss normalised by the global batch's total weight, the router loss divided by the
// world size; see trainer.cc), so the global gradient is the SUM of the workers'
// gradients. Hence: replicated parameters (encoders, bank, attention, norms, routers,
// position embedding, head) are summed over the world; an expert's gradient already holds
// every worker's tokens through the exchange's backward, so it is left alone when the
// expert has one owner, and summed over its replicas (the expert-data-parallel group)
// when experts are replicated (expert-parallel degree < world size). Nothing is divided
// by the world size anywhere, so no gradient is scaled twice (PEERS.md, DeepSpeed #5259).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "cluster/comm/communicator.h"

namespace flexmoe {

// Not thread-safe. Every rank must construct it with parameters of the same shapes in the
// same order (replicated) and call Synchronize() once per step.
class GradientSynchronizer {
 public:
  // `world` sums the replicated gradients; `expert_replicas` (may be null or of size 1)
  // sums the expert gradients. Buckets hold up to bucket_bytes of gradients each.
  // `rider_capacity`: room for that many riders (below) in the first bucket over `world`.
  GradientSynchronizer(std::vector<at::Tensor> replicated, std::vector<at::Tensor> experts,
                       Communicator* world, Communicator* expert_replicas,
                       int64_t bucket_bytes = 4 << 20, int64_t rider_capacity = 0);

  // Missing gradients become zeros (every rank contributes to every bucket), then each
  // bucket is flattened, all-reduced (sum) and copied back.
  //
  // `riders` (optional; a 1-D host tensor of at most rider_capacity values) is summed over
  // `world` in place, travelling in the first world bucket in the gradients' dtype: the
  // step's losses and stop requests need no collective of their own. Without a world
  // bucket it gets one all-reduce; in a world of one it is left as it is. More riders than
  // rider_capacity: kInvalidArgument.
  void Synchronize(at::Tensor* riders = nullptr);

  int num_buckets() const { return static_cast<int>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<at::Tensor> parameters;
    at::Tensor flat;  // the gradients, then `riders` slots (zero when unused)
    Communicator* comm;
    int64_t riders = 0;
  };
  void AddBuckets(const std::vector<at::Tensor>& parameters, Communicator* comm,
                  int64_t bucket_bytes, int64_t rider_capacity);

  Communicator* world_;
  int64_t rider_capacity_;
  std::vector<Bucket> buckets_;
};

}  // namespace flexmoe
