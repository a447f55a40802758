#pragma once
// triplet_margin_loss (docs/losses/triplet_margin_loss.md): the p-norm distance
// || x - y + eps ||_p of one row, its backward (PyTorch 2.2's norm_backward, branch by branch),
// and the hinge with the optional swap. The pairwise driver (drivers/pairwise.cpp) owns the rows.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct PNorm {
  double p = 2.0;
  enum Kind { zero, one, two, inf, minf, general } kind = two;
  LOSSBENCH_HD explicit PNorm(double p_) : p(p_) {
    kind = p_ == 0.0         ? zero
           : p_ == 1.0       ? one
           : p_ == 2.0       ? two
           : p_ == HUGE_VAL  ? inf
           : p_ == -HUGE_VAL ? minf
                             : general;
  }
  // The accumulator's start value and one step (sum, max, min or count).
  LOSSBENCH_HD double start() const { return kind == inf ? 0.0 : (kind == minf ? HUGE_VAL : 0.0); }
  template <class V>
  LOSSBENCH_HD V term(V r) const {
    switch (kind) {
      case zero: return vselect(r != V(0.0), V(1.0), V(0.0));
      case one: return vabs(r);
      case two: return r * r;
      case general: return std::pow(vabs(r), V(p));
      default: return vabs(r);
    }
  }
  LOSSBENCH_HD bool summed() const { return kind != inf && kind != minf; }
  template <class V>
  LOSSBENCH_HD V combine(V acc, V t) const {  // max / min keeping NaN
    if (kind == inf) return vselect(visnan(t) || t > acc, t, acc);
    return vselect(visnan(t) || t < acc, t, acc);
  }
  template <class V>
  LOSSBENCH_HD V finish(V acc) const {
    switch (kind) {
      case two: return std::sqrt(acc);
      case general: return p == 3.0 ? std::cbrt(acc) : std::pow(acc, V(1.0 / p));
      default: return acc;
    }
  }
  // d norm / d r_j times g; n the norm, ties the count of |r| == n or NaN (p = +-inf only).
  template <class V>
  LOSSBENCH_HD V backward(V r, V n, V g, double ties) const {
    switch (kind) {
      case zero: return V(0.0);
      case one: return vsign(r) * g;
      // The only non-zero element of the row (|r| == n, finite): sgn(r) g exactly, as for the
      // general p below (g r / n need not be: a one-feature row's two pairs would not cancel).
      case two:
        return vselect(n == V(0.0), V(0.0),
                       vselect((vabs(r) == n) & visfinite(n), vsign(r) * g, g * r / n));
      case inf:
      case minf: return vselect(vabs(r) == n || visnan(r), vsign(r) * g / V(ties), V(0.0));
      default: break;
    }
    const V a = vabs(r);
    // The only non-zero element of the row (|r| == n): sgn(r) g exactly, whatever p.
    if (a == n && n != V(0.0) && visfinite(n)) return vsign(r) * g;
    if (p < 1.0)
      return vselect(r == V(0.0), V(0.0),
                     vsign(r) * std::pow(a, V(p - 1.0)) * g * std::pow(n, V(1.0 - p)));
    V d = p < 2.0 ? vsign(r) * std::pow(a, V(p - 1.0)) * g / std::pow(n, V(p - 1.0))
                  : r * std::pow(a, V(p - 2.0)) * g / std::pow(n, V(p - 1.0));
    // |r|^(p-1) or n^(p-1) overflowed (r near the top of the range, or n infinite through
    // another element): the same value as sgn(r) (|r| / n)^(p-1) g, where nothing overflows.
    if (visnan(d) && !visnan(r) && !visnan(n) && !visnan(g) && visfinite(a))
      d = vsign(r) * std::pow(a / n, V(p - 1.0)) * g;
    return vselect(n == V(0.0), V(0.0), d);
  }
};

struct TripletMarginLoss {
  // dn after the optional swap: torch.minimum (NaN wins).
  template <class V>
  LOSSBENCH_HD static V negative(V dn, V ds, bool swap) {
    if (!swap) return dn;
    return vselect(visnan(dn) || visnan(ds), dn + ds, vselect(ds < dn, ds, dn));
  }
  template <class V>
  LOSSBENCH_HD static V forward(V dp, V dn, V ds, bool swap, V margin) {
    return relu(margin + dp - negative(dn, ds, swap));
  }
  // The gradients of the loss with respect to dp, dn and ds (times g).
  template <class V>
  LOSSBENCH_HD static void backward(V dp, V dn, V ds, bool swap, V margin, V g, V& gp, V& gn,
                                    V& gs) {
    const V m = negative(dn, ds, swap);
    const V pass = vselect(margin + dp - m >= V(0.0), g, V(0.0));
    gp = pass;
    gn = -pass;
    gs = V(0.0);
    if (swap) {
      const bool nan = visnan(dn) || visnan(ds);
      const V half = V(0.5) * pass;
      gn = vselect(nan, -pass, vselect(dn < ds, -pass, vselect(dn == ds, -half, V(0.0))));
      gs = vselect(nan, -pass, vselect(ds < dn, -pass, vselect(dn == ds, -half, V(0.0))));
    }
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
