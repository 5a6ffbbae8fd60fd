// What bfloat16 would buy the CPU GEMMs (issue 36, item 1): oneDNN's row-major SGEMM (what
// experts/cpu_blas.h calls today) against its bf16 x bf16 -> fp32 GEMM on the same shapes,
// one thread, and the cost of converting an fp32 operand to bf16 (round to nearest even),
// which a bf16 path pays for every activation it multiplies. Best of three rounds.
// Usage: gemm_precision_bench [--seconds-per-shape S]   (run with OMP_NUM_THREADS=1)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
// libdnnl.so.2 (Debian's LibTorch depends on it); 0 on success.
int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc);
int dnnl_gemm_bf16bf16f32(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb,
                          float beta, float* c, int64_t ldc);
}

namespace {

using Clock = std::chrono::steady_clock;

// fp32 to bf16, rounding to nearest even (NaN kept a NaN).
void ToBf16(const std::vector<float>& in, std::vector<uint16_t>* out) {
  out->resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &in[i], 4);
    if ((u & 0x7fffffff) > 0x7f800000) {
      (*out)[i] = static_cast<uint16_t>((u >> 16) | 0x40);
      continue;
    }
    u += 0x7fff + ((u >> 16) & 1);
    (*out)[i] = static_cast<uint16_t>(u >> 16);
  }
}

// Seconds per call of `f`, best of three rounds of `reps` calls.
template <typename F>
double Best(int reps, F f) {
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const auto start = Clock::now();
    for (int r = 0; r < reps; ++r) f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count() / reps);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.5;
  if (argc == 3 && std::string(argv[1]) == "--seconds-per-shape") seconds = std::stod(argv[2]);
  // [m, n, k]: a large square, then the shapes of an expert's and an attention head's
  // products at ADNI-like sizes (rows per expert x hidden x model width).
  const int64_t shapes[][3] = {
      {1024, 1024, 1024}, {512, 256, 128}, {256, 512, 256}, {2048, 128, 256}, {64, 256, 128}};
  std::printf(
      "| m | n | k | fp32 GFLOP/s | bf16 GFLOP/s | bf16 / fp32 | A to bf16, M elements/s | "
      "bf16 with A converted / fp32 |\n|---|---|---|---|---|---|---|---|\n");
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    std::vector<float> a(m * k), b(k * n), c(m * n);
    for (size_t i = 0; i < a.size(); ++i) a[i] = 0.001f * static_cast<float>(i % 997) - 0.4f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = 0.002f * static_cast<float>(i % 991) - 0.9f;
    std::vector<uint16_t> ab, bb;
    ToBf16(a, &ab);
    ToBf16(b, &bb);
    const double flop = 2.0 * m * n * k;
    const int reps = static_cast<int>(std::max(1.0, seconds * 50e9 / flop));
    const double fp32 = Best(reps, [&] {
      dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    });
    const double bf16 = Best(reps, [&] {
      dnnl_gemm_bf16bf16f32('N', 'N', m, n, k, 1.0f, ab.data(), k, bb.data(), n, 0.0f, c.data(), n);
    });
    const double convert = Best(reps, [&] { ToBf16(a, &ab); });
    std::printf("| %ld | %ld | %ld | %.1f | %.1f | %.2fx | %.0f | %.2fx |\n", m, n, k,
                flop / fp32 / 1e9, flop / bf16 / 1e9, fp32 / bf16, a.size() / convert / 1e6,
                fp32 / (bf16 + convert));
  }
  return 0;
}
