#pragma once
// cosine_embedding_loss (docs/losses/cosine_embedding_loss.md), one row at a time: the pairwise
// driver (drivers/pairwise.cpp) sums P = x1 . x2, M1 = |x1|^2 + EPS, M2 = |x2|^2 + EPS (each over
// its own input) in double; these turn them into the loss and d loss / d cos.
// Parameters: s0 = margin (rounded to the dtype).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

// sqrt(m1 m2), exactly m1 when m1 == m2.
template <class V>
LOSSBENCH_HD inline V cosine_denominator(V m1, V m2) {
  return vselect(m1 == m2, m1, std::sqrt(m1 * m2));
}

// 1 - p / sqrt(q), written (q - p^2) / (sqrt(q) (sqrt(q) + p)) for p > 0 (no cancellation; exact 0
// for parallel vectors); q = m1 m2 is formed with an fma so that q - p^2 keeps its low bits.
template <class V>
LOSSBENCH_HD inline V one_minus_cosine(V p, V m1, V m2) {
  const V den = cosine_denominator(m1, m2);
  const V pp = p * p;
  const V diff = std::fma(m1, m2, -pp) - std::fma(p, p, -pp);
  const V stable = diff / (den * (den + p));
  return vselect(p > V(0.0) && visfinite(den) && visfinite(pp), stable, V(1.0) - p / den);
}

// a b - c d with one rounding's worth of error (Kahan's 2x2 determinant).
template <class V>
LOSSBENCH_HD inline V det2(V a, V b, V c, V d) {
  const V w = c * d;
  return std::fma(a, b, -w) + std::fma(-c, d, w);
}

// y_j sum_k x_k^2 - x_j sum_k x_k y_k over a row of n elements, by Lagrange's identity
// sum_k x_k (y_j x_k - x_j y_k): no cancellation between the two large products (parallel
// vectors give exactly 0). O(n) per element: the driver uses it for short rows.
template <class V>
LOSSBENCH_HD inline V lagrange_numerator(const V* x, const V* y, long n, long j) {
  V s = V(0.0), c = V(0.0);  // compensated: TwoProduct and TwoSum per term
  for (long k = 0; k < n; ++k) {
    if (k == j) continue;
    const V d = det2(y[j], x[k], x[j], y[k]);
    const V t = x[k] * d;
    const V te = std::fma(x[k], d, -t);
    const V u = s + t;
    const V b = u - s;
    c = c + ((s - (u - b)) + (t - b)) + te;
    s = u;
  }
  return s + c;
}

// float64 gradients in double-double (the pairwise driver's float64 rows): other M - P self for
// a double-double row sum M = mh + ml and dot product P = ph + pl, both products split exactly
// (fma) and added with one TwoSum, as (nh, nl): it keeps about 2^-104 of the products where they
// cancel, which they do by chance in any row (double's fma form lost up to 2130 ULP under fuzz).
template <class V>
LOSSBENCH_HD inline void dd_cos_numerator(V self, V other, V mh, V ml, V ph, V pl, V& nh, V& nl) {
  const V a = other * mh;
  const V ae = vfma(other, ml, vfma(other, mh, -a));
  const V b = ph * self;
  const V be = vfma(pl, self, vfma(ph, self, -b));
  V t, te;
  two_sum(a, -b, t, te);
  two_sum(t, (te + ae) - be, nh, nl);
}
// (nh + nl)(th + tl), rounded once (the low products in one fma chain).
template <class V>
LOSSBENCH_HD inline V dd_scaled(V nh, V nl, V th, V tl) {
  const V h = nh * th;
  return h + vfma(nl, th, vfma(nh, tl, vfma(nh, th, -h)));
}

struct CosineEmbeddingLoss {
  // The loss of one (row, target) pair; cos = p / sqrt(m1 m2).
  template <class V>
  LOSSBENCH_HD static V forward(V p, V m1, V m2, V y, const Params& q) {
    const V cos = p / cosine_denominator(m1, m2);
    const V pos = one_minus_cosine(p, m1, m2);
    const V neg = relu(cos - V(q.s0));
    return vselect(y == V(1.0), pos, vselect(y == V(-1.0), neg, V(0.0)));
  }
  // d loss / d cos (times g); clamp_min passes at cos == margin.
  template <class V>
  LOSSBENCH_HD static V dcos(V p, V m1, V m2, V y, V g, const Params& q) {
    const V cos = p / cosine_denominator(m1, m2);
    return vselect(y == V(1.0), -g, vselect(y == V(-1.0) && cos >= V(q.s0), g, V(0.0)));
  }
  // d cos / d x1 for one element x1 of the row, s2 the sum of x2 over the positions it is used
  // at: (s2 m1 - p x1) / (sqrt(m1 m2) m1). Symmetric for x2.
  template <class V>
  LOSSBENCH_HD static V dx(V p, V m1, V m2, V x1, V s2) {
    return std::fma(s2, m1, -p * x1) / (cosine_denominator(m1, m2) * m1);
  }
  // The same from the numerator s2 m1 - p x1 computed by the driver (lagrange_numerator plus
  // s2 EPS, or s2 EPS alone for an x1 of one feature broadcast over the row).
  template <class V>
  LOSSBENCH_HD static V dx_from(V numerator, V m1, V m2) {
    return numerator / (cosine_denominator(m1, m2) * m1);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
