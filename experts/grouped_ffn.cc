// The fused host expert FFN node over row blocks (grouped_ffn.h).
#include "experts/grouped_ffn.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>
#include <string>

#include "cluster/base/error.h"
#include "experts/cpu_blas.h"
#include "experts/gelu.h"

namespace flexmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The blocks as a flat list (expert, begin, rows, ...), for the autograd context.
std::vector<int64_t> Flatten(const std::vector<RowBlock>& blocks) {
  std::vector<int64_t> flat;
  flat.reserve(3 * blocks.size());
  for (const RowBlock& b : blocks) flat.insert(flat.end(), {b.expert, b.begin, b.rows});
  return flat;
}

// For each of `experts` experts, its non-empty blocks (as {begin, rows}) in the given order.
std::vector<std::vector<std::pair<int64_t, int64_t>>> BlocksOfExperts(
    const std::vector<int64_t>& flat, int64_t experts) {
  std::vector<std::vector<std::pair<int64_t, int64_t>>> of(static_cast<size_t>(experts));
  for (size_t i = 0; i + 2 < flat.size(); i += 3) {
    if (flat[i + 2] > 0) of[flat[i]].push_back({flat[i + 1], flat[i + 2]});
  }
  return of;
}

int64_t LargestBlock(const std::vector<int64_t>& flat) {
  int64_t most = 0;
  for (size_t i = 2; i < flat.size(); i += 3) most = std::max(most, flat[i]);
  return most;
}

// out[j] (+)= sum over r < rows of m[r, j]: a bias gradient, started (accumulate false) or
// continued over one more block.
template <typename T>
void SumColumns(const T* m, int64_t rows, int64_t cols, bool accumulate, T* out) {
  if (!accumulate) std::fill(out, out + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = m + r * cols;
    for (int64_t j = 0; j < cols; ++j) out[j] += row[j];
  }
}

// dh *= slope elementwise (the GELU derivative), and its column sums into db (+)=.
template <typename T>
void ScaleAndSumColumns(T* dh, const T* slope, int64_t rows, int64_t cols, bool accumulate, T* db) {
  if (!accumulate) std::fill(db, db + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    T* row = dh + r * cols;
    const T* s = slope + r * cols;
    for (int64_t j = 0; j < cols; ++j) {
      row[j] *= s[j];
      db[j] += row[j];
    }
  }
}

// The raw 16 bits of a bf16 tensor's elements; null for an undefined tensor.
uint16_t* Bits(const at::Tensor& t) {
  return t.defined() ? reinterpret_cast<uint16_t*>(t.data_ptr()) : nullptr;
}

// A float tensor rounded to bf16 (nearest even), as a bf16 tensor of its shape.
at::Tensor RoundedCopy(const at::Tensor& t) {
  at::Tensor out = at::empty(t.sizes(), t.options().dtype(at::kBFloat16));
  RoundToBf16(t.data_ptr<float>(), t.numel(), Bits(out));
  return out;
}

// Element `offset` of `values` as a product's operand, with the same element of `rounded`
// (its bf16 copy, or undefined) when there is one.
template <typename T>
GemmOperand<T> OperandAt(const at::Tensor& values, const at::Tensor& rounded, int64_t offset) {
  GemmOperand<T> op;
  if (values.defined()) op.values = values.data_ptr<T>() + offset;
  if (rounded.defined()) op.bf16 = Bits(rounded) + offset;
  return op;
}

// With kBf16 products every operand is rounded once: the input rows and the weights before
// the first expert, each block's GELU output and (in the backward) the upstream gradient and
// each block's GELU input gradient, and the products read the rounded copies. The input rows
// and the GELU output are kept for the backward in bf16 only (half the memory); the weights'
// rounded copies too.
class GroupedFfnFunction : public torch::autograd::Function<GroupedFfnFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w1,
                            const at::Tensor& b1, const at::Tensor& w2, const at::Tensor& b2,
                            const std::vector<int64_t>& flat, bool bf16) {
    bf16 = bf16 && x.scalar_type() == at::kFloat;
    const GemmPrecision precision = PrecisionOf(bf16);
    at::Tensor xc = x.contiguous(), w1c = w1.contiguous(), b1c = b1.contiguous();
    at::Tensor w2c = w2.contiguous(), b2c = b2.contiguous();
    const int64_t rows = x.size(0), d = w1.size(1), hidden = w1.size(2), experts = w1.size(0);
    at::Tensor h = at::empty({LargestBlock(flat), hidden}, x.options());  // a block's pre-GELU
    at::Tensor y = at::empty({rows, d}, x.options());
    // GELU and its derivative; the backward needs only the derivative. GELU's output: every
    // row in fp32 (kept for the backward), or with kBf16 one block's at a time, rounded into
    // g16 (kept instead).
    at::Tensor g = at::empty({bf16 ? LargestBlock(flat) : rows, hidden}, x.options());
    at::Tensor gelu_grad = at::empty({rows, hidden}, x.options());
    at::Tensor x16, w1_16, w2_16, g16;  // rounded copies (kBf16)
    if (bf16) {
      x16 = RoundedCopy(xc);
      w1_16 = RoundedCopy(w1c);
      w2_16 = RoundedCopy(w2c);
      g16 = at::empty(gelu_grad.sizes(), x.options().dtype(at::kBFloat16));
    }
    const auto of = BlocksOfExperts(flat, experts);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "GroupedFfn", [&] {
      scalar_t* he = h.data_ptr<scalar_t>();
      for (int64_t e = 0; e < experts; ++e) {
        const GemmOperand<scalar_t> w1e = OperandAt<scalar_t>(w1c, w1_16, e * d * hidden);
        const GemmOperand<scalar_t> w2e = OperandAt<scalar_t>(w2c, w2_16, e * hidden * d);
        const scalar_t* b2e = b2c.data_ptr<scalar_t>() + e * d;
        for (const auto& [row, n] : of[e]) {
          // First layer without its bias; the GELU pass adds it.
          Gemm(precision, false, false, n, hidden, d, scalar_t(1),
               OperandAt<scalar_t>(xc, x16, row * d), d, w1e, hidden, scalar_t(0), he, hidden);
          scalar_t* ge = g.data_ptr<scalar_t>() + (bf16 ? 0 : row * hidden);
          GeluAndDerivative(he, n, hidden, b1c.data_ptr<scalar_t>() + e * hidden, ge,
                            gelu_grad.data_ptr<scalar_t>() + row * hidden);
          if (bf16) {
            RoundToBf16(reinterpret_cast<const float*>(ge), n * hidden, Bits(g16) + row * hidden);
          }
          scalar_t* ye = y.data_ptr<scalar_t>() + row * d;
          FillRows(b2e, n, d, ye);
          Gemm(precision, false, false, n, d, hidden, scalar_t(1),
               OperandAt<scalar_t>(bf16 ? at::Tensor() : g, g16, row * hidden), hidden, w2e, d,
               scalar_t(1), ye, d);
        }
      }
    });
    // Kept for the backward: x and g in fp32, or only their bf16 copies.
    ctx->save_for_backward({bf16 ? at::Tensor() : xc, w1c, w2c, gelu_grad, bf16 ? at::Tensor() : g,
                            x16, w1_16, w2_16, g16});
    ctx->saved_data["blocks"] = flat;
    ctx->saved_data["bf16"] = bf16;
    ctx->saved_data["rows"] = rows;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w1 = saved[1], &w2 = saved[2], &g = saved[4];
    const at::Tensor &gelu_grad = saved[3], &x16 = saved[5], &w1_16 = saved[6];
    const at::Tensor &w2_16 = saved[7], &g16 = saved[8];
    const std::vector<int64_t> flat = ctx->saved_data["blocks"].toIntVector();
    const bool bf16 = ctx->saved_data["bf16"].toBool();
    const GemmPrecision precision = PrecisionOf(bf16);
    const at::Tensor dy = grads[0].contiguous();
    const int64_t rows = ctx->saved_data["rows"].toInt(), d = w1.size(1), hidden = w1.size(2);
    const int64_t experts = w1.size(0);
    at::Tensor dh = at::empty({LargestBlock(flat), hidden}, w1.options());
    at::Tensor dh16 =
        bf16 ? at::empty(dh.sizes(), dh.options().dtype(at::kBFloat16)) : at::Tensor();
    const at::Tensor dy16 = bf16 ? RoundedCopy(dy) : at::Tensor();
    at::Tensor dx = at::empty({rows, d}, w1.options());
    at::Tensor dw1 = at::empty_like(w1), db1 = at::empty({experts, hidden}, w1.options());
    at::Tensor dw2 = at::empty_like(w2), db2 = at::empty({experts, d}, w1.options());
    const auto of = BlocksOfExperts(flat, experts);
    AT_DISPATCH_FLOATING_TYPES(w1.scalar_type(), "GroupedFfnBackward", [&] {
      scalar_t* dhp = dh.data_ptr<scalar_t>();
      const GemmOperand<scalar_t> dh_op = OperandAt<scalar_t>(dh, dh16, 0);
      for (int64_t e = 0; e < experts; ++e) {
        const GemmOperand<scalar_t> w1e = OperandAt<scalar_t>(w1, w1_16, e * d * hidden);
        const GemmOperand<scalar_t> w2e = OperandAt<scalar_t>(w2, w2_16, e * hidden * d);
        scalar_t* dw1e = dw1.data_ptr<scalar_t>() + e * d * hidden;
        scalar_t* dw2e = dw2.data_ptr<scalar_t>() + e * hidden * d;
        scalar_t* db1e = db1.data_ptr<scalar_t>() + e * hidden;
        scalar_t* db2e = db2.data_ptr<scalar_t>() + e * d;
        bool first = true;
        for (const auto& [row, n] : of[e]) {
          // Weight gradients start with the expert's first block and accumulate over the rest.
          const scalar_t beta = first ? scalar_t(0) : scalar_t(1);
          const GemmOperand<scalar_t> dye = OperandAt<scalar_t>(dy, dy16, row * d);
          // Second layer: d GELU output, the weight and bias gradients.
          Gemm(precision, false, true, n, hidden, d, scalar_t(1), dye, d, w2e, d, scalar_t(0), dhp,
               hidden);
          Gemm(precision, true, false, hidden, d, n, scalar_t(1),
               OperandAt<scalar_t>(g, g16, row * hidden), hidden, dye, d, beta, dw2e, d);
          SumColumns(dye.values, n, d, !first, db2e);
          // d GELU input, then the first layer's gradients.
          ScaleAndSumColumns(dhp, gelu_grad.data_ptr<scalar_t>() + row * hidden, n, hidden, !first,
                             db1e);
          if (bf16) RoundToBf16(reinterpret_cast<const float*>(dhp), n * hidden, Bits(dh16));
          Gemm(precision, false, true, n, d, hidden, scalar_t(1), dh_op, hidden, w1e, hidden,
               scalar_t(0), dx.data_ptr<scalar_t>() + row * d, d);
          Gemm(precision, true, false, d, hidden, n, scalar_t(1),
               OperandAt<scalar_t>(x, x16, row * d), d, dh_op, hidden, beta, dw1e, hidden);
          first = false;
        }
        if (first) {  // no rows: no gradient
          std::fill(dw1e, dw1e + d * hidden, scalar_t(0));
          std::fill(dw2e, dw2e + hidden * d, scalar_t(0));
          std::fill(db1e, db1e + hidden, scalar_t(0));
          std::fill(db2e, db2e + d, scalar_t(0));
        }
      }
    });
    return {dx, dw1, db1, dw2, db2, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::vector<RowBlock> ContiguousBlocks(const std::vector<int64_t>& counts) {
  std::vector<RowBlock> blocks;
  blocks.reserve(counts.size());
  int64_t row = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    blocks.push_back({static_cast<int64_t>(i), row, counts[i]});
    row += counts[i];
  }
  return blocks;
}

std::vector<std::pair<int64_t, int64_t>> ExpertMajorRanges(const std::vector<RowBlock>& blocks,
                                                           int64_t experts,
                                                           std::vector<int64_t>* counts) {
  std::vector<std::vector<std::pair<int64_t, int64_t>>> of(static_cast<size_t>(experts));
  counts->assign(static_cast<size_t>(experts), 0);
  for (const RowBlock& b : blocks) {
    of[b.expert].push_back({b.begin, b.rows});
    (*counts)[b.expert] += b.rows;
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const auto& expert_ranges : of)
    ranges.insert(ranges.end(), expert_ranges.begin(), expert_ranges.end());
  return ranges;
}

void CheckBlocks(const std::vector<RowBlock>& blocks, int64_t rows, int64_t experts,
                 const char* what) {
  int64_t next = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const RowBlock& b = blocks[i];
    if (b.expert < 0 || b.expert >= experts || b.rows < 0 || b.begin != next) {
      Fail(ErrorCode::kInvalidArgument, what, ": block ", i, " (expert ", b.expert, ", rows [",
           b.begin, ", ", b.begin + b.rows, ")) does not follow row ", next,
           " with an expert in [0, ", experts, ")");
    }
    next += b.rows;
  }
  if (next != rows) {
    Fail(ErrorCode::kInvalidArgument, what, ": the blocks cover ", next, " rows of ", rows);
  }
}

at::Tensor GroupedFfn(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1,
                      const at::Tensor& w2, const at::Tensor& b2,
                      const std::vector<RowBlock>& blocks, GemmPrecision precision) {
  return GroupedFfnFunction::apply(x, w1, b1, w2, b2, Flatten(blocks),
                                   precision == GemmPrecision::kBf16);
}

}  // namespace flexmoe
