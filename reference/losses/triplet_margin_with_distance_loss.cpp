// triplet_margin_with_distance_loss (docs/losses/triplet_margin_with_distance_loss.md), the
// triplet machinery it shares with triplet_margin_loss, and the distance registry of
// reference/distance.hpp.
//
// PyTorch 2.2 (torch/nn/functional.py, pure Python):
//   dp = D(a, pos); dn = D(a, neg); if swap: dn = torch.minimum(dn, D(pos, neg))
//   loss = torch.clamp_min(margin + dp - dn, 0), then mean / sum / none.
// triplet_margin_loss (ATen Loss.cpp) is the same with D = pairwise_distance(x, y, p, eps) and
// at::min for the swap.
//
// Exact ties. The hinge at exactly 0 and the swap tie d(a, n) == d(p, n) are usually reached
// through square roots (p = 2, cosine), where the certification loop could never settle an exact
// 0 or an exact tie. Each distance value of a row with finite inputs is therefore also held in an
// exact form over the rationals (GMP): u + k sqrt(x) for p = 0, 1, 2, +-inf and cosine, or
// x^(1/q) for an integer p = q in [3, 64]. The sign of d1 - d2 + margin is decided exactly from
// these forms (for x^(1/q) only when margin = 0); otherwise it is taken from the computed values.
#include <gmp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>

#include "common.hpp"
#include "distance.hpp"

namespace lossbench::ref {

// ---------------------------------------------------------------------------------------------
// Registry
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, DistanceFn, std::less<>> fns;
  Registry() {
    DistanceFn sq;
    sq.value = [](const std::vector<Real>& x, const std::vector<Real>& y) {
      std::vector<Real> t(x.size());
      for (std::size_t j = 0; j < x.size(); ++j) {
        const Real d = x[j] - y[j];
        t[j] = d * d;
      }
      return sum(t);
    };
    sq.gradient = [](const std::vector<Real>& x, const std::vector<Real>& y, std::vector<Real>& dx,
                     std::vector<Real>& dy) {
      for (std::size_t j = 0; j < x.size(); ++j) {
        const Real d = x[j] - y[j];
        dx[j] = 2 * d;
        dy[j] = -2 * d;
      }
    };
    fns.emplace("squared_euclidean", std::move(sq));
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_distance(std::string name, DistanceFn fn) {
  check(!name.empty(), ErrorKind::Value, "register_distance: empty name");
  check(name != "pairwise_distance" && name != "cosine", ErrorKind::Value,
        "register_distance: '" + name + "' is a reserved distance name");
  check(static_cast<bool>(fn.value), ErrorKind::Value,
        "register_distance: distance '" + name + "' has no value function");
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  r.fns[std::move(name)] = std::move(fn);
}

bool unregister_distance(std::string_view name) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.fns.find(name);
  if (it == r.fns.end()) return false;
  r.fns.erase(it);
  return true;
}

std::optional<DistanceFn> find_distance(std::string_view name) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.fns.find(name);
  if (it == r.fns.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> registered_distances() {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, fn] : r.fns) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Triplet machinery
namespace detail {
namespace {

// An exact rational (GMP mpq).
class Q {
 public:
  Q() { mpq_init(v_); }
  explicit Q(long n) {
    mpq_init(v_);
    mpq_set_si(v_, n, 1);
  }
  // The exact value of a finite Real.
  explicit Q(const Real& x) {
    mpq_init(v_);
    if (iszero(x)) return;
    mpz_t m;
    mpz_init(m);
    const mpfr_exp_t e = mpfr_get_z_2exp(m, x.backend().data());
    mpq_set_z(v_, m);
    if (e > 0)
      mpq_mul_2exp(v_, v_, static_cast<mp_bitcnt_t>(e));
    else if (e < 0)
      mpq_div_2exp(v_, v_, static_cast<mp_bitcnt_t>(-e));
    mpz_clear(m);
  }
  Q(const Q& o) {
    mpq_init(v_);
    mpq_set(v_, o.v_);
  }
  Q(Q&& o) noexcept {
    mpq_init(v_);
    mpq_swap(v_, o.v_);
  }
  Q& operator=(const Q& o) {
    if (this != &o) mpq_set(v_, o.v_);
    return *this;
  }
  Q& operator=(Q&& o) noexcept {
    mpq_swap(v_, o.v_);
    return *this;
  }
  ~Q() { mpq_clear(v_); }

  int sign() const { return mpq_sgn(v_); }
  friend int cmp(const Q& a, const Q& b) { return mpq_cmp(a.v_, b.v_); }
  friend Q operator+(const Q& a, const Q& b) { return op(mpq_add, a, b); }
  friend Q operator-(const Q& a, const Q& b) { return op(mpq_sub, a, b); }
  friend Q operator*(const Q& a, const Q& b) { return op(mpq_mul, a, b); }
  friend Q operator/(const Q& a, const Q& b) { return op(mpq_div, a, b); }
  Q operator-() const {
    Q r;
    mpq_neg(r.v_, v_);
    return r;
  }
  Q abs() const {
    Q r;
    mpq_abs(r.v_, v_);
    return r;
  }
  Q pow(unsigned long n) const {  // canonical in, canonical out
    Q r;
    mpz_pow_ui(mpq_numref(r.v_), mpq_numref(v_), n);
    mpz_pow_ui(mpq_denref(r.v_), mpq_denref(v_), n);
    return r;
  }

 private:
  template <class F>
  static Q op(F f, const Q& a, const Q& b) {
    Q r;
    f(r.v_, a.v_, b.v_);
    return r;
  }
  mpq_t v_;
};

// sign(k sqrt(x) + c), x >= 0.
int sign1(const Q& k, const Q& x, const Q& c) {
  const int sk = x.sign() == 0 ? 0 : k.sign();
  const int sc = c.sign();
  if (sk == 0) return sc;
  if (sc == 0 || sc == sk) return sk;
  return sk * (k * k * x - c * c).sign();
}

// sign(a sqrt(x) + b sqrt(y) + c), x, y >= 0.
int sign2(const Q& a, const Q& x, const Q& b, const Q& y, const Q& c) {
  const int sl = sign1(a, x, c);
  const int sr = y.sign() == 0 ? 0 : b.sign();
  if (sr == 0) return sl;
  if (sl == 0 || sl == sr) return sr;
  // |L| vs |R| with L = a sqrt(x) + c, R = b sqrt(y): L^2 - R^2 = a^2 x + c^2 - b^2 y + 2ac
  // sqrt(x).
  return sl * sign1(Q(2) * a * c, x, a * a * x + c * c - b * b * y);
}

// The exact value of one distance element.
struct Form {
  enum class Kind { None, Lin, Root };
  Kind kind = Kind::None;
  Q u, k, x;               // Lin: u + k sqrt(x)
  unsigned long root = 0;  // Root: x^(1/root)
};

// sign(f1 - f2 + m) when the forms decide it.
std::optional<int> exact_sign(const Form& f1, const Form& f2, const std::optional<Q>& m) {
  if (!m) return std::nullopt;
  using K = Form::Kind;
  if (f1.kind == K::Lin && f2.kind == K::Lin)
    return sign2(f1.k, f1.x, -f2.k, f2.x, f1.u - f2.u + *m);
  if (f1.kind == K::Root && f2.kind == K::Root && f1.root == f2.root && m->sign() == 0)
    return cmp(f1.x, f2.x) > 0 ? 1 : (cmp(f1.x, f2.x) < 0 ? -1 : 0);
  return std::nullopt;
}

// torch.sgn on reals: NaN gives 0 (CPU sign is (0 < x) - (x < 0)).
Real tsgn(const Real& x) { return isnan(x) ? Real(0) : sgn(x); }

std::int64_t prod(const Shape& s, std::size_t from, std::size_t to) {
  std::int64_t n = 1;
  for (std::size_t k = from; k < to; ++k) n *= s[k];
  return n;
}

// For each element of `to`, the flat index of the element of `from` (broadcast to `to`).
std::vector<std::size_t> bcast_index(const Shape& from, const Shape& to) {
  const std::size_t n = static_cast<std::size_t>(numel(to));
  const std::size_t nd = to.size();
  std::vector<std::int64_t> stride(nd, 0);
  std::int64_t s = 1;
  for (std::size_t k = 0; k < from.size(); ++k) {
    const std::size_t fk = from.size() - 1 - k, tk = nd - 1 - k;
    stride[tk] = from[fk] == 1 ? 0 : s;
    s *= from[fk];
  }
  std::vector<std::size_t> idx(n);
  std::vector<std::int64_t> pos(nd, 0);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    for (std::size_t k = 0; k < nd; ++k) off += pos[k] * stride[k];
    idx[i] = static_cast<std::size_t>(off);
    for (std::size_t k = nd; k-- > 0;) {
      if (++pos[k] < to[k]) break;
      pos[k] = 0;
    }
  }
  return idx;
}

std::string format_double(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

using Kind = DistanceSpec::Kind;

// One distance tensor D(x, y): shapes, values, exact forms and what the backward needs.
struct Dist {
  Shape sx, sy, b, out;  // input shapes, their broadcast, the output shape
  std::size_t outer = 1, len = 1, inner = 1;
  std::vector<Real> xb, yb;  // broadcast inputs (shape b)
  std::vector<Real> r;       // pairwise: x - y + eps (shape b)
  std::vector<Real> value;   // shape out
  std::vector<Form> form;    // shape out
  // cosine: sums of squares, norms, clamped norms, dot product, cosine similarity, finiteness
  std::vector<Real> a1, a2, n1, n2, c1, c2, dot, s;
  std::vector<bool> finite;

  std::size_t elem(std::size_t o, std::size_t j, std::size_t i) const {
    return (o * len + j) * inner + i;
  }
};

// Shapes and validation (before any computation).
Dist prepare(const Shape& sx, const Shape& sy, const DistanceSpec& spec) {
  Dist d;
  d.sx = sx;
  d.sy = sy;
  d.b = broadcast_shapes(sx, sy);
  if (spec.kind == Kind::Cosine) {
    // F.cosine_similarity(x, y) reduces over dim=1.
    check(d.b.size() >= 2, ErrorKind::Index,
          "Dimension out of range (expected to be in range of [-1, 0], but got 1) "
          "(cosine_similarity over dim 1 needs inputs of at least 2 dimensions)");
  }
  if (d.b.empty()) {
    d.out = {};
    return d;  // one row of length 1
  }
  const std::size_t axis = spec.kind == Kind::Cosine ? 1 : d.b.size() - 1;
  d.outer = static_cast<std::size_t>(prod(d.b, 0, axis));
  d.len = static_cast<std::size_t>(d.b[axis]);
  d.inner = static_cast<std::size_t>(prod(d.b, axis + 1, d.b.size()));
  d.out = d.b;
  d.out.erase(d.out.begin() + static_cast<std::ptrdiff_t>(axis));
  if (spec.kind == Kind::Pairwise && d.len == 0 && (spec.p < 0 || isinf(spec.p))) {
    throw Error(ErrorKind::Value,
                "linalg.vector_norm cannot compute the " +
                    format_double(static_cast<double>(spec.p)) + " norm on the dimension " +
                    std::to_string(axis) +
                    " because this dimension is empty and the operation does not have an "
                    "identity");
  }
  return d;
}

bool is_small_int(const Real& p, unsigned long& q) {
  if (!isfinite(p) || p < 3 || p > 64 || floor(p) != p) return false;
  q = static_cast<unsigned long>(p);
  return true;
}

Real rootn(const Real& x, unsigned long q) {
  Real r;
  mpfr_rootn_ui(r.backend().data(), x.backend().data(), q, MPFR_RNDN);
  return r;
}

void compute_pairwise(Dist& d, const DistanceSpec& spec) {
  const Real& p = spec.p;
  const std::size_t n_out = d.outer * d.inner;
  d.r.resize(d.xb.size());
  for (std::size_t e = 0; e < d.xb.size(); ++e) d.r[e] = d.xb[e] - d.yb[e] + spec.eps;
  d.value.resize(n_out);
  d.form.resize(n_out);
  unsigned long q = 0;
  const bool small_int = is_small_int(p, q);
  const bool eps_finite = isfinite(spec.eps);
  const Q qeps = eps_finite ? Q(spec.eps) : Q();
  for (std::size_t o = 0; o < d.outer; ++o) {
    for (std::size_t i = 0; i < d.inner; ++i) {
      const std::size_t oi = o * d.inner + i;
      std::vector<Real> row(d.len);
      bool finite = eps_finite;
      for (std::size_t j = 0; j < d.len; ++j) {
        const std::size_t e = d.elem(o, j, i);
        row[j] = d.r[e];
        finite = finite && isfinite(d.xb[e]) && isfinite(d.yb[e]);
      }
      Real v;
      if (p == 0) {
        long count = 0;
        for (const auto& x : row) count += iszero(x) ? 0 : 1;  // NaN counts, as x != 0
        v = Real(count);
      } else if (p == 1) {
        std::vector<Real> t;
        for (const auto& x : row) t.push_back(abs(x));
        v = sum(t);
      } else if (p == 2) {
        std::vector<Real> t;
        for (const auto& x : row) t.push_back(x * x);
        v = sqrt(sum(t));
      } else if (isinf(p)) {
        v = abs(row.at(0));
        for (const auto& x : row) v = p > 0 ? maximum(v, abs(x)) : minimum(v, abs(x));
      } else {
        std::vector<Real> t;
        for (const auto& x : row) t.push_back(pow(abs(x), p));
        const Real s = sum(t);
        v = small_int ? rootn(s, q) : pow(s, Real(1) / p);
      }
      d.value[oi] = v;
      if (!finite) continue;
      Form& f = d.form[oi];
      std::vector<Q> rq;
      for (std::size_t j = 0; j < d.len; ++j) {
        const std::size_t e = d.elem(o, j, i);
        rq.push_back(Q(d.xb[e]) - Q(d.yb[e]) + qeps);
      }
      if (p == 0) {
        long count = 0;
        for (const auto& x : rq) count += x.sign() != 0;
        f.kind = Form::Kind::Lin;
        f.u = Q(count);
      } else if (p == 1) {
        f.kind = Form::Kind::Lin;
        for (const auto& x : rq) f.u = f.u + x.abs();
      } else if (p == 2) {
        f.kind = Form::Kind::Lin;
        f.k = Q(1);
        for (const auto& x : rq) f.x = f.x + x * x;
      } else if (isinf(p)) {
        f.kind = Form::Kind::Lin;
        f.u = rq.at(0).abs();
        for (const auto& x : rq) {
          const Q a = x.abs();
          if (p > 0 ? cmp(a, f.u) > 0 : cmp(a, f.u) < 0) f.u = a;
        }
      } else if (small_int) {
        f.kind = Form::Kind::Root;
        f.root = q;
        for (const auto& x : rq) f.x = f.x + x.abs().pow(q);
      }
    }
  }
}

void compute_cosine(Dist& d, const DistanceSpec& spec) {
  const std::size_t n_out = d.outer * d.inner;
  d.value.resize(n_out);
  d.form.resize(n_out);
  d.a1.resize(n_out);
  d.a2.resize(n_out);
  d.dot.resize(n_out);
  d.finite.resize(n_out);
  d.n1.resize(n_out);
  d.n2.resize(n_out);
  d.c1.resize(n_out);
  d.c2.resize(n_out);
  d.s.resize(n_out);
  const Real e2 = spec.eps * spec.eps;
  const Q qe2 = Q(spec.eps) * Q(spec.eps);
  for (std::size_t o = 0; o < d.outer; ++o) {
    for (std::size_t i = 0; i < d.inner; ++i) {
      const std::size_t oi = o * d.inner + i;
      std::vector<Real> tp, t1, t2;
      bool finite = true;
      for (std::size_t j = 0; j < d.len; ++j) {
        const Real& x = d.xb[d.elem(o, j, i)];
        const Real& y = d.yb[d.elem(o, j, i)];
        tp.push_back(x * y);
        t1.push_back(x * x);
        t2.push_back(y * y);
        finite = finite && isfinite(x) && isfinite(y);
      }
      const Real pr = sum(tp), a1 = sum(t1), a2 = sum(t2);
      // N_i = clamp_min(||x_i||, eps) = sqrt(max(A_i, eps^2)) (eps >= 0).
      const Real m1 = maximum(a1, e2), m2 = maximum(a2, e2);
      d.a1[oi] = a1;
      d.a2[oi] = a2;
      d.dot[oi] = pr;
      d.finite[oi] = finite;
      d.n1[oi] = sqrt(a1);
      d.n2[oi] = sqrt(a2);
      d.c1[oi] = sqrt(m1);
      d.c2[oi] = sqrt(m2);
      const Real qq = m1 * m2, sq = sqrt(qq);
      // cos = sum (x / N1)(y / N2) = P / sqrt(M1 M2). Any non-finite element gives NaN in
      // PyTorch (x / N with x or N infinite).
      d.s[oi] = finite ? Real(pr / sq) : nan();
      // 1 - cos without cancellation: (Q - P^2) / (sqrt(Q) (sqrt(Q) + P)) for P > 0.
      if (!finite)
        d.value[oi] = nan();
      else if (pr > 0)
        d.value[oi] = (qq - pr * pr) / (sq * (sq + pr));
      else
        d.value[oi] = 1 - pr / sq;
      if (!finite) continue;
      Q qp, q1, q2;
      for (std::size_t j = 0; j < d.len; ++j) {
        const Q x(d.xb[d.elem(o, j, i)]), y(d.yb[d.elem(o, j, i)]);
        qp = qp + x * y;
        q1 = q1 + x * x;
        q2 = q2 + y * y;
      }
      const Q qm = (cmp(q1, qe2) < 0 ? qe2 : q1) * (cmp(q2, qe2) < 0 ? qe2 : q2);
      if (qm.sign() == 0) continue;  // 0 / 0
      Form& f = d.form[oi];
      f.kind = Form::Kind::Lin;
      f.u = Q(1);
      f.k = -(qp / qm);
      f.x = qm;
    }
  }
}

void compute_custom(Dist& d, const DistanceSpec& spec) {
  const std::size_t n_out = d.outer * d.inner;
  d.value.resize(n_out);
  d.form.resize(n_out);
  for (std::size_t o = 0; o < d.outer; ++o) {
    for (std::size_t i = 0; i < d.inner; ++i) {
      std::vector<Real> x(d.len), y(d.len);
      for (std::size_t j = 0; j < d.len; ++j) {
        x[j] = d.xb[d.elem(o, j, i)];
        y[j] = d.yb[d.elem(o, j, i)];
      }
      d.value[o * d.inner + i] = spec.custom.value(x, y);
    }
  }
}

void compute(Dist& d, const std::vector<Real>& x, const std::vector<Real>& y,
             const DistanceSpec& spec) {
  d.xb = broadcast_to(x, d.sx, d.b);
  d.yb = broadcast_to(y, d.sy, d.b);
  switch (spec.kind) {
    case Kind::Pairwise: compute_pairwise(d, spec); break;
    case Kind::Cosine: compute_cosine(d, spec); break;
    case Kind::Custom: compute_custom(d, spec); break;
  }
}

// PyTorch 2.2 norm_backward (torch/csrc/autograd/FunctionsManual.cpp) for one row: the
// gradient of n = ||r||_p given dL/dn = g, branch by branch as PyTorch writes it (so that NaN
// and inf propagate alike). p = 0 returns an undefined gradient in PyTorch (None): zeros here.
void norm_backward(const std::vector<Real>& r, const Real& n, const Real& g, const Real& p,
                   std::vector<Real>& out) {
  const std::size_t len = r.size();
  out.assign(len, Real(0));
  if (p == 0) return;
  if (p == 1) {
    for (std::size_t j = 0; j < len; ++j) out[j] = tsgn(r[j]) * g;
    return;
  }
  if (p == 2) {
    for (std::size_t j = 0; j < len; ++j) out[j] = g * (iszero(n) ? Real(0) : Real(r[j] / n));
    return;
  }
  if (isinf(p)) {  // amax/amin of |r|: the gradient is shared by the elements equal to n (or NaN)
    long count = 0;
    std::vector<bool> mask(len);
    for (std::size_t j = 0; j < len; ++j) {
      mask[j] = abs(r[j]) == n || isnan(r[j]);
      count += mask[j];
    }
    const Real share = g / Real(count);
    for (std::size_t j = 0; j < len; ++j) out[j] = tsgn(r[j]) * (share * Real(mask[j] ? 1 : 0));
    return;
  }
  if (p < 1) {
    const Real scale = g * pow(n, 1 - p);
    for (std::size_t j = 0; j < len; ++j) {
      const Real scaled = iszero(r[j]) ? Real(0) : Real(pow(abs(r[j]), p - 1));
      out[j] = tsgn(r[j]) * scaled * scale;
    }
    return;
  }
  const Real scale = iszero(n) ? Real(0) : Real(g / pow(n, p - 1));
  for (std::size_t j = 0; j < len; ++j) {
    const Real scaled =
        p < 2 ? Real(tsgn(r[j]) * pow(abs(r[j]), p - 1)) : Real(r[j] * pow(abs(r[j]), p - 2));
    out[j] = scaled * scale;
  }
}

// Adds the gradients of D(x, y), given dL/dD per output element, to gx (shape sx), gy (sy).
void backward(const Dist& d, const std::vector<Real>& gd, const DistanceSpec& spec,
              std::vector<Real>& gx, std::vector<Real>& gy) {
  std::vector<Real> bx(d.xb.size(), Real(0)), by(d.yb.size(), Real(0));
  for (std::size_t o = 0; o < d.outer; ++o) {
    for (std::size_t i = 0; i < d.inner; ++i) {
      const std::size_t oi = o * d.inner + i;
      const Real& g = gd[oi];
      if (spec.kind == Kind::Pairwise) {
        std::vector<Real> row(d.len), out;
        for (std::size_t j = 0; j < d.len; ++j) row[j] = d.r[d.elem(o, j, i)];
        norm_backward(row, d.value[oi], g, spec.p, out);
        for (std::size_t j = 0; j < d.len; ++j) {
          bx[d.elem(o, j, i)] = out[j];
          by[d.elem(o, j, i)] = -out[j];
        }
      } else if (spec.kind == Kind::Cosine) {
        // D = 1 - sum_j (x_j / N1)(y_j / N2), N = clamp_min(||.||, eps) where the clamp is done
        // in place under no_grad: autograd differentiates N as the unclamped norm (with
        // norm_backward's 0 where the norm is 0). So, with gs = -g and s the cosine:
        //   dx_j = gs y_j / (N1 N2) - gs s / N1 * (x_j / n1)   (second term 0 where n1 == 0).
        // Where n1 < eps this is not the mathematical derivative of the clamped expression.
        // For a finite row with n1 > 0 the same value is computed as
        //   dx_j = gs (y_j K1 - P x_j) / (N1 K1 N2),  K1 = N1 n1 (= A1 exactly when unclamped),
        // whose numerator is rational: a gradient that is exactly 0 (x parallel to y, e.g.
        // anchor == positive) is then computed exactly and certifies.
        const Real gs = -g;
        const Real gn1 = -gs * d.s[oi] / d.c1[oi], gn2 = -gs * d.s[oi] / d.c2[oi];
        const Real e2 = spec.eps * spec.eps;
        const bool exact1 = d.finite[oi] && !iszero(d.n1[oi]);
        const bool exact2 = d.finite[oi] && !iszero(d.n2[oi]);
        const Real k1 = !exact1 ? Real(0) : d.a1[oi] >= e2 ? d.a1[oi] : Real(spec.eps * d.n1[oi]);
        const Real k2 = !exact2 ? Real(0) : d.a2[oi] >= e2 ? d.a2[oi] : Real(spec.eps * d.n2[oi]);
        for (std::size_t j = 0; j < d.len; ++j) {
          const std::size_t e = d.elem(o, j, i);
          const Real& x = d.xb[e];
          const Real& y = d.yb[e];
          if (exact1) {
            bx[e] = gs * (y * k1 - d.dot[oi] * x) / (d.c1[oi] * k1 * d.c2[oi]);
          } else {
            const Real dn1 = iszero(d.n1[oi]) ? Real(0) : Real(x / d.n1[oi]);
            bx[e] = gs * (y / d.c2[oi]) / d.c1[oi] + gn1 * dn1;
          }
          if (exact2) {
            by[e] = gs * (x * k2 - d.dot[oi] * y) / (d.c2[oi] * k2 * d.c1[oi]);
          } else {
            const Real dn2 = iszero(d.n2[oi]) ? Real(0) : Real(y / d.n2[oi]);
            by[e] = gs * (x / d.c1[oi]) / d.c2[oi] + gn2 * dn2;
          }
        }
      } else {
        std::vector<Real> x(d.len), y(d.len), dx(d.len, Real(0)), dy(d.len, Real(0));
        for (std::size_t j = 0; j < d.len; ++j) {
          x[j] = d.xb[d.elem(o, j, i)];
          y[j] = d.yb[d.elem(o, j, i)];
        }
        spec.custom.gradient(x, y, dx, dy);
        check(dx.size() == d.len && dy.size() == d.len, ErrorKind::Value,
              "distance '" + spec.name + "': its gradient changed the size of dx or dy");
        for (std::size_t j = 0; j < d.len; ++j) {
          bx[d.elem(o, j, i)] = g * dx[j];
          by[d.elem(o, j, i)] = g * dy[j];
        }
      }
    }
  }
  const auto sx = sum_to(bx, d.b, d.sx), sy = sum_to(by, d.b, d.sy);
  for (std::size_t k = 0; k < sx.size(); ++k) gx[k] += sx[k];
  for (std::size_t k = 0; k < sy.size(); ++k) gy[k] += sy[k];
}

}  // namespace

Evaluation triplet_loss(const Request& r, const DistanceSpec& spec, const Real& margin, bool swap) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  const Tensor& ta = c.input("anchor");
  const Tensor& tp = c.input("positive");
  const Tensor& tn = c.input("negative");
  if (!(ta.dim() == tp.dim() && tp.dim() == tn.dim()))
    throw Error(ErrorKind::ShapeMismatch,
                "The anchor, positive, and negative tensors are expected to have the same number "
                "of dimensions, but got: anchor " +
                    std::to_string(ta.dim()) + "D, positive " + std::to_string(tp.dim()) +
                    "D, and negative " + std::to_string(tn.dim()) + "D inputs");
  if (r.grad && spec.kind == Kind::Custom && !spec.custom.gradient)
    throw Error(ErrorKind::Value, "distance '" + spec.name +
                                      "' was registered without a gradient: this case has no "
                                      "gradient");
  Dist dp = prepare(ta.shape, tp.shape, spec);
  Dist dn = prepare(ta.shape, tn.shape, spec);
  std::optional<Dist> ds;
  if (swap) ds = prepare(tp.shape, tn.shape, spec);
  Shape shape = broadcast_shapes(dp.out, dn.out);
  if (ds) shape = broadcast_shapes(shape, ds->out);

  const auto av = input_values(r, "anchor");
  const auto pv = input_values(r, "positive");
  const auto nv = input_values(r, "negative");
  compute(dp, av, pv, spec);
  compute(dn, av, nv, spec);
  if (ds) compute(*ds, pv, nv, spec);

  const auto ip = bcast_index(dp.out, shape);
  const auto in = bcast_index(dn.out, shape);
  const auto is = ds ? bcast_index(ds->out, shape) : std::vector<std::size_t>{};
  const std::optional<Q> qm = isfinite(margin) ? std::optional<Q>(Q(margin)) : std::nullopt;
  const std::optional<Q> q0 = Q();

  const std::size_t n = static_cast<std::size_t>(numel(shape));
  std::vector<Real> terms(n), gate(n), wn(n, Real(1)), ws(n, Real(0));
  for (std::size_t k = 0; k < n; ++k) {
    const Real& vp = dp.value[ip[k]];
    Real vn = dn.value[in[k]];
    const Form* fn = &dn.form[in[k]];
    if (ds) {
      // torch.minimum(dn, ds); backward: each gets g where it is strictly smaller, g/2 on a tie,
      // both g when the comparison is false both ways (NaN).
      const Real& vs = ds->value[is[k]];
      std::optional<int> sg = exact_sign(*fn, ds->form[is[k]], q0);
      if (!sg && !isnan(vn) && !isnan(vs)) sg = vn < vs ? -1 : (vs < vn ? 1 : 0);
      if (!sg) {
        vn = minimum(vn, vs);
        ws[k] = 1;
      } else if (*sg > 0) {
        vn = vs;
        fn = &ds->form[is[k]];
        wn[k] = 0;
        ws[k] = 1;
      } else if (*sg == 0) {
        wn[k] = Real(0.5);
        ws[k] = Real(0.5);
      }
    }
    const Real h = (margin + vp) - vn;
    // clamp_min(h, 0): the gradient passes where h >= 0 (inclusive), not for NaN.
    std::optional<int> sh = exact_sign(dp.form[ip[k]], *fn, qm);
    if (sh) {
      terms[k] = *sh > 0 ? maximum(h, Real(0)) : Real(0);
      gate[k] = *sh >= 0 ? 1 : 0;
    } else {
      terms[k] = maximum(h, Real(0));
      gate[k] = h >= 0 ? 1 : 0;
    }
  }
  Evaluation e;
  e.output = reduce(terms, shape, c.reduction, dtype);
  if (r.grad) {
    const auto g = per_element_upstream(r, shape, c.reduction);
    std::vector<Real> gp(n), gn(n), gs(n);
    for (std::size_t k = 0; k < n; ++k) {
      const Real gh = gate[k] * g[k];
      gp[k] = gh;
      gn[k] = -gh * wn[k];
      gs[k] = -gh * ws[k];
    }
    std::vector<Real> ga(av.size(), Real(0)), gpos(pv.size(), Real(0)), gneg(nv.size(), Real(0));
    backward(dp, sum_to(gp, shape, dp.out), spec, ga, gpos);
    backward(dn, sum_to(gn, shape, dn.out), spec, ga, gneg);
    if (ds) backward(*ds, sum_to(gs, shape, ds->out), spec, gpos, gneg);
    e.grads["anchor"] = grad_tensor(ta, std::move(ga));
    e.grads["positive"] = grad_tensor(tp, std::move(gpos));
    e.grads["negative"] = grad_tensor(tn, std::move(gneg));
  }
  return e;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
Evaluation evaluate_triplet_margin_with_distance_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  detail::DistanceSpec spec;
  const std::string name = c.param_is_none("distance_function")
                               ? std::string("pairwise_distance")
                               : c.param_string("distance_function");
  if (name == "pairwise_distance") {
    // torch.pairwise_distance(x, y) defaults: p = 2, eps = 1e-6; eps is a scalar added to a
    // tensor, so it is used at the tensor's dtype (checked against torch 2.2.2 for float32 and
    // float16: the scalar is rounded to the tensor dtype).
    spec.kind = detail::DistanceSpec::Kind::Pairwise;
    spec.p = 2;
    spec.eps = Real(round_to(1e-6, dtype));
  } else if (name == "cosine") {
    // 1 - F.cosine_similarity(x, y): dim = 1, eps = 1e-8 (clamp_min_ on the norms, rounded to
    // the dtype: 0 in float16, so a zero vector gives 0/0 = NaN there, as in torch).
    spec.kind = detail::DistanceSpec::Kind::Cosine;
    spec.eps = Real(round_to(1e-8, dtype));
  } else {
    auto fn = find_distance(name);
    if (!fn)
      throw Error(ErrorKind::Value, "unknown distance_function '" + name +
                                        "': expected None, \"pairwise_distance\", \"cosine\" or a "
                                        "name registered with register_distance");
    spec.kind = detail::DistanceSpec::Kind::Custom;
    spec.name = name;
    spec.custom = std::move(*fn);
  }
  // margin + dist_pos: a Python float added to a tensor, used at the tensor's dtype. 2.2 does not
  // validate the margin (margin > 0 is checked from 2.3 on).
  const Real margin = param_as(c, "margin", dtype);
  return detail::triplet_loss(r, spec, margin, c.param_bool("swap"));
}

}  // namespace lossbench::ref
