#pragma once
// hinge_embedding_loss: the per-element formula (docs/losses/hinge_embedding_loss.md). Inputs:
// input, target (float or int64); s0 = margin rounded to the loss dtype.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct HingeEmbeddingLoss {
  static constexpr int kInputs = 2;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  // where(y != 1, max(0, margin - x), 0) + where(y != -1, x, 0); NaN targets take both terms.
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V x = in[0], y = in[1];
    const V a = vselect(y == V(1.0), V(0.0), relu(V(p.s0) - x));
    const V s = vselect(y == V(-1.0), V(0.0), x);
    return a + s;
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V x = in[0], y = in[1];
    const V d = V(p.s0) - x;
    const V from_self = vselect(y == V(-1.0), V(0.0), g);
    const V from_margin = vselect((d >= V(0.0)) & !(y == V(1.0)), g, V(0.0));
    out[0] = from_self + -from_margin;
    out[1] = V(0.0);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
