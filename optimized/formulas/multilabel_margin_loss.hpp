#pragma once
// multilabel_margin_loss: the hinge between each listed class j and each non-listed class d
// (docs/losses/multilabel_margin_loss.md). The multilabel driver (drivers/multilabel.cpp) walks
// the target list (up to the first -1), sums term(z(x_j, x_d)) over the pairs, divides by C, and
// counts the active pairs per element for the gradient (+1 for d, -1 for j; times upstream / C).
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MultilabelMarginLoss {
  // z = (1 - x_j) + x_d with the sign of the exact sum: two TwoSums, their errors added back
  // (IEEE's value where an intermediate is infinite or NaN: 1 - inf + inf is NaN, 1 + inf inf).
  template <class V>
  LOSSBENCH_HD static V z(V xj, V xd) {
    const V one(1.0);
    const V s = one - xj;
    const V sb = s - one;
    const V e = (one - (s - sb)) + (-xj - sb);
    const V t = s + xd;
    const V tb = t - s;
    const V f = (s - (t - tb)) + (xd - tb);
    return vselect(visfinite(s) & visfinite(t), t + (e + f), t);
  }
  // The hinge, strict: z where z > 0 (a NaN z contributes nothing), else 0.
  template <class V>
  LOSSBENCH_HD static V term(V z) {
    return vselect(z > V(0.0), z, V(0.0));
  }
  // Whether the pair contributes to the gradient (strict: no contribution at z == 0).
  template <class V>
  LOSSBENCH_HD static auto active(V z) {
    return z > V(0.0);
  }
  // The gradient of an element that is in `count` active pairs (signed), upstream g per sample:
  // count * g / C (an infinite g gives NaN on untouched elements, 0 * inf, as PyTorch).
  template <class V>
  LOSSBENCH_HD static V grad(V count, V g, V c) {
    return (count * g) / c;
  }
};

// One listed class j against a row, as an elementwise formula for the drivers' dense row kernels:
// inputs x_d and listed_d (1 for a listed class, 0 otherwise), s0 = x_j; the value is the pair's
// hinge, 0 for listed d.
struct MultilabelMarginRow {
  static constexpr int kInputs = 2;
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const V h = MultilabelMarginLoss::term(MultilabelMarginLoss::z(V(p.s0), in[0]));
    return vselect(in[1] == V(0.0), h, V(0.0));
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V*, V, const Params&, V* out) {
    out[0] = out[1] = V(0.0);  // (the gradient counts pairs in the multilabel driver)
  }
};

// The gradient's pair counts for one listed class j, as a dense kernel's formula (the fused mode
// of dense_forward): inputs x_d, listed_d and the running count_d (float, exact: counts stay
// below 2^24); the value is 1 for an active pair (summed: the count to take from j), and the
// gradient written for input 2 is count_d + 1 where the pair is active (the count updated in
// place). s0 = x_j.
struct MultilabelMarginCountRow {
  static constexpr int kInputs = 3;
  template <class V>
  LOSSBENCH_HD static V forward(const V* in, const Params& p) {
    const auto on = MultilabelMarginLoss::active(MultilabelMarginLoss::z(V(p.s0), in[0]));
    return vselect(on & (in[1] == V(0.0)), V(1.0), V(0.0));
  }
  template <class V>
  LOSSBENCH_HD static void backward(const V* in, V, const Params& p, V* out) {
    out[0] = out[1] = V(0.0);  // not written (no gradient tensor for them)
    out[2] = in[2] + forward(in, p);
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
