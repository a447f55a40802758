// poisson_nll_loss (docs/losses/poisson_nll_loss.md):
//   log_input:  l = exp(x) - y x
//   otherwise:  l = x - y log(x + eps)
//   full:       l += S(y) = y log y - y + 0.5 log(2 pi y), for y > 1 only (masked_fill(y <= 1, 0));
//               NaN y is not masked, and y = +inf gives inf - inf = NaN as PyTorch's formula.
// Input and target broadcast silently (elementwise ops); the first op is target * input, so a
// mismatch names target as tensor a. No value checks.
// Parameter rounding (checked against torch 2.2.2): `input + eps` adds a Python scalar, which
// the add kernel rounds to the loss dtype in every dtype (1e-8 is 0 in float16, so
// log(0 + eps) = -inf there); `2 * pi * target` multiplies by a double scalar, which the mul
// kernel uses in float32 opmath for float16/bfloat16 and in the dtype otherwise.
// Gradients (autograd through the composite):
//   input:  log_input: (exp(x) - y) g;  otherwise g - y g / (x + eps).
//   target: log_input: -x g;  otherwise -log(x + eps) g;  full adds, through the masked branch,
//           g (log y + 1/(2y)) for finite y > 1, 0 for 0 < y <= 1, and NaN for y <= 0 (the
//           masked gradient 0 meets log(y) = -inf or NaN), y NaN or y = +inf (inf/inf).
#include <numbers>

#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_poisson_nll_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(y.shape, x.shape);  // target * input: target is tensor a
  const bool log_input = c.param_bool("log_input");
  const bool full = c.param_bool("full");
  const Real eps = param_as(c, "eps", dtype);
  const bool half = dtype == DType::float16 || dtype == DType::bfloat16;
  const Real two_pi(round_to(2 * std::numbers::pi, half ? DType::float32 : dtype));

  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);
  std::vector<Real> terms(xv.size()), lg(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) {
    if (log_input) {
      terms[i] = exp(xv[i]) - yv[i] * xv[i];
    } else {
      lg[i] = log(xv[i] + eps);
      terms[i] = xv[i] - yv[i] * lg[i];
    }
    if (full && !(yv[i] <= 1)) terms[i] += yv[i] * log(yv[i]) - yv[i] + log(two_pi * yv[i]) / 2;
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(xv.size()), gy(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) {
      if (log_input) {
        gx[i] = g[i] * exp(xv[i]) - g[i] * yv[i];
        gy[i] = -g[i] * xv[i];
      } else {
        gx[i] = g[i] - g[i] * yv[i] / (xv[i] + eps);
        gy[i] = -g[i] * lg[i];
      }
      if (full) {
        const Real& t = yv[i];
        if (t <= 1) {
          if (!(t > 0)) gy[i] = nan();  // 0 * log(t) with log(t) = -inf or NaN
        } else if (isfinite(t)) {
          gy[i] += g[i] * (log(t) + 1 / (2 * t));
        } else {
          gy[i] = nan();  // NaN target, or +inf: g inf / inf
        }
      }
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
  }
  return e;
}

}  // namespace lossbench::ref
