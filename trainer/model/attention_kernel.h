// The core of multi-head attention (scores, softmax, dropout on the weights, weighted sum
// of the values) as one autograd node on host tensors, reading each head's columns in
// place: no head transposes, one BLAS call per (sample, head) and product.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace flexmoe {

// qkv [B, N, 3D]: queries in columns 0..D-1, keys in D..2D-1, values in 2D..3D-1 (head h =
// columns h*D/H .. (h+1)*D/H - 1 of each), as one projection of the tokens gives them.
// weight_mask undefined or [B, H, N, N] (multiplied onto the softmax weights: inverted
// dropout). Returns [B, N, D], head outputs side by side: softmax(q_h k_h^T / sqrt(D/H)) *
// mask v_h for every head h. Host float or double tensors run the fused kernel; other
// tensors run the same maths as ATen ops.
at::Tensor AttentionCore(const at::Tensor& qkv, int64_t heads, const at::Tensor& weight_mask);

}  // namespace flexmoe
