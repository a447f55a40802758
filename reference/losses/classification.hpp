#pragma once
// Pieces shared by the references of nll_loss and cross_entropy (docs/losses/nll_loss.md,
// docs/losses/cross_entropy.md): the (N, C, d1..dk) layout, PyTorch 2.2's nll_loss_nd
// validation, the NLL forward and backward on given log-probabilities, and an exact,
// stable log_softmax.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../common.hpp"

namespace lossbench::ref::classification {

// An input of shape (C), (N, C) or (N, C, d1..dk), seen as N x C x S with S = d1 * ... * dk.
// A "position" is one (n, s) pair, numbered n * S + s: the flat index of a class-index target
// of shape (N, d1..dk), and of the "none" output.
struct Layout {
  bool unbatched = false;  // input of shape (C)
  std::int64_t n = 1, c = 0, s = 1;
  Shape out_shape;  // the "none" output: the input's shape without its class dim ({} if (C))

  std::size_t positions() const { return static_cast<std::size_t>(n * s); }
  std::size_t classes() const { return static_cast<std::size_t>(c); }
  // Flat index of class `k` at position `i`.
  std::size_t at(std::size_t i, std::size_t k) const {
    const auto ss = static_cast<std::size_t>(s);
    return ((i / ss) * classes() + k) * ss + i % ss;
  }
};

// The layout of an input of at least one dimension.
inline Layout layout_of(const Shape& input) {
  Layout l;
  l.unbatched = input.size() == 1;
  if (l.unbatched) {
    l.c = input[0];
    return l;
  }
  l.n = input[0];
  l.c = input[1];
  l.out_shape.push_back(input[0]);
  for (std::size_t k = 2; k < input.size(); ++k) {
    l.s *= input[k];
    l.out_shape.push_back(input[k]);
  }
  return l;
}

// PyTorch's name of a scalar type, as in "expected scalar type Long but found Double".
inline std::string torch_type_name(DType d) {
  switch (d) {
    case DType::float64: return "Double";
    case DType::float32: return "Float";
    case DType::float16: return "Half";
    case DType::bfloat16: return "BFloat16";
    case DType::int64: return "Long";
  }
  return "?";
}

// The class-index view of a target after PyTorch 2.2's nll_loss_nd checks.
struct Targets {
  std::vector<std::int64_t> t;  // one per position
  std::vector<bool> ignored;    // t == ignore_index
};

// Validates input / target / weight as nll_loss_nd does in PyTorch 2.2 (LossNLL.cpp
// nll_loss_nd_symint, the nll_loss_forward meta function, check_inputs_nll_loss2d), in
// PyTorch's order, and returns the targets. Checked against torch 2.2.2.
inline Targets check_nll(const Shape& input, const Tensor& target, const Tensor* weight,
                         std::int64_t ignore_index) {
  const std::size_t dim = input.size();
  check(dim >= 1, ErrorKind::ShapeMismatch, "Expected 1 or more dimensions (got 0)");
  if (dim >= 2) {
    // A 0-d target reads as batch size 0 in PyTorch's message.
    const std::int64_t tb = target.shape.empty() ? 0 : target.shape[0];
    check(input[0] == tb, ErrorKind::ShapeMismatch,
          "Expected input batch_size (" + std::to_string(input[0]) +
              ") to match target batch_size (" + std::to_string(tb) + ").");
  }
  const std::int64_t classes = dim == 1 ? input[0] : input[1];
  if (dim <= 2) {
    check(target.dim() <= 1, ErrorKind::ShapeMismatch,
          "0D or 1D target tensor expected, multi-target not supported");
    // A 1-D input takes a 0-d target; the meta check also lets through a 1-D target with
    // as many elements as the input (then only its first element is read: see below).
    const bool no_batch_dim = dim == 1 && target.dim() == 0;
    check(no_batch_dim || (target.dim() == 1 && input[0] == target.shape[0]),
          ErrorKind::ShapeMismatch,
          "size mismatch (got input: " + shape_string(input) +
              ", target: " + shape_string(target.shape) + ")");
    check(!weight || (weight->dim() == 1 && weight->numel() == classes), ErrorKind::ShapeMismatch,
          "weight tensor should be defined either for all " + std::to_string(classes) +
              " classes or no classes but got weight tensor of shape: " +
              shape_string(weight ? weight->shape : Shape{}));
  } else {
    if (dim != 4) {
      // Viewed as (N, C, 1, -1) and routed to nll_loss2d after this check.
      const Shape want_tail(input.begin() + 2, input.end());
      const Shape got_tail =
          target.shape.empty() ? Shape{} : Shape(target.shape.begin() + 1, target.shape.end());
      Shape want{input[0]};
      want.insert(want.end(), want_tail.begin(), want_tail.end());
      check(got_tail == want_tail, ErrorKind::ShapeMismatch,
            "Expected target size " + shape_string(want) + ", got " + shape_string(target.shape));
    } else {
      check(target.dim() == 3, ErrorKind::ShapeMismatch,
            "only batches of spatial targets supported (3D tensors) but got targets of "
            "dimension: " +
                std::to_string(target.dim()));
    }
    check(!weight || weight->numel() == classes, ErrorKind::ShapeMismatch,
          "weight tensor should be defined either for all or no classes");
    if (dim == 4)
      check(
          target.shape[0] == input[0] && target.shape[1] == input[2] && target.shape[2] == input[3],
          ErrorKind::ShapeMismatch,
          "size mismatch (got input: " + shape_string(input) +
              " , target: " + shape_string(target.shape));
  }
  check(target.dtype == DType::int64, ErrorKind::Type,
        "expected scalar type Long but found " + torch_type_name(target.dtype));

  Targets out;
  if (dim == 1) {
    // The CPU kernel reads target[0] only (batch size 1), even for a 1-D target of C elements;
    // an empty target gives the empty reductions.
    if (!target.ints.empty()) out.t.push_back(target.ints[0]);
  } else {
    out.t = target.ints;
  }
  out.ignored.resize(out.t.size());
  for (std::size_t i = 0; i < out.t.size(); ++i) {
    out.ignored[i] = out.t[i] == ignore_index;
    if (!out.ignored[i])
      check(out.t[i] >= 0 && out.t[i] < classes, ErrorKind::Index,
            "Target " + std::to_string(out.t[i]) + " is out of bounds.");
  }
  return out;
}

// The NLL part on values v (input for nll_loss, log_softmax for cross_entropy).
struct NllTerms {
  std::vector<Real> terms;  // -w_t v_t per position; +0 where ignored
  Real total_weight;        // sum of w_t over non-ignored positions (their count without weight)
};

inline NllTerms nll_terms(const std::vector<Real>& v, const Layout& l, const Targets& tg,
                          const std::vector<Real>* w) {
  NllTerms r;
  r.terms.resize(tg.t.size());
  std::vector<Real> ws{Real(0)};
  for (std::size_t i = 0; i < tg.t.size(); ++i) {
    if (tg.ignored[i]) {
      r.terms[i] = Real(0);
      continue;
    }
    const auto k = static_cast<std::size_t>(tg.t[i]);
    const Real wk = w ? (*w)[k] : Real(1);
    r.terms[i] = -(v[l.at(i, k)] * wk);
    ws.push_back(wk);
  }
  r.total_weight = sum(ws);
  return r;
}

// Sum of terms as PyTorch's accumulators give it: starting from +0, so that a sum of -0
// terms is +0 as in the kernels.
inline Real sum_from_zero(std::vector<Real> terms) {
  terms.emplace_back(0);
  return sum(terms);
}

// The NLL output: "none" keeps the terms (a 0-d output for a 1-D input, as the CPU scalar path
// 0 - w x), "sum" sums them, "mean" divides the sum by the total weight (0/0 = NaN when every
// target is ignored, which is the CPU result also for a single ignored sample).
inline RealTensor nll_reduce(const NllTerms& t, const Layout& l, std::string_view reduction,
                             DType dtype) {
  if (reduction == "none" && !l.unbatched) return {dtype, l.out_shape, t.terms};
  Real total = sum_from_zero(t.terms);
  if (reduction == "mean")
    total = total / t.total_weight;
  else if (reduction != "sum" && reduction != "none")
    throw Error(ErrorKind::Value, std::string(reduction) + " is not a valid value for reduction");
  return {dtype, {}, {std::move(total)}};
}

// The upstream gradient of each position's NLL term: g_i for "none" on a batched input, g for
// "sum" (and "none" on a 1-D input), g / total_weight for "mean" (nll_loss_backward computes
// -(g / total_weight) then multiplies by w_t; the caller negates).
inline std::vector<Real> nll_upstream(const Request& r, const Layout& l, const Real& total_weight,
                                      std::string_view reduction, std::size_t count) {
  if (reduction == "none" && !l.unbatched) return upstream(r, l.out_shape);
  Real g = upstream(r, {}).front();
  if (reduction == "mean") g = g / total_weight;
  return std::vector<Real>(count, g);
}

// Adds the NLL backward into grad (shape of v): grad[i, t_i] += w_t * (-s_i) for non-ignored i.
inline void nll_backward(std::vector<Real>& grad, const std::vector<Real>& s, const Layout& l,
                         const Targets& tg, const std::vector<Real>* w) {
  for (std::size_t i = 0; i < tg.t.size(); ++i) {
    if (tg.ignored[i]) continue;
    const auto k = static_cast<std::size_t>(tg.t[i]);
    const Real minus_s = -s[i];
    grad[l.at(i, k)] += w ? Real((*w)[k] * minus_s) : minus_s;
  }
}

// log_softmax along the class dim, exactly. With m the row max and d_c = x_c - m:
// e_c = exp(d_c), z = sum_c e_c = 1 + (sum over c != argmax of e_c), and
// log p_c = d_c - log1p(z - 1), so that the sum is correctly rounded (mpfr_sum) and a sum near 1
// keeps its tiny excess. As PyTorch's kernel: NaN anywhere in a row, or an infinite max (+inf,
// or a row of -inf), makes the whole row NaN; a -inf logit below a finite max gives -inf.
struct Softmax {
  std::vector<Real> logp;  // log_softmax, input layout
  std::vector<Real> e;     // exp(x - max), input layout
  std::vector<Real> z;     // sum of e over the classes, per position
};

inline Softmax log_softmax(const std::vector<Real>& x, const Layout& l) {
  Softmax out;
  out.logp.resize(x.size());
  out.e.resize(x.size());
  out.z.resize(l.positions());
  const std::size_t C = l.classes();
  if (C == 0) return out;
  std::vector<Real> d(C), rest;
  for (std::size_t i = 0; i < l.positions(); ++i) {
    Real m = x[l.at(i, 0)];
    for (std::size_t k = 1; k < C; ++k) m = maximum(m, x[l.at(i, k)]);
    std::size_t arg = C;
    for (std::size_t k = 0; k < C; ++k) {
      d[k] = x[l.at(i, k)] - m;
      out.e[l.at(i, k)] = exp(d[k]);
      if (arg == C && iszero(d[k])) arg = k;
    }
    rest.clear();
    for (std::size_t k = 0; k < C; ++k)
      if (k != arg) rest.push_back(out.e[l.at(i, k)]);
    Real lse;
    if (arg == C || !isfinite(m)) {
      out.z[i] = sum(rest);  // NaN
      lse = log(out.z[i]);
    } else {
      const Real s = sum(rest);
      out.z[i] = s + 1;
      lse = log1p(s);
    }
    for (std::size_t k = 0; k < C; ++k) out.logp[l.at(i, k)] = d[k] - lse;
  }
  return out;
}

// The log_softmax backward, dx_c = dl_c - p_c sum_k dl_k, on every position (an ignored row with
// NaN logits gets NaN, as in PyTorch). Written (dl_c z - e_c sum_k dl_k) / z with p_c = e_c / z,
// so that a gradient that is exactly 0 (uniform logits against a uniform target) is computed
// as exactly 0 and certifies.
inline std::vector<Real> log_softmax_backward(const std::vector<Real>& dl, const Softmax& sm,
                                              const Layout& l) {
  std::vector<Real> dx(dl.size());
  const std::size_t C = l.classes();
  std::vector<Real> row(C);
  for (std::size_t i = 0; i < l.positions(); ++i) {
    for (std::size_t k = 0; k < C; ++k) row[k] = dl[l.at(i, k)];
    const Real s = sum(row);
    const Real& z = sm.z[i];
    for (std::size_t k = 0; k < C; ++k) {
      const std::size_t j = l.at(i, k);
      dx[j] = (dl[j] * z - sm.e[j] * s) / z;
    }
  }
  return dx;
}

}  // namespace lossbench::ref::classification
