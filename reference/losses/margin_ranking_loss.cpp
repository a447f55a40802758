// margin_ranking_loss: max(0, -y (x1 - x2) + margin) (docs/losses/margin_ranking_loss.md).
//
// PyTorch 2.2 (functional.py + Loss.cpp::margin_ranking_loss):
//   the three tensors must have the same ndim (checked in Python), then they broadcast;
//   u = (-target) * (input1 - input2) + margin;  l = u.clamp_min_(0);  reduction.
// The margin is a Python float combined with a tensor: TensorIterator rounds it to the tensor's
// dtype, 16-bit dtypes included (checked on torch 2.2.2 CPU: 1 + (2^-11 + 2^-30) in float16
// gives 1, i.e. the scalar was rounded to float16 before the float opmath add).
// Gradients (autograd through the composite): clamp_min passes the gradient where u >= 0
// (inclusive at the hinge), so with m = [u >= 0]:
//   d/dx1 = -y m g,  d/dx2 = y m g,  d/dy = -(x1 - x2) m g (a floating target is differentiable).
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_margin_ranking_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x1 = c.input("input1");
  const Tensor& x2 = c.input("input2");
  const Tensor& y = c.input("target");
  if (x1.dim() != x2.dim() || x1.dim() != y.dim())
    throw Error(ErrorKind::ShapeMismatch,
                "margin_ranking_loss : All input tensors should have same dimension but got "
                "sizes: input1: " +
                    shape_string(x1.shape) + ", input2: " + shape_string(x2.shape) +
                    ", target: " + shape_string(y.shape));
  // input1 - input2 broadcasts first, then -target * (...).
  const Shape diff_shape = broadcast_shapes(x1.shape, x2.shape);
  const Shape shape = broadcast_shapes(y.shape, diff_shape);
  const Real margin = param_as(c, "margin", dtype);  // rounded to the tensor dtype (see above)

  const auto a = broadcast_to(input_values(r, "input1"), x1.shape, shape);
  const auto b = broadcast_to(input_values(r, "input2"), x2.shape, shape);
  const auto t = broadcast_to(input_values(r, "target"), y.shape, shape);

  const std::size_t n = a.size();
  std::vector<Real> u(n), terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (isfinite(a[i]) && isfinite(b[i]) && isfinite(t[i])) {
      // Exact products, one correctly rounded sum: the sign of u is exact, so the hinge
      // (and the gradient mask) is decided exactly.
      u[i] = sum({-(t[i] * a[i]), t[i] * b[i], margin});
    } else {
      u[i] = -t[i] * (a[i] - b[i]) + margin;  // PyTorch's order for inf/NaN propagation
    }
    terms[i] = maximum(u[i], Real(0));
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> g1(n), g2(n), gy(n);
    for (std::size_t i = 0; i < n; ++i) {
      // clamp_min backward: where(u >= 0, g, 0); NaN u gives 0.
      const Real gu = (!isnan(u[i]) && u[i] >= 0) ? g[i] : Real(0);
      const Real gd = gu * (-t[i]);  // mul backward: grad * other
      g1[i] = gd;
      g2[i] = -gd;
      gy[i] = -(gu * (a[i] - b[i]));  // through the negation of target
    }
    e.grads["input1"] = grad_tensor(x1, sum_to(g1, shape, x1.shape));
    e.grads["input2"] = grad_tensor(x2, sum_to(g2, shape, x2.shape));
    if (is_floating(y.dtype)) e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
  }
  return e;
}

}  // namespace lossbench::ref
