// soft_margin_loss (docs/losses/soft_margin_loss.md): l = log1p(exp(-x y)).
// Shapes: the output is allocated like input and target is multiplied into it, so target must
// broadcast into input's shape (torch 2.2.2: "output with shape [3] doesn't match the broadcast
// shape [1, 3]"); N is input's numel.
// Policy: the exact value of log1p(exp(t)), t = -x y, computed as the stable softplus
// max(t, 0) + log1p(exp(-|t|)). PyTorch evaluates exp(t) in the dtype, which overflows for
// t > ~88.7 (float32) / ~11.09 (float16) / ~709.8 (float64) and then returns +inf where the exact
// value is ~t: an intermediate rounding artefact, so a known PyTorch divergence, not semantics.
// Special values follow PyTorch's formula: t NaN (x or y NaN, or 0 * inf) gives NaN, t = +inf
// gives +inf, t = -inf gives 0.
// Gradients: input only (derivatives.yaml; target is not differentiable, PyTorch raises
// "The function 'soft_margin_loss' is not differentiable with respect to argument 'target'").
//   d/dx = ((y z) (-norm)) / (1 + z) g with z = exp(t), i.e. -y sigmoid(t) g, computed stably for
//   finite t. For infinite t PyTorch's formula is evaluated literally: t = +inf gives inf/inf =
//   NaN, t = -inf gives (y 0)(-norm)/1 = -0 g (NaN if y is infinite). PyTorch also returns NaN
//   where exp(t) overflows in the dtype; the reference returns the exact -y sigmoid(t) g there.
#include "common.hpp"

namespace lossbench::ref {

namespace {
// sigmoid(t) = exp(t) / (1 + exp(t)) for finite t, without overflow.
Real sigmoid(const Real& t) {
  if (t > 0) return 1 / (1 + exp(-t));
  const Real z = exp(t);
  return z / (1 + z);
}
}  // namespace

Evaluation evaluate_soft_margin_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(x.shape, y.shape);
  check(shape == x.shape, ErrorKind::ShapeMismatch,
        "output with shape " + shape_string(x.shape) + " doesn't match the broadcast shape " +
            shape_string(shape));
  const auto xv = input_values(r, "input");
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);

  std::vector<Real> t(xv.size()), terms(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) {
    t[i] = -xv[i] * yv[i];
    if (isnan(t[i]) || isinf(t[i]))
      terms[i] = log1p(exp(t[i]));  // NaN, +inf or 0, as PyTorch
    else
      terms[i] = maximum(t[i], Real(0)) + log1p(exp(-abs(t[i])));
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i) {
      if (isnan(t[i]) || isinf(t[i])) {
        const Real z = exp(t[i]);
        gx[i] = -(yv[i] * z) / (1 + z) * g[i];
      } else {
        gx[i] = -yv[i] * sigmoid(t[i]) * g[i];
      }
    }
    e.grads["input"] = grad_tensor(x, std::move(gx));
  }
  return e;
}

}  // namespace lossbench::ref
