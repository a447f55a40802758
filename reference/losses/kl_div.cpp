// kl_div (docs/losses/kl_div.md). ATen's composite of 2.2 (#80334):
//   log_target = false: xlogy(y, y) - y x   (xlogy: NaN if y is NaN, 0 if y == 0, else y log y;
//                                            so y < 0 gives NaN, and y = 0 with x = +-inf gives
//                                            0 - 0 * inf = NaN)
//   log_target = true:  exp(y) (y - x)
// input and target broadcast (no shape check). Reductions: "mean" divides by the broadcast numel;
// "batchmean" is ATen's sum divided (in Python) by input.size(0), the *input's* first dim even
// when target enlarges the shape, and not divided at all for a 0-d input.
//
// Gradients (autograd through xlogy, mul, sub, exp), with g the upstream gradient per element:
//   log_target = false: d/dx = -g y;
//                       d/dy = g xlogy(y != 0, y) + g y / y - g x = g (log y + 1 - x) for y > 0,
//                       NaN at y = 0 (0 / 0 in xlogy's other-argument derivative, #89558) and
//                       for y < 0.
//   log_target = true:  d/dx = -g exp(y); d/dy = g (y - x) exp(y) + g exp(y).
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_kl_div(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(x.shape, y.shape);
  const bool log_target = c.param_bool("log_target");
  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);

  const std::size_t n = xv.size();
  std::vector<Real> terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Real& a = xv[i];
    const Real& b = yv[i];
    if (log_target) {
      terms[i] = exp(b) * (b - a);
    } else if (isnan(b)) {
      terms[i] = nan();
    } else if (iszero(b)) {
      terms[i] = Real(0) - b * a;  // xlogy(0, 0) = 0; NaN when x is +-inf or NaN
    } else if (b > 0 && isfinite(b) && isfinite(a)) {
      terms[i] = b * (log(b) - a);  // = xlogy(b, b) - b a; exact 0 at b = 1, a = 0
    } else {
      terms[i] = b * log(b) - b * a;  // y < 0 -> NaN; infinities as PyTorch's formula
    }
  }

  // The divisor of batchmean: input.size(0), or none for a 0-d input.
  const bool batchmean = c.reduction == "batchmean";
  const Real batch(static_cast<long long>(x.shape.empty() ? 1 : x.shape[0]));
  Evaluation e;
  if (batchmean) {
    e.output = reduce(terms, shape, "sum", dtype);
    e.output.data[0] = e.output.data[0] / batch;  // a batch of 0: 0 / 0 = NaN
  } else {
    e.output = reduce(terms, shape, c.reduction, dtype);
  }

  if (r.grad) {
    std::vector<Real> g = per_element_upstream(r, shape, batchmean ? "sum" : c.reduction);
    if (batchmean)
      for (auto& gi : g) gi = gi / batch;
    std::vector<Real> gx(n), gy(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Real& a = xv[i];
      const Real& b = yv[i];
      if (log_target) {
        const Real eb = exp(b);
        gx[i] = -(g[i] * eb);
        if (isfinite(a) && isfinite(b) && isfinite(g[i]))
          gy[i] = g[i] * eb * ((b - a) + 1);  // exact 0 at x = y + 1
        else
          gy[i] = (g[i] * (b - a)) * eb + g[i] * eb;
      } else {
        gx[i] = (-g[i]) * b;
        if (b > 0 && isfinite(b) && isfinite(a) && isfinite(g[i])) {
          gy[i] = g[i] * ((log(b) + 1) - a);  // exact 0 at y = 1, x = 1
        } else {
          const Real t1 = iszero(b) ? Real(0) : Real(g[i] * log(b));  // xlogy(y != 0, y)
          gy[i] = t1 + (g[i] * b) / b + (-g[i]) * a;                  // NaN at y = 0
        }
      }
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
  }
  return e;
}

}  // namespace lossbench::ref
