#pragma once
// multi_margin_loss: the per-class hinge (docs/losses/multi_margin_loss.md). The classification
// driver (drivers/classification.cpp) computes z_i = margin - x_y + x_i (compensated, so the
// sign of the hinge test is that of the exact sum) and applies these over the row.
// f0 = (p == 2).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MultiMarginLoss {
  // z_i = margin - x_y + x_i: TwoSum twice, so that its sign is that of the exact sum (but in
  // pathological cases); IEEE's value where an intermediate is infinite or NaN.
  LOSSBENCH_HD static double z(double margin, double xy, double xi) {
    const double s = margin + -xy;
    const double sb = s - margin;
    const double e = (margin - (s - sb)) + (-xy - sb);
    const double t = s + xi;
    const double tb = t - s;
    const double f = (s - (t - tb)) + (xi - tb);
    if (!(std::fabs(t) < kInf) || !(std::fabs(s) < kInf)) return (margin - xy) + xi;
    return t + (e + f);
  }
  // The term of class i: w_y h(z) where z > 0 (a NaN z gives nothing), else 0.
  template <class V>
  LOSSBENCH_HD static V term(V z, V w, const Params& p) {
    const V h = p.f0 ? z * z : z;
    return vselect(z > V(0.0), h * w, V(0.0));
  }
  // Its derivative with respect to x_i (the negative of that with respect to x_y).
  template <class V>
  LOSSBENCH_HD static V grad(V z, V w, const Params& p) {
    const V d = p.f0 ? (V(2.0) * z) * w : w;
    return vselect(z > V(0.0), d, V(0.0));
  }
};

// z_i over one row with SIMD lanes, for the row kernel (drivers/block.hpp: mm_row_impl):
// s0 + s1 = margin - x_y as a double-double (s0 rounded, s1 its error); f1: compensate (the
// driver sets it where s1 != 0 and s0 is finite; otherwise s0 + x_i is the exact z rounded
// once, whose sign is the exact sign).
struct MultiMarginRow {
  template <class V>
  LOSSBENCH_HD static V z(V xi, const Params& p) {
    const V s(p.s0);
    const V t = s + xi;
    V r = t;
    if (p.f1) {
      const V tb = t - s;
      const V f = (s - (t - tb)) + (xi - tb);
      r = vselect(visfinite(t), t + (V(p.s1) + f), t);
    }
    return r;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
