// hinge_embedding_loss (docs/losses/hinge_embedding_loss.md).
//
// PyTorch 2.2 (Loss.cpp::hinge_embedding_loss):
//   a = (margin - x).clamp_min_(0)
//   l = where(target != 1, a, 0) + where(target != -1, x, 0)
// so y = 1 gives x, y = -1 gives max(0, margin - x), any other target (NaN included) gives
// x + max(0, margin - x). Targets are not validated; the target broadcasts with the input
// (where's condition comes first in the broadcast, hence the order of the error message).
// The margin is rounded to the tensor's dtype, 16-bit dtypes included (rsub with a Python
// scalar; checked on torch 2.2.2 CPU).
// Gradient (autograd): d/dx = [y != -1] g - [y != 1][margin - x >= 0] g (clamp_min inclusive at
// the hinge x == margin). The target gets no gradient (it only enters comparisons).
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_hinge_embedding_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(y.shape, x.shape);
  const Real margin = param_as(c, "margin", dtype);

  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(reals(y), y.shape, shape);
  const std::size_t n = xv.size();
  // Comparisons as PyTorch does them: NaN != 1 and NaN != -1 are both true.
  std::vector<char> not_pos(n), not_neg(n);
  std::vector<Real> d(n), terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    not_pos[i] = isnan(yv[i]) || yv[i] != 1;
    not_neg[i] = isnan(yv[i]) || yv[i] != -1;
    d[i] = margin - xv[i];  // one correctly rounded subtraction: its sign is exact
    const Real a = not_pos[i] ? maximum(d[i], Real(0)) : Real(0);
    const Real s = not_neg[i] ? xv[i] : Real(0);
    terms[i] = a + s;  // +0 + -0 = +0 as in PyTorch
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Real from_self = not_neg[i] ? g[i] : Real(0);
      const bool active = not_pos[i] && !isnan(d[i]) && d[i] >= 0;
      const Real from_margin = -(active ? g[i] : Real(0));
      gx[i] = from_self + from_margin;
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
  }
  return e;
}

}  // namespace lossbench::ref
