// Gemm (experts/cpu_blas.h) against at::matmul for small products (run on the calling
// thread alone) and large ones (split over the pool), every transpose combination, with the
// caller's intra-op thread count unchanged after each product; the bf16 product against the
// double product of the operands rounded to bf16, and the rounding itself.
#include "experts/cpu_blas.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace flexmoe {
namespace {

// A row-major [rows, cols] tensor stored transposed when `trans` (as Gemm reads it).
at::Tensor Stored(const at::Tensor& logical, bool trans) {
  return trans ? logical.t().contiguous() : logical.contiguous();
}

TEST(Gemm, SmallAndLargeProductsMatchMatmulAndKeepTheCallersThreads) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  // 2 * m * n * k: 1,920 FLOPs (far below the one-thread bound) and 128 MFLOP (above it).
  for (const std::array<int64_t, 3>& mnk :
       {std::array<int64_t, 3>{4, 8, 30}, std::array<int64_t, 3>{256, 512, 500}}) {
    const int64_t m = mnk[0], n = mnk[1], k = mnk[2];
    for (bool trans_a : {false, true}) {
      for (bool trans_b : {false, true}) {
        at::manual_seed(3);
        const at::Tensor a = at::randn({m, k}), b = at::randn({k, n}), c0 = at::randn({m, n});
        const at::Tensor sa = Stored(a, trans_a), sb = Stored(b, trans_b);
        at::Tensor c = c0.clone();
        Gemm(trans_a, trans_b, m, n, k, 0.5f, sa.data_ptr<float>(), sa.size(1),
             sb.data_ptr<float>(), sb.size(1), 2.0f, c.data_ptr<float>(), n);
        const at::Tensor expected = 0.5 * at::matmul(a, b) + 2.0 * c0;
        EXPECT_TRUE(at::allclose(c, expected, 1e-4, 1e-3))
            << "m " << m << " n " << n << " k " << k << " trans " << trans_a << trans_b;
        EXPECT_EQ(at::get_num_threads(), 2) << "m " << m << " n " << n << " k " << k;
      }
    }
  }
  at::set_num_threads(before);
}

// The raw bits of a float, and a float from them.
uint32_t Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}
float FromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

TEST(Gemm, RoundToBf16IsNearestEvenOnEveryPathAndKeepsNan) {
  // Ties go to the even neighbour; above a tie rounds up; the carry reaches the exponent.
  const std::vector<std::pair<uint32_t, uint16_t>> cases = {
      {0x3f800000u, 0x3f80}, {0x3f808000u, 0x3f80}, {0x3f818000u, 0x3f82},
      {0x3f808001u, 0x3f81}, {0x3f7fffffu, 0x3f80}, {0xbf808000u, 0xbf80},
      {0x00000000u, 0x0000}, {0x7f800000u, 0x7f80}, {0x7f7fffffu, 0x7f80}};
  // The vector path takes 16 at a time and the rest one by one: 40 values use both.
  std::vector<float> src;
  std::vector<uint16_t> want;
  for (int repeat = 0; repeat < 5; ++repeat) {
    for (const auto& [bits, rounded] : cases) {
      src.push_back(FromBits(bits));
      want.push_back(rounded);
    }
  }
  std::vector<uint16_t> got(src.size());
  RoundToBf16(src.data(), static_cast<int64_t>(src.size()), got.data());
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << std::hex << Bits(src[i]) << " at " << std::dec << i;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint16_t out = 0;
  RoundToBf16(&nan, 1, &out);
  EXPECT_TRUE(std::isnan(FromBits(static_cast<uint32_t>(out) << 16)));
  // ATen's own conversion agrees on random values, over both paths.
  at::manual_seed(5);
  const at::Tensor x = at::randn({1000}) * 1e3;
  std::vector<uint16_t> ours(1000);
  RoundToBf16(x.data_ptr<float>(), 1000, ours.data());
  const at::Tensor aten = x.to(at::kBFloat16);
  EXPECT_EQ(std::memcmp(ours.data(), aten.data_ptr(), 1000 * sizeof(uint16_t)), 0);
}

// Where bf16 products cannot run, the reason names what is missing (the worker's refusal
// of training.precision BF16 quotes it).
TEST(Gemm, Bf16UnavailableSaysWhy) {
  const std::string no_cpu = Bf16GemmUnavailableReason(false);
  EXPECT_FALSE(no_cpu.empty());
  EXPECT_TRUE(no_cpu.find("AVX512-BF16 nor AMX-BF16") != std::string::npos ||
              no_cpu.find("no oneDNN") != std::string::npos)
      << no_cpu;
  EXPECT_EQ(Bf16GemmAvailable(), Bf16GemmUnavailableReason().empty());
}

TEST(Gemm, Bf16ProductIsTheProductOfTheRoundedOperandsAccumulatedInFp32) {
  if (!Bf16GemmAvailable()) GTEST_SKIP() << Bf16GemmUnavailableReason();
  for (const std::array<int64_t, 3>& mnk :
       {std::array<int64_t, 3>{4, 8, 30}, std::array<int64_t, 3>{256, 512, 500}}) {
    const int64_t m = mnk[0], n = mnk[1], k = mnk[2];
    for (bool trans_a : {false, true}) {
      for (bool trans_b : {false, true}) {
        at::manual_seed(7);
        const at::Tensor a = at::randn({m, k}), b = at::randn({k, n}), c0 = at::randn({m, n});
        // Operands with a row stride wider than their rows (3 columns of padding).
        const at::Tensor sa = at::constant_pad_nd(Stored(a, trans_a), {0, 3});
        const at::Tensor sb = at::constant_pad_nd(Stored(b, trans_b), {0, 3});
        at::Tensor c = c0.clone(), c32 = c0.clone();
        Gemm(GemmPrecision::kBf16, trans_a, trans_b, m, n, k, 0.5f, sa.data_ptr<float>(),
             sa.size(1), sb.data_ptr<float>(), sb.size(1), 2.0f, c.data_ptr<float>(), n);
        Gemm(GemmPrecision::kFp32, trans_a, trans_b, m, n, k, 0.5f, sa.data_ptr<float>(),
             sa.size(1), sb.data_ptr<float>(), sb.size(1), 2.0f, c32.data_ptr<float>(), n);
        const auto rounded = [](const at::Tensor& t) {
          return t.to(at::kBFloat16).to(at::kDouble);
        };
        const at::Tensor expected =
            (0.5 * at::matmul(rounded(a), rounded(b)) + 2.0 * c0.to(at::kDouble)).to(at::kFloat);
        const std::string where = "m " + std::to_string(m) + " k " + std::to_string(k) + " trans " +
                                  std::to_string(trans_a) + std::to_string(trans_b);
        EXPECT_TRUE(at::allclose(c, expected, 1e-5, 1e-4)) << where;
        // It is not the fp32 product: rounding the operands moves the result by about
        // 2^-8 of a term, far more than fp32 accumulation does.
        const double gap = (c - c32).abs().max().item<double>();
        EXPECT_GT(gap, 1e-4) << where;
        EXPECT_TRUE(at::allclose(c, c32, 0.0, 0.05 * std::sqrt(static_cast<double>(k)))) << where;
      }
    }
  }
}

}  // namespace
}  // namespace flexmoe
