// An affine layer y = x W^T + b as one autograd node on host tensors: one GEMM forward, two
// in the backward (the input gradient only when it is needed), through cpu_blas.h.
#pragma once

#include <ATen/core/Tensor.h>

#include "experts/cpu_blas.h"

namespace flexmoe {

// x [..., in], weight [out, in] (torch::nn::Linear's layout), bias [out] or undefined.
// Returns [..., out]. Host float/double tensors of one type run the fused node; anything
// else runs at::linear. `precision` applies to the fused node's float products, forward
// and backward (cpu_blas.h); at::linear ignores it.
at::Tensor FusedLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                       GemmPrecision precision = GemmPrecision::kFp32);

}  // namespace flexmoe
