// cosine_embedding_loss (docs/losses/cosine_embedding_loss.md).
//
// PyTorch 2.2 (Loss.cpp::cosine_embedding_loss), d = the target's ndim (0 or 1):
//   P  = sum_d(x1 * x2)            (x1 and x2 broadcast: (N, D) with (1, D), (N, 1), ...)
//   M1 = sum_d(x1 * x1) + EPSILON  (over x1's OWN shape: a broadcast x1 is not expanded here)
//   M2 = sum_d(x2 * x2) + EPSILON
//   cos = P / sqrt(M1 * M2)
//   l = where(y == 1, 1 - cos, 0) + where(y == -1, clamp_min(cos - margin, 0), 0)
// Targets other than +-1 give 0. The target broadcasts against cos (it is where's condition).
// EPSILON is `constexpr float EPSILON = 1e-12`, added to the tensor as a scalar: it is rounded to
// the tensor's dtype: float(1e-12) = 9.99999996e-13 for float32 and float64, 0 for float16 (a
// zero vector then gives NaN), and bfloat16(float(1e-12)) for bfloat16 (checked on torch 2.2.2:
// zero vectors give NaN in float16 but a finite loss in bfloat16). The margin is rounded to the
// tensor's dtype the same way.
//
// Gradients (autograd through the composite), with g_cos = -[y == 1] g + [y == -1][cos >= m] g
// (clamp_min inclusive at cos == margin) summed over the target's broadcast:
//   d/dx1 = g_cos (x2 M1 - P x1) / (sqrt(M1 M2) M1)   (= g_cos (x2 / sqrt(M1 M2) - cos x1 / M1))
// and symmetrically for x2; the target gets none. The combined numerator makes mathematically
// zero gradients (parallel vectors when EPSILON is 0) come out exactly 0.
// The hinge test cos >= margin is decided exactly (rational comparison of P^2 with m^2 M1 M2).
#include <algorithm>
#include <utility>

#include "common.hpp"

namespace lossbench::ref {
namespace {

// An exact dyadic number: MPFR with as many bits as the value needs.
class Exact {
 public:
  explicit Exact(mpfr_prec_t bits) { mpfr_init2(v_, std::max<mpfr_prec_t>(bits, MPFR_PREC_MIN)); }
  explicit Exact(const Real& r) : Exact(mpfr_get_prec(r.backend().data())) {
    mpfr_set(v_, r.backend().data(), MPFR_RNDN);
  }
  Exact(const Exact&) = delete;
  Exact& operator=(const Exact&) = delete;
  Exact(Exact&& o) noexcept : owned_(std::exchange(o.owned_, false)) { v_[0] = o.v_[0]; }
  ~Exact() {
    if (owned_) mpfr_clear(v_);
  }
  mpfr_ptr get() { return v_; }
  mpfr_srcptr get() const { return v_; }
  int sign() const { return mpfr_sgn(v_); }

 private:
  mpfr_t v_;
  bool owned_ = true;
};

Exact exact_mul(const Exact& a, const Exact& b) {
  Exact r(mpfr_get_prec(a.get()) + mpfr_get_prec(b.get()));
  mpfr_mul(r.get(), a.get(), b.get(), MPFR_RNDN);  // exact: the precisions add up
  return r;
}

// Exact sum of finite terms.
Exact exact_sum(const std::vector<Exact>& terms) {
  bool any = false;
  mpfr_exp_t hi = 0, lo = 0;
  for (const auto& t : terms) {
    if (mpfr_zero_p(t.get())) continue;
    const mpfr_exp_t e = mpfr_get_exp(t.get());
    const mpfr_exp_t l = e - static_cast<mpfr_exp_t>(mpfr_get_prec(t.get()));
    hi = any ? std::max(hi, e) : e;
    lo = any ? std::min(lo, l) : l;
    any = true;
  }
  if (!any) {
    Exact z(MPFR_PREC_MIN);
    mpfr_set_zero(z.get(), 1);
    return z;
  }
  mpfr_prec_t bits = static_cast<mpfr_prec_t>(hi - lo) + 2;
  for (std::size_t n = terms.size(); n > 0; n >>= 1) ++bits;  // carries
  Exact r(bits);
  std::vector<mpfr_ptr> ptrs;
  for (const auto& t : terms) ptrs.push_back(const_cast<mpfr_ptr>(t.get()));
  mpfr_sum(r.get(), ptrs.data(), ptrs.size(), MPFR_RNDN);
  return r;
}

// Exact sum_k u_k v_k (+ extra), all finite.
Exact exact_dot(const std::vector<Real>& u, const std::vector<Real>& v, const Real* extra) {
  std::vector<Exact> t;
  for (std::size_t k = 0; k < u.size(); ++k) t.push_back(exact_mul(Exact(u[k]), Exact(v[k])));
  if (extra) t.emplace_back(*extra);
  return exact_sum(t);
}

}  // namespace

Evaluation evaluate_cosine_embedding_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& x1 = c.input("input1");
  const Tensor& x2 = c.input("input2");
  const Tensor& y = c.input("target");
  const auto td = y.dim();
  if (td != 0 && td != 1)
    throw Error(ErrorKind::ShapeMismatch,
                "0D or 1D target tensor expected, multi-target not supported");
  if (td == 1 && (x1.dim() != 2 || x2.dim() != 2))
    throw Error(ErrorKind::ShapeMismatch,
                "1D target tensor expects 2D input tensors, but found inputs with sizes " +
                    shape_string(x1.shape) + " and " + shape_string(x2.shape) + ".");
  if (td == 0 && (x1.dim() != 1 || x2.dim() != 1))
    throw Error(ErrorKind::ShapeMismatch,
                "0D target tensor expects 1D input tensors, but found inputs with sizes " +
                    shape_string(x1.shape) + " and " + shape_string(x2.shape) + ".");
  const Shape full = broadcast_shapes(x1.shape, x2.shape);  // input1 * input2
  // Rows: the shape without the feature dim, the same for P, M1 M2 and cos after broadcasting.
  const Shape rows_shape(full.begin(), full.end() - 1);
  const Shape out_shape = broadcast_shapes(y.shape, rows_shape);  // where(target == 1, ...)

  const Real margin = param_as(c, "margin", dtype);
  const Real eps(round_to(static_cast<double>(1e-12f), dtype));

  const auto a = input_values(r, "input1");
  const auto b = input_values(r, "input2");
  const auto rows = static_cast<std::size_t>(numel(rows_shape));
  const auto dim = static_cast<std::size_t>(full.back());
  const auto d1 = static_cast<std::size_t>(x1.shape.back());
  const auto d2 = static_cast<std::size_t>(x2.shape.back());
  const auto rows1 = static_cast<std::size_t>(td == 1 ? x1.shape[0] : 1);
  const auto rows2 = static_cast<std::size_t>(td == 1 ? x2.shape[0] : 1);
  auto row1 = [&](std::size_t n) { return rows1 == 1 ? 0 : n; };
  auto row2 = [&](std::size_t n) { return rows2 == 1 ? 0 : n; };
  // Flat index of the element of x1 / x2 read at (row n, feature k) of the broadcast product.
  auto at1 = [&](std::size_t n, std::size_t k) { return row1(n) * d1 + (d1 == 1 ? 0 : k); };
  auto at2 = [&](std::size_t n, std::size_t k) { return row2(n) * d2 + (d2 == 1 ? 0 : k); };

  // M = sum of squares + EPSILON over each input's own rows (one correctly rounded sum).
  auto magnitudes = [&](const std::vector<Real>& v, std::size_t nrows, std::size_t width) {
    std::vector<Real> m(nrows);
    for (std::size_t n = 0; n < nrows; ++n) {
      std::vector<Real> t;
      for (std::size_t k = 0; k < width; ++k) t.push_back(v[n * width + k] * v[n * width + k]);
      t.push_back(eps);
      m[n] = sum(t);
    }
    return m;
  };
  const auto m1 = magnitudes(a, rows1, d1);
  const auto m2 = magnitudes(b, rows2, d2);
  std::vector<Real> p(rows), den(rows), cosv(rows);
  std::vector<char> hinge_on(rows);  // cos - margin >= 0 (exactly; NaN: false)
  for (std::size_t n = 0; n < rows; ++n) {
    std::vector<Real> u, v;
    for (std::size_t k = 0; k < dim; ++k) {
      u.push_back(a[at1(n, k)]);
      v.push_back(b[at2(n, k)]);
    }
    std::vector<Real> t;
    for (std::size_t k = 0; k < dim; ++k) t.push_back(u[k] * v[k]);
    p[n] = sum(t);
    const Real& ma = m1[row1(n)];
    const Real& mb = m2[row2(n)];
    den[n] = ma == mb ? ma : sqrt(ma * mb);  // sqrt(M^2) = M exactly (M >= 0)
    cosv[n] = p[n] / den[n];
    if (isnan(cosv[n])) continue;
    if (!isfinite(p[n]) || !isfinite(ma) || !isfinite(mb) || iszero(den[n])) {
      hinge_on[n] = cosv[n] - margin >= 0;
      continue;
    }
    // P / sqrt(Q) >= m with Q = M1 M2 > 0, decided on exact values:
    //   P >= 0, m <= 0: true;  P < 0, m >= 0: false;
    //   P >= 0, m > 0: P^2 >= m^2 Q;  P < 0, m < 0: P^2 <= m^2 Q.
    const int ps = sgn(p[n]) < 0 ? -1 : 1;  // exact: correctly rounded sum of exact products
    const int ms = margin < 0 ? -1 : (iszero(margin) ? 0 : 1);
    if (ps > 0 && ms <= 0) {
      hinge_on[n] = true;
    } else if (ps < 0 && ms >= 0) {
      hinge_on[n] = false;
    } else {
      std::vector<Real> r1, r2;
      for (std::size_t k = 0; k < d1; ++k) r1.push_back(a[row1(n) * d1 + k]);
      for (std::size_t k = 0; k < d2; ++k) r2.push_back(b[row2(n) * d2 + k]);
      const Exact ep = exact_dot(u, v, nullptr);
      const Exact ea = exact_dot(r1, r1, &eps);
      const Exact eb = exact_dot(r2, r2, &eps);
      const Exact em(margin);
      const Exact lhs = exact_mul(ep, ep);
      const Exact rhs = exact_mul(exact_mul(em, em), exact_mul(ea, eb));
      const int cmp = mpfr_cmp(lhs.get(), rhs.get());
      hinge_on[n] = ps > 0 ? cmp >= 0 : cmp <= 0;
    }
  }

  // The loss per output element (output = broadcast of target and rows).
  const auto yv = broadcast_to(reals(y), y.shape, out_shape);
  const auto cos_o = broadcast_to(cosv, rows_shape, out_shape);
  const auto hinge_o = [&] {
    std::vector<Real> h;
    for (auto on : hinge_on) h.emplace_back(on ? 1 : 0);
    return broadcast_to(h, rows_shape, out_shape);
  }();
  const std::size_t n_out = yv.size();
  std::vector<char> is_pos(n_out), is_neg(n_out);
  std::vector<Real> terms(n_out);
  for (std::size_t o = 0; o < n_out; ++o) {
    is_pos[o] = !isnan(yv[o]) && yv[o] == 1;
    is_neg[o] = !isnan(yv[o]) && yv[o] == -1;
    const Real& cs = cos_o[o];
    Real neg;  // clamp_min(cos - margin, 0)
    if (isnan(cs))
      neg = cs;
    else if (hinge_o[o] != 0)
      neg = maximum(cs - margin, Real(0));  // >= 0 exactly: no noise
    else
      neg = Real(0);
    terms[o] = (is_pos[o] ? Real(1 - cs) : Real(0)) + (is_neg[o] ? neg : Real(0));
  }
  Evaluation e;
  e.output = reduce(std::move(terms), out_shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, out_shape, c.reduction);
    std::vector<Real> gpos(n_out), gneg(n_out);
    for (std::size_t o = 0; o < n_out; ++o) {
      gpos[o] = is_pos[o] ? g[o] : Real(0);  // where backward
      gneg[o] = is_neg[o] ? g[o] : Real(0);
    }
    const auto gpos_r = sum_to(gpos, out_shape, rows_shape);
    const auto gneg_r = sum_to(gneg, out_shape, rows_shape);
    std::vector<std::vector<Real>> parts1(a.size()), parts2(b.size());
    for (std::size_t n = 0; n < rows; ++n) {
      // 1 - cos and clamp_min (inclusive: where(cos - margin >= 0, grad, 0)).
      const Real gcos = -gpos_r[n] + (hinge_on[n] ? gneg_r[n] : Real(0));
      const Real& ma = m1[row1(n)];
      const Real& mb = m2[row2(n)];
      // Contribution of row n to each element of x1: the elements it reads, each with the sum
      // of the x2 values it is multiplied with in P.
      std::vector<std::vector<Real>> o1(d1), o2(d2);
      for (std::size_t k = 0; k < dim; ++k) {
        o1[d1 == 1 ? 0 : k].push_back(b[at2(n, k)]);
        o2[d2 == 1 ? 0 : k].push_back(a[at1(n, k)]);
      }
      const Real f1 = gcos / (den[n] * ma), f2 = gcos / (den[n] * mb);
      for (std::size_t k = 0; k < d1; ++k) {
        const std::size_t i = row1(n) * d1 + k;
        // x2 M1 - P x1: correctly rounded products of the same real give exactly 0.
        const Real num = sum({sum(o1[k]) * ma, -(p[n] * a[i])});
        parts1[i].push_back(f1 * num);
      }
      for (std::size_t k = 0; k < d2; ++k) {
        const std::size_t i = row2(n) * d2 + k;
        const Real num = sum({sum(o2[k]) * mb, -(p[n] * b[i])});
        parts2[i].push_back(f2 * num);
      }
    }
    std::vector<Real> g1, g2;
    for (const auto& q : parts1) g1.push_back(sum(q));
    for (const auto& q : parts2) g2.push_back(sum(q));
    e.grads["input1"] = grad_tensor(x1, std::move(g1));
    e.grads["input2"] = grad_tensor(x2, std::move(g2));
  }
  return e;
}

}  // namespace lossbench::ref
