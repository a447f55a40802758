#pragma once
// smooth_l1_loss: the per-element formula (docs/losses/smooth_l1_loss.md). Inputs: input, target;
// s0 = beta rounded (to float32 for bfloat16), f0 = the beta parameter is exactly 0 (the functional
// calls l1_loss); f1 = beta is a power of two whose reciprocal s1 is exact (division by beta is
// then multiplication by s1, bitwise).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct SmoothL1Loss {
  static constexpr int kInputs = 2;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V z = vabs(in[0] - in[1]);
    if (p.f0) return z;
    const V beta(p.s0);
    const V quad = p.f1 ? z * z * V(0.5) * V(p.s1) : z * z * V(0.5) / beta;
    return vselect(z < beta, quad, z - V(0.5) * beta);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V u = in[0] - in[1];
    V slope;
    if (p.f0) {
      slope = vsign(u);  // L1's: sgn(NaN) = 0
    } else if (p.s0 == 0) {
      slope = vselect(visnan(u), u, vsign(u));  // a beta that rounds to 0
    } else {
      const V beta(p.s0);
      slope = vselect(vabs(u) >= beta, vsign(u), p.f1 ? u * V(p.s1) : u / beta);
    }
    out[0] = slope * g;
    out[1] = -(slope * g);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
