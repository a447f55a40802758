// smooth_l1_loss (docs/losses/smooth_l1_loss.md): with u = x - y, z = |u|,
//   beta == 0 (also -0.0): F.smooth_l1_loss calls l1_loss, l = z;
//   otherwise, beta rounded as the kernel uses it:
//     l = 0.5 z^2 / beta   if z < beta
//     l = z - beta/2       otherwise (also at z == beta and for NaN).
// Input and target broadcast (the functional warns and calls broadcast_tensors); N is the
// broadcast numel. A negative (or NaN) beta is rejected by ATen's check beta >= 0.
// Parameter rounding: the CPU kernel converts beta to scalar_t for float16/float32/float64, but
// its bfloat16 path computes in float32 with a float32 beta (checked against torch 2.2.2), so
// beta is rounded to the loss dtype, except to float32 for bfloat16.
// Gradients:
//   beta == 0: l1_loss's, sgn(u) g with sgn(0) = 0; torch 2.2.2's sgn(NaN) is 0 on CPU, so a
//     NaN difference gives a 0 gradient there (checked against torch 2.2.2).
//   beta > 0 (derivatives.yaml smooth_l1_loss_backward; CPU vector path):
//     d/dx = (|u| >= beta ? sign(u) : u / beta) g, d/dy = -d/dx; NaN gives NaN, +-inf gives
//     +-g. At |u| == beta the value is +-1 = u/beta. The CPU scalar path divides by the double
//     beta rather than the rounded one; the reference uses the rounded beta throughout.
//   A positive beta that rounds to 0 in the dtype: l = z; at u == 0 the CPU scalar path gives 0
//     and the vector path -1; the reference gives 0 (l1_loss's convention).
#include "common.hpp"

namespace lossbench::ref {

Evaluation evaluate_smooth_l1_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& y = c.input("target");
  const Shape shape = broadcast_shapes(x.shape, y.shape);
  const double beta_param = c.param_float("beta");
  const bool l1 = beta_param == 0.0;
  // ATen: TORCH_CHECK(beta >= 0, ...), so NaN is rejected too.
  check(l1 || beta_param >= 0, ErrorKind::Value,
        "smooth_l1_loss does not support negative values for beta. (beta = " +
            std::to_string(beta_param) + ")");
  const Real beta = param_as(c, "beta", dtype == DType::bfloat16 ? DType::float32 : dtype);
  const Real half_beta = beta / 2;

  const auto xv = broadcast_to(input_values(r, "input"), x.shape, shape);
  const auto yv = broadcast_to(input_values(r, "target"), y.shape, shape);
  std::vector<Real> diff(xv.size()), terms(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) {
    diff[i] = xv[i] - yv[i];
    const Real z = abs(diff[i]);
    if (l1)
      terms[i] = z;
    else
      terms[i] = z < beta ? Real(z * z / 2 / beta) : Real(z - half_beta);
  }
  Evaluation e;
  e.output = reduce(std::move(terms), shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gx(diff.size()), gy(diff.size());
    for (std::size_t i = 0; i < diff.size(); ++i) {
      const Real& u = diff[i];
      Real slope;
      if (l1 || iszero(beta))
        slope = isnan(u) && l1 ? Real(0) : sgn(u);  // sgn(0) = 0; torch's sgn(NaN) = 0
      else
        slope = abs(u) >= beta ? sgn(u) : Real(u / beta);
      gx[i] = slope * g[i];
      gy[i] = -gx[i];
    }
    e.grads["input"] = grad_tensor(x, sum_to(gx, shape, x.shape));
    e.grads["target"] = grad_tensor(y, sum_to(gy, shape, y.shape));
  }
  return e;
}

}  // namespace lossbench::ref
