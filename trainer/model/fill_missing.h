// The fusion transformer's input in one autograd node on host tensors: each sample's
// observed modality blocks from its encoders, bank rows for the missing ones, plus the
// position embedding.
#pragma once

#include <ATen/core/Tensor.h>

namespace flexmoe {

// encoded [B, M, P, D] (the encoders' outputs, stacked), bank [C, M, P, D] (undefined: zeros
// for missing blocks, the ZERO-bank ablation), pos [1, M*P, D], combination [B] int64,
// observed [B, M] bool. Returns x [B, M*P, D] with block m of sample b = encoded[b, m] where
// observed[b, m], else bank[combination[b], m]; plus pos. Differentiable in encoded, bank
// and pos; a missing block's encoder output gets a zero gradient, the bank a gradient only
// in the (combination, modality) rows that filled a block.
at::Tensor FillMissing(const at::Tensor& encoded, const at::Tensor& bank, const at::Tensor& pos,
                       const at::Tensor& combination, const at::Tensor& observed);

}  // namespace flexmoe
