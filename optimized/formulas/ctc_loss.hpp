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
  // The gradient of one element: (exp(lp) - exp(lcab + nll - lp)) g.
  template <class V>
  LOSSBENCH_HD static V grad(V lp, V lcab, V nll, V g) {
    return (std::exp(lp) - std::exp(lcab + nll - lp)) * g;
  }
};

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
