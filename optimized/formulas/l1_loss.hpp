#pragma once
// l1_loss: the per-element formula (docs/losses/l1_loss.md). Inputs: input, target.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct L1Loss {
  static constexpr int kInputs = 2;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params&) {
    return vabs(in[0] - in[1]);
  }
  // sgn(0) = 0 and torch's sgn(NaN) = 0 on the CPU: gradients 0 and -0 for a NaN difference.
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params&, V* out) {
    const V s = vsign(in[0] - in[1]) * g;
    out[0] = s;
    out[1] = -s;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
