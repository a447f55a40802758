#pragma once
// gaussian_nll_loss: the per-element formula (docs/losses/gaussian_nll_loss.md). Inputs: input,
// target, var; f0 = full, s0 = eps rounded to the loss dtype, s1 = the full constant 0.5 log(2 pi)
// as PyTorch adds it.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// var clamped below at eps (clamp_(min=eps): NaN stays NaN).
template <class V>
LOSSBENCH_HD inline V gaussian_nll_clamped(V var, const Params& p) {
  return vselect(var < V(p.s0), V(p.s0), var);
}

// The loss of one element and its gradients, for every lane type, each with a low part (lo: a
// reduction sums it with the loss, a broadcast input's gradient sum with the gradient), 0 here;
// the AVX-512 float64 table has its own (isa/f64_dd.hpp: the same values in double-double,
// rounded once, with their low parts), found by argument-dependent lookup.
template <class V>
LOSSBENCH_HD inline V gaussian_nll_forward_split(V x, V y, V var, const Params& p, V& lo) {
  lo = V(0.0);
  const V d = x - y;
  const V v = gaussian_nll_clamped(var, p);
  V l = V(0.5) * (vlog(v) + d * d / v);
  if (p.f0) l = l + V(p.s1);
  return l;
}
// Autograd through the composite (the clamp is invisible to it).
template <class V>
LOSSBENCH_HD inline void gaussian_nll_backward_split(V x, V y, V var, V g, const Params& p, V* out,
                                                     V* lo) {
  lo[0] = lo[1] = lo[2] = V(0.0);
  const V d = x - y;
  const V v = gaussian_nll_clamped(var, p);
  const V h = V(0.5) * g;
  const V gx = (g / v) * d;  // (h / v) (2 d) with h = g / 2, without overflowing 2 d
  out[0] = gx;
  out[1] = -gx;
  const V d2 = d * d;
  const auto regular = visfinite(v) & !(v == V(0.0)) & visfinite(d2) & visfinite(h);
  out[2] = vselect(regular, h * ((v - d2) / v) / v, h / v + -h * ((d2 / v) / v));
}

struct GaussianNllLoss {
  static constexpr int kInputs = 3;

  // The lanes whose var PyTorch rejects (negative; NaN propagates), as binary_cross_entropy's.
  template <class V>
  LOSSBENCH_HD static auto invalid(const V* in) {
    return in[2] < V(0.0);
  }

  template <class V>
  LOSSBENCH_HD static V forward_split(const V* in, const Params& p, V& lo) {
    return gaussian_nll_forward_split(in[0], in[1], in[2], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    V lo;
    return gaussian_nll_forward_split(in[0], in[1], in[2], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward_split(const V* in, V g, const Params& p, V* out, V* lo) {
    gaussian_nll_backward_split(in[0], in[1], in[2], g, p, out, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    V lo[kInputs];
    gaussian_nll_backward_split(in[0], in[1], in[2], g, p, out, lo);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
