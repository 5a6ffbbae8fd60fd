// LayerNorm over the last dimension as one autograd node on host tensors (one pass per row
// forward, one backward), for the fusion layer's two norms.
#pragma once

#include <ATen/core/Tensor.h>

namespace flexmoe {

// x [..., D], weight and bias [D]: (x - mean) / sqrt(var + eps) * weight + bias with the
// biased variance, as torch::nn::LayerNorm. Host float/double tensors of one type run the
// fused node; anything else runs at::layer_norm.
at::Tensor FusedLayerNorm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                          double eps);

}  // namespace flexmoe
