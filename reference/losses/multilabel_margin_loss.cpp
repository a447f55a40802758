// multilabel_margin_loss (docs/losses/multilabel_margin_loss.md; spec B section 7).
//
// Per sample (a row of C scores x and a row of C int64 targets t):
//   the listed classes are t[0], t[1], ... up to (not including) the first negative entry;
//   loss = (1/C) sum_{listed j, in list order} sum_{d not listed} h(1 - x_j + x_d),
//   h(z) = z if z > 0 else 0 (strict, as the kernels' `if (z > 0)`; NaN z contributes nothing).
// A class listed twice is counted twice (the outer loop runs over the list, not the set).
// The margin is the integer constant 1, exact in every dtype.
//
// Shapes: input (C), (N, C) or 0-d (C = 1); target int64 with the same shape (for (C) and 0-d
// inputs any target of dim <= 1 with C elements). Output (N) for 'none' with a 2-D target, else
// 0-d (even for 'none').
//
// Gradient w.r.t. input (the kernels' formula, which is the derivative off the kinks): for every
// listed j and non-listed d with z > 0, grad[d] += g and grad[j] -= g, g = upstream / C. At
// z == 0 there is no contribution (strict), unlike clamp_min's inclusive convention. The
// kernel multiplies every element, zeros included, by grad_output, so an infinite grad_output
// gives NaN on the untouched elements: the reference does the same (count * upstream).
#include <algorithm>

#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_multilabel_margin_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& t = c.input("target");

  // ---- validation (LossMultiLabelMargin.cpp::multilabel_margin_loss_shape_check) ----
  const std::int64_t ndims = x.dim();
  const bool valid =
      (ndims == 2 && x.shape[1] != 0) || (ndims == 1 && x.shape[0] != 0) || ndims == 0;
  check(valid, ErrorKind::ShapeMismatch,
        "Expected non-empty vector or matrix with optional 0-dim batch size, but got: " +
            shape_string(x.shape));
  const std::int64_t nframe = ndims <= 1 ? 1 : x.shape[0];
  const std::int64_t dim = ndims == 0 ? 1 : x.shape[static_cast<std::size_t>(ndims - 1)];
  const bool target_ok = ndims <= 1 ? (t.dim() <= 1 && t.numel() == dim) : t.shape == x.shape;
  check(target_ok, ErrorKind::ShapeMismatch,
        "inconsistent target size: " + shape_string(t.shape) +
            " for input of size: " + shape_string(x.shape));
  // Output shape for 'none': (N) with a 2-D target, else 0-d.
  const Shape none_shape = t.dim() == 2 ? Shape{nframe} : Shape{};
  if (nframe == 0) {
    // Policy 5: PyTorch 2.2's CPU kernel resizes the output to 0-d and returns without writing
    // it (uninitialised memory; CUDA returns a size-0 tensor instead). No later release defines
    // the value, so lossbench rejects the case. 'none' is well defined: an empty (0) tensor.
    check(c.reduction == "none", ErrorKind::Value,
          "multilabel_margin_loss of an empty batch (input " + shape_string(x.shape) +
              ") with reduction '" + c.reduction +
              "' is undefined in PyTorch 2.2 (it returns uninitialised memory)");
  } else {
    // CPU: a global min/max check over the whole target, entries after the first -1 included.
    for (const std::int64_t v : t.ints)
      check(v >= -1 && v < dim, ErrorKind::Index,
            "argument #2 'target' is out of range: " + std::to_string(v) + " not in [-1, " +
                std::to_string(dim) + ")");
  }

  // ---- forward ----
  const auto xv = input_values(r, "input");
  const std::size_t C = static_cast<std::size_t>(dim);
  const Real one(1);
  const Real cdim(static_cast<long long>(dim));
  std::vector<Real> losses(static_cast<std::size_t>(nframe));
  // count[n * C + k]: how many active hinge terms add (+) or subtract (-) g to element k.
  std::vector<long long> count(r.grad ? xv.size() : 0, 0);
  for (std::size_t n = 0; n < static_cast<std::size_t>(nframe); ++n) {
    const Real* row = xv.data() + n * C;
    const std::int64_t* tr = t.ints.data() + n * C;
    const std::size_t listed = static_cast<std::size_t>(
        std::find_if(tr, tr + C, [](std::int64_t v) { return v < 0; }) - tr);
    std::vector<bool> is_target(C, false);
    for (std::size_t k = 0; k < listed; ++k) is_target[static_cast<std::size_t>(tr[k])] = true;
    std::vector<Real> terms;
    for (std::size_t k = 0; k < listed; ++k) {
      const std::size_t j = static_cast<std::size_t>(tr[k]);
      for (std::size_t d = 0; d < C; ++d) {
        if (is_target[d]) continue;
        // (1 - x_j) + x_d as one correctly rounded sum: its sign, and so the hinge test, is
        // exact; MPFR's sum gives NaN for inf - inf as IEEE arithmetic does.
        Real z = sum({one, -row[j], row[d]});
        if (z > 0) {
          terms.push_back(std::move(z));
          if (r.grad) {
            --count[n * C + j];
            ++count[n * C + d];
          }
        }
      }
    }
    losses[n] = sum(terms) / cdim;
  }

  Evaluation e;
  e.output = reduce(std::move(losses), c.reduction == "none" ? none_shape : Shape{nframe},
                    c.reduction, dtype);
  if (r.grad) {
    const auto g =
        per_element_upstream(r, c.reduction == "none" ? none_shape : Shape{nframe}, c.reduction);
    std::vector<Real> gx(xv.size());
    for (std::size_t i = 0; i < gx.size(); ++i) gx[i] = Real(count[i]) * g[i / C] / cdim;
    e.grads["input"] = grad_tensor(x, std::move(gx));
  }
  return e;
}

}  // namespace lossbench::ref
