// Gemm (experts/cpu_blas.h) against at::matmul for small products (run on the calling
// thread alone) and large ones (split over the pool), every transpose combination, with the
// caller's intra-op thread count unchanged after each product.
#include "experts/cpu_blas.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <array>

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

}  // namespace
}  // namespace flexmoe
