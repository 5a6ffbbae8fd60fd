// GELU and its derivative (gelu.h): vectorised AVX-512 and AVX2/FMA kernels for float (the
// same arithmetic, lane for lane), selected at run time, and scalar loops for other CPUs and
// for double.
#include "experts/gelu.h"

#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values, which its own
// -Wmaybe-uninitialized flags wherever they are inlined (GCC bug 105593, fixed in 13).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace flexmoe {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <typename T>
void GeluScalar(const T* x, int64_t rows, int64_t cols, const T* bias, T* g, T* d) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    const T h = x[i] + (bias == nullptr ? T(0) : bias[i % cols]);
    const T cdf = T(0.5) * (T(1) + std::erf(h * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * h * h);
    g[i] = h * cdf;
    d[i] = cdf + h * pdf;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// exp(x) for x <= 0 (Cody-Waite reduction, Cephes expf polynomial, ~1 ulp); 0 below -87.
__attribute__((target("avx2,fma"))) inline __m256 ExpNonPositive(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  return _mm256_andnot_ps(underflow, result);
}

// Eight values: Phi(h) = 1 - q for h >= 0 and q for h < 0, q = t P(t) exp(-h^2 / 2) / 2,
// t = 1 / (1 + p |h| / sqrt 2) (A&S 7.1.26 on erf(|h| / sqrt 2)).
__attribute__((target("avx2,fma"))) inline void Gelu8(__m256 h, float* g, float* d) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign, h);  // |h|
  const __m256 e = ExpNonPositive(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(h, h)));
  const __m256 t =
      _mm256_div_ps(_mm256_set1_ps(1.0f),
                    _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f * static_cast<float>(kInvSqrt2)), a,
                                    _mm256_set1_ps(1.0f)));
  __m256 poly = _mm256_set1_ps(1.061405429f);
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
  const __m256 q = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_mul_ps(t, poly)), e);
  const __m256 negative = _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 cdf = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), q), q, negative);
  const __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(kInvSqrt2Pi)), e);
  _mm256_storeu_ps(g, _mm256_mul_ps(h, cdf));
  _mm256_storeu_ps(d, _mm256_fmadd_ps(h, pdf, cdf));
}

__attribute__((target("avx2,fma"))) void GeluAvx2(const float* x, int64_t rows, int64_t cols,
                                                  const float* bias, float* g, float* d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* gr = g + r * cols;
    float* dr = d + r * cols;
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      __m256 h = _mm256_loadu_ps(xr + c);
      if (bias != nullptr) h = _mm256_add_ps(h, _mm256_loadu_ps(bias + c));
      Gelu8(h, gr + c, dr + c);
    }
    if (c < cols) {
      // The row's tail through a padded block, so that it gets the same arithmetic.
      float hs[8] = {0}, gs[8], ds[8];
      for (int64_t j = c; j < cols; ++j) hs[j - c] = bias == nullptr ? xr[j] : xr[j] + bias[j];
      Gelu8(_mm256_loadu_ps(hs), gs, ds);
      for (int64_t j = c; j < cols; ++j) {
        gr[j] = gs[j - c];
        dr[j] = ds[j - c];
      }
    }
  }
}

// ExpNonPositive and Gelu8 on sixteen lanes: the same operations in the same order, so every
// value has the same bits as on the AVX2 path.
__attribute__((target("avx512f"))) inline __m512 ExpNonPositive16(__m512 x) {
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 result = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~underflow), result);
}

// Sixteen values of h (the lanes in `keep`) to g and d.
__attribute__((target("avx512f"))) inline void Gelu16(__m512 h, __mmask16 keep, float* g,
                                                      float* d) {
  const __m512 a = _mm512_abs_ps(h);
  const __m512 e = ExpNonPositive16(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(h, h)));
  const __m512 t =
      _mm512_div_ps(_mm512_set1_ps(1.0f),
                    _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f * static_cast<float>(kInvSqrt2)), a,
                                    _mm512_set1_ps(1.0f)));
  __m512 poly = _mm512_set1_ps(1.061405429f);
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
  const __m512 q = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_mul_ps(t, poly)), e);
  const __mmask16 negative = _mm512_cmp_ps_mask(h, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 cdf = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(1.0f), q), q);
  const __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(static_cast<float>(kInvSqrt2Pi)), e);
  _mm512_mask_storeu_ps(g, keep, _mm512_mul_ps(h, cdf));
  _mm512_mask_storeu_ps(d, keep, _mm512_fmadd_ps(h, pdf, cdf));
}

__attribute__((target("avx512f"))) void GeluAvx512(const float* x, int64_t rows, int64_t cols,
                                                   const float* bias, float* g, float* d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* gr = g + r * cols;
    float* dr = d + r * cols;
    for (int64_t c = 0; c < cols; c += 16) {
      const int64_t left = cols - c;
      const __mmask16 keep =
          left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      __m512 h = _mm512_maskz_loadu_ps(keep, xr + c);
      if (bias != nullptr) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(keep, bias + c));
      Gelu16(h, keep, gr + c, dr + c);
    }
  }
}
#endif

}  // namespace

GeluKernel BestGeluKernel() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f")) return GeluKernel::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GeluKernel::kAvx2;
#endif
  return GeluKernel::kScalar;
}

void GeluAndDerivative(GeluKernel kernel, const float* x, int64_t rows, int64_t cols,
                       const float* bias, float* g, float* d) {
  switch (kernel) {
#if defined(__x86_64__) && defined(__GNUC__)
    case GeluKernel::kAvx512:
      GeluAvx512(x, rows, cols, bias, g, d);
      return;
    case GeluKernel::kAvx2:
      GeluAvx2(x, rows, cols, bias, g, d);
      return;
#endif
    default:
      GeluScalar(x, rows, cols, bias, g, d);
  }
}

void GeluAndDerivative(const float* x, int64_t rows, int64_t cols, const float* bias, float* g,
                       float* d) {
  static const GeluKernel kernel = BestGeluKernel();
  GeluAndDerivative(kernel, x, rows, cols, bias, g, d);
}

void GeluAndDerivative(const double* x, int64_t rows, int64_t cols, const double* bias, double* g,
                       double* d) {
  GeluScalar(x, rows, cols, bias, g, d);
}

}  // namespace flexmoe
