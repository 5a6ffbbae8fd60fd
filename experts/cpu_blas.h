// Row-major single and double precision GEMM on host memory through the BLAS that
// LibTorch itself calls (oneDNN when CMake finds it, else libblas.so.3), for the fused CPU
// kernels that call it per expert or per attention head without ATen's per-op overhead;
// and the same product of fp32 operands rounded to bfloat16, accumulated in fp32
// (training.precision BF16, through oneDNN's bf16 GEMM).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

namespace flexmoe {

// How a float product is computed: kFp32 multiplies the operands as they are; kBf16 rounds
// both operands to bfloat16 (to nearest even) and multiplies them with fp32 accumulation
// into the fp32 C (oneDNN's dnnl_gemm_bf16bf16f32). Double products are always double.
enum class GemmPrecision { kFp32, kBf16 };
// kBf16 when `bf16`, else kFp32 (autograd contexts keep the precision as a bool).
inline GemmPrecision PrecisionOf(bool bf16) {
  return bf16 ? GemmPrecision::kBf16 : GemmPrecision::kFp32;
}

// Whether kBf16 products can run here: oneDNN was found at build time and the CPU has
// AVX512-BF16 or AMX-BF16 (without either, oneDNN would emulate bf16 slower than fp32).
bool Bf16GemmAvailable();
// Why Bf16GemmAvailable() is false, for an error message; empty when it is true.
std::string Bf16GemmUnavailableReason();
// The same for a CPU that has (or lacks) AVX512-BF16/AMX-BF16, whatever this one has.
std::string Bf16GemmUnavailableReason(bool cpu_has_bf16);

// C[m, n] = alpha * op(A) * op(B) + beta * C, all row-major: op(A) is [m, k] (A stored
// [m, k] with row stride lda, or [k, m] when trans_a), op(B) is [k, n] (B stored [k, n],
// or [n, k] when trans_b), C has row stride ldc. m, n or k may be 0 (k = 0 scales C by
// beta). The caller guarantees the sizes; nothing is checked beyond int32 overflow.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc);
// An operand of a product with a precision: its values, and for kBf16 products optionally
// the same values already rounded to bf16 in the same layout (then `values` may be null),
// so that an operand of several products is rounded once.
template <typename T>
struct GemmOperand {
  const T* values = nullptr;
  const uint16_t* bf16 = nullptr;
};

// The same with `precision` (kBf16: Bf16GemmAvailable() must hold, else kInternal). The
// double overload ignores it: double products are the tests' reference.
void Gemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
          float* c, int64_t ldc);
inline void Gemm(GemmPrecision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                 double beta, double* c, int64_t ldc) {
  Gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
// With operands that may come rounded already (kBf16; kFp32 reads `values`).
void Gemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, GemmOperand<float> a, int64_t lda, GemmOperand<float> b, int64_t ldb,
          float beta, float* c, int64_t ldc);
inline void Gemm(GemmPrecision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, GemmOperand<double> a, int64_t lda, GemmOperand<double> b,
                 int64_t ldb, double beta, double* c, int64_t ldc) {
  Gemm(trans_a, trans_b, m, n, k, alpha, a.values, lda, b.values, ldb, beta, c, ldc);
}

// dst[i] = src[i] rounded to bfloat16 (to nearest even; NaN stays NaN), as the raw 16 bits.
void RoundToBf16(const float* src, int64_t count, uint16_t* dst);

// out[r, :] = row for r < rows (a bias broadcast before a GEMM that accumulates onto it).
template <typename T>
void FillRows(const T* row, int64_t rows, int64_t cols, T* out) {
  for (int64_t r = 0; r < rows; ++r) std::copy(row, row + cols, out + r * cols);
}

// out[j] = sum over r < rows of m[r, j] (a bias gradient); zeros when rows = 0.
template <typename T>
void ColumnSums(const T* m, int64_t rows, int64_t cols, T* out) {
  std::fill(out, out + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) out[j] += m[r * cols + j];
  }
}

}  // namespace flexmoe
