#pragma once
// binary_cross_entropy: the per-element formula (docs/losses/binary_cross_entropy.md). Inputs:
// input, target, weight (ones when absent); s0 = the backward's EPSILON (float(1e-12), rounded to
// the dtype for 16-bit dtypes).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// log clamped below at -100, as PyTorch clamps both logs.
template <class V>
LOSSBENCH_HD inline V bce_clamp100(V a) {
  return vselect(a < V(-100.0), V(-100.0), a);
}

// logit(x) = log(x / (1 - x)), accurate near x = 1/2: log1p((2x - 1)/(1 - x)) there (2x - 1 is
// exact).
template <class V>
LOSSBENCH_HD inline V bce_logit(V x) {
  const V near = vlog1p(vdiv_pos(V(2.0) * x - V(1.0), V(1.0) - x));
  const V far = vlog(x) - vlog1p(-x);
  return vselect((x >= V(0.25)) & (x <= V(0.75)), near, far);
}

// The loss of one element (with its low part lo, which a reduction sums with it; 0 here) and its
// gradients, for every lane type; the AVX-512 float64 table has its own (isa/f64_dd.hpp: the
// same values in double-double, rounded once), found by argument-dependent lookup.
template <class V>
LOSSBENCH_HD inline V bce_forward_split(V x, V y, V w, V& lo) {
  lo = V(0.0);
  const V lx = bce_clamp100(vlog(x));
  const V l1x = bce_clamp100(vlog1p(-x));
  return ((y - V(1.0)) * l1x - y * lx) * w;
}

template <class V>
LOSSBENCH_HD inline void bce_backward(V x, V y, V w, V g, V eps, V* out) {
  const V den = (V(1.0) - x) * x;
  // eps is 0 for float16 (1e-12 rounds to 0 there), so d can be 0: a plain division for the
  // vectors that hold a d <= 0 or NaN (vdiv_pos needs a positive divisor).
  const V d = vselect(den < eps, eps, den), num = g * (x - y);
  const auto positive = d > V(0.0);
  V q = vdiv_pos(num, vselect(positive, d, V(1.0)));
  if (vany(!positive)) q = vselect(positive, q, num / d);
  out[0] = q * w;
  out[1] = -bce_logit(x) * g * w;
}

struct BinaryCrossEntropy {
  static constexpr int kInputs = 3;

  // The lanes whose input or target PyTorch rejects (outside [0, 1], NaN included): the dense
  // kernels check the values as they read them (DenseIO::invalid), instead of a pass of their own.
  template <class V>
  LOSSBENCH_HD static auto invalid(const V* in) {
    return !((in[0] >= V(0.0)) & (in[0] <= V(1.0)) & (in[1] >= V(0.0)) & (in[1] <= V(1.0)));
  }

  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params&) {
    V lo;
    return bce_forward_split(in[0], in[1], in[2], lo);
  }
  template <class V>
  LOSSBENCH_HD static V forward_split(const V* in, const Params&, V& lo) {
    return bce_forward_split(in[0], in[1], in[2], lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    bce_backward(in[0], in[1], in[2], g, V(p.s0), out);
    out[2] = V(0.0);  // weight is not differentiable
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
