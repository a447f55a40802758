// binary_cross_entropy_with_logits (docs/losses/binary_cross_entropy_with_logits.md).
//
// PyTorch 2.2 (Loss.cpp, before the log_sigmoid rewrite #115539) computes, with m = max(-x, 0),
//   no pos_weight: (1 - y) x + m + log(exp(-m) + exp(-x - m))
//   pos_weight p:  (1 - y) x + lw (log(exp(-m) + exp(-x - m)) + m),   lw = (p - 1) y + 1
// then * weight. The max_val / log-sum-exp arrangement is PyTorch's way of rounding; the value
// is that of the function: with sp(z) = log(1 + exp(z)) = softplus, log(exp(-m) + exp(-x-m)) + m
// = sp(-x) and x = sp(x) - sp(-x), so
//   l = w ((1 - y) sp(x) + p y sp(-x))     (p = 1 without pos_weight),
// which the reference evaluates for finite x, y, p (no cancellation for y in [0, 1], p >= 0).
// When x, y or p is infinite or NaN it evaluates PyTorch's formula literally, so that special
// values are PyTorch's: x = +inf, y = 1 -> 0 * inf = NaN (#102894); x = -inf -> exp(inf - inf)
// = NaN (#49844).
//
// Shapes: target must have the input's size (ValueError in functional.py). pos_weight and weight
// broadcast with ordinary tensor broadcasting (a (C) pos_weight aligns with the last dim), but
// they may not enlarge the shape: PyTorch's in-place add_/mul_ fail with "output with shape [..]
// doesn't match the broadcast shape [..]" (checked against torch 2.2.2; the spec's claim that
// they can enlarge the output is wrong). No target range check.
//
// Gradients (derivatives.yaml, FunctionsManual.cpp explicit formulas), g per element (÷N for
// mean, N = input.numel()), t = p y:
//   d/dx = ((t + 1 - y) sigmoid(x) - t) g w = ((1 - y) sigmoid(x) - t sigmoid(-x)) g w
//   d/dy = -x g w (no pos_weight); (log_sigmoid(-x) - p log_sigmoid(x)) g w
//          = (p sp(-x) - sp(x)) g w (pos_weight).
// weight and pos_weight are not differentiable.
#include "common.hpp"

namespace lossbench::ref {

namespace {

// softplus(z) = log(1 + exp(z)) for finite z, without overflow or cancellation.
Real softplus(const Real& z) { return maximum(z, Real(0)) + log1p(exp(-abs(z))); }

// 1 / (1 + exp(-z)), PyTorch's sigmoid (0 at -inf, 1 at +inf).
Real sigmoid(const Real& z) { return 1 / (1 + exp(-z)); }

// log_sigmoid(z) = -softplus(-z), also at infinities (0 at +inf, -inf at -inf).
Real log_sigmoid(const Real& z) {
  if (isnan(z)) return z;
  if (isinf(z)) return signbit(z) ? z : Real(0);
  return -softplus(-z);
}

}  // namespace

Evaluation evaluate_binary_cross_entropy_with_logits(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Tensor* w = c.optional_input("weight");
  const Tensor* pw = c.optional_input("pos_weight");
  const Shape& shape = x.shape;
  if (y.shape != x.shape)
    throw Error(ErrorKind::ShapeMismatch, "Target size (" + shape_string(y.shape) +
                                              ") must be the same as input size (" +
                                              shape_string(x.shape) + ")");
  // (pos_weight - 1).mul(target) broadcasts; the in-place add_ into the input-shaped loss fails
  // if that enlarged the shape. Then loss.mul_(weight).
  for (const Tensor* t : {pw, w}) {
    if (!t) continue;
    const Shape b =
        t == pw ? broadcast_shapes(t->shape, y.shape) : broadcast_shapes(shape, t->shape);
    if (b != shape)
      throw Error(ErrorKind::ShapeMismatch, "output with shape " + shape_string(shape) +
                                                " doesn't match the broadcast shape " +
                                                shape_string(b));
  }

  const auto xv = input_values(r, "input");
  const auto yv = input_values(r, "target");
  const std::size_t n = xv.size();
  const std::vector<Real> wv =
      w ? broadcast_to(input_values(r, "weight"), w->shape, shape) : std::vector<Real>(n, Real(1));
  const std::vector<Real> pv = pw ? broadcast_to(input_values(r, "pos_weight"), pw->shape, shape)
                                  : std::vector<Real>(n, Real(1));

  std::vector<Real> terms(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Real& a = xv[i];
    const Real& b = yv[i];
    const Real& p = pv[i];
    Real l;
    if (isfinite(a) && isfinite(b) && isfinite(p)) {
      const Real c0 = 1 - b, c1 = p * b;
      if (iszero(a))
        l = (c0 + c1) * log(Real(2));  // sp(0) = log 2 for both terms: an exact 0 stays 0
      else
        l = c0 * softplus(a) + c1 * softplus(-a);
    } else {
      // PyTorch's formula, for its special values.
      const Real m = maximum(-a, Real(0));
      const Real lse = log(exp(-m) + exp(-a - m));
      if (pw)
        l = (1 - b) * a + ((p - 1) * b + 1) * (lse + m);
      else
        l = ((1 - b) * a + m) + lse;
    }
    terms[i] = l * wv[i];
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);  // ÷ input.numel() for mean
    std::vector<Real> gx(n), gy(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Real& a = xv[i];
      const Real& b = yv[i];
      const Real& p = pv[i];
      const Real t = p * b;
      const bool finite = isfinite(a) && isfinite(b) && isfinite(p);
      if (finite)
        gx[i] = ((1 - b) * sigmoid(a) - t * sigmoid(-a)) * g[i] * wv[i];
      else if (pw)
        gx[i] = (((t + 1) - b) * sigmoid(a) - t) * g[i] * wv[i];
      else
        gx[i] = (sigmoid(a) - b) * g[i] * wv[i];
      if (!pw)
        gy[i] = -a * g[i] * wv[i];
      else if (finite)
        gy[i] = (p * softplus(-a) - softplus(a)) * g[i] * wv[i];
      else
        gy[i] = (log_sigmoid(-a) - log_sigmoid(a) * p) * g[i] * wv[i];
    }
    e.grads["input"] = grad_tensor(x, std::move(gx));
    e.grads["target"] = grad_tensor(y, std::move(gy));
  }
  return e;
}

}  // namespace lossbench::ref
