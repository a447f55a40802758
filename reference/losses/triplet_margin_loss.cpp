// triplet_margin_loss (docs/losses/triplet_margin_loss.md).
//
// PyTorch 2.2 (aten/src/ATen/native/Loss.cpp):
//   dp = pairwise_distance(a, pos, p, eps); dn = pairwise_distance(a, neg, p, eps)
//   if swap: dn = at::min(dn, pairwise_distance(pos, neg, p, eps))
//   loss = clamp_min(margin + dp - dn, 0), reduced,
// with pairwise_distance(x, y) = norm(x - y + eps, p, dim = last) (eps added to every element of
// the difference). The computation, its exact tie decisions and the gradients (norm_backward,
// clamp_min inclusive at 0, minimum ties split g/2) are shared with
// triplet_margin_with_distance_loss: see reference/distance.hpp and
// reference/losses/triplet_margin_with_distance_loss.cpp.
#include "common.hpp"
#include "distance.hpp"

namespace lossbench::ref {

Evaluation evaluate_triplet_margin_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  detail::DistanceSpec spec;
  spec.kind = detail::DistanceSpec::Kind::Pairwise;
  // p: the norm kernel picks its branch (0, 1, 2, +-inf, general) on the double and computes the
  // general branch with acc_t(p), acc_t = float for float32/float16/bfloat16 and double for
  // float64: p is used rounded to float32 unless the loss is float64. (No difference for the
  // p of practical use, which are exact in float32.)
  spec.p = param_as(c, "p", dtype == DType::float64 ? DType::float64 : DType::float32);
  // eps and margin are Python floats combined with a tensor (x - y + eps, margin + dp): used at
  // the tensor's dtype (checked against torch 2.2.2: a float16 tensor plus a scalar rounds the
  // scalar to float16 first; float32 rounds it to float32).
  spec.eps = param_as(c, "eps", dtype);
  // 2.2 does not validate the margin (any value, <= 0 included; the check came in 2.3).
  const Real margin = param_as(c, "margin", dtype);
  return detail::triplet_loss(r, spec, margin, c.param_bool("swap"));
}

}  // namespace lossbench::ref
