#pragma once
// cross_entropy: the per-class formulas (docs/losses/cross_entropy.md). The classification driver
// (drivers/classification.cpp) owns the rows: one pass gathers a row of logits (online max),
// then exp(x - m) over the row (CrossEntropyExp, vectorised per ISA), the compensated sum S of
// the exps other than the argmax's (z = 1 + S, lse = log1p(S)), and the gradient pass.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// exp(x - m) over a row: in[0] = x, s0 = the row max m.
struct CrossEntropyExp {
  static constexpr int kInputs = 1;
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    return vexp(in[0] - V(p.s0));
  }
};

struct CrossEntropy {
  // x - m = d_hi + d_lo exactly (TwoSum; d_lo = 0 when d_hi is not finite).
  LOSSBENCH_HD static void diff(double x, double m, double& d_hi, double& d_lo) {
    d_hi = x - m;
    if (!(std::fabs(d_hi) < kInf)) {
      d_lo = 0.0;
      return;
    }
    const double bb = d_hi - x;
    d_lo = (x - (d_hi - bb)) + (-m - bb);
  }
  // exp(d_hi + d_lo) from e = exp(d_hi): e (1 + d_lo), with one rounding.
  LOSSBENCH_HD static double refine_exp(double e, double d_lo) { return std::fma(e, d_lo, e); }
  // log p_c = (x_c - m) - log1p(S), with x_c - m = d_hi + d_lo exactly (no cancellation: both
  // terms are <= 0 and >= 0).
  template <class V>
  LOSSBENCH_HD static V log_prob(V d_hi, V d_lo, V lse) {
    return (d_hi - lse) + d_lo;
  }
  // Smoothed / probability target: t' = keep t + spread (e > 0), else t.
  template <class V>
  LOSSBENCH_HD static V smoothed_target(V t, const Params& p) {
    return p.f0 ? t * V(p.s0) + V(p.s1) : t;
  }
  // The log_softmax backward dx_c = dl_c - p_c sum_k dl_k, written
  // (dl_c (z - e_c) - e_c sum_{k != c} dl_k) / z so that neither 1 - p_c nor the sum cancels:
  // zmc = z - e_c and rest = sum_{k != c} dl_k come from the driver's compensated sums.
  template <class V>
  LOSSBENCH_HD static V grad(V dl, V e, V zmc, V rest, V z) {
    return (dl * zmc - e * rest) / z;
  }
  // The same in double with both products exact (fma): the numerator cancels when p_c is near
  // its target share, so its rounding errors must not be amplified.
  LOSSBENCH_HD static double grad(double dl, double e, double zmc, double rest, double z) {
    const double p1 = dl * zmc, p2 = e * rest;
    if (!(std::fabs(p1) < kInf) || !(std::fabs(p2) < kInf)) return (p1 - p2) / z;
    const double err1 = std::fma(dl, zmc, -p1), err2 = std::fma(e, rest, -p2);
    return ((p1 - p2) + (err1 - err2)) / z;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
