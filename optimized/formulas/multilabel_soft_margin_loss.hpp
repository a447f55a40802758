#pragma once
// multilabel_soft_margin_loss (docs/losses/multilabel_soft_margin_loss.md): per element
//   l = -(y logsigmoid(x) + (1 - y) logsigmoid(-x)),  times w with a weight,
// logsigmoid(z) = min(z, 0) - log1p(exp(-|z|)). The multilabel driver (drivers/multilabel.cpp)
// broadcasts target and weight, sums the elements over the class dimension (input.dim() - 1 of
// the broadcast shape), divides by C and reduces; the gradients below take h = upstream / C.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MultilabelSoftMarginLoss {
  // The unweighted element loss (PyTorch's literal expression: x = +inf with y = 1 gives
  // 0 * (-inf) = NaN, x = +inf with y = 0 gives +inf).
  template <class V>
  LOSSBENCH_HD static V term(V x, V y) {
    const V tail = softplus_tail(x);
    const V lpos = vselect(x < V(0.0), x, V(0.0)) - tail;
    const V lneg = vselect(-x < V(0.0), -x, V(0.0)) - tail;
    return -(y * lpos + (V(1.0) - y) * lneg);
  }
  // d/dx with gl = h w: the two log_sigmoid_backward terms, sigma(-x) (-gl y) - sigma(x)
  // (-gl (1 - y)), with b = exp(-|x|) as PyTorch's CPU kernel (x = inf, y = 1 gives 0, not NaN).
  // For |x| < 1 the same value is taken as -gl ((y - 1/2) - (sigma(x) - 1/2)) with
  // sigma(x) - 1/2 = -+expm1(-|x|) / (2 (1 + e^-|x|)), so that a tiny x is not lost in
  // sigma(x) ~ 1/2 when y ~ 1/2; for larger |x| that form would cancel instead.
  template <class V>
  LOSSBENCH_HD static V grad_input(V x, V y, V gl) {
    const V b = vexp(-vabs(x));
    const V r = vdiv_pos(V(1.0), V(1.0) + b);
    const V br = vdiv_pos(b, V(1.0) + b);
    const auto nonneg = x >= V(0.0);
    const V sig_negx = vselect(nonneg, br, r);
    const V sig_x = vselect(nonneg, r, br);
    const V ga = -gl;
    const V two_terms = sig_negx * (ga * y) - sig_x * (ga * (V(1.0) - y));
    const V em = vexpm1(-vabs(x));
    const V s_half = vdiv_pos(vselect(nonneg, -em, em), V(2.0) * (V(1.0) + b));
    const V centred = ga * ((y - V(0.5)) - s_half);
    return vselect(vabs(x) < V(1.0), centred, two_terms);
  }
  // d/dy = -gl (logsigmoid(x) - logsigmoid(-x)) = -gl x (exactly: the log1p terms cancel).
  template <class V>
  LOSSBENCH_HD static V grad_target(V x, V gl) {
    return -(gl * x);
  }
  // d/dw = h l_unweighted.
  template <class V>
  LOSSBENCH_HD static V grad_weight(V unweighted, V h) {
    return h * unweighted;
  }
};

// The same, as elementwise formulas over one sample's classes (inputs x, y, w; w = 1 when there
// is no weight), for the drivers' dense row kernels: the weighted term (with its low part lo,
// which the row's sum takes; 0 here), and for a row upstream g = grad_output / C the gradients of
// x and y. The AVX-512 float64 table has its own (isa/f64_dd.hpp: the same values in
// double-double, rounded once), found by argument-dependent lookup.
template <class V>
LOSSBENCH_HD inline V mlsm_row_forward_split(V x, V y, V w, V& lo) {
  lo = V(0.0);
  return MultilabelSoftMarginLoss::term(x, y) * w;
}
template <class V>
LOSSBENCH_HD inline void mlsm_row_backward(V x, V y, V w, V g, V* out) {
  const V gl = g * w;
  out[0] = MultilabelSoftMarginLoss::grad_input(x, y, gl);
  out[1] = MultilabelSoftMarginLoss::grad_target(x, gl);
  out[2] = V(0.0);
}

struct MultilabelSoftMarginRow {
  static constexpr int kInputs = 3;
  template <class V>
  LOSSBENCH_HD static V forward_split(const V* in, const Params&, V& lo) {
    return mlsm_row_forward_split(in[0], in[1], in[2], lo);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params&) {
    V lo;
    return mlsm_row_forward_split(in[0], in[1], in[2], lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params&, V* out) {
    mlsm_row_backward(in[0], in[1], in[2], g, out);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
