#pragma once
// ctc_loss (docs/losses/ctc_loss.md): the steps of PyTorch 2.2's CPU kernel (LossCTC.cpp), in
// log space with its max trick, evaluated in double whatever the dtype (so special values -inf,
// +inf and NaN propagate exactly as in PyTorch). The driver (drivers/ctc.cpp) owns the
// alpha/beta tables, the samples (threads) and the reductions.
#include "common.hpp"

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct CtcLoss {
  // log(exp(a) + exp(b) + exp(c)) with PyTorch's max trick (b, c = -inf when absent).
  template <class V>
  LOSSBENCH_HD static V log_add3(V a, V b, V c) {
    V m = a;
    if (b > m) m = b;
    if (c > m) m = c;
    if (m == V(-kInf)) m = V(0.0);
    return std::log(std::exp(a - m) + std::exp(b - m) + std::exp(c - m)) + m;
  }
  // log(exp(a) + exp(b)) as the kernel's final step and lcab accumulation (std::max's NaN rule).
  template <class V>
  LOSSBENCH_HD static V log_add2(V a, V b) {
    V m = a < b ? b : a;
    if (m == V(-kInf)) m = V(0.0);
    return std::log(std::exp(a - m) + std::exp(b - m)) + m;
  }
  // The vector fast path's (drivers/block.hpp, float32) log_add2 and log_add3 for terms that are
  // finite or -inf (never +inf or NaN): the max m plus log(1 + the others' exps), exp(m - m) = 1
  // being exact, which saves one exp; -inf when every term is -inf.
  template <class V>
  LOSSBENCH_HD static V log_add2_finite(V a, V b) {
    const auto lt = a < b;
    const V m = vselect(lt, b, a), o = vselect(lt, a, b);
    return vselect(m == V(-kInf), m, m + vlog(V(1.0) + vexp(o - m)));
  }
  template <class V>
  LOSSBENCH_HD static V log_add3_finite(V a, V b, V c) {
    const auto lt = a < b;
    const V hi = vselect(lt, b, a), lo = vselect(lt, a, b);
    const auto lt2 = hi < c;
    const V m = vselect(lt2, c, hi), mid = vselect(lt2, hi, c);
    return vselect(m == V(-kInf), m, m + vlog(V(1.0) + (vexp(lo - m) + vexp(mid - m))));
  }
  // The gradient of one element: (exp(lp) - exp(lcab + nll - lp)) g.
  template <class V>
  LOSSBENCH_HD static V grad(V lp, V lcab, V nll, V g) {
    return (std::exp(lp) - std::exp(lcab + nll - lp)) * g;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
