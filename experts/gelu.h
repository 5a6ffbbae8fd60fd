// The exact (erf) GELU and its derivative in one pass over a buffer, for the fused expert
// FFN: the forward keeps GELU'(h) so that the backward is one multiply.
#pragma once

#include <cstdint>

namespace flexmoe {

// For the [rows, cols] row-major x and h = x[r, c] + bias[c] (bias may be null):
// g[r, c] = h Phi(h) and d[r, c] = Phi(h) + h phi(h), with Phi and phi the standard
// normal CDF and density. Float: AVX-512 or AVX2/FMA where the CPU has them (the same
// operations on 16 or 8 lanes, so the same bits), with Phi from Abramowitz and Stegun 7.1.26
// (|error| <= 7.5e-8, computed without cancellation in the lower tail) and a Cephes-style
// exp; a scalar loop over std::erf/std::exp otherwise. Double: std::erf and std::exp. x, g
// and d must not overlap.
void GeluAndDerivative(const float* x, int64_t rows, int64_t cols, const float* bias, float* g,
                       float* d);

// The float kernels by name, for tests and benchmarks; a kernel the CPU lacks must not be
// asked for (BestGeluKernel is the one the call above uses).
enum class GeluKernel { kScalar, kAvx2, kAvx512 };
GeluKernel BestGeluKernel();
void GeluAndDerivative(GeluKernel kernel, const float* x, int64_t rows, int64_t cols,
                       const float* bias, float* g, float* d);
void GeluAndDerivative(const double* x, int64_t rows, int64_t cols, const double* bias, double* g,
                       double* d);

}  // namespace flexmoe
