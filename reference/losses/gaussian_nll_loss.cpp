// gaussian_nll_loss: 0.5 (log v + (x - y)^2 / v) [+ 0.5 log(2 pi)], v = max(var, eps)
// (docs/losses/gaussian_nll_loss.md).
//
// Shapes (torch/nn/functional.py of 2.2, the strict check before #147522): var must have the
// input's shape, or the input's shape without its last dim (then it is unsqueezed at -1), or the
// input's shape with the last dim replaced by 1. target is not checked: it broadcasts freely
// with input (and may enlarge the output). Checks in PyTorch's order: var shape, (reduction, done
// when the case is parsed), any(var < 0), then the input/target/var broadcast.
//
// Parameters: eps is rounded to the loss dtype (clamp_ writes the dtype; since var is
// representable, max(var, round(eps)) is what the clamp gives whatever type it compares in).
// The `full` constant is the Python double 0.5 * math.log(2 * math.pi), added as a scalar: the
// add computes in opmath, so it is that double for float64 and the double rounded to float32 for
// float32, float16 and bfloat16 (checked against torch 2.2.2: float32 results match the float32
// constant, not the double).
//
// Gradients (autograd through the composite; the clamp runs under no_grad on a clone, so it is
// invisible to autograd): with h = 0.5 g, d = x - y,
//   d/dx = (h / v) * 2d, d/dy = -d/dx,
//   d/dvar = h / v - h (d^2 / v) / v = h (v - d^2) / v^2, evaluated at the clamped v, also for
//   entries with var < eps (where the true derivative of the clamped loss is 0: PyTorch's
//   gradient is not the derivative there). Summed back over the broadcast/unsqueezed dims of var.
#include <cmath>

#include "common.hpp"

namespace lossbench::ref {

namespace {

Shape drop_last(const Shape& s) { return s.empty() ? s : Shape(s.begin(), s.end() - 1); }

}  // namespace

Evaluation evaluate_gaussian_nll_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Tensor& var = c.input("var");

  // var shape (functional.py): equal, input[:-1] == var (unsqueeze), or last dim 1.
  Shape vshape = var.shape;
  if (var.shape != x.shape) {
    if (drop_last(x.shape) == var.shape) {
      vshape.push_back(1);
    } else if (!(!var.shape.empty() && drop_last(x.shape) == drop_last(var.shape) &&
                 var.shape.back() == 1)) {
      throw Error(ErrorKind::ShapeMismatch, "var is of incorrect size: var " +
                                                shape_string(var.shape) + " for input " +
                                                shape_string(x.shape));
    }
  }
  const auto varv_raw = input_values(r, "var");
  for (std::size_t i = 0; i < varv_raw.size(); ++i)
    if (varv_raw[i] < 0)  // NaN and -0 pass
      throw Error(ErrorKind::Value, "var has negative entry/entries (var[" + std::to_string(i) +
                                        "] = " + decimal_string(varv_raw[i], 17) + ")");
  const Shape shape = broadcast_shapes(broadcast_shapes(x.shape, y.shape), vshape);

  const Real eps = param_as(c, "eps", dtype);
  const bool full = c.param_bool("full");
  // 0.5 * math.log(2 * math.pi) as Python computes it, rounded to the opmath type of the add.
  const double half_log_2pi = 0.9189385332046727;
  const Real full_const(dtype == DType::float64 ? half_log_2pi
                                                : round_to(half_log_2pi, DType::float32));

  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);
  const auto vv = broadcast_to(varv_raw, vshape, shape);

  const std::size_t n = xv.size();
  std::vector<Real> d(n), v(n), terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    d[i] = xv[i] - yv[i];
    v[i] = maximum(vv[i], eps);  // clamp_(min=eps): NaN stays NaN
    terms[i] = Real(0.5) * (log(v[i]) + d[i] * d[i] / v[i]);
    if (full) terms[i] += full_const;
  }
  Evaluation e;
  e.output = reduce(terms, shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(n), gy(n), gv(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Real h = Real(0.5) * g[i];
      gx[i] = (h / v[i]) * (2 * d[i]);
      gy[i] = -gx[i];
      const Real d2 = d[i] * d[i];
      if (isfinite(v[i]) && !iszero(v[i]) && isfinite(d2) && isfinite(h))
        gv[i] = h * (v[i] - d2) / (v[i] * v[i]);  // exact 0 when v == d^2
      else
        gv[i] = h / v[i] + (-h) * ((d2 / v[i]) / v[i]);  // autograd's literal order
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
    // Summed to the unsqueezed shape: same elements in the same order as var's own shape.
    e.grads["var"] = grad_tensor(var, sum_to(gv, shape, vshape));
  }
  return e;
}

}  // namespace lossbench::ref
