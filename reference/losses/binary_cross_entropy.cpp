// binary_cross_entropy (docs/losses/binary_cross_entropy.md). ATen's kernel of 2.2:
//   l = w ((y - 1) max(log1p(-x), -100) - y max(log(x), -100))
// Each log is clamped at -100 before the product, so l is finite at x in {0, 1}.
//
// Checks in PyTorch's order: target.size() == input.size() (ValueError in functional.py), weight
// broadcastable with target (_infer_size), then per element in memory order 0 <= x <= 1 and
// 0 <= y <= 1 (NaN fails), then a weight whose broadcast would enlarge the shape fails in
// loss.mul_(weight).
//
// Constants: -100 is exact in every dtype. The backward's EPSILON is the float constant 1e-12f
// converted to scalar_t: float(1e-12) = 9.99999996e-13 for float32 and float64 alike (checked
// against torch 2.2.2 float64: d/dx at x = 0, y = 1 is -1000000003995.8029), and that float
// rounded to float16 (0) or bfloat16 for the 16-bit dtypes. PyTorch 2.2 has no CPU kernel for
// float16/bfloat16 ("not implemented for 'Half'"); its CUDA kernel computes in scalar_t, so the
// reference gives the CUDA function for 16-bit inputs.
//
// Gradients (derivatives.yaml, the explicit backward kernels, not autograd through the forward):
//   d/dx = g (x - y) / max((1 - x) x, EPSILON) * w
//   d/dy = -logit(x) g w   (at::logit, no eps: +inf at x = 0, -inf at x = 1)
// These are derivatives of the *unclamped* loss: at x = 0, y = 1 d/dx = -1/EPSILON while the
// clamped forward is flat at 100 there. weight is not differentiable (PyTorch raises if it
// requires grad).
#include <sstream>

#include "common.hpp"

namespace lossbench::ref {

namespace {
std::string num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}
}  // namespace

Evaluation evaluate_binary_cross_entropy(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Tensor* w = c.optional_input("weight");
  const Shape& shape = x.shape;
  if (y.shape != x.shape)
    throw Error(ErrorKind::ShapeMismatch,
                "Using a target size (" + shape_string(y.shape) +
                    ") that is different to the input size (" + shape_string(x.shape) +
                    ") is deprecated. Please ensure they have the same size.");
  Shape wshape;
  if (w) wshape = broadcast_shapes(y.shape, w->shape);  // _infer_size(target, weight)
  for (std::size_t i = 0; i < x.values.size(); ++i) {
    const double xi = x.values[i], yi = y.values[i];
    if (!(xi >= 0 && xi <= 1))
      throw Error(ErrorKind::Value, "all elements of input should be between 0 and 1 (input[" +
                                        std::to_string(i) + "] = " + num(xi) + ")");
    if (!(yi >= 0 && yi <= 1))
      throw Error(ErrorKind::Value, "all elements of target should be between 0 and 1 (target[" +
                                        std::to_string(i) + "] = " + num(yi) + ")");
  }
  if (w && wshape != shape)
    throw Error(ErrorKind::ShapeMismatch, "output with shape " + shape_string(shape) +
                                              " doesn't match the broadcast shape " +
                                              shape_string(wshape));

  const auto xv = input_values(r, "input");
  const auto yv = input_values(r, "target");
  const std::size_t n = xv.size();
  std::vector<Real> wv =
      w ? broadcast_to(input_values(r, "weight"), w->shape, shape) : std::vector<Real>(n, Real(1));
  const Real neg100(-100);
  std::vector<Real> terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Real lx = maximum(log(xv[i]), neg100);
    const Real l1x = maximum(log1p(-xv[i]), neg100);
    terms[i] = ((yv[i] - 1) * l1x - yv[i] * lx) * wv[i];
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    // EPSILON: the float 1e-12f as scalar_t (see the header).
    const double eps32 = round_to(1e-12, DType::float32);
    const Real eps(dtype == DType::float64 ? eps32 : round_to(eps32, dtype));
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(n), gy(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Real& a = xv[i];
      const Real& b = yv[i];
      gx[i] = g[i] * (a - b) / maximum((1 - a) * a, eps) * wv[i];
      // -logit(x) = -(log x - log1p(-x)): exact 0 at x = 1/2 (negated as at::logit(x).neg_()).
      gy[i] = -(log(a) - log1p(-a)) * g[i] * wv[i];
    }
    e.grads["input"] = grad_tensor(x, std::move(gx));
    e.grads["target"] = grad_tensor(y, std::move(gy));
  }
  return e;
}

}  // namespace lossbench::ref
