// l1_loss: |x - y| (docs/semantics.md#l1_loss).
// Gradients: d/dx = sgn(x - y) g, d/dy = -sgn(x - y) g, with sgn(0) = 0 as autograd's abs, and
// sgn(NaN) = 0 as torch.sgn on the CPU: a NaN difference gives gradients 0 and -0 (checked against
// torch 2.2.2: F.l1_loss(nan, 0).backward() gives input.grad 0, target.grad -0).
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_l1_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(x.shape, y.shape);
  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);

  std::vector<Real> diff(xv.size()), terms(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) {
    diff[i] = xv[i] - yv[i];
    terms[i] = abs(diff[i]);
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(diff.size()), gy(diff.size());
    for (std::size_t i = 0; i < diff.size(); ++i) {
      gx[i] = (isnan(diff[i]) ? Real(0) : sgn(diff[i])) * g[i];
      gy[i] = -gx[i];
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
  }
  return e;
}

}  // namespace lossbench::ref
