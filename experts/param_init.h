// Parameter initialisation shared by the router and the experts: PyTorch's
// kaiming_uniform_(a = sqrt(5)), optionally drawn from a seeded generator.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cmath>
#include <cstdint>

namespace flexmoe {

// kaiming_uniform_(a = sqrt(5)) has gain sqrt(2 / (1 + 5)) and bound
// gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in). PyTorch takes fan_in = size(1) * prod(size(2:)),
// so a [D, E] gate weight gets 1/sqrt(E) and a 3-D [E, out, in] expert weight 1/sqrt(out*in).
inline double KaimingUniformA5Bound(const at::Tensor& weight) {
  int64_t fan_in = 1;
  for (int64_t d = 1; d < weight.dim(); ++d) fan_in *= weight.size(d);
  return 1.0 / std::sqrt(static_cast<double>(fan_in));
}

// Fills `target` uniformly in [-bound, bound] without recording autograd history.
void FillUniform(at::Tensor target, double bound, c10::optional<at::Generator> generator);

// A generator for one parameter group, derived from (seed, stream) by splitmix64 so that
// nearby seeds and streams give unrelated sequences.
at::Generator MakeInitGenerator(uint64_t seed, uint64_t stream);

}  // namespace flexmoe
