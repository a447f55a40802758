// nll_loss: -w_t x_t per position, 0 where the target is ignore_index (docs/losses/nll_loss.md).
// Reductions: "mean" divides by the total weight of the non-ignored targets (NaN when there is
// none, including PyTorch's CPU result for a single ignored sample, which is canonical).
// Gradient: input only (target is an index, weight is not differentiable in PyTorch 2.2):
// d/dx[i, t_i] = -w_t s_i with s_i = g_i ("none"), g ("sum"), g / total_weight ("mean"), and 0
// elsewhere; an all-ignored "mean" gets an exactly 0 gradient although its value is NaN.
#include "classification.hpp"

namespace lossbench::ref {

Evaluation evaluate_nll_loss(const Request& r) {
  namespace cl = classification;
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x = c.input("input");
  const Tensor& target = c.input("target");
  const Tensor* weight = c.optional_input("weight");
  const cl::Targets tg = cl::check_nll(x.shape, target, weight, c.param_int("ignore_index"));
  const cl::Layout l = cl::layout_of(x.shape);

  const auto xv = input_values(r, "input");
  std::vector<Real> wv;
  if (weight) wv = input_values(r, "weight");
  const std::vector<Real>* w = weight ? &wv : nullptr;

  const cl::NllTerms terms = cl::nll_terms(xv, l, tg, w);
  Evaluation e;
  e.output = cl::nll_reduce(terms, l, c.reduction, dtype);
  if (r.grad) {
    const auto s = cl::nll_upstream(r, l, terms.total_weight, c.reduction, tg.t.size());
    std::vector<Real> gx(xv.size(), Real(0));
    cl::nll_backward(gx, s, l, tg, w);
    e.grads["input"] = grad_tensor(x, std::move(gx));
  }
  return e;
}

}  // namespace lossbench::ref
