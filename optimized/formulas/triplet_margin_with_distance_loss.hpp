#pragma once
// triplet_margin_with_distance_loss (docs/losses/triplet_margin_with_distance_loss.md): the
// pairwise distance is triplet_margin_loss's with p = 2; the "cosine" distance
// 1 - x.y / (max(|x|, eps) max(|y|, eps)) over dim 1 and PyTorch 2.2's autograd gradient of it are
// here. The hinge and swap are TripletMarginLoss's.
#include "cosine_embedding_loss.hpp"
#include "triplet_margin_loss.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct CosineDistance {
  // p = x.y, a1 = |x|^2, a2 = |y|^2 (double sums of the row); eps2 = eps^2 (eps at the dtype).
  template <class V>
  LOSSBENCH_HD static V forward(V p, V a1, V a2, V eps2, bool finite) {
    if (!finite) return V(kNaN);
    const V c1 = vselect(a1 >= eps2, a1, eps2), c2 = vselect(a2 >= eps2, a2, eps2);
    return one_minus_cosine(p, c1, c2);
  }
  // d distance / d x_j times g (symmetric for y): with gs = -g, s = p / (N1 N2), N = max(n, eps),
  // dx_j = gs y_j / (N1 N2) - gs s / N1 * x_j / n1 (second term 0 where n1 = 0), computed as
  // gs (y_j K1 - p x_j) / (N1 K1 N2), K1 = N1 n1, for a finite row with n1 > 0.
  // lagrange: y a1 - p x from lagrange_numerator (exact zeros for parallel rows), or NaN when
  // the driver did not compute it.
  template <class V>
  LOSSBENCH_HD static V dx(V x, V y, V p, V a1, V a2, V eps, V g, bool finite, V lagrange) {
    const V gs = -g;
    const V n1 = std::sqrt(a1), n2 = std::sqrt(a2);
    const V N1 = vselect(n1 >= eps, n1, eps), N2 = vselect(n2 >= eps, n2, eps);
    if (finite && n1 != V(0.0)) {
      const bool unclamped = a1 >= eps * eps;
      const V k1 = vselect(unclamped, a1, eps * n1);
      if (!unclamped && !visnan(lagrange)) {
        // |x| < eps: y k1 - p x = y n1 (eps - n1) + lagrange (with n1^2 = a1), scaled by 1 / N2
        // first: in a one-element row (lagrange = 0) the value is then sgn(y) n1 (eps - n1) /
        // (N1 k1) times gs wherever |y| >= eps, bitwise the same for every y of that sign, so
        // the anchor's two terms of a triplet cancel exactly where the exact gradient is 0 (a
        // fuzz case: -1.5 2^-26 for 0).
        return gs * ((y / N2) * n1 * (eps - n1) + lagrange / N2) / (N1 * k1);
      }
      const V num = unclamped && !visnan(lagrange) ? lagrange : std::fma(y, k1, -p * x);
      return gs * num / (N1 * k1 * N2);
    }
    const V s = p / (N1 * N2);
    const V dn1 = vselect(n1 == V(0.0), V(0.0), x / n1);
    return gs * (y / N2) / N1 + (-gs * s / N1) * dn1;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
