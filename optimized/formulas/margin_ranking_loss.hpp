#pragma once
// margin_ranking_loss: the per-element formula (docs/losses/margin_ranking_loss.md). Inputs:
// input1, input2, target (float or int64); s0 = margin rounded to the loss dtype; f0 = the
// hinge's exact sum (float64).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MarginRankingLoss {
  static constexpr int kInputs = 3;
  // A few arithmetic operations per element: the dense kernels may write with non-temporal
  // stores (drivers/block.hpp: streams).
  static constexpr bool kStreamStores = true;

  // y b - y a + margin. With f0 (float64) within about one rounding: the products split exactly
  // (fma), the parts added by TwoSum, so that a hinge that cancels (margin 0.5 against y (a - b)
  // near 0.5) keeps its last bits (it was 32 ULP off at condition number 714 under lossbench
  // fuzz). float32 and 16-bit inputs have exact products in double, and the plain sum is within
  // 2^-52 (|y a| + |y b| + |margin|) of the exact one: relative to a result above 2^-20 of that
  // scale, 2^-32, far below their half ULP (the exact sum made float32 1.3-1.7x slower). A vector
  // with a lane below it takes the exact sum: there the plain one can lose the result whole,
  // sign included (bfloat16 margin 0.5, a = -0.5, b = 2^-133, y = -1: exact -2^-133, plain 0, whose
  // clamp passes the gradient; lossbench fuzz seed 20261201 case 45765). Where the plain value is
  // not finite (a product overflows) it stands; non-finite inputs take PyTorch's expression.
  template <class V>
  LOSSBENCH_HD static V hinge_argument(const V* in, const Params& p) {
    const V a = in[0], b = in[1], y = in[2];
    const auto finite = visfinite(a) & visfinite(b) & visfinite(y);
    const V pb = y * b, pa = y * a;
    const V plain = (pb - pa) + V(p.s0);
    const V literal = -y * (a - b) + V(p.s0);
    const auto close = finite & (vabs(plain) < V(0x1p-20) * (vabs(pa) + vabs(pb) + vabs(V(p.s0))));
    if (!p.f0 && !vany(close)) return vselect(finite, plain, literal);
    V s1, t1, s2, t2;
    two_sum(pb, -pa, s1, t1);
    two_sum(s1, V(p.s0), s2, t2);
    const V exact = s2 + ((t1 + t2) + (vfma(y, b, -pb) - vfma(y, a, -pa)));
    // Lane by lane (not the whole vector), so that a value does not depend on its neighbours.
    const V chosen = p.f0 ? vselect(visfinite(plain), exact, plain) : vselect(close, exact, plain);
    return vselect(finite, chosen, literal);
  }
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    return relu(hinge_argument(in, p));
  }
  // clamp_min backward passes the gradient where u >= 0 (not for NaN).
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V g, const Params& p, V* out) {
    const V u = hinge_argument(in, p);
    const V gu = vselect(u >= V(0.0), g, V(0.0));
    const V gd = gu * -in[2];
    out[0] = gd;
    out[1] = -gd;
    out[2] = -(gu * (in[0] - in[1]));
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
