// cross_entropy (docs/losses/cross_entropy.md), PyTorch 2.2's cross_entropy_loss_symint:
// - probability mode when target.shape == input.shape: t' = (1 - e) t + e / C (if e > 0),
//   loss = -sum_c w_c t'_c log_softmax(x)_c per position; "mean" divides the total by N d1..dk;
// - index + label smoothing (e > 0): (1 - e) nll(log_softmax(x)) + (e / C) smooth, with
//   smooth_i = -sum_c w_c log_softmax(x)_ic (0 where ignored), its "mean" over the weight sum of
//   the non-ignored targets;
// - plain index mode: nll_loss(log_softmax(x)).
// log_softmax is exact (classification.hpp). Constants: PyTorch multiplies by the double scalars
// (1 - e) and e / C, which the tensor ops convert to their compute type: the double for float64,
// float32 for float32 and the 16-bit dtypes (opmath). So 1 - e and e / C are computed in
// double, then rounded to float32 unless the loss is float64.
// Gradients: index modes differentiate the input only (PyTorch 2.2 refuses a weight that
// requires grad: "nll_loss_forward is not differentiable with respect to argument 'weight'");
// probability mode differentiates input, target and weight.
#include <sstream>

#include "classification.hpp"

namespace lossbench::ref {

namespace {
namespace cl = classification;

// "label_smoothing must be between 0.0 and 1.0. Got: 1.5" (c10::str prints the double with an
// ostream, as here).
void check_label_smoothing(double e) {
  if (e > 1.0) {
    std::ostringstream m;
    m << "label_smoothing must be between 0.0 and 1.0. Got: " << e;
    throw Error(ErrorKind::Value, m.str());
  }
}

struct Constants {
  double e = 0;
  bool smoothing = false;
  Real keep, spread;  // 1 - e and e / C, rounded as PyTorch uses them
};

Constants constants(const Case& c, DType dtype, std::int64_t classes) {
  Constants k;
  k.e = c.param_float("label_smoothing");
  // A negative label_smoothing is never checked and acts as 0 (checked against torch 2.2.2).
  k.smoothing = k.e > 0.0;
  if (k.smoothing) check_label_smoothing(k.e);
  const DType ct = dtype == DType::float64 ? DType::float64 : DType::float32;
  k.keep = Real(round_to(1.0 - k.e, ct));
  k.spread = Real(round_to(k.e / static_cast<double>(classes), ct));
  return k;
}

Evaluation probability_mode(const Request& r, DType dtype) {
  const Case& c = r.c;
  const Tensor& x = c.input("input");
  const Tensor& target = c.input("target");
  const Tensor* weight = c.optional_input("weight");
  check(is_floating(target.dtype), ErrorKind::Type,
        "Expected floating point type for target with class probabilities, got " +
            cl::torch_type_name(target.dtype));
  check(c.param_int("ignore_index") < 0, ErrorKind::Value,
        "ignore_index is not supported for floating point target");
  check(x.dim() >= 1, ErrorKind::Index, "Dimension specified as 1 but tensor has no dimensions");
  const cl::Layout l = cl::layout_of(x.shape);
  check(!weight || (weight->dim() == 1 && weight->numel() == l.c), ErrorKind::ShapeMismatch,
        "cross_entropy: weight tensor should be defined either for all " + std::to_string(l.c) +
            " classes or no classes but got weight tensor of shape: " +
            shape_string(weight ? weight->shape : Shape{}));
  const Constants k = constants(c, dtype, l.c);

  const auto xv = input_values(r, "input");
  const auto tv = input_values(r, "target");
  std::vector<Real> wv;
  if (weight) wv = input_values(r, "weight");
  const cl::Softmax sm = cl::log_softmax(xv, l);
  const std::vector<Real>& logp = sm.logp;
  std::vector<Real> ts(tv.size());
  for (std::size_t j = 0; j < tv.size(); ++j)
    ts[j] = k.smoothing ? Real(tv[j] * k.keep + k.spread) : tv[j];

  const std::size_t P = l.positions(), C = l.classes();
  // products[j] = logp * t' * w (as PyTorch's input * target * weight_).
  std::vector<Real> prod(xv.size());
  for (std::size_t i = 0; i < P; ++i)
    for (std::size_t cc = 0; cc < C; ++cc) {
      const std::size_t j = l.at(i, cc);
      prod[j] = weight ? Real(logp[j] * ts[j] * wv[cc]) : Real(logp[j] * ts[j]);
    }

  Evaluation e;
  const bool none = c.reduction == "none";
  const std::size_t count = static_cast<std::size_t>(x.numel()) / (C == 0 ? 1 : C);
  if (none) {
    std::vector<Real> out(P), row(C);
    for (std::size_t i = 0; i < P; ++i) {
      for (std::size_t cc = 0; cc < C; ++cc) row[cc] = prod[l.at(i, cc)];
      out[i] = -sum(row);
    }
    e.output = {dtype, l.out_shape, std::move(out)};
  } else {
    Real total = -sum(prod);
    if (c.reduction == "mean")
      total = x.numel() == 0 ? nan() : Real(total / Real(static_cast<long long>(count)));
    else if (c.reduction != "sum")
      throw Error(ErrorKind::Value, c.reduction + " is not a valid value for reduction");
    e.output = {dtype, {}, {std::move(total)}};
  }

  if (r.grad) {
    // Upstream of each position's -sum_c(...): g_i, g, or g / (N d1..dk).
    std::vector<Real> s;
    if (none) {
      s = upstream(r, l.out_shape);
    } else {
      Real g = upstream(r, {}).front();
      if (c.reduction == "mean") g = g / Real(static_cast<long long>(count));
      s.assign(P, g);
    }
    std::vector<Real> gl(xv.size()), gt(xv.size());
    std::vector<std::vector<Real>> gw_parts(C);
    for (std::size_t i = 0; i < P; ++i) {
      const Real ms = -s[i];
      for (std::size_t cc = 0; cc < C; ++cc) {
        const std::size_t j = l.at(i, cc);
        const Real mw = weight ? Real(ms * wv[cc]) : ms;  // grad of (logp * t')
        gl[j] = mw * ts[j];
        const Real gts = mw * logp[j];
        gt[j] = k.smoothing ? Real(gts * k.keep) : gts;
        if (weight) gw_parts[cc].push_back(ms * (logp[j] * ts[j]));
      }
    }
    e.grads["input"] = grad_tensor(x, cl::log_softmax_backward(gl, sm, l));
    e.grads["target"] = grad_tensor(target, std::move(gt));
    if (weight) {
      std::vector<Real> gw(C);
      for (std::size_t cc = 0; cc < C; ++cc) gw[cc] = sum(gw_parts[cc]);
      e.grads["weight"] = grad_tensor(*weight, std::move(gw));
    }
  }
  return e;
}

Evaluation index_mode(const Request& r, DType dtype) {
  const Case& c = r.c;
  const Tensor& x = c.input("input");
  const Tensor& target = c.input("target");
  const Tensor* weight = c.optional_input("weight");
  const std::int64_t ignore_index = c.param_int("ignore_index");
  const double e_param = c.param_float("label_smoothing");
  if (e_param > 0.0) check_label_smoothing(e_param);
  // log_softmax(input, 1) on a 0-d input.
  check(x.dim() >= 1, ErrorKind::Index,
        "Dimension out of range (expected to be in range of [-1, 0], but got 1)");
  const cl::Targets tg = cl::check_nll(x.shape, target, weight, ignore_index);
  const cl::Layout l = cl::layout_of(x.shape);
  const Constants k = constants(c, dtype, l.c);
  if (k.smoothing && weight && x.dim() > 1)
    // The smoothing term views the weight as [1, C, 1, ...] from weight.size(0).
    check(weight->dim() == 1, ErrorKind::ShapeMismatch,
          "shape of the weight " + shape_string(weight->shape) +
              " is invalid for the smoothing term's view [1, C, 1, ...]");

  const auto xv = input_values(r, "input");
  std::vector<Real> wv;
  if (weight) wv = input_values(r, "weight");
  const std::vector<Real>* w = weight ? &wv : nullptr;
  const cl::Softmax sm = cl::log_softmax(xv, l);
  const std::vector<Real>& logp = sm.logp;
  const cl::NllTerms nll = cl::nll_terms(logp, l, tg, w);

  Evaluation e;
  const std::size_t P = tg.t.size(), C = l.classes();
  if (!k.smoothing) {
    e.output = cl::nll_reduce(nll, l, c.reduction, dtype);
  } else {
    // smooth_i = -sum_c w_c logp_ic, masked to 0 where the target is ignore_index.
    std::vector<Real> smooth(P), row(C);
    for (std::size_t i = 0; i < P; ++i) {
      if (tg.ignored[i]) {
        smooth[i] = Real(0);
        continue;
      }
      for (std::size_t cc = 0; cc < C; ++cc)
        row[cc] = weight ? Real(logp[l.at(i, cc)] * wv[cc]) : logp[l.at(i, cc)];
      smooth[i] = -sum(row);
    }
    const RealTensor nll_out = cl::nll_reduce(nll, l, c.reduction, dtype);
    RealTensor sm_out;
    if (c.reduction == "none" && !l.unbatched) {
      sm_out = {dtype, l.out_shape, smooth};
    } else {
      Real total = cl::sum_from_zero(smooth);
      // The mean's denominator: the weights of the non-ignored targets gathered and summed
      // (the count without weight), the same value as NLL's total weight.
      if (c.reduction == "mean") total = total / nll.total_weight;
      sm_out = {dtype, {}, {std::move(total)}};
    }
    e.output = nll_out;
    for (std::size_t j = 0; j < nll_out.data.size(); ++j)
      e.output.data[j] = k.keep * nll_out.data[j] + sm_out.data[j] * k.spread;
  }

  if (r.grad) {
    std::vector<Real> gl(xv.size(), Real(0));
    if (!k.smoothing) {
      const auto s = cl::nll_upstream(r, l, nll.total_weight, c.reduction, P);
      cl::nll_backward(gl, s, l, tg, w);
    } else {
      // Upstream of the output, per position: g_i or g.
      std::vector<Real> g;
      if (c.reduction == "none" && !l.unbatched)
        g = upstream(r, l.out_shape);
      else
        g.assign(P, upstream(r, {}).front());
      // NLL part: grad_output (1 - e) g, through nll_loss_backward.
      std::vector<Real> s_nll(P), s_sm(P);
      for (std::size_t i = 0; i < P; ++i) {
        s_nll[i] = k.keep * g[i];
        s_sm[i] = g[i] * k.spread;
        if (c.reduction == "mean") {
          s_nll[i] = s_nll[i] / nll.total_weight;
          s_sm[i] = s_sm[i] / nll.total_weight;
        }
      }
      cl::nll_backward(gl, s_nll, l, tg, w);
      // Smoothing part: d/dlogp_ic = -s_i w_c on non-ignored positions (masked_fill's backward
      // gives 0 on ignored ones).
      for (std::size_t i = 0; i < P; ++i) {
        if (tg.ignored[i]) continue;
        const Real ms = -s_sm[i];
        for (std::size_t cc = 0; cc < C; ++cc) gl[l.at(i, cc)] += weight ? Real(ms * wv[cc]) : ms;
      }
    }
    e.grads["input"] = grad_tensor(x, cl::log_softmax_backward(gl, sm, l));
  }
  return e;
}

}  // namespace

Evaluation evaluate_cross_entropy(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  if (c.input("input").shape == c.input("target").shape) return probability_mode(r, dtype);
  return index_mode(r, dtype);
}

}  // namespace lossbench::ref
