#pragma once
// The pairwise driver: the losses whose value is a function of reductions over a row (a feature
// dimension) of two inputs: cosine_embedding_loss, triplet_margin_loss and
// triplet_margin_with_distance_loss (distance_function None, "pairwise_distance", "cosine").
// It owns the argument checks of these losses, the loops over rows (OpenMP; each row is computed
// by one thread, so results do not depend on the thread count), the row sums (double), the loss
// reduction (a compensated sum in index order) and the sum-back of gradients over broadcast
// dimensions (in index order). The per-row formulas are formulas/<id>.hpp. Every ISA runs the
// same (scalar double) code here.
#include <cstddef>
#include <cstdint>

#include "../formulas/common.hpp"
#include "args.hpp"
#include "elements.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {
struct KernelTable;
}

namespace lossbench::opt::pairwise {

bool handles(const char* loss);

// Offset of the row-major flat index `flat` over `shape` with strides `st` (0 for an empty shape).
inline std::int64_t row_offset(std::int64_t flat, const Shape& shape, const Shape& st) {
  std::int64_t off = 0;
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) return 0;
    off += (flat % shape[d]) * st[d];
    flat /= shape[d];
  }
  return off;
}

// Checked calls (shared with the CUDA backend, optimized/cuda/).
// A pair of tensors (x, y) broadcast to B and reduced over dimension rd: rows over the other
// dimensions, D elements each.
struct Rows {
  const lb_tensor* x = nullptr;
  const lb_tensor* y = nullptr;
  Shape shape;  // of the rows (B without rd)
  std::int64_t D = 1, n = 1;
  Shape xs, ys, xg, yg;                             // data and gradient strides over the row shape
  std::int64_t xsd = 0, ysd = 0, xgd = 0, ygd = 0;  // the same along rd
  std::int64_t xo(std::int64_t r) const { return row_offset(r, shape, xs); }
  std::int64_t yo(std::int64_t r) const { return row_offset(r, shape, ys); }
  std::int64_t xgo(std::int64_t r) const { return row_offset(r, shape, xg); }
  std::int64_t ygo(std::int64_t r) const { return row_offset(r, shape, yg); }
  double xv(std::int64_t o, std::int64_t j) const {
    return conformance::load_float(x->data, x->dtype, o + j * xsd);
  }
  double yv(std::int64_t o, std::int64_t j) const {
    return conformance::load_float(y->data, y->dtype, o + j * ysd);
  }
};

struct Call {
  enum Kind { cosine_embedding, triplet, triplet_cosine } kind = triplet;
  std::int32_t dtype = LB_FLOAT32;
  bool reduce = false, mean = false;
  Shape out_shape;
  // cosine_embedding_loss
  const lb_tensor* target = nullptr;
  Shape target_st;  // over out_shape
  Shape row_st;     // rows over out_shape
  formulas::Params params;
  double eps_ce = 0;
  // triplet
  bool swap = false;
  double margin = 0, eps = 0;
  double p_branch = 2, p_value = 2;
  Rows rows[3];  // (a, pos), (a, neg), (pos, neg)
  Shape dist_st[3];
  int num_rows = 2;
  // The CPU ISA's row kernels for the float32 fast paths (nullptr: none; set by forward/backward).
  const KernelTable* kernels = nullptr;
};

// PyTorch 2.2's checks; throws Failure (args.hpp). The cosine losses read their inputs' values
// (the extreme-magnitude check; host tensors); the other losses only describe them.
void build(const lb_call& call, Call& c);
void check_output(const Call& c, const lb_tensor& out);
// out[j]: the gradient tensor of input j (input1, input2 / anchor, positive, negative) or null.
void match_grads(const lb_call& call, const Call& c, lb_tensor* grads, std::int32_t num_grads,
                 lb_tensor** out);
void check_grad_output(const Call& c, const lb_tensor* grad_output);
// k: the ISA's row kernels for the float32 fast paths (nullptr: none).
std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size, const KernelTable* k = nullptr);
std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size,
                      const KernelTable* k = nullptr);
// forward then backward reading the rows once, for the float32 fast paths (triplet with p = 2,
// cosine_embedding_loss): fused = true when done; otherwise nothing is written (fused = false)
// and the caller makes the two calls.
std::int32_t forward_backward(const lb_call& call, lb_tensor& output, const lb_tensor* grad_output,
                              lb_tensor* grads, std::int32_t num_grads, int threads, char* error,
                              std::size_t error_size, const KernelTable* k, bool& fused);

}  // namespace lossbench::opt::pairwise
