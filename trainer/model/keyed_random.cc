// Philox4x32-10, the keyed generator built on it, and a keyed Fisher-Yates shuffle (see
// keyed_random.h). Built with -ffp-contract=off: log, sin and cos below are our own
// polynomials in plain IEEE double arithmetic, so normals are bit-identical everywhere.
#include "trainer/model/keyed_random.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values, which its own
// -Wmaybe-uninitialized flags wherever they are inlined (GCC bug 105593, fixed in 13).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

constexpr uint32_t kPhiloxM0 = 0xD2511F53;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9;  // golden ratio
constexpr uint32_t kPhiloxW1 = 0xBB67AE85;  // sqrt(3) - 1
constexpr uint64_t kBlocksPerStream = uint64_t{1} << 32;

// Key tweak for digesting the ids, so that digest calls and output blocks use different
// keys for the same seed.
constexpr uint32_t kDigestTweak0 = 0x243F6A88;  // digits of pi
constexpr uint32_t kDigestTweak1 = 0x85A308D3;

// ln(x) for finite x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
// ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716, by its series to s^21
// (truncation error below 1e-18). Accurate to a few ulp; deterministic.
double DeterministicLog(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // exact: m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2;
    --e;
  }
  const double s = (m - 1) / (m + 1);
  const double z = s * s;
  const double series =
      2.0 +
      z * (2.0 / 3 +
           z * (2.0 / 5 +
                z * (2.0 / 7 +
                     z * (2.0 / 9 +
                          z * (2.0 / 11 +
                               z * (2.0 / 13 +
                                    z * (2.0 / 15 +
                                         z * (2.0 / 17 + z * (2.0 / 19 + z * (2.0 / 21))))))))));
  return e * 0.69314718055994530942 + s * series;
}

// sin and cos of 2 pi u for u in (0, 1), by quadrant reduction (exact, u being a
// multiple of 2^-53) and Taylor polynomials on [-pi/4, pi/4] (errors below 1e-16).
void DeterministicSinCos2Pi(double u, double* sin_out, double* cos_out) {
  const double t = 4 * u;                   // exact
  const int q = static_cast<int>(t + 0.5);  // nearest quadrant, 0..4
  const double x = (t - q) * 1.57079632679489661923;
  const double z = x * x;
  const double sin_x =
      x + x * z *
              (-1.0 / 6 +
               z * (1.0 / 120 + z * (-1.0 / 5040 +
                                     z * (1.0 / 362880 + z * (-1.0 / 39916800 +
                                                              z * (1.0 / 6227020800 +
                                                                   z * (-1.0 / 1307674368000)))))));
  const double cos_x =
      1 + z * (-1.0 / 2 +
               z * (1.0 / 24 +
                    z * (-1.0 / 720 +
                         z * (1.0 / 40320 +
                              z * (-1.0 / 3628800 +
                                   z * (1.0 / 479001600 +
                                        z * (-1.0 / 87178291200 + z * (1.0 / 20922789888000))))))));
  switch (q & 3) {
    case 0:
      *sin_out = sin_x;
      *cos_out = cos_x;
      break;
    case 1:
      *sin_out = cos_x;
      *cos_out = -sin_x;
      break;
    case 2:
      *sin_out = -sin_x;
      *cos_out = -cos_x;
      break;
    default:
      *sin_out = -cos_x;
      *cos_out = sin_x;
      break;
  }
}

// Bernoulli mask values of `blocks` whole Philox blocks starting at block index `first`
// of the stream (counter words 1..3 taken from `counter`): out[4 b + j] from word j of
// block first + b; 2k + 1 < bound keeps (see FillBernoulliMask).
void FillMaskBlocksScalar(const PhiloxCounter& counter, const PhiloxKey& key, uint64_t first,
                          size_t blocks, int32_t bound, float scale, float* out) {
  PhiloxCounter c = counter;
  for (size_t b = 0; b < blocks; ++b) {
    c[0] = static_cast<uint32_t>(first + b);
    const PhiloxCounter words = Philox4x32(c, key);
    for (int j = 0; j < 4; ++j) {
      out[4 * b + j] = static_cast<int32_t>(2 * (words[j] >> 9) + 1) < bound ? scale : 0.0f;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// High and low 32-bit halves of the eight 32x32-bit products a * m.
__attribute__((target("avx2"))) inline void MulHiLo8(__m256i a, __m256i m, __m256i* hi,
                                                     __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);  // cheaper than mullo
}

// Philox4x32-10 on G groups of eight blocks at once (one block per 32-bit lane; c[g][w]
// holds counter word w of group g's blocks). More than one group hides the multiplies'
// latency.
template <int G>
__attribute__((target("avx2"))) inline void Philox8x(__m256i (&c)[G][4], const PhiloxKey& key) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0));
    const __m256i key1 = _mm256_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < G; ++g) {
      __m256i hi0, lo0, hi1, lo1;
      MulHiLo8(c[g][0], m0, &hi0, &lo0);
      MulHiLo8(c[g][2], m1, &hi1, &lo1);
      c[g][0] = _mm256_xor_si256(_mm256_xor_si256(hi1, c[g][1]), key0);
      c[g][1] = lo1;
      c[g][2] = _mm256_xor_si256(_mm256_xor_si256(hi0, c[g][3]), key1);
      c[g][3] = lo0;
    }
  }
}

// Mask values of eight blocks' words (words[j] = word j of each block) to out[0..32) in
// block-major order: 2 (w >> 9) + 1 < bound keeps (signed 32-bit; both sides below 2^25).
__attribute__((target("avx2"))) inline void StoreMask8(const __m256i (&words)[4], __m256i bound,
                                                       __m256 scale, float* out) {
  __m256 v[4];
  for (int j = 0; j < 4; ++j) {
    const __m256i odd = _mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(words[j], 9), 1),
                                         _mm256_set1_epi32(1));
    v[j] = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(bound, odd)), scale);
  }
  // A 4x8 transpose: v[j] holds word j of blocks 0..7.
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(u0, u1, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
  _mm256_storeu_ps(out + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
  _mm256_storeu_ps(out + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}

// Counters of blocks block..block+7 of the stream (`lanes` = 0..7).
__attribute__((target("avx2"))) inline void StartCounters(const PhiloxCounter& counter,
                                                          uint64_t block, __m256i lanes,
                                                          __m256i (&c)[4]) {
  c[0] = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(block)), lanes);
  c[1] = _mm256_set1_epi32(static_cast<int>(counter[1]));
  c[2] = _mm256_set1_epi32(static_cast<int>(counter[2]));
  c[3] = _mm256_set1_epi32(static_cast<int>(counter[3]));
}

// FillMaskBlocksScalar, sixteen (then eight) blocks per pass; the same words, so the same
// masks.
__attribute__((target("avx2"))) void FillMaskBlocksAvx2(const PhiloxCounter& counter,
                                                        const PhiloxKey& key, uint64_t first,
                                                        size_t blocks, int32_t bound, float scale,
                                                        float* out) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i bound_v = _mm256_set1_epi32(bound);
  const __m256 scale_v = _mm256_set1_ps(scale);
  size_t b = 0;
  for (; b + 16 <= blocks; b += 16) {
    __m256i c[2][4];
    StartCounters(counter, first + b, lanes, c[0]);
    StartCounters(counter, first + b + 8, lanes, c[1]);
    Philox8x<2>(c, key);
    StoreMask8(c[0], bound_v, scale_v, out + 4 * b);
    StoreMask8(c[1], bound_v, scale_v, out + 4 * (b + 8));
  }
  for (; b + 8 <= blocks; b += 8) {
    __m256i c[1][4];
    StartCounters(counter, first + b, lanes, c[0]);
    Philox8x<1>(c, key);
    StoreMask8(c[0], bound_v, scale_v, out + 4 * b);
  }
  FillMaskBlocksScalar(counter, key, first + b, blocks - b, bound, scale, out + 4 * b);
}

// The AVX2 pass on sixteen lanes (AVX-512F): the same words, so the same masks.
__attribute__((target("avx512f"))) inline void MulHiLo16(__m512i a, __m512i m, __m512i* hi,
                                                         __m512i* lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

template <int G>
__attribute__((target("avx512f"))) inline void Philox16x(__m512i (&c)[G][4], const PhiloxKey& key) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0));
    const __m512i key1 = _mm512_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < G; ++g) {
      __m512i hi0, lo0, hi1, lo1;
      MulHiLo16(c[g][0], m0, &hi0, &lo0);
      MulHiLo16(c[g][2], m1, &hi1, &lo1);
      c[g][0] = _mm512_xor_si512(_mm512_xor_si512(hi1, c[g][1]), key0);
      c[g][1] = lo1;
      c[g][2] = _mm512_xor_si512(_mm512_xor_si512(hi0, c[g][3]), key1);
      c[g][3] = lo0;
    }
  }
}

// Mask values of sixteen blocks' words to out[0..64) in block-major order (StoreMask8's
// rule): a 4x16 transpose, within 128-bit lanes and then across them.
__attribute__((target("avx512f"))) inline void StoreMask16(const __m512i (&words)[4], __m512i bound,
                                                           __m512 scale, float* out) {
  __m512 v[4];
  for (int j = 0; j < 4; ++j) {
    const __m512i odd = _mm512_add_epi32(_mm512_slli_epi32(_mm512_srli_epi32(words[j], 9), 1),
                                         _mm512_set1_epi32(1));
    v[j] = _mm512_maskz_mov_ps(_mm512_cmpgt_epi32_mask(bound, odd), scale);
  }
  const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
  // u_i's 128-bit lane l: the four words of block 4 l + i.
  const __m512 u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);
  const __m512 u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);
  const __m512 a = _mm512_shuffle_f32x4(u0, u1, 0x44), b = _mm512_shuffle_f32x4(u2, u3, 0x44);
  const __m512 c = _mm512_shuffle_f32x4(u0, u1, 0xEE), d = _mm512_shuffle_f32x4(u2, u3, 0xEE);
  _mm512_storeu_ps(out, _mm512_shuffle_f32x4(a, b, 0x88));
  _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(a, b, 0xDD));
  _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(c, d, 0x88));
  _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(c, d, 0xDD));
}

__attribute__((target("avx512f"))) inline void StartCounters16(const PhiloxCounter& counter,
                                                               uint64_t block, __m512i lanes,
                                                               __m512i (&c)[4]) {
  c[0] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(block)), lanes);
  c[1] = _mm512_set1_epi32(static_cast<int>(counter[1]));
  c[2] = _mm512_set1_epi32(static_cast<int>(counter[2]));
  c[3] = _mm512_set1_epi32(static_cast<int>(counter[3]));
}

// FillMaskBlocksScalar, thirty-two (then sixteen) blocks per pass, the rest through the
// AVX2 passes.
__attribute__((target("avx512f"))) void FillMaskBlocksAvx512(const PhiloxCounter& counter,
                                                             const PhiloxKey& key, uint64_t first,
                                                             size_t blocks, int32_t bound,
                                                             float scale, float* out) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i bound_v = _mm512_set1_epi32(bound);
  const __m512 scale_v = _mm512_set1_ps(scale);
  size_t b = 0;
  for (; b + 32 <= blocks; b += 32) {
    __m512i c[2][4];
    StartCounters16(counter, first + b, lanes, c[0]);
    StartCounters16(counter, first + b + 16, lanes, c[1]);
    Philox16x<2>(c, key);
    StoreMask16(c[0], bound_v, scale_v, out + 4 * b);
    StoreMask16(c[1], bound_v, scale_v, out + 4 * (b + 16));
  }
  for (; b + 16 <= blocks; b += 16) {
    __m512i c[1][4];
    StartCounters16(counter, first + b, lanes, c[0]);
    Philox16x<1>(c, key);
    StoreMask16(c[0], bound_v, scale_v, out + 4 * b);
  }
  FillMaskBlocksAvx2(counter, key, first + b, blocks - b, bound, scale, out + 4 * b);
}

// DeterministicLog on eight doubles in (0, 1]: frexp by getexp/getmant (exact), then the
// same operations in the same order (no contraction: intrinsics), so the same bits.
__attribute__((target("avx512f"))) inline __m512d DeterministicLog8(__m512d x) {
  __m512d e = _mm512_add_pd(_mm512_getexp_pd(x), _mm512_set1_pd(1.0));      // frexp's exponent
  __m512d m = _mm512_getmant_pd(x, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src);  // in [0.5, 1)
  const __mmask8 small = _mm512_cmp_pd_mask(m, _mm512_set1_pd(0.70710678118654752440), _CMP_LT_OQ);
  m = _mm512_mask_mul_pd(m, small, m, _mm512_set1_pd(2.0));
  e = _mm512_mask_sub_pd(e, small, e, _mm512_set1_pd(1.0));
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d s = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
  const __m512d z = _mm512_mul_pd(s, s);
  __m512d series = _mm512_set1_pd(2.0 / 21);
  for (const double c : {2.0 / 19, 2.0 / 17, 2.0 / 15, 2.0 / 13, 2.0 / 11, 2.0 / 9, 2.0 / 7,
                         2.0 / 5, 2.0 / 3, 2.0}) {
    series = _mm512_add_pd(_mm512_set1_pd(c), _mm512_mul_pd(z, series));
  }
  return _mm512_add_pd(_mm512_mul_pd(e, _mm512_set1_pd(0.69314718055994530942)),
                       _mm512_mul_pd(s, series));
}

// DeterministicSinCos2Pi on eight doubles in (0, 1).
__attribute__((target("avx512f"))) inline void DeterministicSinCos2Pi8(__m512d u, __m512d* sin_out,
                                                                       __m512d* cos_out) {
  const __m512d t = _mm512_mul_pd(_mm512_set1_pd(4.0), u);
  const __m512d q = _mm512_roundscale_pd(_mm512_add_pd(t, _mm512_set1_pd(0.5)),
                                         _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512d x = _mm512_mul_pd(_mm512_sub_pd(t, q), _mm512_set1_pd(1.57079632679489661923));
  const __m512d z = _mm512_mul_pd(x, x);
  __m512d sp = _mm512_set1_pd(-1.0 / 1307674368000);
  for (const double c :
       {1.0 / 6227020800, -1.0 / 39916800, 1.0 / 362880, -1.0 / 5040, 1.0 / 120, -1.0 / 6}) {
    sp = _mm512_add_pd(_mm512_set1_pd(c), _mm512_mul_pd(z, sp));
  }
  const __m512d sin_x = _mm512_add_pd(x, _mm512_mul_pd(_mm512_mul_pd(x, z), sp));
  __m512d cp = _mm512_set1_pd(1.0 / 20922789888000);
  for (const double c : {-1.0 / 87178291200, 1.0 / 479001600, -1.0 / 3628800, 1.0 / 40320,
                         -1.0 / 720, 1.0 / 24, -1.0 / 2}) {
    cp = _mm512_add_pd(_mm512_set1_pd(c), _mm512_mul_pd(z, cp));
  }
  const __m512d cos_x = _mm512_add_pd(_mm512_set1_pd(1.0), _mm512_mul_pd(z, cp));
  // Quadrant q & 3 (q in 0..4): 1 swaps with sin negated into cos, 2 negates both, 3 swaps
  // with the new sin negated.
  const __m512d neg_sin = _mm512_sub_pd(_mm512_setzero_pd(), sin_x);
  const __m512d neg_cos = _mm512_sub_pd(_mm512_setzero_pd(), cos_x);
  const __mmask8 q1 = _mm512_cmp_pd_mask(q, _mm512_set1_pd(1.0), _CMP_EQ_OQ);
  const __mmask8 q2 = _mm512_cmp_pd_mask(q, _mm512_set1_pd(2.0), _CMP_EQ_OQ);
  const __mmask8 q3 = _mm512_cmp_pd_mask(q, _mm512_set1_pd(3.0), _CMP_EQ_OQ);
  __m512d sv = sin_x, cv = cos_x;
  sv = _mm512_mask_mov_pd(sv, q1, cos_x);
  cv = _mm512_mask_mov_pd(cv, q1, neg_sin);
  sv = _mm512_mask_mov_pd(sv, q2, neg_sin);
  cv = _mm512_mask_mov_pd(cv, q2, neg_cos);
  sv = _mm512_mask_mov_pd(sv, q3, neg_cos);
  cv = _mm512_mask_mov_pd(cv, q3, sin_x);
  *sin_out = sv;
  *cos_out = cv;
}

// (2k + 1) / 2^53 for k the top 52 bits of (high << 32 | low), eight 64-bit lanes.
__attribute__((target("avx512f,avx512dq"))) inline __m512d UniformDouble8(__m256i high,
                                                                          __m256i low) {
  const __m512i word = _mm512_or_si512(_mm512_slli_epi64(_mm512_cvtepu32_epi64(high), 32),
                                       _mm512_cvtepu32_epi64(low));
  const __m512i odd =
      _mm512_add_epi64(_mm512_slli_epi64(_mm512_srli_epi64(word, 12), 1), _mm512_set1_epi64(1));
  return _mm512_mul_pd(_mm512_cvtepu64_pd(odd), _mm512_set1_pd(1.0 / 9007199254740992.0));
}

// Normal pairs of `blocks` whole Philox blocks from block `first` (KeyedRandom::Normal's
// Box-Muller: words 0-1 give u1, words 2-3 u2; out[2b] = r cos, out[2b + 1] = r sin),
// sixteen blocks per pass; the rest by the scalar path.
__attribute__((target("avx512f,avx512dq"))) size_t FillNormalBlocksAvx512(
    const PhiloxCounter& counter, const PhiloxKey& key, uint64_t first, size_t blocks, float* out) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  size_t b = 0;
  for (; b + 16 <= blocks; b += 16) {
    __m512i c[1][4];
    StartCounters16(counter, first + b, lanes, c[0]);
    Philox16x<1>(c, key);
    for (int half = 0; half < 2; ++half) {
      __m256i words[4];  // word w of blocks 8 half .. 8 half + 7
      for (int w = 0; w < 4; ++w) {
        words[w] =
            half == 0 ? _mm512_castsi512_si256(c[0][w]) : _mm512_extracti64x4_epi64(c[0][w], 1);
      }
      const __m512d u1 = UniformDouble8(words[0], words[1]);
      const __m512d u2 = UniformDouble8(words[2], words[3]);
      const __m512d r = _mm512_sqrt_pd(_mm512_mul_pd(_mm512_set1_pd(-2.0), DeterministicLog8(u1)));
      __m512d sin_v, cos_v;
      DeterministicSinCos2Pi8(u2, &sin_v, &cos_v);
      const __m256 cf = _mm512_cvtpd_ps(_mm512_mul_pd(r, cos_v));
      const __m256 sf = _mm512_cvtpd_ps(_mm512_mul_pd(r, sin_v));
      const __m256 lo = _mm256_unpacklo_ps(cf, sf), hi = _mm256_unpackhi_ps(cf, sf);
      float* o = out + 2 * (b + 8 * half);
      _mm256_storeu_ps(o, _mm256_permute2f128_ps(lo, hi, 0x20));
      _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  }
  return b;
}
#endif

void FillMaskBlocks(const PhiloxCounter& counter, const PhiloxKey& key, uint64_t first,
                    size_t blocks, int32_t bound, float scale, float* out, CpuIsa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa >= CpuIsa::kAvx512) {
    FillMaskBlocksAvx512(counter, key, first, blocks, bound, scale, out);
    return;
  }
  if (isa >= CpuIsa::kAvx2) {
    FillMaskBlocksAvx2(counter, key, first, blocks, bound, scale, out);
    return;
  }
#endif
  FillMaskBlocksScalar(counter, key, first, blocks, bound, scale, out);
}

}  // namespace

PhiloxCounter Philox4x32(const PhiloxCounter& counter, const PhiloxKey& key) {
  PhiloxCounter c = counter;
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<uint32_t>(p0)};
  }
  return c;
}

KeyedRandom::KeyedRandom(uint64_t seed, std::initializer_list<uint64_t> ids) {
  Init(seed, ids.begin(), ids.size());
}

KeyedRandom::KeyedRandom(uint64_t seed, const std::vector<uint64_t>& ids) {
  Init(seed, ids.data(), ids.size());
}

void KeyedRandom::Init(uint64_t seed, const uint64_t* ids, size_t count) {
  key_ = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const PhiloxKey digest_key = {key_[0] ^ kDigestTweak0, key_[1] ^ kDigestTweak1};
  // CBC-MAC over blocks {id low, id high, position, 0}, finished by a block holding the
  // count, so tuples of different lengths never share a digest by construction.
  PhiloxCounter h = {0, 0, 0, 0};
  for (size_t i = 0; i < count; ++i) {
    h = Philox4x32(
        {h[0] ^ static_cast<uint32_t>(ids[i]), h[1] ^ static_cast<uint32_t>(ids[i] >> 32),
         h[2] ^ static_cast<uint32_t>(i), h[3]},
        digest_key);
  }
  h = Philox4x32({h[0], h[1], h[2] ^ static_cast<uint32_t>(count), h[3] ^ 0xFFFFFFFFu}, digest_key);
  counter_ = {0, h[0], h[1], h[2]};
}

void KeyedRandom::Refill() {
  if (blocks_used_ >= kBlocksPerStream) {
    Fail(ErrorCode::kFailedPrecondition, "KeyedRandom: more than 2^34 numbers drawn from one ",
         "keyed stream; key the draws more finely");
  }
  counter_[0] = static_cast<uint32_t>(blocks_used_++);
  block_ = Philox4x32(counter_, key_);
  next_word_ = 0;
}

uint32_t KeyedRandom::NextU32() {
  if (next_word_ == 4) Refill();
  return block_[next_word_++];
}

uint64_t KeyedRandom::NextU64() {
  const uint64_t high = NextU32();
  return (high << 32) | NextU32();
}

uint32_t KeyedRandom::UniformInt(uint32_t bound) {
  if (bound == 0) Fail(ErrorCode::kInvalidArgument, "KeyedRandom::UniformInt: bound 0");
  uint64_t m = static_cast<uint64_t>(NextU32()) * bound;
  uint32_t low = static_cast<uint32_t>(m);
  if (low < bound) {
    const uint32_t threshold = (0u - bound) % bound;  // 2^32 mod bound
    while (low < threshold) {
      m = static_cast<uint64_t>(NextU32()) * bound;
      low = static_cast<uint32_t>(m);
    }
  }
  return static_cast<uint32_t>(m >> 32);
}

float KeyedRandom::Uniform() {
  const uint32_t k = NextU32() >> 9;                            // 23 bits
  return static_cast<float>(2 * k + 1) * (1.0f / 16777216.0f);  // (2k + 1) / 2^24, exact
}

double KeyedRandom::UniformDouble() {
  const uint64_t k = NextU64() >> 12;                                  // 52 bits
  return static_cast<double>(2 * k + 1) * (1.0 / 9007199254740992.0);  // (2k + 1) / 2^53
}

float KeyedRandom::Normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  const double u1 = UniformDouble();
  const double u2 = UniformDouble();
  const double r = std::sqrt(-2 * DeterministicLog(u1));  // sqrt is correctly rounded
  double sin_value = 0, cos_value = 0;
  DeterministicSinCos2Pi(u2, &sin_value, &cos_value);
  spare_normal_ = static_cast<float>(r * sin_value);
  has_spare_normal_ = true;
  return static_cast<float>(r * cos_value);
}

void KeyedRandom::FillUniform(float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = Uniform();
}

void KeyedRandom::FillNormal(float* out, size_t n) {
  size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  // From a block boundary with no spare value, whole blocks at a time: what Normal() would
  // draw, pair by pair (the vector kernel computes the same bits).
  if (isa_ >= CpuIsa::kAvx512 && !has_spare_normal_ && next_word_ == 4 && n >= 32) {
    const size_t blocks = std::min<uint64_t>(n / 2, kBlocksPerStream - blocks_used_);
    const size_t done = FillNormalBlocksAvx512(counter_, key_, blocks_used_, blocks, out);
    blocks_used_ += done;
    i = 2 * done;
  }
#endif
  for (; i < n; ++i) out[i] = Normal();
}

void KeyedRandom::FillBernoulliMask(float* out, size_t n, float keep_prob, float scale) {
  if (!(keep_prob >= 0 && keep_prob <= 1)) {
    Fail(ErrorCode::kInvalidArgument, "KeyedRandom: keep probability ", keep_prob,
         " is outside [0, 1]");
  }
  // Uniform() < keep_prob, i.e. (2k + 1) / 2^24 < keep_prob with k the word's top 23 bits.
  // 2k + 1 is an integer, so the comparison is exactly 2k + 1 < ceil(keep_prob * 2^24)
  // (the product is exact in double); whole Philox blocks at a time, sixteen (AVX-512) or
  // eight (AVX2) blocks per vector pass where the CPU has them.
  const int32_t bound =
      static_cast<int32_t>(std::ceil(static_cast<double>(keep_prob) * 16777216.0));
  auto pick = [bound, scale](uint32_t word) {
    return static_cast<int32_t>(2 * (word >> 9) + 1) < bound ? scale : 0.0f;
  };
  size_t i = 0;
  while (i < n && next_word_ < 4) out[i++] = pick(block_[next_word_++]);
  const size_t whole_blocks = (n - i) / 4;
  if (whole_blocks > 0) {
    if (blocks_used_ + whole_blocks > kBlocksPerStream) {
      Fail(ErrorCode::kFailedPrecondition, "KeyedRandom: more than 2^34 numbers drawn from one ",
           "keyed stream; key the draws more finely");
    }
    FillMaskBlocks(counter_, key_, blocks_used_, whole_blocks, bound, scale, out + i, isa_);
    blocks_used_ += whole_blocks;
    i += 4 * whole_blocks;
    next_word_ = 4;
  }
  while (i < n) out[i++] = pick(NextU32());
}

void KeyedShuffle(std::vector<uint32_t>& values, uint64_t seed,
                  std::initializer_list<uint64_t> ids) {
  KeyedShuffle(values, seed, std::vector<uint64_t>(ids));
}

void KeyedShuffle(std::vector<uint32_t>& values, uint64_t seed, const std::vector<uint64_t>& ids) {
  if (values.size() > std::numeric_limits<uint32_t>::max()) {
    Fail(ErrorCode::kInvalidArgument, "KeyedShuffle: ", values.size(), " values, at most ",
         std::numeric_limits<uint32_t>::max(), " supported");
  }
  KeyedRandom rng(seed, ids);
  for (size_t i = values.size(); i > 1; --i) {
    const uint32_t j = rng.UniformInt(static_cast<uint32_t>(i));
    std::swap(values[i - 1], values[j]);
  }
}

}  // namespace flexmoe
