// Parameter initialisation helpers (see param_init.h).
#include "experts/param_init.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

namespace flexmoe {

void FillUniform(at::Tensor target, double bound, c10::optional<at::Generator> generator) {
  at::NoGradGuard no_grad;
  target.uniform_(-bound, bound, std::move(generator));
}

at::Generator MakeInitGenerator(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return at::detail::createCPUGenerator(z);
}

}  // namespace flexmoe
