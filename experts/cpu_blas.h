// Row-major single and double precision GEMM on host memory through the BLAS that
// LibTorch itself calls (oneDNN when CMake finds it, else libblas.so.3), for the fused CPU
// kernels that call it per expert or per attention head without ATen's per-op overhead.
#pragma once

#include <algorithm>
#include <cstdint>

namespace flexmoe {

// C[m, n] = alpha * op(A) * op(B) + beta * C, all row-major: op(A) is [m, k] (A stored
// [m, k] with row stride lda, or [k, m] when trans_a), op(B) is [k, n] (B stored [k, n],
// or [n, k] when trans_b), C has row stride ldc. m, n or k may be 0 (k = 0 scales C by
// beta). The caller guarantees the sizes; nothing is checked beyond int32 overflow.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc);

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
