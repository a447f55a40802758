#pragma once
// binary_cross_entropy: the per-element formula (docs/losses/binary_cross_entropy.md). Inputs:
// input, target, weight (ones when absent); s0 = the backward's EPSILON (float(1e-12), rounded to
// the dtype for 16-bit dtypes).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct BinaryCrossEntropy {
  static constexpr int kInputs = 3;

  template <class V>
  LOSSBENCH_HD static V clamp100(V a) {
    return vselect(a < V(-100.0), V(-100.0), a);
  }
  // -logit(x), accurate near x = 1/2: log1p((2x - 1)/(1 - x)) there (2x - 1 is exact).
  template <class V>
  LOSSBENCH_HD static V logit(V x) {
    const V near = vlog1p(vdiv_pos(V(2.0) * x - V(1.0), V(1.0) - x));
    const V far = vlog(x) - vlog1p(-x);
    return vselect((x >= V(0.25)) & (x <= V(0.75)), near, far);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params&) {
    const V x = in[0], y = in[1];
    const V lx = clamp100(vlog(x));
    const V l1x = clamp100(vlog1p(-x));
    return ((y - V(1.0)) * l1x - y * lx) * in[2];
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V x = in[0], y = in[1], w = in[2];
    const V eps(p.s0);
    const V den = (V(1.0) - x) * x;
    // eps is 0 for float16 (1e-12 rounds to 0 there), so d can be 0: a plain division for the
    // vectors that hold a d <= 0 or NaN (vdiv_pos needs a positive divisor).
    const V d = vselect(den < eps, eps, den), num = g * (x - y);
    const auto positive = d > V(0.0);
    V q = vdiv_pos(num, vselect(positive, d, V(1.0)));
    if (vany(!positive)) q = vselect(positive, q, num / d);
    out[0] = q * w;
    out[1] = -logit(x) * g * w;
    out[2] = V(0.0);  // weight is not differentiable
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
