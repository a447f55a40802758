#pragma once
// kl_div: the per-element formula (docs/losses/kl_div.md). Inputs: input, target; f0 = log_target.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// The loss of one element and its gradients, for every lane type, each with a low part (lo: a
// reduction sums it with the loss, a broadcast input's gradient sum with the gradient), 0 here;
// the AVX-512 float64 table has its own (isa/f64_dd.hpp: the same values in double-double,
// rounded once, with their low parts), found by argument-dependent lookup.
template <class V>
LOSSBENCH_HD inline V kl_div_forward_split(V x, V y, const Params& p, V& lo) {
  lo = V(0.0);
  if (p.f0) return vexp(y) * (y - x);
  const V regular = y * (vlog(y) - x);
  const V literal = y * vlog(y) - y * x;
  const V at_zero = V(0.0) - y * x;  // xlogy(0, 0) = 0; NaN when x is inf or NaN
  const auto is_regular = (y > V(0.0)) & visfinite(y) & visfinite(x);
  return vselect(visnan(y), y,
                 vselect(y == V(0.0), at_zero, vselect(is_regular, regular, literal)));
}
template <class V>
LOSSBENCH_HD inline void kl_div_backward_split(V x, V y, V g, const Params& p, V* out, V* lo) {
  lo[0] = lo[1] = V(0.0);
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

struct KlDiv {
  static constexpr int kInputs = 2;

  template <class V>
  LOSSBENCH_HD static V forward_split(const V* in, const Params& p, V& lo) {
    return kl_div_forward_split(in[0], in[1], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    V lo;
    return kl_div_forward_split(in[0], in[1], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward_split(const V* in, V g, const Params& p, V* out, V* lo) {
    kl_div_backward_split(in[0], in[1], g, p, out, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    V lo[kInputs];
    kl_div_backward_split(in[0], in[1], g, p, out, lo);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
