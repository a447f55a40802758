// multi_margin_loss (docs/losses/multi_margin_loss.md; spec B section 8).
//
// Per sample (a row of C scores x and a target class y):
//   loss = (1/C) sum_{i != y} w_y h(z_i),  z_i = margin - x_y + x_i,
//   h(z) = z (p = 1) or z^2 (p = 2) if z > 0, else 0 (strict: the kernels' `if (z > 0)`; a NaN
//   z contributes nothing).
// The weight multiplies after the power (w_y z^2, checked against torch 2.2.2), and only the
// active terms, so a NaN or infinite w_y matters only when some z_i > 0.
//
// margin: both the CPU and the CUDA kernels take `margin.to<scalar_t>()`, so the margin is
// rounded to the loss dtype, the 16-bit ones included (param_as(..., dtype)).
//
// Shapes: input (C), (N, C) or 0-d (C = 1); target int64 () or (N) with N elements (N = 1 for
// (C) and 0-d inputs); weight (C). Output (N) for 'none' with a 1-D target, else 0-d.
//
// Gradient w.r.t. input only (PyTorch 2.2 does not differentiate weight): for i != y with
// z_i > 0, grad[i] = w_y (p == 1 ? 1 : 2 z_i) g and grad[y] = -sum of those, g = upstream / C.
// At z_i == 0 the term gives nothing (strict). The kernel multiplies every element, zeros
// included, by grad_output, so an infinite grad_output gives NaN on the untouched elements: the
// reference multiplies each local gradient (0 included) by the upstream value the same way.
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_multi_margin_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& t = c.input("target");
  const Tensor* w = c.optional_input("weight");
  const std::int64_t p = c.param_int("p");

  // ---- validation, in PyTorch's order: F.multi_margin_loss (p, weight dim), then
  // LossMulti.h::multi_margin_loss_shape_check, then the per-sample target check ----
  check(p == 1 || p == 2, ErrorKind::Value,
        "only p == 1 and p == 2 supported (got p = " + std::to_string(p) + ")");
  if (w)
    check(w->dim() == 1, ErrorKind::Value,
          "weight must be one-dimensional, but got shape " + shape_string(w->shape));
  const std::int64_t ndims = x.dim();
  const bool valid =
      (ndims == 2 && x.shape[1] != 0) || (ndims == 1 && x.shape[0] != 0) || ndims == 0;
  check(valid, ErrorKind::ShapeMismatch,
        "Expected non-empty vector or matrix with optional 0-dim batch size, but got: " +
            shape_string(x.shape));
  const std::int64_t nframe = ndims <= 1 ? 1 : x.shape[0];
  const std::int64_t dim = ndims == 0 ? 1 : x.shape[static_cast<std::size_t>(ndims - 1)];
  check(t.dim() <= 1 && t.numel() == nframe, ErrorKind::ShapeMismatch,
        "inconsistent target size, expected " + std::to_string(nframe) + " but got " +
            shape_string(t.shape));
  if (w)
    check(w->numel() == dim, ErrorKind::ShapeMismatch,
          "inconsistent weight size, expected " + std::to_string(dim) + " but got " +
              shape_string(w->shape));
  // Output shape for 'none': (N) with a 1-D target, else 0-d.
  const Shape none_shape = t.dim() > 0 ? Shape{nframe} : Shape{};
  if (nframe == 0) {
    // Policy 5: PyTorch 2.2 (CPU and CUDA) resizes the output to 0-d and returns without writing
    // it (uninitialised memory), and later releases still do: lossbench rejects the case. 'none'
    // is well defined: an empty (0) tensor.
    check(c.reduction == "none", ErrorKind::Value,
          "multi_margin_loss of an empty batch (input " + shape_string(x.shape) +
              ") with reduction '" + c.reduction +
              "' is undefined in PyTorch 2.2 (it returns uninitialised memory)");
  }
  for (const std::int64_t v : t.ints)
    check(v >= 0 && v < dim, ErrorKind::Index,
          "target out of range: " + std::to_string(v) + " not in [0, " + std::to_string(dim) + ")");

  // ---- forward ----
  const auto xv = input_values(r, "input");
  std::vector<Real> wv;
  if (w) wv = input_values(r, "weight");
  const Real margin = param_as(c, "margin", dtype);  // margin.to<scalar_t>()
  const std::size_t C = static_cast<std::size_t>(dim);
  const Real cdim(static_cast<long long>(dim));
  std::vector<Real> losses(static_cast<std::size_t>(nframe));
  // The local gradient of each sample's inner sum (before the 1/C and upstream factors).
  std::vector<Real> local(r.grad ? xv.size() : 0, Real(0));
  for (std::size_t n = 0; n < static_cast<std::size_t>(nframe); ++n) {
    const Real* row = xv.data() + n * C;
    const std::size_t y = static_cast<std::size_t>(t.ints[n]);
    std::vector<Real> terms, grad_y;
    for (std::size_t i = 0; i < C; ++i) {
      if (i == y) continue;
      // (margin - x_y) + x_i as one correctly rounded sum: its sign, and so the hinge test, is
      // exact; MPFR's sum gives NaN for inf - inf as IEEE arithmetic does.
      const Real z = sum({margin, -row[y], row[i]});
      if (!(z > 0)) continue;
      Real h = p == 1 ? z : Real(z * z);
      if (w) h *= wv[y];
      terms.push_back(std::move(h));
      if (r.grad) {
        Real gi = p == 1 ? Real(1) : Real(2 * z);
        if (w) gi *= wv[y];
        grad_y.push_back(-gi);
        local[n * C + i] = std::move(gi);
      }
    }
    losses[n] = sum(terms) / cdim;
    if (r.grad) local[n * C + y] = sum(grad_y);
  }

  Evaluation e;
  const Shape per_sample = c.reduction == "none" ? none_shape : Shape{nframe};
  e.output = reduce(std::move(losses), per_sample, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, per_sample, c.reduction);
    std::vector<Real> gx(xv.size());
    for (std::size_t i = 0; i < gx.size(); ++i) gx[i] = local[i] * g[i / C] / cdim;
    e.grads["input"] = grad_tensor(x, std::move(gx));
  }
  return e;
}

}  // namespace lossbench::ref
