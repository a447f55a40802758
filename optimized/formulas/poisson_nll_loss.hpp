#pragma once
// poisson_nll_loss: the per-element formula (docs/losses/poisson_nll_loss.md). Inputs: input,
// target; f0 = log_input, f1 = full, s0 = eps rounded to the loss dtype, s1 = 2 pi rounded as the
// mul kernel uses it.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct PoissonNllLoss {
  static constexpr int kInputs = 2;

  // Stirling's term where y > 1 (NaN y is not masked).
  template <class V>
  LOSSBENCH_HD static V stirling(V y, const Params& p) {
    const V s = y * vlog(y) - y + V(0.5) * vlog(V(p.s1) * y);
    return vselect(y <= V(1.0), V(0.0), s);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V x = in[0], y = in[1];
    V l = p.f0 ? vexp(x) - y * x : x - y * vlog(x + V(p.s0));
    if (p.f1) l = l + stirling(y, p);
    return l;
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V x = in[0], y = in[1];
    if (p.f0) {
      // exp(x) - y as expm1(x) - (y - 1): no cancellation at y = 1 (y - 1 is exact for
      // 16/32-bit targets).
      out[0] = (vexpm1(x) - (y - V(1.0))) * g;
      out[1] = -x * g;
    } else {
      const V xe = x + V(p.s0);
      out[0] = g - g * y / xe;
      out[1] = -vlog(xe) * g;
    }
    if (p.f1) {
      const V small = vselect(y > V(0.0), V(0.0), V(kNaN));
      const V big = vselect(visfinite(y), g * (vlog(y) + V(0.5) / y), V(kNaN));
      out[1] = out[1] + vselect(y <= V(1.0), small, big);
    }
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
