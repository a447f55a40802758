#pragma once
// binary_cross_entropy_with_logits: the per-element formula
// (docs/losses/binary_cross_entropy_with_logits.md). Inputs: input, target, weight, pos_weight
// (ones when absent); f0 = pos_weight given.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// The loss of one element (with its low part lo, which a reduction sums with it; 0 here) and its
// gradients (input, target), for every lane type; the AVX-512 float64 table has its own
// (isa/f64_dd.hpp: the same values in double-double, rounded once), found by argument-dependent
// lookup.

// Finite inputs: (1 - y) sp(x) + p y sp(-x) (no cancellation); otherwise PyTorch's formula.
template <class V>
LOSSBENCH_HD inline V bcewl_forward_split(V x, V y, V w, V pw, const Params& p, V& lo) {
  lo = V(0.0);
  const V c0 = V(1.0) - y, c1 = pw * y;
  V sp, sp_neg;
  softplus_pair(x, sp, sp_neg);
  V value = vselect(x == V(0.0), (c0 + c1) * V(0.69314718055994530942), c0 * sp + c1 * sp_neg);
  const auto finite = visfinite(x) & visfinite(y) & visfinite(pw);
  if (vany(!finite)) {
    const V m = relu(-x);
    const V lse = vlog(vexp(-m) + vexp(-x - m));
    const V literal = p.f0 ? c0 * x + ((pw - V(1.0)) * y + V(1.0)) * (lse + m) : (c0 * x + m) + lse;
    value = vselect(finite, value, literal);
  }
  return value * w;
}
template <class V>
LOSSBENCH_HD inline void bcewl_backward(V x, V y, V w, V pw, V g, const Params& p, V* out) {
  const V t = pw * y;
  // Finite values: (1 - y) sigmoid(x) - t sigmoid(-x), which keeps the small gradients of
  // saturated logits (sigmoid(x) - y would round them to 0); PyTorch's formula otherwise.
  const auto finite = visfinite(x) & visfinite(y) & visfinite(pw);
  V sx, snx;
  sigmoid_pair(x, sx, snx);
  const V gf = (V(1.0) - y) * sx - t * snx;
  const V gl = p.f0 ? ((t + V(1.0)) - y) * sx - t : sx - y;
  out[0] = vselect(finite, gf, gl) * g * w;
  if (p.f0) {
    // pw sp(-x) - sp(x) = (pw - 1) sp(-x) - x (sp(-x) - sp(x) = -x exactly): no cancellation
    // between two values near log 2 when pw is near 1 (pw - 1 is exact there); infinite x keeps
    // the first form.
    V sp, sp_neg;
    softplus_pair(x, sp, sp_neg);
    const V d = vselect(visfinite(x), (pw - V(1.0)) * sp_neg - x, pw * sp_neg - sp);
    out[1] = d * g * w;
  } else {
    out[1] = -x * g * w;
  }
}

struct BinaryCrossEntropyWithLogits {
  static constexpr int kInputs = 4;

  template <class V>
  LOSSBENCH_HD static V forward_split(const V* in, const Params& p, V& lo) {
    return bcewl_forward_split(in[0], in[1], in[2], in[3], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    V lo;
    return bcewl_forward_split(in[0], in[1], in[2], in[3], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    bcewl_backward(in[0], in[1], in[2], in[3], g, p, out);
    out[2] = V(0.0);
    out[3] = V(0.0);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
