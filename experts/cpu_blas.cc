// Row-major GEMM over the Fortran BLAS interface (sgemm_/dgemm_), see cpu_blas.h.
#include "experts/cpu_blas.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <cstring>
#include <limits>
#include <vector>

#if defined(FLEXMOE_HAVE_DNNL)
#include <omp.h>
#endif

#include "cluster/base/error.h"

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
#if defined(FLEXMOE_HAVE_DNNL)
// oneDNN's row-major SGEMM (libdnnl.so.2, which Debian's LibTorch depends on); returns
// dnnl_status_t, 0 on success. It picks its kernels from the CPU it runs on.
int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc);
// oneDNN's row-major bf16 x bf16 -> fp32 GEMM; bfloat16_t is 16 raw bits.
int dnnl_gemm_bf16bf16f32(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb,
                          float beta, float* c, int64_t ldc);
#endif
}

namespace flexmoe {
namespace {

#if defined(FLEXMOE_HAVE_DNNL)
// oneDNN's SGEMM splits every product over all of the intra-op pool's threads. With
// OMP_WAIT_POLICY=PASSIVE (launch/wait_policy.h) those threads sleep between products, and
// waking one costs 10-50 us here, far more when another process holds the cores. The
// attention core's per-(sample, head) products are under a MFLOP each, so below this
// size the calling thread runs the product alone (docs/benchmarks.md, "Small products on
// one thread"): 30 MFLOP is about 150 us of one core at 200 GFLOP/s.
constexpr double kParallelGemmMinFlops = 3e7;

// Runs the products of its scope on the calling thread alone when they are small, and
// restores the caller's thread count when it ends.
class SmallGemmThreads {
 public:
  SmallGemmThreads(int64_t m, int64_t n, int64_t k)
      : saved_(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) <
                       kParallelGemmMinFlops
                   ? omp_get_max_threads()
                   : 0) {
    if (saved_ > 1) omp_set_num_threads(1);
  }
  ~SmallGemmThreads() {
    if (saved_ > 1) omp_set_num_threads(saved_);
  }
  SmallGemmThreads(const SmallGemmThreads&) = delete;
  SmallGemmThreads& operator=(const SmallGemmThreads&) = delete;

 private:
  const int saved_;  // the caller's thread count when lowered to one, else 0
};
#endif

int ToInt(int64_t value, const char* what) {
  if (value < 0 || value > std::numeric_limits<int>::max()) {
    Fail(ErrorCode::kInvalidArgument, "Gemm: ", what, " = ", value, " does not fit BLAS's int");
  }
  return static_cast<int>(value);
}

// C = beta * C for k = 0 (op(A) op(B) is zero), without reading C when beta is 0.
template <typename T>
void ScaleRows(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
  }
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the operands swap
// places and keep their own transpose flags.
template <typename T, typename Blas>
void RowMajorGemm(Blas blas, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                  const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return ScaleRows(m, n, beta, c, ldc);
  const int im = ToInt(m, "m"), in = ToInt(n, "n"), ik = ToInt(k, "k");
  // BLAS requires leading dimensions >= 1 even where nothing is read.
  const int ilda = ToInt(lda < 1 ? 1 : lda, "lda"), ildb = ToInt(ldb < 1 ? 1 : ldb, "ldb");
  const int ildc = ToInt(ldc, "ldc");
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  blas(&tb, &ta, &in, &im, &ik, &alpha, b, &ildb, a, &ilda, &beta, c, &ildc);
}

bool CpuHasBf16() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
#else
  return false;
#endif
}

uint16_t RoundOneToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

#if defined(__x86_64__) && defined(__GNUC__)
// 16 floats at a time with the CPU's own conversion (VCVTNEPS2BF16: nearest even); called
// only where CpuHasBf16() holds.
__attribute__((target("avx512f,avx512bf16,avx512vl"))) void RoundToBf16Avx512(const float* src,
                                                                              int64_t count,
                                                                              uint16_t* dst) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        reinterpret_cast<const __m256i&>(packed));
  }
  for (; i < count; ++i) dst[i] = RoundOneToBf16(src[i]);
}
#endif

#if defined(FLEXMOE_HAVE_DNNL)
// A row-major operand of `rows` x `cols` with row stride ld, rounded into `out` packed
// (row stride cols).
void PackBf16(const float* src, int64_t rows, int64_t cols, int64_t ld,
              std::vector<uint16_t>* out) {
  out->resize(static_cast<size_t>(rows * cols));
  if (ld == cols) return RoundToBf16(src, rows * cols, out->data());
  for (int64_t r = 0; r < rows; ++r) RoundToBf16(src + r * ld, cols, out->data() + r * cols);
}

// Row-major bf16 operands as oneDNN takes them: `operand.bf16` as it is (row stride ld), or
// `operand.values` rounded into `scratch` (row stride cols).
const uint16_t* Bf16Operand(GemmOperand<float> operand, int64_t rows, int64_t cols, int64_t* ld,
                            std::vector<uint16_t>* scratch) {
  if (operand.bf16 != nullptr) return operand.bf16;
  PackBf16(operand.values, rows, cols, *ld, scratch);
  *ld = cols;
  return scratch->data();
}

void GemmBf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              GemmOperand<float> a, int64_t lda, GemmOperand<float> b, int64_t ldb, float beta,
              float* c, int64_t ldc) {
  // The rounded operands of this thread's last product: reused, so that a step's thousands
  // of products allocate nothing once the largest has been seen.
  thread_local std::vector<uint16_t> a16, b16;
  const uint16_t* ap = Bf16Operand(a, trans_a ? k : m, trans_a ? m : k, &lda, &a16);
  const uint16_t* bp = Bf16Operand(b, trans_b ? n : k, trans_b ? k : n, &ldb, &b16);
  const SmallGemmThreads threads(m, n, k);
  const int status =
      dnnl_gemm_bf16bf16f32(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, ap,
                            lda < 1 ? 1 : lda, bp, ldb < 1 ? 1 : ldb, beta, c, ldc);
  if (status != 0) {
    Fail(ErrorCode::kInternal, "Gemm: dnnl_gemm_bf16bf16f32 failed with status ", status, " (m ", m,
         ", n ", n, ", k ", k, ")");
  }
}
#endif

}  // namespace

bool Bf16GemmAvailable() {
#if defined(FLEXMOE_HAVE_DNNL)
  return CpuHasBf16();
#else
  return false;
#endif
}

std::string Bf16GemmUnavailableReason() { return Bf16GemmUnavailableReason(CpuHasBf16()); }

std::string Bf16GemmUnavailableReason(bool cpu_has_bf16) {
#if defined(FLEXMOE_HAVE_DNNL)
  if (cpu_has_bf16) return "";
  return "this CPU has neither AVX512-BF16 nor AMX-BF16 (oneDNN would emulate bf16 products "
         "slower than fp32)";
#else
  (void)cpu_has_bf16;
  return "this build has no oneDNN (libdnnl.so.2 was not found when it was configured)";
#endif
}

void RoundToBf16(const float* src, int64_t count, uint16_t* dst) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (CpuHasBf16()) return RoundToBf16Avx512(src, count, dst);
#endif
  for (int64_t i = 0; i < count; ++i) dst[i] = RoundOneToBf16(src[i]);
}

void Gemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
          float* c, int64_t ldc) {
  Gemm(precision, trans_a, trans_b, m, n, k, alpha, GemmOperand<float>{a}, lda,
       GemmOperand<float>{b}, ldb, beta, c, ldc);
}

void Gemm(GemmPrecision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, GemmOperand<float> a, int64_t lda, GemmOperand<float> b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (precision == GemmPrecision::kFp32 || m == 0 || n == 0 || k == 0) {
    return Gemm(trans_a, trans_b, m, n, k, alpha, a.values, lda, b.values, ldb, beta, c, ldc);
  }
  if (!Bf16GemmAvailable()) {
    Fail(ErrorCode::kInternal, "Gemm: a bf16 product was asked for, but ",
         Bf16GemmUnavailableReason());
  }
#if defined(FLEXMOE_HAVE_DNNL)
  GemmBf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
#if defined(FLEXMOE_HAVE_DNNL)
  // oneDNN: 15-30% faster than OpenBLAS on the expert and attention shapes, and it needs no
  // OPENBLAS_CORETYPE on CPUs OpenBLAS does not recognise (docs/benchmarks.md).
  if (m == 0 || n == 0) return;
  if (k == 0) return ScaleRows(m, n, beta, c, ldc);
  const SmallGemmThreads threads(m, n, k);
  const int status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                                lda < 1 ? 1 : lda, b, ldb < 1 ? 1 : ldb, beta, c, ldc);
  if (status != 0) {
    Fail(ErrorCode::kInternal, "Gemm: dnnl_sgemm failed with status ", status, " (m ", m, ", n ", n,
         ", k ", k, ", lda ", lda, ", ldb ", ldb, ", ldc ", ldc, ")");
  }
#else
  RowMajorGemm(sgemm_, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  RowMajorGemm(dgemm_, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace flexmoe
