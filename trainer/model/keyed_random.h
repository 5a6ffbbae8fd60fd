// Counter-based random numbers keyed by (seed, ids...), not streamed: Philox4x32-10, and
// uniform, normal, Bernoulli-mask and shuffle helpers that give the same numbers on
// every run, machine and process layout.
//
// NOTE [keyed randomness]: ARCHITECTURE.md requires dropout masks, router noise and
// shuffles to come from generators keyed by (seed, epoch, step, global sample index), so
// that results do not depend on how samples are spread over workers. A KeyedRandom is
// cheap to build (a few Philox calls): make one per (purpose, epoch, step, sample, ...)
// where the numbers are needed, e.g.
//   KeyedRandom rng(seed, {kDropoutTag, epoch, step, sample_index, layer});
//   rng.FillBernoulliMask(mask, n, 0.5f, 2.0f);
// The numbers depend only on the seed, the ids (order and count included) and how many
// numbers were drawn before; no std:: distribution or libm function is used, so they are
// bit-identical across compilers and machines.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "cluster/base/cpu_isa.h"

namespace flexmoe {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The Philox4x32 bijection with 10 rounds (Salmon et al., SC'11; Random123's
// philox4x32_10): multipliers 0xD2511F53, 0xCD9E8D57, key increments 0x9E3779B9,
// 0xBB67AE85.
PhiloxCounter Philox4x32(const PhiloxCounter& counter, const PhiloxKey& key);

// A generator for one keyed stream. Philox key = the 64-bit seed (low word first);
// counter = {block index, 96-bit digest of the ids}. The digest is a Philox-based
// CBC-MAC of the ids and their count, so different id tuples give unrelated streams
// (distinct with probability 1 - 2^-96 per pair). A stream holds 2^32 blocks of four
// 32-bit numbers; drawing beyond that throws kFailedPrecondition. Not thread-safe (one
// generator per thread or per purpose); copying a generator copies its position.
class KeyedRandom {
 public:
  KeyedRandom(uint64_t seed, std::initializer_list<uint64_t> ids);
  KeyedRandom(uint64_t seed, const std::vector<uint64_t>& ids);

  // Uniform 32-bit integer.
  uint32_t NextU32();
  // Uniform 64-bit integer (two NextU32, high word first).
  uint64_t NextU64();
  // Uniform integer in [0, bound), unbiased (Lemire's multiply-and-reject); bound > 0.
  uint32_t UniformInt(uint32_t bound);
  // Uniform float in the open interval (0, 1): odd multiples of 2^-24, from one NextU32.
  float Uniform();
  // Uniform double in (0, 1): odd multiples of 2^-53, from two NextU32.
  double UniformDouble();
  // Standard normal by Box-Muller on two UniformDouble (four NextU32), which yields two
  // values; the second is kept for the next call. |values| < 8.6.
  float Normal();

  void FillUniform(float* out, size_t n);
  void FillNormal(float* out, size_t n);
  // out[i] = scale with probability keep_prob (Uniform() < keep_prob), else 0. For
  // inverted dropout with drop rate p: keep_prob = 1 - p, scale = 1 / (1 - p).
  // keep_prob must lie in [0, 1] (kInvalidArgument otherwise).
  void FillBernoulliMask(float* out, size_t n, float keep_prob, float scale);

  // The widest vector path the Fill calls may take (default: the host's; capped by it). All
  // paths give the same bits; tests force each one.
  void LimitIsa(CpuIsa isa) { isa_ = UsableIsa(isa); }

 private:
  void Init(uint64_t seed, const uint64_t* ids, size_t count);
  void Refill();

  PhiloxKey key_{};
  PhiloxCounter counter_{};  // [0] is the block index, [1..3] the ids' digest
  uint64_t blocks_used_ = 0;
  PhiloxCounter block_{};
  int next_word_ = 4;  // index into block_; 4 = exhausted
  bool has_spare_normal_ = false;
  float spare_normal_ = 0;
  CpuIsa isa_ = HostIsa();
};

// Fisher-Yates shuffle driven by KeyedRandom(seed, ids): a deterministic permutation of
// `values` for each (seed, ids). Throws kInvalidArgument for 2^32 values or more.
void KeyedShuffle(std::vector<uint32_t>& values, uint64_t seed,
                  std::initializer_list<uint64_t> ids);
void KeyedShuffle(std::vector<uint32_t>& values, uint64_t seed, const std::vector<uint64_t>& ids);

}  // namespace flexmoe
