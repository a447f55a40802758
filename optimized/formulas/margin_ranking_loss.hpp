#pragma once
// margin_ranking_loss: the per-element formula (docs/losses/margin_ranking_loss.md). Inputs:
// input1, input2, target (float or int64); s0 = margin rounded to the loss dtype.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MarginRankingLoss {
  static constexpr int kInputs = 3;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  template <class V>
  LOSSBENCH_HD static V hinge_argument(const V* in, const Params& p) {
    const V a = in[0], b = in[1], y = in[2];
    const auto finite = visfinite(a) & visfinite(b) & visfinite(y);
    return vselect(finite, (y * b - y * a) + V(p.s0), -y * (a - b) + V(p.s0));
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    return relu(hinge_argument(in, p));
  }
  // clamp_min backward passes the gradient where u >= 0 (not for NaN).
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V u = hinge_argument(in, p);
    const V gu = vselect(u >= V(0.0), g, V(0.0));
    const V gd = gu * -in[2];
    out[0] = gd;
    out[1] = -gd;
    out[2] = -(gu * (in[0] - in[1]));
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
