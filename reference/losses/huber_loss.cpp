// huber_loss (docs/losses/huber_loss.md): with u = x - y, z = |u| and delta rounded to the
// loss dtype,
//   l = 0.5 z^2            if z < delta
//   l = delta (z - delta/2) otherwise (also at z == delta and for NaN, as PyTorch's branch).
// Input and target broadcast (F.huber_loss warns and calls broadcast_tensors); N is the
// broadcast numel.
// Parameter rounding: the CPU and CUDA kernels convert delta to scalar_t, including for float16
// and bfloat16 (Vectorized<Half/BFloat16> arithmetic; checked against torch 2.2.2), so delta is
// rounded to the loss dtype in every dtype. The positivity check is on the double, before
// rounding (a tiny delta that rounds to 0 is accepted and gives l = 0).
// Gradients (derivatives.yaml huber_loss_backward): d/dx = clamp(u, -delta, delta) g and
// d/dy = -d/dx. At |u| == delta the CPU kernel takes the clamped branch (+-delta), which equals
// u; at u == 0 the gradient is 0; at u = +-inf it is +-delta g (finite); NaN gives NaN.
// The CPU scalar path compares u with the double delta instead of the rounded one; the
// reference uses the rounded delta throughout (the forward's value).
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_huber_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(x.shape, y.shape);
  // ATen: TORCH_CHECK(delta > 0, ...), so NaN is rejected too.
  const double delta_param = c.param_float("delta");
  check(delta_param > 0, ErrorKind::Value,
        "huber_loss does not support non-positive values for delta. (delta = " +
            std::to_string(delta_param) + ")");
  const Real delta = param_as(c, "delta", dtype);
  const Real half_delta = delta / 2;

  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);
  std::vector<Real> diff(xv.size()), terms(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) {
    diff[i] = xv[i] - yv[i];
    const Real z = abs(diff[i]);
    terms[i] = z < delta ? Real(z * z / 2) : Real(delta * (z - half_delta));
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(diff.size()), gy(diff.size());
    for (std::size_t i = 0; i < diff.size(); ++i) {
      const Real& u = diff[i];
      // CPU kernel: u <= -delta -> -delta; u >= delta -> delta; else (NaN included) u.
      const Real slope = u <= -delta ? Real(-delta) : (u >= delta ? delta : u);
      gx[i] = slope * g[i];
      gy[i] = -gx[i];
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
  }
  return e;
}

}  // namespace lossbench::ref
