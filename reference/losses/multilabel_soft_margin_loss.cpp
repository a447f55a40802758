// multilabel_soft_margin_loss (docs/losses/multilabel_soft_margin_loss.md).
//
// PyTorch 2.2 (pure Python, functional.py::multilabel_soft_margin_loss):
//   loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
//   if weight is not None: loss = loss * weight
//   class_dim = input.dim() - 1;  C = input.size(class_dim)
//   loss = loss.sum(dim=class_dim) / C;  then none / mean / sum.
// No shape checks: target and weight broadcast. The summed dimension is input.dim() - 1 counted
// from the FRONT of the broadcast shape, so when the target has more dims than the input
// (input (C), target (N, C)) PyTorch sums over dim 0, i.e. over N (checked on torch 2.2.2:
// input [0, 1, 2] with target (2, 3) gives 'none' of shape (3)); this reference does the same.
// C = 0 gives 0 / 0 = NaN per sample; a 0-d input raises IndexError in input.size(-1).
// logsigmoid(z) = min(z, 0) - log1p(exp(-|z|)), evaluated exactly.
//
// Gradients (autograd through the composite; input, target and weight are all differentiable),
// with h = upstream of the sample / C and w = 1 without a weight:
//   d/dx = sigma(-x) (-h w y) - sigma(x) (-h w (1 - y))  (the two log_sigmoid_backward terms;
//          mathematically (sigma(x) - y) h w)
//   d/dy = -h w logsigmoid(x) + h w logsigmoid(-x)
//   d/dw = h * l_elem, summed back to the weight's shape.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_multilabel_soft_margin_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Tensor* w = c.optional_input("weight");

  // target * logsigmoid(input): target is the left operand of the broadcast.
  const Shape elem_shape = broadcast_shapes(y.shape, x.shape);
  const Shape shape = w ? broadcast_shapes(elem_shape, w->shape) : elem_shape;
  if (x.dim() == 0)
    throw Error(ErrorKind::Index, "Dimension specified as -1 but tensor has no dimensions");
  const std::size_t class_dim = static_cast<std::size_t>(x.dim() - 1);
  const std::int64_t classes = x.shape.back();

  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);
  std::vector<Real> wv;
  if (w) wv = broadcast_to(input_values(r, "weight"), w->shape, shape);

  // Output shape: `shape` without class_dim; element i belongs to sample (outer, inner).
  Shape out_shape = shape;
  out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(class_dim));
  std::int64_t inner = 1;
  for (std::size_t k = class_dim + 1; k < shape.size(); ++k) inner *= shape[k];
  const std::int64_t reduced = shape[class_dim];
  auto sample_of = [&](std::size_t i) {
    const auto ii = static_cast<std::int64_t>(i);
    return static_cast<std::size_t>((ii / (inner * reduced)) * inner + ii % inner);
  };

  const std::size_t n = xv.size();
  const std::size_t n_out = static_cast<std::size_t>(numel(out_shape));
  std::vector<Real> lpos(n), lneg(n), unweighted(n);
  std::vector<std::vector<Real>> per_sample(n_out);
  for (std::size_t i = 0; i < n; ++i) {
    const Real softplus_tail = log1p(exp(-abs(xv[i])));
    lpos[i] = minimum(xv[i], Real(0)) - softplus_tail;   // logsigmoid(x)
    lneg[i] = minimum(-xv[i], Real(0)) - softplus_tail;  // logsigmoid(-x)
    unweighted[i] = -(yv[i] * lpos[i] + (1 - yv[i]) * lneg[i]);
    per_sample[sample_of(i)].push_back(w ? unweighted[i] * wv[i] : unweighted[i]);
  }
  const Real cdiv(static_cast<long long>(classes));
  std::vector<Real> terms(n_out);
  for (std::size_t o = 0; o < n_out; ++o) terms[o] = sum(per_sample[o]) / cdiv;  // 0/0 = NaN

  Evaluation e;
  e.output = reduce(std::move(terms), out_shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, out_shape, c.reduction);
    std::vector<Real> gx(n), gy(n), gw(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Real h = g[sample_of(i)] / cdiv;  // backward of sum(dim) / C
      Real gl = h;                            // gradient of the (unweighted) loss element
      if (w) {
        gw[i] = h * unweighted[i];
        gl = h * wv[i];
      }
      const Real ga = -gl;  // -(A + B): both A and B get -gl
      // A = y * logsigmoid(x), B = (1 - y) * logsigmoid(-x)
      // logsigmoid(x) - logsigmoid(-x) = x exactly (also for +-inf and NaN): written as x, so
      // that a tiny x is not absorbed by the two log(2)-sized terms at the working precision
      // (which would make a 0 that looks exact at every precision).
      // A zero comes out as +0, as a - a does in PyTorch's two-term form.
      const Real gyi = ga * xv[i];
      gy[i] = iszero(gyi) ? Real(0) : gyi;
      // sigma(-x) (ga y) - sigma(x) (ga (1 - y)) = ga (y - sigma(x)) = ga ((y - 1/2) -
      // tanh(x/2)/2): the tanh form keeps a tiny x that y - sigma(x) would absorb when y = 1/2. NaN
      // gives NaN,
      // +-inf gives y - 1 or y, as the log_sigmoid_backward kernel does.
      gx[i] = ga * ((yv[i] - Real(0.5)) - tanh(xv[i] / 2) / 2);
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
    if (w) e.grads["weight"] = grad_tensor(*w, sum_to(gw, shape, w->shape));
  }
  return e;
}

}  // namespace lossbench::ref
