#pragma once
// soft_margin_loss: the per-element formula (docs/losses/soft_margin_loss.md). Inputs: input,
// target.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct SoftMarginLoss {
  static constexpr int kInputs = 2;

  // log1p(exp(t)), t = -x y, as the stable softplus (which also gives PyTorch's values at
  // t = +inf (inf), -inf (0) and NaN).
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params&) {
    return softplus(-(in[0] * in[1]));
  }
  // -y sigmoid(t) g; for infinite t PyTorch's literal -(y z)/(1 + z) g with z = exp(t).
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params&, V* out) {
    const V y = in[1];
    const V t = -(in[0] * y);
    out[0] = -y * sigmoid(t) * g;
    const auto finite = visfinite(t);
    if (vany(!finite)) {
      const V z = vexp(t);
      out[0] = vselect(finite, out[0], -(y * z) / (V(1.0) + z) * g);
    }
    out[1] = V(0.0);  // target is not differentiable
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
