// splitmix64: a tiny deterministic generator for shuffles and splits. It gives the same
// numbers on every platform, unlike the std:: distributions.
#pragma once

#include <cstdint>

namespace flexmoe {

// Advances `state` and returns the next 64-bit value.
inline uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace flexmoe
