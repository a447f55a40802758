#pragma once
// gaussian_nll_loss: the per-element formula (docs/losses/gaussian_nll_loss.md). Inputs: input,
// target, var; f0 = full, s0 = eps rounded to the loss dtype, s1 = the full constant 0.5 log(2 pi)
// as PyTorch adds it.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct GaussianNllLoss {
  static constexpr int kInputs = 3;

  template <class V>
  LOSSBENCH_HD static V clamped(V var, const Params& p) {
    return vselect(var < V(p.s0), V(p.s0), var);  // clamp_(min=eps): NaN stays NaN
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V d = in[0] - in[1];
    const V v = clamped(in[2], p);
    V l = V(0.5) * (vlog(v) + d * d / v);
    if (p.f0) l = l + V(p.s1);
    return l;
  }
  // Autograd through the composite (the clamp is invisible to it).
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V d = in[0] - in[1];
    const V v = clamped(in[2], p);
    const V h = V(0.5) * g;
    const V gx = (g / v) * d;  // (h / v) (2 d) with h = g / 2, without overflowing 2 d
    out[0] = gx;
    out[1] = -gx;
    const V d2 = d * d;
    const auto regular = visfinite(v) & !(v == V(0.0)) & visfinite(d2) & visfinite(h);
    out[2] = vselect(regular, h * ((v - d2) / v) / v, h / v + -h * ((d2 / v) / v));
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
