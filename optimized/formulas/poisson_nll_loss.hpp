#pragma once
// poisson_nll_loss: the per-element formula (docs/losses/poisson_nll_loss.md). Inputs: input,
// target; f0 = log_input, f1 = full, s0 = eps rounded to the loss dtype, s1 = 2 pi rounded as the
// mul kernel uses it.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// Stirling's term where y > 1 (NaN y is not masked).
template <class V>
LOSSBENCH_HD inline V poisson_nll_stirling(V y, const Params& p) {
  const V s = y * vlog(y) - y + V(0.5) * vlog(V(p.s1) * y);
  return vselect(y <= V(1.0), V(0.0), s);
}

// The loss of one element and its gradients, for every lane type, each with a low part (lo: a
// reduction sums it with the loss, a broadcast input's gradient sum with the gradient), 0 here;
// the AVX-512 float64 table has its own (isa/f64_dd.hpp: the same values in double-double,
// rounded once, with their low parts), found by argument-dependent lookup.
template <class V>
LOSSBENCH_HD inline V poisson_nll_forward_split(V x, V y, const Params& p, V& lo) {
  lo = V(0.0);
  V l;
  if (p.f0) {
    // Where a finite x >= 718 makes both exp(x) and y x overflow, inf - inf would be NaN;
    // exp(x) > DBL_MAX x >= |y x| there (log(DBL_MAX x) < 717.1), so the value is +inf.
    // (Only vectors with a NaN take the select; it is rarely needed.)
    l = vexp(x) - y * x;
    if (vany(visnan(l))) l = vselect((x >= V(718.0)) & visfinite(x) & visfinite(y), V(kInf), l);
  } else {
    l = x - y * vlog(x + V(p.s0));
  }
  if (p.f1) l = l + poisson_nll_stirling(y, p);
  return l;
}
template <class V>
LOSSBENCH_HD inline void poisson_nll_backward_split(V x, V y, V g, const Params& p, V* out, V* lo) {
  lo[0] = lo[1] = V(0.0);
  if (p.f0) {
    // exp(x) - y without the rounding of exp(x) where the two cancel (common.hpp).
    out[0] = vexp_minus(x, y) * g;
    out[1] = -x * g;
  } else {
    // 1 - y / (x + eps) as (x - y + eps) / (x + eps), the numerator from x - y in TwoSum form
    // (s + e exactly) plus eps: where it cancels, s + eps is exact (Sterbenz), so only the last
    // roundings are left. Where x or y is not finite, the quotient form gives IEEE's value.
    const V xe = x + V(p.s0);
    const V s = x - y;
    const V sx = s - x;
    const V e = (x - (s - sx)) + (-y - sx);
    const V q = ((s + V(p.s0)) + e) / xe;
    out[0] = vselect(visfinite(x) & visfinite(y), q, V(1.0) - y / xe) * g;
    out[1] = -vlog(xe) * g;
  }
  if (p.f1) {
    const V small = vselect(y > V(0.0), V(0.0), V(kNaN));
    const V big = vselect(visfinite(y), g * (vlog(y) + V(0.5) / y), V(kNaN));
    out[1] = out[1] + vselect(y <= V(1.0), small, big);
  }
}

struct PoissonNllLoss {
  static constexpr int kInputs = 2;

  template <class V>
  LOSSBENCH_HD static V forward_split(const V* in, const Params& p, V& lo) {
    return poisson_nll_forward_split(in[0], in[1], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    V lo;
    return poisson_nll_forward_split(in[0], in[1], p, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward_split(const V* in, V g, const Params& p, V* out, V* lo) {
    poisson_nll_backward_split(in[0], in[1], g, p, out, lo);
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    V lo[kInputs];
    poisson_nll_backward_split(in[0], in[1], g, p, out, lo);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
