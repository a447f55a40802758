#pragma once
// kl_div: the per-element formula (docs/losses/kl_div.md). Inputs: input, target; f0 = log_target.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct KlDiv {
  static constexpr int kInputs = 2;

  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V x = in[0], y = in[1];
    if (p.f0) return vexp(y) * (y - x);
    const V regular = y * (vlog(y) - x);
    const V literal = y * vlog(y) - y * x;
    const V at_zero = V(0.0) - y * x;  // xlogy(0, 0) = 0; NaN when x is inf or NaN
    const auto is_regular = (y > V(0.0)) & visfinite(y) & visfinite(x);
    return vselect(visnan(y), y,
                   vselect(y == V(0.0), at_zero, vselect(is_regular, regular, literal)));
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V x = in[0], y = in[1];
    const auto finite = visfinite(x) & visfinite(y) & visfinite(g);
    if (p.f0) {
      const V eb = vexp(y);
      out[0] = -(g * eb);
      out[1] = vselect(finite, g * eb * ((y - x) + V(1.0)), (g * (y - x)) * eb + g * eb);
    } else {
      out[0] = -g * y;
      const V regular = g * ((vlog(y) + V(1.0)) - x);
      const V t1 = vselect(y == V(0.0), V(0.0), g * vlog(y));
      const V literal = t1 + (g * y) / y + -g * x;
      out[1] = vselect((y > V(0.0)) & finite, regular, literal);
    }
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
