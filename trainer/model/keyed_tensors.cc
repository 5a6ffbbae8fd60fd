// Keyed dropout masks and noise tensors (keyed_tensors.h).
#include "trainer/model/keyed_tensors.h"

#include <ATen/ATen.h>

#include "trainer/model/keyed_random.h"

namespace flexmoe {

at::Tensor KeyedTensor(const StepKey& key, RandomSite site, int64_t layer,
                       const std::vector<int64_t>& per_sample_shape, KeyedKind kind, double p) {
  int64_t per_sample = 1;
  for (int64_t d : per_sample_shape) per_sample *= d;
  std::vector<int64_t> shape = {static_cast<int64_t>(key.samples.size())};
  shape.insert(shape.end(), per_sample_shape.begin(), per_sample_shape.end());
  at::Tensor out = at::empty(shape, at::kFloat);
  float* data = out.data_ptr<float>();
  for (size_t b = 0; b < key.samples.size(); ++b) {
    KeyedRandom rng(key.seed, {static_cast<uint64_t>(site), static_cast<uint64_t>(layer),
                               static_cast<uint64_t>(key.epoch), static_cast<uint64_t>(key.step),
                               static_cast<uint64_t>(key.samples[b])});
    float* row = data + b * per_sample;
    if (kind == KeyedKind::kNormal) {
      rng.FillNormal(row, static_cast<size_t>(per_sample));
    } else {
      rng.FillBernoulliMask(row, static_cast<size_t>(per_sample), static_cast<float>(1.0 - p),
                            static_cast<float>(1.0 / (1.0 - p)));
    }
  }
  return out;
}

at::Tensor KeyedDropout(const at::Tensor& x, double p, bool training, const StepKey& key,
                        RandomSite site, int64_t layer) {
  if (!training || p <= 0.0) return x;
  std::vector<int64_t> per_sample(x.sizes().begin() + 1, x.sizes().end());
  at::Tensor mask = KeyedTensor(key, site, layer, per_sample, KeyedKind::kMask, p);
  return x * mask.to(x.device(), x.scalar_type());
}

at::Tensor KeyedDropoutAdd(const at::Tensor& base, const at::Tensor& x, double p, bool training,
                           const StepKey& key, RandomSite site, int64_t layer) {
  if (!training || p <= 0.0) return base + x;
  std::vector<int64_t> per_sample(x.sizes().begin() + 1, x.sizes().end());
  at::Tensor mask = KeyedTensor(key, site, layer, per_sample, KeyedKind::kMask, p);
  return at::addcmul(base, x, mask.to(x.device(), x.scalar_type()));
}

}  // namespace flexmoe
