#pragma once
// huber_loss: the per-element formula (docs/losses/huber_loss.md). Inputs: input, target; s0 =
// delta rounded to the loss dtype.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct HuberLoss {
  static constexpr int kInputs = 2;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  // 0.5 z^2 if z < delta, else delta (z - delta/2); NaN takes the linear branch.
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V delta(p.s0);
    const V z = vabs(in[0] - in[1]);
    return vselect(z < delta, V(0.5) * z * z, delta * (z - V(0.5) * delta));
  }
  // clamp(u, -delta, delta); NaN stays NaN.
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V delta(p.s0);
    const V u = in[0] - in[1];
    const V slope = vselect(u <= -delta, -delta, vselect(u >= delta, delta, u));
    out[0] = slope * g;
    out[1] = -(slope * g);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
