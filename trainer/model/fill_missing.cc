// FillMissing (fill_missing.h): a block copy per (sample, modality) forward, and the routing
// of each block's gradient to its encoder output or its bank row backward.
#include "trainer/model/fill_missing.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockIds {
  at::Tensor combination;  // [B] int64
  at::Tensor observed;     // [B, M] bool
};

class FillMissingFunction : public torch::autograd::Function<FillMissingFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& encoded, const at::Tensor& bank,
                            const at::Tensor& pos, const BlockIds& ids) {
    const at::Tensor enc = encoded.contiguous(), bk = bank.contiguous(), ps = pos.contiguous();
    const int64_t b = enc.size(0), m = enc.size(1), block = enc.size(2) * enc.size(3);
    at::Tensor x = at::empty({b, m * enc.size(2), enc.size(3)}, enc.options());
    AT_DISPATCH_FLOATING_TYPES(enc.scalar_type(), "FillMissing", [&] {
      const scalar_t *e = enc.data_ptr<scalar_t>(), *k = bk.data_ptr<scalar_t>();
      const scalar_t* p = ps.data_ptr<scalar_t>();
      const int64_t* comb = ids.combination.data_ptr<int64_t>();
      const bool* seen = ids.observed.data_ptr<bool>();
      scalar_t* out = x.data_ptr<scalar_t>();
      for (int64_t s = 0; s < b; ++s) {
        for (int64_t j = 0; j < m; ++j) {
          const scalar_t* src =
              seen[s * m + j] ? e + (s * m + j) * block : k + (comb[s] * m + j) * block;
          const scalar_t* pj = p + j * block;
          scalar_t* dst = out + (s * m + j) * block;
          for (int64_t i = 0; i < block; ++i) dst[i] = src[i] + pj[i];
        }
      }
    });
    ctx->save_for_backward({ids.combination, ids.observed});
    ctx->saved_data["bank_rows"] = bk.size(0);
    return x;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &comb_t = saved[0], &seen_t = saved[1];
    const at::Tensor dx = grads[0].contiguous();
    const int64_t b = seen_t.size(0), m = seen_t.size(1);
    const int64_t rows = dx.size(1) / m, d = dx.size(2), block = rows * d;
    at::Tensor d_enc = at::empty({b, m, rows, d}, dx.options());
    at::Tensor d_bank = at::zeros({ctx->saved_data["bank_rows"].toInt(), m, rows, d}, dx.options());
    at::Tensor d_pos = at::zeros({1, m * rows, d}, dx.options());
    AT_DISPATCH_FLOATING_TYPES(dx.scalar_type(), "FillMissingBackward", [&] {
      const scalar_t* g = dx.data_ptr<scalar_t>();
      const int64_t* comb = comb_t.data_ptr<int64_t>();
      const bool* seen = seen_t.data_ptr<bool>();
      scalar_t *de = d_enc.data_ptr<scalar_t>(), *dk = d_bank.data_ptr<scalar_t>();
      scalar_t* dp = d_pos.data_ptr<scalar_t>();
      for (int64_t s = 0; s < b; ++s) {
        for (int64_t j = 0; j < m; ++j) {
          const scalar_t* src = g + (s * m + j) * block;
          scalar_t* enc_grad = de + (s * m + j) * block;
          scalar_t* pos_grad = dp + j * block;
          for (int64_t i = 0; i < block; ++i) pos_grad[i] += src[i];
          if (seen[s * m + j]) {
            std::copy(src, src + block, enc_grad);
          } else {
            std::fill(enc_grad, enc_grad + block, scalar_t(0));
            scalar_t* bank_grad = dk + (comb[s] * m + j) * block;
            for (int64_t i = 0; i < block; ++i) bank_grad[i] += src[i];
          }
        }
      }
    });
    return {d_enc, d_bank, d_pos, at::Tensor()};
  }
};

}  // namespace

at::Tensor FillMissing(const at::Tensor& encoded, const at::Tensor& bank, const at::Tensor& pos,
                       const at::Tensor& combination, const at::Tensor& observed) {
  if (encoded.dim() != 4 || observed.dim() != 2 || observed.size(0) != encoded.size(0) ||
      observed.size(1) != encoded.size(1) || combination.dim() != 1 ||
      combination.size(0) != encoded.size(0) ||
      pos.sizes() != at::IntArrayRef({1, encoded.size(1) * encoded.size(2), encoded.size(3)})) {
    Fail(ErrorCode::kInvalidArgument, "FillMissing: encoded ", encoded.sizes(), ", observed ",
         observed.sizes(), ", combination ", combination.sizes(), ", pos ", pos.sizes());
  }
  const int64_t b = encoded.size(0), m = encoded.size(1);
  const bool host = encoded.device().is_cpu() && bank.defined() &&
                    (encoded.scalar_type() == at::kFloat || encoded.scalar_type() == at::kDouble) &&
                    bank.scalar_type() == encoded.scalar_type() &&
                    pos.scalar_type() == encoded.scalar_type();
  if (host) {
    const at::Tensor comb = combination.to(at::kLong).contiguous();
    if (b > 0) {
      const int64_t lo = comb.min().item<int64_t>(), hi = comb.max().item<int64_t>();
      if (lo < 0 || hi >= bank.size(0)) {
        Fail(ErrorCode::kInvalidArgument, "FillMissing: combination ids must be in [0, ",
             bank.size(0), "), got [", lo, ", ", hi, "]");
      }
    }
    return FillMissingFunction::apply(encoded, bank, pos,
                                      BlockIds{comb, observed.to(at::kBool).contiguous()});
  }
  // The same from ATen ops (CUDA tensors, the ZERO bank).
  const at::Tensor fill =
      bank.defined() ? bank.index_select(0, combination) : at::zeros_like(encoded);
  const at::Tensor seen = observed.to(at::kBool).view({b, m, 1, 1});
  return at::where(seen, encoded, fill).reshape({b, -1, encoded.size(3)}) + pos;
}

}  // namespace flexmoe
