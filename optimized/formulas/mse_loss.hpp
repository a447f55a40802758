#pragma once
// mse_loss: the per-element formula (docs/losses/mse_loss.md). Inputs: input, target.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MseLoss {
  static constexpr int kInputs = 2;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params&) {
    const V d = in[0] - in[1];
    return d * d;
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params&, V* out) {
    const V r = V(2.0) * (in[0] - in[1]) * g;
    out[0] = r;
    out[1] = -r;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
