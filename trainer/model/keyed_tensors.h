// Tensors of keyed random numbers: dropout masks and router noise drawn per sample from
// KeyedRandom(seed, {site, layer, epoch, step, global sample}), so that a sample's masks
// do not depend on which worker or batch position it lands in.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace flexmoe {

// Where random numbers are used; part of every key.
enum class RandomSite : uint64_t {
  kAttentionWeights = 1,
  kAttentionOutput = 2,
  kResidual1 = 3,
  kResidual2 = 4,
  kRouterNoise = 5,
  kHead = 6,
  kDenseFfn = 7,
  kEncoder = 8,
  kModalityDropout = 9,
};

// The key of one training step. `samples` are the global sample indices of the batch rows.
struct StepKey {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t step = 0;
  std::vector<int64_t> samples;
};

// A [B, per_sample...] float tensor: row b holds per-sample-count numbers from the stream
// of (site, layer, epoch, step, samples[b]); kNormal gives N(0, 1), kMask gives inverted
// dropout masks (0 with probability p, 1/(1-p) otherwise).
enum class KeyedKind { kNormal, kMask };
at::Tensor KeyedTensor(const StepKey& key, RandomSite site, int64_t layer,
                       const std::vector<int64_t>& per_sample_shape, KeyedKind kind,
                       double p = 0.0);

// Inverted dropout of x ([B, ...], row b belonging to key.samples[b]) with keyed masks;
// the identity when not training or p == 0.
at::Tensor KeyedDropout(const at::Tensor& x, double p, bool training, const StepKey& key,
                        RandomSite site, int64_t layer);

// base + KeyedDropout(x, ...) as one op (addcmul): the residual adds of the fusion layer.
at::Tensor KeyedDropoutAdd(const at::Tensor& base, const at::Tensor& x, double p, bool training,
                           const StepKey& key, RandomSite site, int64_t layer);

}  // namespace flexmoe
