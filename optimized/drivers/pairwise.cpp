// The pairwise driver (see pairwise.hpp). Compiled for the baseline ISA.
#include "pairwise.hpp"

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../formulas/cosine_embedding_loss.hpp"
#include "../formulas/dd.hpp"
#include "../formulas/triplet_margin_loss.hpp"
#include "../formulas/triplet_margin_with_distance_loss.hpp"
#include "../kernels.hpp"
#include "args.hpp"
#include "elements.hpp"

namespace lossbench::opt::pairwise {

namespace {

namespace F = formulas;
using conformance::load_float;
using conformance::store_float;

// Rows up to this length compute the cosine gradients' numerators by Lagrange's identity
// (formulas/cosine_embedding_loss.hpp: O(D) per element, exact zeros for parallel rows).
constexpr std::int64_t kLagrangeMax = 64;

Shape contiguous(const Shape& shape) {
  Shape s(shape.size(), 1);
  for (std::size_t d = shape.size(); d > 1; --d) s[d - 2] = s[d - 1] * shape[d - 1];
  return s;
}

// Strides of a tensor (shape `own`, strides `st`) seen with the broadcast shape `to`: 0 along the
// dimensions it is broadcast over.
Shape view_strides(const Shape& own, const Shape& st, const Shape& to) {
  Shape r(to.size(), 0);
  const std::size_t lead = to.size() - own.size();
  for (std::size_t d = 0; d < own.size(); ++d)
    r[lead + d] = own[d] == 1 && to[lead + d] != 1 ? 0 : st[d];
  return r;
}

std::int64_t offset(std::int64_t flat, const Shape& shape, const Shape& st) {
  return row_offset(flat, shape, st);
}

double round_to(double v, std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT32: return static_cast<float>(v);
    case LB_FLOAT16: return conformance::half_to_double(conformance::double_to_half(v));
    case LB_BFLOAT16: return conformance::bfloat16_to_double(conformance::double_to_bfloat16(v));
    default: return v;
  }
}

// rd < 0: the last dimension.
Rows make_rows(const lb_tensor& x, const lb_tensor& y, int rd) {
  Rows w;
  w.x = &x;
  w.y = &y;
  Shape b = broadcast(shape_of(x), shape_of(y));
  const bool scalar = b.empty();
  if (scalar) b = {1};
  const std::size_t r = rd < 0 ? b.size() - 1 : static_cast<std::size_t>(rd);
  auto cut = [&](const Shape& s, std::int64_t& along) {
    along = s[r];
    Shape o = s;
    o.erase(o.begin() + static_cast<std::ptrdiff_t>(r));
    return o;
  };
  const Shape sx = shape_of(x), sy = shape_of(y);
  w.xs = cut(view_strides(sx, strides_of(x), b), w.xsd);
  w.ys = cut(view_strides(sy, strides_of(y), b), w.ysd);
  w.xg = cut(view_strides(sx, contiguous(sx), b), w.xgd);
  w.yg = cut(view_strides(sy, contiguous(sy), b), w.ygd);
  w.shape = cut(b, w.D);
  w.n = numel(w.shape);
  return w;
}

struct Grad {
  lb_tensor* out = nullptr;
  std::vector<double> acc;
  // Low parts of double-double contributions (add_dd), allocated on the first: acc + lo is the
  // element, so terms that cancel across pairs (the triplet "cosine" anchor's) keep their bits.
  std::vector<double> lo;
  void init(lb_tensor* t) {
    out = t;
    if (t) acc.assign(static_cast<std::size_t>(numel(shape_of(*t))), 0.0);
  }
  void add(std::int64_t i, double v) {
    if (out) acc[static_cast<std::size_t>(i)] += v;
  }
  void add_dd(std::int64_t i, double hi, double l) {
    if (!out) return;
    if (lo.empty()) lo.assign(acc.size(), 0.0);
    const auto u = static_cast<std::size_t>(i);
    double s, e;
    F::dd::two_sum(acc[u], hi, s, e);
    acc[u] = s;
    lo[u] += e + l;
  }
  // Replaces element i (its low part too).
  void set(std::size_t i, double v) {
    acc[i] = v;
    if (!lo.empty()) lo[i] = 0.0;
  }
  void store() const {
    if (!out) return;
    const Shape s = shape_of(*out), st = strides_of(*out);
    for (std::size_t i = 0; i < acc.size(); ++i)
      store_float(out->data, out->dtype, offset(static_cast<std::int64_t>(i), s, st),
                  lo.empty() ? acc[i] : acc[i] + lo[i]);
  }
};

// Compensated (Neumaier) sum in index order.
double sum_in_order(const std::vector<double>& v) {
  double s = 0, c = 0;
  for (double x : v) {
    const double t = s + x;
    if (!std::isfinite(t) || !std::isfinite(x)) {
      s = t;
      c = 0;
      continue;
    }
    c += std::fabs(s) >= std::fabs(x) ? (s - t) + x : (x - t) + s;
    s = t;
  }
  return std::isfinite(s) ? s + c : s;
}

const lb_tensor* input(const lb_call& call, std::string_view name) {
  for (std::int32_t k = 0; k < call.num_inputs; ++k)
    if (call.inputs[k].name != nullptr && name == call.inputs[k].name) return &call.inputs[k];
  bad("missing input '" + std::string(name) + "'");
}

bool floating(std::int32_t d) { return d >= LB_FLOAT64 && d <= LB_BFLOAT16; }

// The upstream gradient of loss element l (output shape `shape`).
struct Upstream {
  const lb_tensor* g = nullptr;
  bool reduce = false;
  double divisor = 1.0;  // numel for mean
  Shape shape, st;
  double at(std::int64_t l) const {
    if (g == nullptr) return 1.0 / divisor;
    if (reduce) return load_float(g->data, g->dtype, 0) / divisor;
    return load_float(g->data, g->dtype, offset(l, shape, st));
  }
};

// ---------------------------------------------------------------- one call

void check_dtypes(std::initializer_list<const lb_tensor*> ts, std::int32_t& dtype) {
  dtype = -1;
  for (const lb_tensor* t : ts) {
    if (t->device.type != LB_DEVICE_CPU) unsupported("tensors must be on the CPU");
    if (!floating(t->dtype)) bad("a floating dtype is expected");
    if (dtype < 0) dtype = t->dtype;
    if (t->dtype != dtype) bad("expected all floating inputs to have one dtype");
  }
}

}  // namespace

// Does t hold a finite non-zero element of magnitude above 2^100 or below 2^-100? Contiguous
// float32/float64 tensors are scanned in parallel by a loop that vectorizes (no early exit).
bool has_extreme(const lb_tensor& t) {
  const Shape s = shape_of(t), st = strides_of(t);
  const std::int64_t n = numel(s);
  const auto extreme = [](double a) {  // a = |v|
    return a > 0 && a < HUGE_VAL && (a > 0x1p100 || a < 0x1p-100);
  };
  if (st == contiguous(s) && (t.dtype == LB_FLOAT32 || t.dtype == LB_FLOAT64)) {
    // In the tensor's own type (2^100 and 2^-100 are normal floats), with non-short-circuit
    // operators, so that the loop vectorizes.
    const auto scan = [&](const auto* v) {
      using T = std::remove_cvref_t<decltype(*v)>;
      const T lo = static_cast<T>(0x1p-100), hi = static_cast<T>(0x1p100);
      const T inf = std::numeric_limits<T>::infinity();
      std::int64_t count = 0;
#pragma omp parallel for simd reduction(+ : count) schedule(static) if (n > (1 << 20))
      for (std::int64_t i = 0; i < n; ++i) {
        const T a = std::fabs(v[i]);
        count += static_cast<int>((a > 0) & (a < inf) & ((a > hi) | (a < lo)));
      }
      return count != 0;
    };
    return t.dtype == LB_FLOAT32 ? scan(static_cast<const float*>(t.data))
                                 : scan(static_cast<const double*>(t.data));
  }
  for (std::int64_t i = 0; i < n; ++i)
    if (extreme(std::fabs(load_float(t.data, t.dtype, offset(i, s, st))))) return true;
  return false;
}

void build(const lb_call& call, Call& c) {
  if (call.device.type != LB_DEVICE_CPU) unsupported("the cpu backend runs on the CPU only");
  const std::string_view loss = call.loss;
  const std::string_view red = call.reduction ? call.reduction : "mean";
  if (red != "none" && red != "mean" && red != "sum")
    bad(std::string(red) + " is not a valid value for reduction");
  c.reduce = red != "none";
  c.mean = red == "mean";
  ParamReader params{call, {}};
  if (loss == "cosine_embedding_loss") {
    c.kind = Call::cosine_embedding;
    params.known = {"margin"};
    const lb_tensor& x1 = *input(call, "input1");
    const lb_tensor& x2 = *input(call, "input2");
    const lb_tensor& y = *input(call, "target");
    check_dtypes({&x1, &x2}, c.dtype);
    if (y.dtype != LB_INT64 && !floating(y.dtype)) bad("target: unknown dtype");
    const Shape s1 = shape_of(x1), s2 = shape_of(x2), sy = shape_of(y);
    if (sy.size() > 1) bad("0D or 1D target tensor expected, multi-target not supported");
    const std::size_t want = sy.empty() ? 1 : 2;
    if (s1.size() != want || s2.size() != want)
      bad(std::string(sy.empty() ? "0D" : "1D") + " target tensor expects " +
          (sy.empty() ? "1D" : "2D") + " input tensors, but found inputs with sizes " +
          shape_string(s1) + " and " + shape_string(s2) + ".");
    c.rows[0] = make_rows(x1, x2, -1);
    c.out_shape = broadcast(c.rows[0].shape, sy);
    c.row_st = view_strides(c.rows[0].shape, contiguous(c.rows[0].shape), c.out_shape);
    c.target = &y;
    c.target_st = view_strides(sy, strides_of(y), c.out_shape);
    c.params.s0 = round_to(params.real("margin", 0.0), c.dtype);
    const double eps32 = static_cast<float>(1e-12);
    c.eps_ce = c.dtype == LB_FLOAT64 ? eps32 : round_to(eps32, c.dtype);
  } else {
    const lb_tensor& a = *input(call, "anchor");
    const lb_tensor& pos = *input(call, "positive");
    const lb_tensor& neg = *input(call, "negative");
    check_dtypes({&a, &pos, &neg}, c.dtype);
    if (a.ndim != pos.ndim || a.ndim != neg.ndim)
      bad("The anchor, positive, and negative tensors are expected to have the same number of "
          "dimensions, but got: anchor " +
          std::to_string(a.ndim) + "D, positive " + std::to_string(pos.ndim) + "D, and negative " +
          std::to_string(neg.ndim) + "D inputs");
    int rd = -1;
    if (loss == "triplet_margin_loss") {
      params.known = {"margin", "p", "eps", "swap"};
      c.margin = params.real("margin", 1.0);
      c.p_branch = params.real("p", 2.0);
      c.p_value = c.dtype == LB_FLOAT64 ? c.p_branch : static_cast<float>(c.p_branch);
      c.eps = params.real("eps", 1e-6);
      c.swap = params.flag("swap", false);
    } else {
      params.known = {"distance_function", "margin", "swap"};
      c.margin = params.real("margin", 1.0);
      c.swap = params.flag("swap", false);
      std::string_view fn = "pairwise_distance";
      if (const lb_param* f = params.find("distance_function")) {
        if (f->type == LB_PARAM_STRING && f->s != nullptr)
          fn = f->s;
        else if (f->type != LB_PARAM_NONE)
          bad("distance_function: a name is expected");
      }
      if (fn == "cosine") {
        c.kind = Call::triplet_cosine;
        c.eps = 1e-8;
        if (a.ndim < 2)
          bad("Dimension out of range (expected to be in range of [-1, 0], but got 1)");
        rd = 1;
      } else if (fn == "pairwise_distance") {
        c.eps = 1e-6;
      } else {
        unsupported("distance_function '" + std::string(fn) + "' (a registered C++ distance)");
      }
    }
    c.margin = round_to(c.margin, c.dtype);
    c.eps = round_to(c.eps, c.dtype);
    c.num_rows = c.swap ? 3 : 2;
    c.rows[0] = make_rows(a, pos, rd);
    c.rows[1] = make_rows(a, neg, rd);
    if (c.swap) c.rows[2] = make_rows(pos, neg, rd);
    c.out_shape = broadcast(c.rows[0].shape, c.rows[1].shape);
    if (c.swap) c.out_shape = broadcast(c.out_shape, c.rows[2].shape);
    for (int k = 0; k < c.num_rows; ++k) {
      const Rows& w = c.rows[k];
      c.dist_st[k] = view_strides(w.shape, contiguous(w.shape), c.out_shape);
      const bool no_identity =
          c.kind == Call::triplet && (std::isinf(c.p_branch) || c.p_branch < 0);
      if (w.D == 0 && no_identity && w.n > 0)
        bad("linalg.vector_norm cannot compute the inf norm on the dimension because this "
            "dimension is empty and the operation does not have an identity");
    }
  }
  params.check_known();
  // The cosine losses compute squared norms and products of a row in double without scaling
  // the row: float64 elements of extreme magnitude (overflow/underflow of the squares, or
  // cancellation against them) are not handled: LB_UNSUPPORTED. float32 and 16-bit elements
  // cannot overflow or underflow there (squares between 2^-298 and 2^256; m1 m2 below 2^600 for
  // rows under 2^40 elements; EPS keeps the norms above 2^-40), and cosine_embedding_loss takes
  // them whatever their magnitude. triplet_margin_with_distance_loss's cosine distance keeps the
  // restriction for every dtype: its gradients are off in the subnormal range of float32 on a row
  // holding 3.4e38 (corpus special/0007, 2^20 ULPs); not handled yet.
  if (c.kind != Call::triplet) {
    for (std::int32_t k = 0; k < call.num_inputs; ++k) {
      const lb_tensor& t = call.inputs[k];
      if (!floating(t.dtype) || std::string_view(t.name ? t.name : "") == "target") continue;
      if (c.kind == Call::cosine_embedding && t.dtype != LB_FLOAT64) continue;
      if (has_extreme(t))
        unsupported("elements of extreme magnitude (row scaling is not implemented)");
    }
  }
}

namespace {

// Per-row sums of one pair.
struct RowData {
  std::vector<double> d;                   // the distance (or cos pieces below)
  std::vector<double> dd_hi, dd_lo;        // float64 forward: the p-norm again, in DD (or empty)
  std::vector<double> p, m1, m2, ties;     // dot, squared norms, inf-norm ties
  std::vector<double> p_lo, m1_lo, m2_lo;  // cosine: the low parts of p, m1, m2 (double-double)
  // cosine: x.x and y.y without eps_add (double-double), for 1 - cos, whose eps_add terms the
  // rounding of m1 and m2 can lose (x.x above 2^106 eps_add in DD).
  std::vector<double> a, a_lo, b, b_lo;
  double eps = 0.0;
  std::vector<char> finite;
  // Row i's cosine sums from hi, lo pairs of x.y, x.x, y.y; eps_add joins both squared norms in
  // double-double. A sum that is not finite keeps its double value (lo 0).
  void set(std::size_t i, const double* s, double eps_add) {
    const F::DD a1 = F::DD(s[2], s[3]) + F::DD(eps_add), a2 = F::DD(s[4], s[5]) + F::DD(eps_add);
    const bool fin = std::isfinite(s[0]) && std::isfinite(a1.hi) && std::isfinite(a2.hi);
    p[i] = s[0];
    m1[i] = fin ? a1.hi : s[2] + eps_add;
    m2[i] = fin ? a2.hi : s[4] + eps_add;
    p_lo[i] = fin ? s[1] : 0.0;
    m1_lo[i] = fin ? a1.lo : 0.0;
    m2_lo[i] = fin ? a2.lo : 0.0;
    a[i] = s[2];
    a_lo[i] = fin ? s[3] : 0.0;
    b[i] = s[4];
    b_lo[i] = fin ? s[5] : 0.0;
  }
};

// The float32 fast paths below (KernelTable row kernels): both tensors float32 and contiguous
// along the row (no broadcast along it). The row sums then run over SIMD lanes in a fixed order
// instead of index order (both deterministic; a different rounding of the same double sums).
bool fast_rows(const Rows& w, const KernelTable* k) {
  return k != nullptr && w.x->dtype == LB_FLOAT32 && w.y->dtype == LB_FLOAT32 && w.xsd == 1 &&
         w.ysd == 1;
}

// cosine_rows' arrays for the rows of w.
void cosine_rows_alloc(const Rows& w, double eps_add, RowData& o) {
  o.p.assign(static_cast<std::size_t>(w.n), 0.0);
  o.m1 = o.p;
  o.m2 = o.p;
  o.p_lo = o.p;
  o.m1_lo = o.p;
  o.m2_lo = o.p;
  o.a = o.a_lo = o.b = o.b_lo = o.p;
  o.eps = eps_add;
  o.finite.assign(static_cast<std::size_t>(w.n), 1);
}

// Whether cosine_row may take the float32 row kernel.
// The float64 rows the cosine row kernels take (dot3_row_f64, cos_grad_row_f64): as fast_rows.
bool fast_rows64(const Rows& w, const KernelTable* k) {
  return k != nullptr && w.x->dtype == LB_FLOAT64 && w.y->dtype == LB_FLOAT64 && w.xsd == 1 &&
         w.ysd == 1;
}

bool cosine_rows_fast(const Rows& w, bool own_norms, const KernelTable* k) {
  const lb_tensor& x = *w.x;
  const lb_tensor& y = *w.y;
  const std::int64_t dx = x.ndim ? x.shape[x.ndim - 1] : 1, sx = x.ndim ? x.strides[x.ndim - 1] : 0;
  const std::int64_t dy = y.ndim ? y.shape[y.ndim - 1] : 1, sy = y.ndim ? y.strides[y.ndim - 1] : 0;
  return (fast_rows(w, k) || fast_rows64(w, k)) &&
         (!own_norms || (dx == w.D && dy == w.D && sx == 1 && sy == 1));
}

// Row r's sums (cosine_rows).
void cosine_row(const Rows& w, double eps_add, bool own_norms, bool fast, RowData& o,
                std::int64_t r, const KernelTable* k) {
  const lb_tensor& x = *w.x;
  const lb_tensor& y = *w.y;
  const std::int64_t dx = x.ndim ? x.shape[x.ndim - 1] : 1, sx = x.ndim ? x.strides[x.ndim - 1] : 0;
  const std::int64_t dy = y.ndim ? y.shape[y.ndim - 1] : 1, sy = y.ndim ? y.strides[y.ndim - 1] : 0;
  const std::int64_t xo = w.xo(r), yo = w.yo(r);
  if (fast) {
    // Finite sums mean finite elements; otherwise the row is redone below, element by element.
    const auto i = static_cast<std::size_t>(r);
    double s[6];
    if (x.dtype == LB_FLOAT64 ? k->dot3_row_f64(static_cast<const double*>(x.data) + xo,
                                                static_cast<const double*>(y.data) + yo, w.D, s)
                              : k->dot3_row_f32(static_cast<const float*>(x.data) + xo,
                                                static_cast<const float*>(y.data) + yo, w.D, s)) {
      o.set(i, s, eps_add);
      return;
    }
  }
  // Double-double sums of exact products (a * b = ph + pl): the index order, one element at a
  // time.
  F::DD p(0.0), a1(0.0), a2(0.0);
  const auto add = [](F::DD& acc, double a, double b) {
    double ph, pl;
    F::dd::two_prod(a, b, ph, pl);
    acc = acc + F::DD(ph, pl);
  };
  bool fin = true;
  for (std::int64_t j = 0; j < w.D; ++j) {
    const double a = w.xv(xo, j), b = w.yv(yo, j);
    add(p, a, b);
    fin = fin && std::isfinite(a) && std::isfinite(b);
    if (!own_norms) {
      add(a1, a, a);
      add(a2, b, b);
    }
  }
  if (own_norms) {
    for (std::int64_t j = 0; j < dx; ++j) {
      const double a = load_float(x.data, x.dtype, xo + j * sx);
      add(a1, a, a);
    }
    for (std::int64_t j = 0; j < dy; ++j) {
      const double b = load_float(y.data, y.dtype, yo + j * sy);
      add(a2, b, b);
    }
  }
  const auto i = static_cast<std::size_t>(r);
  const double s[6] = {p.hi, p.lo, a1.hi, a1.lo, a2.hi, a2.lo};
  o.set(i, s, eps_add);
  o.finite[i] = fin;
}

// x.y, x.x and y.y of every row of w (own_norms: each norm over its own tensor's row, for
// cosine_embedding_loss's broadcast rows) in double-double, into o.
void cosine_rows(const Rows& w, double eps_add, bool own_norms, RowData& o, int threads,
                 const KernelTable* k = nullptr) {
  cosine_rows_alloc(w, eps_add, o);
  const bool fast = cosine_rows_fast(w, own_norms, k);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t r = 0; r < w.n; ++r) cosine_row(w, eps_add, own_norms, fast, o, r, k);
}

// The p-norm of one row in double-double, for the forward's hinge d(a, p) - d(a, n) + margin,
// which can cancel down to the distances' last bits: r_j = x_j - y_j + eps exactly; for p = 2 or
// 1 its square (or |r_j|) and the sum in DD, then the square root; a one-element row's norm is
// |r| for any p; any other finite p > 0 goes through DD exp and log. False where the sum is not
// finite or below 2^-960 (the double distance serves there).
bool norm_row_dd(const Rows& w, const F::PNorm& norm, double eps, std::int64_t xo, std::int64_t yo,
                 double& hi, double& lo) {
  using F::DD;
  if (w.D == 1) {
    const DD n = vabs(DD(w.xv(xo, 0)) - DD(w.yv(yo, 0)) + DD(eps));
    hi = n.hi;
    lo = n.lo;
    return std::isfinite(n.hi);
  }
  // r + re = x_j - y_j + eps: two exact sums, their error terms added in double.
  const auto diff = [&](std::int64_t j, double& r, double& re) {
    double d, de;
    F::dd::two_sum(w.xv(xo, j), -w.yv(yo, j), d, de);
    F::dd::two_sum(d, eps, r, re);
    re += de;
  };
  if (norm.kind == F::PNorm::general) {
    // Any other finite p > 0: |r_j|^p = exp(p log |r_j|) and the sum in DD (exp and log to 75
    // bits or more), then the sum^(1/p) = exp(log(sum) / p) the same way.
    DD acc(0.0);
    for (std::int64_t j = 0; j < w.D; ++j) {
      double r, re;
      diff(j, r, re);
      const DD a = vabs(DD(r) + DD(re));
      if (a.hi == 0.0) continue;  // 0^p = 0
      if (!std::isfinite(a.hi)) return false;
      acc = acc + vexp(DD(norm.p) * vlog(a));
    }
    if (!(acc.hi >= 0x1p-960 && acc.hi < HUGE_VAL)) return false;
    const DD n = vexp(vlog(acc) / DD(norm.p));
    hi = n.hi;
    lo = n.lo;
    return std::isfinite(n.hi) && n.hi > 0.0;
  }
  // Sum of r_j^2: r + re = x - y + eps (two exact sums), r^2 = p + pe exactly plus 2 r re; the
  // running sum's error terms collect in sl (a compensated sum, ~2^-100 relative).
  double sh = 0.0, sl = 0.0;
  for (std::int64_t j = 0; j < w.D; ++j) {
    double r, re;
    diff(j, r, re);
    double t, te;
    if (norm.kind == F::PNorm::two) {
      F::dd::two_prod(r, r, t, te);
      te += 2.0 * r * re;
    } else {
      t = std::fabs(r);
      te = r < 0.0 ? -re : (r > 0.0 ? re : std::fabs(re));  // |r + re|
    }
    double s2, se;
    F::dd::two_sum(sh, t, s2, se);
    sh = s2;
    sl += se + te;
  }
  const DD acc = F::dd::norm(sh, sl);
  if (!(acc.hi >= 0x1p-960 && acc.hi < HUGE_VAL)) return false;
  const DD n = norm.kind == F::PNorm::two ? vsqrt(acc) : acc;
  hi = n.hi;
  lo = n.lo;
  return true;
}

// The p-norms norm_row_dd computes: p = 2, p = 1, and any other finite p > 0 (one-element rows:
// |r|; longer rows through DD exp and log).
bool norm_dd_applies(const Rows& w, const F::PNorm& norm) {
  return norm.kind == F::PNorm::two || norm.kind == F::PNorm::one ||
         (norm.kind == F::PNorm::general && norm.p > 0.0 && std::isfinite(norm.p)) ||
         (w.D == 1 && norm.kind == F::PNorm::general && !std::isnan(norm.p));
}

// d norm / d r_j times G for a finite p > 0 other than 0, 1 and 2, in double-double:
// sgn(r) (|r| / n)^(p-1) G = sgn(r) exp((p - 1) log(|r| / n)) G, with r = x - y + eps exact (two
// sums) and n the row's norm in DD (norm_row_dd). False where the double formula serves (r = 0, n
// not positive and finite, a value not finite).
bool norm_backward_dd(double x, double y, double eps, double p, F::DD n, double G, F::DD& out) {
  using F::DD;
  if (!(n.hi > 0.0) || !std::isfinite(n.hi) || !std::isfinite(G) || !std::isfinite(x) ||
      !std::isfinite(y))
    return false;
  double d, de, r, re;
  F::dd::two_sum(x, -y, d, de);
  F::dd::two_sum(d, eps, r, re);
  const DD rr = DD(r) + DD(re + de);
  if (rr.hi == 0.0 || !std::isfinite(rr.hi)) return false;
  const DD t = vexp((DD(p) - DD(1.0)) * vlog(vabs(rr) / n));
  out = (rr.hi < 0.0 ? -t : t) * DD(G);
  return std::isfinite(out.hi);
}

// Row r's p-norm in double, index order (norm_rows' general path); ties: the inf-norm's count of
// elements at the maximum.
double norm_row(const Rows& w, const F::PNorm& norm, double eps, std::int64_t r, double& ties) {
  const std::int64_t xo = w.xo(r), yo = w.yo(r);
  double acc = norm.start();
  for (std::int64_t j = 0; j < w.D; ++j) {
    const double t = norm.term(w.xv(xo, j) - w.yv(yo, j) + eps);
    acc = norm.summed() ? acc + t : norm.combine(acc, t);
  }
  // The sum of |r|^p overflowed or fell below the normal range while every r is finite (a
  // norm near the double range's ends): again with the elements scaled by the largest |r|,
  // norm = m ||r / m||_p, where nothing overflows and the small terms keep their bits.
  const bool scaled_kind = norm.kind == F::PNorm::two ||
                           (norm.kind == F::PNorm::general && norm.p > 0 && !std::isnan(norm.p));
  if (scaled_kind && w.D > 1 && !(acc >= 0x1p-960 && acc < HUGE_VAL)) {
    double m = 0.0;
    bool finite = true;
    for (std::int64_t j = 0; j < w.D; ++j) {
      const double v = std::fabs(w.xv(xo, j) - w.yv(yo, j) + eps);
      finite = finite && v < HUGE_VAL;
      m = v > m ? v : m;
    }
    if (finite && m > 0.0) {
      double sacc = 0.0;
      for (std::int64_t j = 0; j < w.D; ++j)
        sacc += norm.term((w.xv(xo, j) - w.yv(yo, j) + eps) / m);
      return m * norm.finish(sacc);
    }
  }
  // One element: the norm is |r| exactly for any p (pow(pow(|r|, p), 1 / p) need not be).
  const double n = w.D == 1 && norm.kind == F::PNorm::general && !std::isnan(norm.p)
                       ? std::fabs(w.xv(xo, 0) - w.yv(yo, 0) + eps)
                       : norm.finish(acc);
  ties = 0;
  if (!norm.summed())
    for (std::int64_t j = 0; j < w.D; ++j) {
      const double v = w.xv(xo, j) - w.yv(yo, j) + eps;
      ties += std::fabs(v) == n || std::isnan(v) ? 1.0 : 0.0;
    }
  return n;
}

// Row r's p = 2 distance of float64 rows in double-double: the sum of squares by the row kernel
// (sq_diff_row_f64_dd), its square root in DD. False where the sum is not finite or below
// 2^-960 (the scalar paths serve: norm_row, norm_row_dd).
bool norm_row_dd64(const Rows& w, double eps, std::int64_t r, const KernelTable* k, F::DD& n) {
  double h = 0.0, l = 0.0;
  if (!k->sq_diff_row_f64_dd(static_cast<const double*>(w.x->data) + w.xo(r),
                             static_cast<const double*>(w.y->data) + w.yo(r), w.D, eps, &h, &l) ||
      !(h >= 0x1p-960))
    return false;
  n = F::vsqrt(F::DD(h, l));
  return true;
}

// The distances of the rows of w into o: prepared once (o's arrays), then row by row.
struct NormRows {
  const Rows& w;
  F::PNorm norm;
  double eps;
  RowData& o;
  const KernelTable* k;
  bool dd, fast, fast64;

  NormRows(const Rows& w_, const F::PNorm& norm_, double eps_, RowData& o_,
           const KernelTable* k_ = nullptr, bool want_dd = false)
      : w(w_),
        norm(norm_),
        eps(eps_),
        o(o_),
        k(k_),
        dd(want_dd && norm_dd_applies(w_, norm_)),
        // float64 p = 2 rows: the distance in double-double by the row kernel (norm_row_dd64),
        // the double distance its rounding; float32 p = 2 rows: the float32 row kernel.
        fast(norm_.kind == F::PNorm::two && fast_rows(w_, k_)),
        fast64(norm_.kind == F::PNorm::two && fast_rows64(w_, k_)) {
    const auto rows = static_cast<std::size_t>(w.n);
    o.d.assign(rows, 0.0);
    o.ties.assign(rows, 0.0);
    o.dd_hi.clear();
    o.dd_lo.clear();
    if (dd) {
      o.dd_hi.assign(rows, F::kNaN);
      o.dd_lo.assign(rows, 0.0);
    }
  }

  void row(std::int64_t r) const {
    const auto i = static_cast<std::size_t>(r);
    if (F::DD n; fast64 && norm_row_dd64(w, eps, r, k, n)) {
      o.d[i] = n.hi;
      if (dd) {
        o.dd_hi[i] = n.hi;
        o.dd_lo[i] = n.lo;
      }
      return;
    }
    if (fast) {
      o.d[i] =
          norm.finish(k->sq_diff_row_f32(static_cast<const float*>(w.x->data) + w.xo(r),
                                         static_cast<const float*>(w.y->data) + w.yo(r), w.D, eps));
    } else {
      double ties = 0.0;
      o.d[i] = norm_row(w, norm, eps, r, ties);
      o.ties[i] = ties;
    }
    // not usable: the hinge takes the double distance
    if (dd && !norm_row_dd(w, norm, eps, w.xo(r), w.yo(r), o.dd_hi[i], o.dd_lo[i]))
      o.dd_hi[i] = F::kNaN;
  }
};

void norm_rows(const Rows& w, const F::PNorm& norm, double eps, RowData& o, int threads,
               const KernelTable* k = nullptr, bool want_dd = false) {
  const NormRows nr(w, norm, eps, o, k, want_dd);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t r = 0; r < w.n; ++r) nr.row(r);
}

F::PNorm pnorm_of(const Call& c) {
  F::PNorm n(c.kind == Call::triplet ? c.p_branch : 2.0);
  n.p = c.kind == Call::triplet ? c.p_value : 2.0;
  return n;
}

// Distances of the rows of pair k; with want_dd (the forward), float64 p-norms also in DD.
void distances(const Call& c, int k, RowData& o, int threads, bool want_dd = false) {
  if (c.kind == Call::triplet_cosine) {
    cosine_rows(c.rows[k], 0.0, false, o, threads, c.kernels);
    const double e2 = c.eps * c.eps;
    o.d.resize(o.p.size());
    for (std::size_t r = 0; r < o.p.size(); ++r)
      o.d[r] = F::CosineDistance::forward(o.p[r], o.m1[r], o.m2[r], e2, o.finite[r] != 0);
  } else {
    norm_rows(c.rows[k], pnorm_of(c), c.eps, o, threads, c.kernels,
              want_dd && c.dtype == LB_FLOAT64);
  }
}

void store_output(const Call& c, const std::vector<double>& loss, lb_tensor& out) {
  if (c.reduce) {
    double s = sum_in_order(loss);
    if (c.mean) s /= static_cast<double>(loss.size());
    store_float(out.data, out.dtype, 0, s);
    return;
  }
  const Shape s = shape_of(out), st = strides_of(out);
  for (std::size_t i = 0; i < loss.size(); ++i)
    store_float(out.data, out.dtype, offset(static_cast<std::int64_t>(i), s, st), loss[i]);
}

}  // namespace

void check_output(const Call& c, const lb_tensor& out) {
  if (!floating(out.dtype)) bad("output: a floating dtype is expected");
  const Shape s = shape_of(out);
  if (c.reduce ? numel(s) != 1 : s != c.out_shape)
    bad("output: shape " + shape_string(s) + " does not match the result");
}

namespace {

bool triplet_fast(const Call& c, lb_tensor* const* gt);

// The triplet p-norm distances of every pair in one pass over the rows, so that the tensors the
// pairs share (the anchor; the positive and negative under swap) are read from memory once: row
// r of each pair in turn, or, for float32 p = 2 rows of three contiguous tensors of one shape,
// the three-row kernel (sq_diff3_row_f32: the pair kernel's bits). False where the pairs' row
// counts differ (broadcast rows; distances() serves pair by pair).
bool triplet_distances(const Call& c, RowData* d, int threads) {
  for (int k = 1; k < c.num_rows; ++k)
    if (c.rows[k].n != c.rows[0].n) return false;
  const F::PNorm norm = pnorm_of(c);
  std::optional<NormRows> nr[3];
  for (int k = 0; k < c.num_rows; ++k)
    nr[k].emplace(c.rows[k], norm, c.eps, d[k], c.kernels, c.dtype == LB_FLOAT64);
  lb_tensor* const none[3] = {nullptr, nullptr, nullptr};
  const bool fused = nr[0]->fast && triplet_fast(c, none);
  const bool three = c.num_rows == 3;
  const std::int64_t D = c.rows[0].D;
  const auto* a = static_cast<const float*>(c.rows[0].x->data);
  const auto* p = static_cast<const float*>(c.rows[0].y->data);
  const auto* q = static_cast<const float*>(c.rows[1].y->data);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t r = 0; r < c.rows[0].n; ++r) {
    if (fused) {
      double s[3];
      c.kernels->sq_diff3_row_f32(a + r * D, p + r * D, q + r * D, D, c.eps, three, s);
      for (int k = 0; k < c.num_rows; ++k) d[k].d[static_cast<std::size_t>(r)] = norm.finish(s[k]);
    } else {
      for (int k = 0; k < c.num_rows; ++k) nr[k]->row(r);
    }
  }
  return true;
}

// The rows' data the loss needs: cosine_embedding_loss's dot products and norms (d[0]), or the
// triplet losses' distances (d[0..num_rows)).
void row_data(const Call& c, RowData* d, int threads) {
  if (c.kind == Call::cosine_embedding)
    cosine_rows(c.rows[0], c.eps_ce, true, d[0], threads, c.kernels);
  else if (c.kind != Call::triplet || !triplet_distances(c, d, threads))
    for (int k = 0; k < c.num_rows; ++k) distances(c, k, d[k], threads, true);
}

// cosine_embedding_loss of row r and target y from the double-double sums: 1 - cos, written
// (m1 m2 - p^2) / (sqrt(m1 m2) (sqrt(m1 m2) + p)) for p > 0, and cos - margin, each in
// double-double and rounded once. Rows whose sums are not finite and positive take the double
// formula.
// The cosine's denominator in double-double: q = a1 a2 and den = sqrt(q) (a1 itself when
// a1 == a2). False where q or den is not finite and positive.
bool cos_den_dd(const F::DD& a1, const F::DD& a2, F::DD& q, F::DD& den) {
  q = a1 * a2;
  den = a1.hi == a2.hi && a1.lo == a2.lo ? a1 : F::vsqrt(q);
  return std::isfinite(q.hi) && den.hi > 0.0 && std::isfinite(den.hi);
}

// a b - p^2 for double-doubles a, b and p, rounded once to double-double: the seven partial
// products are split exactly (two_prod) and added as an exact expansion (Shewchuk's
// grow-expansion), so that where a b = p^2 exactly (rows of one element: a = x^2, b = y^2,
// p = x y) the result is exactly 0, and where they nearly cancel it keeps its bits (DD's own
// a * b - p * p is off by about 2^-104 a b). Products beyond the double range are the caller's
// to exclude (a b finite).
F::DD ab_minus_pp(const F::DD& a, const F::DD& b, const F::DD& p) {
  double terms[14];
  int n = 0;
  const auto add = [&](double x, double y) {
    double h, l;
    F::dd::two_prod(x, y, h, l);
    terms[n++] = h;
    terms[n++] = l;
  };
  add(a.hi, b.hi);
  add(a.hi, b.lo);
  add(a.lo, b.hi);
  add(a.lo, b.lo);
  add(-p.hi, p.hi);
  add(-2.0 * p.hi, p.lo);
  add(-p.lo, p.lo);
  double e[14];  // the expansion: nonoverlapping components, smallest first, zeros dropped
  int m = 0;
  for (int t = 0; t < n; ++t) {
    double q = terms[t];
    int k = 0;
    for (int i = 0; i < m; ++i) {
      double s, err;
      F::dd::two_sum(q, e[i], s, err);
      q = s;
      if (err != 0.0) e[k++] = err;
    }
    if (q != 0.0) e[k++] = q;
    m = k;
  }
  F::DD r(0.0);
  for (int i = 0; i < m; ++i) r = r + F::DD(e[i]);
  return r;
}

// 1 - p / den in double-double, q = a1 a2 and den = sqrt(q): (a1 a2 - p^2) / (den (den + p))
// for p > 0, which keeps its bits when the rows are nearly parallel (1 - cos far below double's
// resolution of the sums); 1 - p / den otherwise (no cancellation).
F::DD one_minus_cos_dd(const F::DD& p, const F::DD& a1, const F::DD& a2, const F::DD& den) {
  return p.hi > 0.0 ? ab_minus_pp(a1, a2, p) / (den * (den + p)) : F::DD(1.0) - p / den;
}

double cosine_loss_dd(const RowData& rd, std::size_t r, double y, const F::Params& q) {
  const double fallback = F::CosineEmbeddingLoss::forward(rd.p[r], rd.m1[r], rd.m2[r], y, q);
  if (!(std::isfinite(rd.p[r]) && rd.m1[r] > 0.0 && rd.m2[r] > 0.0 && std::isfinite(rd.m1[r]) &&
        std::isfinite(rd.m2[r])) ||
      (y != 1.0 && y != -1.0))
    return fallback;
  using F::DD;
  const DD p(rd.p[r], rd.p_lo[r]), m1(rd.m1[r], rd.m1_lo[r]), m2(rd.m2[r], rd.m2_lo[r]);
  DD m12, den;
  if (!cos_den_dd(m1, m2, m12, den)) return fallback;
  if (y == 1.0) {
    // For p > 0, q - p^2 = (a + E)(b + E) - p^2 = (a b - p^2) + E (a + b) + E^2, the EPS terms
    // apart: for rows of one element a b - p^2 is exactly 0 and the rest is the whole value,
    // which m1 m2 - p^2 (one_minus_cos_dd) loses where x.x exceeds 2^106 EPS.
    const DD A(rd.a[r], rd.a_lo[r]), B(rd.b[r], rd.b_lo[r]), E(rd.eps);
    const DD one_minus = p.hi > 0.0
                             ? (ab_minus_pp(A, B, p) + E * (A + B) + E * E) / (den * (den + p))
                             : one_minus_cos_dd(p, m1, m2, den);
    return one_minus.hi + one_minus.lo;
  }
  const DD h = p / den - DD(q.s0);
  return h.hi < 0.0 ? 0.0 : h.hi + h.lo;
}

// x + y + z as a normalized double-double (x + y exactly by TwoSum, then + z, the two errors
// added and renormalized by TwoSum: t may be smaller than x + y's error where z cancels it).
F::DD sum3(double x, double y, double z) {
  double s, e, t, f, h, l;
  F::dd::two_sum(x, y, s, e);
  F::dd::two_sum(s, z, t, f);
  F::dd::two_sum(t, e + f, h, l);
  return F::DD(h, l);
}

// Distance k of output element l in double-double, on demand: the p-norm again (norm_row_dd), or
// the cosine distance from the row's double-double sums (as cosine_loss_dd). False where neither
// applies (other p, sums not finite).
bool distance_dd(const Call& c, const RowData* d, int k, std::int64_t l, F::DD& e) {
  const std::int64_t r = offset(l, c.out_shape, c.dist_st[k]);
  const Rows& w = c.rows[k];
  if (c.kind == Call::triplet) {
    const F::PNorm norm = pnorm_of(c);
    double hi = 0.0, lo = 0.0;
    if (!norm_dd_applies(w, norm) || !norm_row_dd(w, norm, c.eps, w.xo(r), w.yo(r), hi, lo))
      return false;
    e = F::DD(hi, lo);
    return true;
  }
  const RowData& rd = d[k];
  const auto i = static_cast<std::size_t>(r);
  if (rd.p_lo.empty() || rd.finite[i] == 0 || !std::isfinite(rd.p[i])) return false;
  using F::DD;
  const DD e2 = DD(c.eps) * DD(c.eps);
  DD a1(rd.m1[i], rd.m1_lo[i]), a2(rd.m2[i], rd.m2_lo[i]);
  const DD p(rd.p[i], rd.p_lo[i]);
  a1 = a1 < e2 ? e2 : a1;
  a2 = a2 < e2 ? e2 : a2;
  DD q, den;
  if (!cos_den_dd(a1, a2, q, den)) return false;
  e = one_minus_cos_dd(p, a1, a2, den);
  return true;
}

// Pair k's row r (a p-norm, finite p > 0) as |r_m| + delta, r_m its element of largest magnitude
// (index m, value rm = x_m - y_m + eps as DD): delta = |r_m| ((1 + x)^(1/p) - 1) with
// x = sum_{j != m} (|r_j| / |r_m|)^p, from log1p and expm1 in double. False where the row has no
// such element (zero, not finite) or x is not small (x > 2^-10: no dominant element).
bool dominant_split(const Rows& w, const F::PNorm& norm, double eps, std::int64_t r,
                    std::int64_t& m, F::DD& rm, double& delta) {
  const auto elem = [&](std::int64_t j) { return sum3(w.xv(w.xo(r), j), -w.yv(w.yo(r), j), eps); };
  m = -1;
  double big = 0.0;
  for (std::int64_t j = 0; j < w.D; ++j) {
    const double v = std::fabs(elem(j).hi);
    if (!std::isfinite(v)) return false;
    if (v > big) big = v, m = j;
  }
  if (m < 0) return false;
  rm = elem(m);
  const double top = std::fabs(rm.hi + rm.lo);
  double x = 0.0;
  for (std::int64_t j = 0; j < w.D; ++j)
    if (j != m) x += std::pow(std::fabs(elem(j).hi) / top, norm.p);
  if (!(x <= 0x1p-10)) return false;
  delta = top * std::expm1(std::log1p(x) / norm.p);
  return std::isfinite(delta);
}

// The hinge margin + d(a, p) - d(a, n) (n: pair kn) where one element m dominates both rows and
// the two distances agree beyond double-double's resolution (elements near the top of the range:
// d ~ 2^128 leaves DD a resolution of 2^22, and the hinge's sign is then noise): the hinge is
// margin + (|r_ap,m| - |r_an,m|) + (delta_ap - delta_an), where |r_ap,m| - |r_an,m| is, for
// the anchor's pairs with r of one sign, +-(n_m - p_m) exactly (the inputs' difference, without
// the huge anchor element). False where this does not apply.
bool hinge_dominant(const Call& c, std::int64_t l, int kn, F::DD& h) {
  if (c.kind != Call::triplet || kn != 1) return false;
  const F::PNorm norm = pnorm_of(c);
  if (!(norm.kind == F::PNorm::one || norm.kind == F::PNorm::two ||
        norm.kind == F::PNorm::general) ||
      !(norm.p > 0.0))
    return false;
  const Rows& ap = c.rows[0];
  const Rows& an = c.rows[1];
  const std::int64_t r0 = offset(l, c.out_shape, c.dist_st[0]);
  const std::int64_t r1 = offset(l, c.out_shape, c.dist_st[1]);
  std::int64_t m0, m1;
  F::DD x0, x1;
  double d0, d1;
  if (!dominant_split(ap, norm, c.eps, r0, m0, x0, d0) ||
      !dominant_split(an, norm, c.eps, r1, m1, x1, d1) || m0 != m1 ||
      (x0.hi > 0.0) != (x1.hi > 0.0) || ap.xo(r0) != an.xo(r1))
    return false;
  // |r_ap,m| - |r_an,m| = sgn (r_ap,m - r_an,m) = sgn (n_m - p_m): both rows share the anchor.
  const F::DD pn = sum3(an.yv(an.yo(r1), m0), -ap.yv(ap.yo(r0), m0), 0.0);
  const F::DD diff = x0.hi > 0.0 ? pn : -pn;
  h = F::DD(c.margin) + diff + (F::DD(d0) - F::DD(d1));
  return std::isfinite(h.hi);
}

// The hinge margin + d(a, p) - d(a, n) of output element l in double-double from distance_dd;
// false where a distance cannot be had in double-double. Where the DD hinge is below DD's
// resolution of the distances, hinge_dominant's value where it applies.
bool hinge_from_dd(const Call& c, const RowData* d, std::int64_t l, F::DD& h) {
  F::DD e[3];
  for (int k = 0; k < c.num_rows; ++k)
    if (!distance_dd(c, d, k, l, e[k])) return false;
  const bool second = c.swap && e[2] < e[1];
  const F::DD en = second ? e[2] : e[1];
  h = F::DD(c.margin) + e[0] - en;
  if (F::DD hd; std::fabs(h.hi) <= 0x1p-100 * (std::fabs(e[0].hi) + std::fabs(en.hi)) &&
                hinge_dominant(c, l, second ? 2 : 1, hd))
    h = hd;
  return true;
}

// The hinge margin + d(a, p) - d(a, n) of output element l (v: its double distances) in
// double-double, where double's value is within 2^-20 of its terms, i.e. where it may have lost
// its sign or most of its bits; false elsewhere, or where the distances cannot be had in
// double-double (the double value stands).
bool hinge_dd(const Call& c, const RowData* d, std::int64_t l, const double* v, F::DD& h) {
  const double dn = F::TripletMarginLoss::negative(v[1], v[2], c.swap);
  const double hd = c.margin + v[0] - dn;
  if (!(std::fabs(hd) <= 0x1p-20 * (std::fabs(c.margin) + std::fabs(v[0]) + std::fabs(dn))))
    return false;
  return hinge_from_dd(c, d, l, h);
}

// Adds x^2 (x a double-double) to the sum (hi, lo): hi by TwoSum, the low parts in double, so the
// sum is within about D 2^-104 of its value (D terms, all positive).
void add_square(F::DD x, double& hi, double& lo) {
  double p, e, s, f;
  F::dd::two_prod(x.hi, x.hi, p, e);
  F::dd::two_sum(hi, p, s, f);
  hi = s;
  lo += f + (e + 2.0 * x.hi * x.lo);
}

// u_j / |u| - v_j / |v| for the elements j of a row of D elements with want(j) (p = 2 norms),
// in double-double: (u_j - v_j) / |u| + v_j (|v| - |u|) / (|u| |v|), with
// |v| - |u| = (|v|^2 - |u|^2) / (|u| + |v|) from the two sums of squares in double-double. The
// triplet anchor's gradient has this form (u = a - p + eps, v = a - n + eps) and so has the
// positive's under swap (u = a - p + eps, v = n - p - eps): where the two quotients agree to more
// bits than double holds (a fuzz case: 2^-38, 740 ULP in float32), their difference in double
// loses them. uv(j, u, v) gives u_j and v_j from the inputs (as DD, within 2^-104), diff(j) gives
// v_j - u_j exactly (as DD). Elements without want(j) are not written (a row flagged for one
// element pays the sums' pass and that element). False where a sum is not finite and positive
// (the double values stand).
template <class UV, class Diff, class Want>
bool unit_difference_dd(std::int64_t D, UV uv, Diff diff, Want want, double* out) {
  using F::DD;
  double su = 0.0, su_lo = 0.0, sv = 0.0, sv_lo = 0.0;
  for (std::int64_t j = 0; j < D; ++j) {
    DD u, v;
    uv(j, u, v);
    add_square(u, su, su_lo);
    add_square(v, sv, sv_lo);
  }
  if (!(su > 0.0 && sv > 0.0 && su < HUGE_VAL && sv < HUGE_VAL && std::isfinite(su_lo) &&
        std::isfinite(sv_lo)))
    return false;
  const DD u2 = F::dd::norm(su, su_lo), v2 = F::dd::norm(sv, sv_lo);
  const DD du = F::vsqrt(u2), dv = F::vsqrt(v2);
  const DD k = (v2 - u2) / ((du + dv) * (du * dv)), inv_du = DD(1.0) / du;
  for (std::int64_t j = 0; j < D; ++j) {
    if (!want(j)) continue;
    DD u, v;
    uv(j, u, v);
    const DD t1 = v * k, t2 = diff(j) * inv_du;
    const DD t = t1 - t2;
    // Below the terms' double-double resolution the difference is noise: 0 (parallel u and v,
    // where the exact value is 0, e.g. p = -a, n = 0 without eps).
    out[j] = std::fabs(t.hi) <= 0x1p-95 * (std::fabs(t1.hi) + std::fabs(t2.hi)) ? 0.0 : t.hi + t.lo;
  }
  return std::isfinite(k.hi);
}

// Row r of a p = 2 triplet loss whose anchor (pairs 0 and 1) or, under swap, positive (pairs 0
// and 2) gradient cancels: that gradient again by unit_difference_dd, into anchor_out and
// positive_out (D doubles each; nullptr: not wanted; the caller has seen an element cancel):
// every element for float64 (each bit a cancellation takes costs float64 one), for the other
// dtypes the elements whose two terms cancel beyond twice kTripletCancelF32 in double (the others
// are within a small fraction of a float32 ULP already); NaN in the others (the caller keeps its
// values there). G: the
// pairs' upstreams, v: the distances. Returns which were written (bit 0 the anchor, bit 1 the
// positive).
int triplet_cancelling_row(const Call& c, std::int64_t r, const double* G, const double* v,
                           double* anchor_out, double* positive_out) {
  using F::DD;
  const Rows& ap = c.rows[0];
  const Rows& an = c.rows[1];
  const std::int64_t D = ap.D;
  const double eps = c.eps;
  int done = 0;
  // One element: the gradients are sgn(u) and sgn(v) times G, exact in double already.
  if (D < 2) return 0;
  const auto a = [&](std::int64_t j) { return ap.xv(ap.xo(r), j); };
  const auto p = [&](std::int64_t j) { return ap.yv(ap.yo(r), j); };
  const auto n = [&](std::int64_t j) { return an.yv(an.yo(r), j); };
  const auto positive_finite = [](double d) { return d > 0.0 && d < HUGE_VAL; };
  if (!positive_finite(v[0])) return 0;
  const bool every = c.dtype == LB_FLOAT64;
  // u_j / d0 - w_j / dw cancels (double): the elements worth double-double.
  const auto cancels = [&](double u, double w, double dw) {
    const double t0 = u / v[0];
    return every || std::fabs(t0 - w / dw) < 2.0 * kTripletCancelF32 * std::fabs(t0);
  };
  const auto fill_nan = [&](double* out) {
    for (std::int64_t j = 0; j < D; ++j) out[j] = F::kNaN;
  };
  if (anchor_out != nullptr && G[0] != 0.0 && G[1] == -G[0] && positive_finite(v[1])) {
    const auto uv = [&](std::int64_t j, DD& u, DD& w) {
      const double aj = a(j);
      u = sum3(aj, -p(j), eps);
      w = sum3(aj, -n(j), eps);
    };
    const auto diff = [&](std::int64_t j) { return sum3(p(j), -n(j), 0.0); };
    const auto want = [&](std::int64_t j) {
      return cancels(a(j) - p(j) + eps, a(j) - n(j) + eps, v[1]);
    };
    fill_nan(anchor_out);
    if (unit_difference_dd(D, uv, diff, want, anchor_out)) {
      for (std::int64_t j = 0; j < D; ++j) anchor_out[j] *= G[0];
      done |= 1;
    }
  }
  if (positive_out != nullptr && c.num_rows == 3 && G[0] != 0.0 && G[2] == -G[0] &&
      positive_finite(v[2])) {
    // d/dp: -G0 u / |u| + G2 (p - n + eps) / |p - n + eps| = -G0 (u / |u| - w / |w|) with
    // w = n - p - eps (|w| the same distance).
    const auto uv = [&](std::int64_t j, DD& u, DD& w) {
      const double pj = p(j);
      u = sum3(a(j), -pj, eps);
      w = sum3(n(j), -pj, -eps);
    };
    // w - u = n - a - 2 eps: n - a exactly, then - 2 eps.
    const auto diff = [&](std::int64_t j) { return sum3(n(j), -a(j), -2.0 * eps); };
    const auto want = [&](std::int64_t j) {
      return cancels(a(j) - p(j) + eps, n(j) - p(j) - eps, v[2]);
    };
    fill_nan(positive_out);
    if (unit_difference_dd(D, uv, diff, want, positive_out)) {
      for (std::int64_t j = 0; j < D; ++j) positive_out[j] *= -G[0];
      done |= 2;
    }
  }
  return done;
}

// The margin the backward of output element l uses: c.margin, or, where hinge_dd has the hinge's
// sign, +inf (it passes) or -inf (it does not), so that the double distances' rounding cannot
// flip it.
double backward_margin(const Call& c, const RowData* d, std::int64_t l, const double* v) {
  F::DD h;
  if (!hinge_dd(c, d, l, v, h)) return c.margin;
  return h.hi >= 0.0 ? HUGE_VAL : -HUGE_VAL;
}

// The loss from row_data's results.
void forward_from(const Call& c, const RowData* d, lb_tensor& out, int threads) {
  const std::int64_t n = numel(c.out_shape);
  std::vector<double> loss(static_cast<std::size_t>(n));
  if (c.kind == Call::cosine_embedding) {
    const RowData& rd = d[0];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t l = 0; l < n; ++l) {
      const auto r = static_cast<std::size_t>(offset(l, c.out_shape, c.row_st));
      const double y =
          load_float(c.target->data, c.target->dtype, offset(l, c.out_shape, c.target_st));
      loss[static_cast<std::size_t>(l)] = cosine_loss_dd(rd, r, y, c.params);
    }
  } else {
    bool dd = true;
    for (int k = 0; k < c.num_rows; ++k) dd = dd && !d[k].dd_hi.empty();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t l = 0; l < n; ++l) {
      double v[3] = {0, 0, 0};
      F::DD e[3];
      bool exact = dd;
      for (int k = 0; k < c.num_rows; ++k) {
        const auto r = static_cast<std::size_t>(offset(l, c.out_shape, c.dist_st[k]));
        v[k] = d[k].d[r];
        if (dd) {
          e[k] = F::DD(d[k].dd_hi[r], d[k].dd_lo[r]);
          exact = exact && std::isfinite(e[k].hi) && std::isfinite(v[k]);
        }
      }
      double& li = loss[static_cast<std::size_t>(l)];
      li = F::TripletMarginLoss::forward(v[0], v[1], v[2], c.swap, c.margin);
      // float64 with DD distances: the hinge in DD, rounded once (finite distances; the NaN and
      // inf cases keep the formula's value above): the p-norms' kept from norm_rows, the cosine
      // distances' from the rows' DD sums (cheap: a few DD operations per row). Other dtypes,
      // and float64 p-norms without DD: in DD where it cancels.
      if (exact && std::isfinite(li)) {
        const F::DD dn = c.swap && e[2] < e[1] ? e[2] : e[1];
        const F::DD h = F::DD(c.margin) + e[0] - dn;
        li = h.hi < 0.0 ? 0.0 : h.hi + h.lo;
      } else if (F::DD h; std::isfinite(li) && (c.kind != Call::triplet && c.dtype == LB_FLOAT64
                                                    ? hinge_from_dd(c, d, l, h)
                                                    : hinge_dd(c, d, l, v, h))) {
        li = h.hi < 0.0 ? 0.0 : h.hi + h.lo;
      }
    }
  }
  store_output(c, loss, out);
}

void run_forward(const Call& c, lb_tensor& out, int threads) {
  RowData d[3];
  row_data(c, d, threads);
  forward_from(c, d, out, threads);
}

// triplet_margin_loss (and the pairwise_distance form) with p = 2, float32 anchor, positive and
// negative of one shape, all contiguous, and contiguous float32 gradients: the gradients are
// written straight into the tensors, rows in parallel, each element the same operations in the
// same order as run_backward below ((0 + pair 0) + pair 1, ...), without full-size temporaries.
bool triplet_fast(const Call& c, lb_tensor* const* gt) {
  if (c.kind != Call::triplet || pnorm_of(c).kind != F::PNorm::two || c.kernels == nullptr)
    return false;
  const lb_tensor* t[3] = {c.rows[0].x, c.rows[0].y, c.rows[1].y};
  const Shape s = shape_of(*t[0]);
  if (s.empty()) return false;
  // float32 throughout, or float64 throughout (triplet_fast_backward_f64).
  const std::int32_t dt = t[0]->dtype;
  if (dt != LB_FLOAT32 && dt != LB_FLOAT64) return false;
  const auto ok = [&](const lb_tensor* x) {
    return x->dtype == dt && shape_of(*x) == s && strides_of(*x) == contiguous(s);
  };
  for (int k = 0; k < 3; ++k)
    if (!ok(t[k]) || (gt[k] != nullptr && !ok(gt[k]))) return false;
  return true;
}

// triplet_fast's float64 rows: each row's distances in double-double (sq_diff_row_f64_dd, kept
// in d's DD arrays for the forward's hinge), then its gradients in double-double
// (triplet2_grad_row_f64, the scales G_k / dist_k in DD), each element rounded once; a row whose
// anchor or positive terms cancel beyond kTripletCancelF64DD is redone by
// triplet_cancelling_row. Rows with a distance the kernel cannot give (not finite, below
// 2^-960) take the general path's double formulas for that row.
void triplet_fast_backward_f64(const Call& c, const Upstream& up, lb_tensor* const* gt, RowData* d,
                               int threads) {
  const std::int64_t rows = c.rows[0].n, D = c.rows[0].D;
  const F::PNorm norm = pnorm_of(c);
  for (int k = 0; k < c.num_rows; ++k) {
    d[k].d.assign(static_cast<std::size_t>(rows), 0.0);
    d[k].ties.assign(static_cast<std::size_t>(rows), 0.0);
    d[k].dd_hi.assign(static_cast<std::size_t>(rows), F::kNaN);
    d[k].dd_lo.assign(static_cast<std::size_t>(rows), 0.0);
  }
  const double* in[3] = {static_cast<const double*>(c.rows[0].x->data),
                         static_cast<const double*>(c.rows[0].y->data),
                         static_cast<const double*>(c.rows[1].y->data)};
  double* out[3];
  for (int k = 0; k < 3; ++k) out[k] = gt[k] ? static_cast<double*>(gt[k]->data) : nullptr;
  const bool three = c.num_rows == 3;
  const bool stream = rows * D * static_cast<std::int64_t>(sizeof(double)) >= kStreamBytes;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto i = static_cast<std::size_t>(r);
    const std::int64_t o = r * D;
    bool exact = true;
    F::DD e[3];
    for (int k = 0; k < c.num_rows; ++k) {
      if (norm_row_dd64(c.rows[k], c.eps, r, c.kernels, e[k])) {
        d[k].d[i] = e[k].hi;
        d[k].dd_hi[i] = e[k].hi;
        d[k].dd_lo[i] = e[k].lo;
      } else {
        double ties = 0.0;
        d[k].d[i] = norm_row(c.rows[k], norm, c.eps, r, ties);
        exact = false;
      }
    }
    double G[3] = {0, 0, 0};
    const double v[3] = {d[0].d[i], d[1].d[i], three ? d[2].d[i] : 0.0};
    F::TripletMarginLoss::backward(v[0], v[1], v[2], c.swap, backward_margin(c, d, r, v), up.at(r),
                                   G[0], G[1], G[2]);
    double* row_out[3];
    for (int k = 0; k < 3; ++k) row_out[k] = out[k] != nullptr ? out[k] + o : nullptr;
    if (!exact) {
      // The general path's double formulas for this row, in its order of accumulation.
      for (std::int64_t j = 0; j < D; ++j) {
        const double xa = in[0][o + j], xp = in[1][o + j], xq = in[2][o + j];
        const double g0 = norm.backward(xa - xp + c.eps, v[0], G[0], 0.0);
        const double g1 = norm.backward(xa - xq + c.eps, v[1], G[1], 0.0);
        const double g2 = three ? norm.backward(xp - xq + c.eps, v[2], G[2], 0.0) : 0.0;
        if (row_out[0]) row_out[0][j] = (0.0 + g0) + g1;
        if (row_out[1]) row_out[1][j] = (0.0 - g0) + g2;
        if (row_out[2]) row_out[2][j] = (0.0 - g1) - g2;
      }
      continue;
    }
    double s[12] = {0, 0, 0, 0, 0, 0, G[0], G[1], G[2], -1, -1, -1};
    for (int k = 0; k < c.num_rows; ++k) {
      if (e[k].hi == 0.0) continue;
      s[9 + k] = e[k].hi;
      if (G[k] == 0.0) continue;
      const F::DD q = F::DD(G[k]) / e[k];
      s[2 * k] = q.hi;
      s[2 * k + 1] = q.lo;
    }
    const bool aligned =
        (row_out[0] == nullptr || reinterpret_cast<std::uintptr_t>(row_out[0]) % 64 == 0) &&
        (row_out[1] == nullptr || reinterpret_cast<std::uintptr_t>(row_out[1]) % 64 == 0) &&
        (row_out[2] == nullptr || reinterpret_cast<std::uintptr_t>(row_out[2]) % 64 == 0);
    const int cancels = c.kernels->triplet2_grad_row_f64(in[0] + o, in[1] + o, in[2] + o, D, c.eps,
                                                         s, three, row_out, stream && aligned);
    if (cancels != 0) {
      std::vector<double> ga(static_cast<std::size_t>(D)), gp(static_cast<std::size_t>(D));
      const int done = triplet_cancelling_row(c, r, G, v, (cancels & 1) ? ga.data() : nullptr,
                                              (cancels & 2) ? gp.data() : nullptr);
      for (std::int64_t j = 0; j < D; ++j) {
        const double x = ga[static_cast<std::size_t>(j)], y = gp[static_cast<std::size_t>(j)];
        if ((done & 1) && !std::isnan(x)) row_out[0][j] = x;
        if ((done & 2) && !std::isnan(y)) row_out[1][j] = y;
      }
    }
  }
}

// d: the distances, computed here (filled as row_data fills them), each row's just before its
// gradients, while its 3 D floats are still in cache (row_data's float32 p = 2 kernel, so the
// same values): one pass over the inputs instead of two.
void triplet_fast_backward(const Call& c, const Upstream& up, lb_tensor* const* gt, RowData* d,
                           int threads) {
  if (c.rows[0].x->dtype == LB_FLOAT64) {
    triplet_fast_backward_f64(c, up, gt, d, threads);
    return;
  }
  const std::int64_t rows = c.rows[0].n, D = c.rows[0].D;
  const F::PNorm norm = pnorm_of(c);
  for (int k = 0; k < c.num_rows; ++k) {
    d[k].dd_hi.clear();
    d[k].dd_lo.clear();
    d[k].d.assign(static_cast<std::size_t>(rows), 0.0);
    d[k].ties.assign(static_cast<std::size_t>(rows), 0.0);
  }
  const float* a = static_cast<const float*>(c.rows[0].x->data);
  const float* p = static_cast<const float*>(c.rows[0].y->data);
  const float* q = static_cast<const float*>(c.rows[1].y->data);
  float* out[3];
  for (int k = 0; k < 3; ++k) out[k] = gt[k] ? static_cast<float*>(gt[k]->data) : nullptr;
  const bool three = c.num_rows == 3;
  // Non-temporal stores for gradients too large to stay in cache (rows that start aligned).
  const bool stream = rows * D * static_cast<std::int64_t>(sizeof(float)) >= kStreamBytes;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto i = static_cast<std::size_t>(r);
    {
      double sums[3];
      c.kernels->sq_diff3_row_f32(a + r * D, p + r * D, q + r * D, D, c.eps, three, sums);
      for (int k = 0; k < c.num_rows; ++k) d[k].d[i] = norm.finish(sums[k]);
    }
    double G[3] = {0, 0, 0};
    const double v[3] = {d[0].d[i], d[1].d[i], three ? d[2].d[i] : 0.0};
    F::TripletMarginLoss::backward(v[0], v[1], v[2], c.swap, backward_margin(c, d, r, v), up.at(r),
                                   G[0], G[1], G[2]);
    // The p = 2 norm's derivative G r / dist (0 where dist = 0) as r (G / dist): one scale per
    // distance and row, within a double rounding of the quotient; sgn(r) G exactly where |r| is
    // the whole distance (kernels.hpp: triplet2_grad_row_f32).
    double s[9];
    for (int k = 0; k < 3; ++k) {
      s[k] = v[k] == 0.0 ? 0.0 : G[k] / v[k];
      s[3 + k] = G[k];
      s[6 + k] =
          v[k] == 0.0 || !std::isfinite(v[k]) ? -1.0 : v[k];  // (inf / inf: NaN, as G r / dist)
    }
    const std::int64_t o = r * D;
    float* row_out[3];
    bool aligned = true;
    for (int k = 0; k < 3; ++k) {
      row_out[k] = out[k] != nullptr ? out[k] + o : nullptr;
      aligned = aligned &&
                (row_out[k] == nullptr || reinterpret_cast<std::uintptr_t>(row_out[k]) % 64 == 0);
    }
    const int cancels = c.kernels->triplet2_grad_row_f32(a + o, p + o, q + o, D, c.eps, s, three,
                                                         row_out, stream && aligned);
    // Where an element of the anchor's (or, under swap, the positive's) gradient cancelled beyond
    // kTripletCancelF32: that row's gradient again in double-double (rare).
    if (cancels != 0) {
      std::vector<double> ga(static_cast<std::size_t>(D)), gp(static_cast<std::size_t>(D));
      const int done = triplet_cancelling_row(c, r, G, v, (cancels & 1) ? ga.data() : nullptr,
                                              (cancels & 2) ? gp.data() : nullptr);
      for (std::int64_t j = 0; j < D; ++j) {
        const double x = ga[static_cast<std::size_t>(j)], y = gp[static_cast<std::size_t>(j)];
        if ((done & 1) && !std::isnan(x)) row_out[0][j] = static_cast<float>(x);
        if ((done & 2) && !std::isnan(y)) row_out[1][j] = static_cast<float>(y);
      }
    }
  }
}

// cosine_embedding_loss with float32 inputs of one shape, rows longer than kLagrangeMax, all
// contiguous, and contiguous float32 gradients: each gradient element is 0 + gcos dx (as
// run_backward's Grad accumulation), written straight into the tensors, rows in parallel.
bool cosine_fast(const Call& c, lb_tensor* const* gt) {
  if (c.kind != Call::cosine_embedding || c.kernels == nullptr) return false;
  const Rows& w = c.rows[0];
  const Shape s = shape_of(*w.x);
  if (s.empty() || w.D <= kLagrangeMax || shape_of(*w.y) != s) return false;
  // float32 throughout, or float64 throughout (cos_grad_row_f64).
  const std::int32_t dt = w.x->dtype;
  if (dt != LB_FLOAT32 && dt != LB_FLOAT64) return false;
  const auto ok = [&](const lb_tensor* x) {
    return x->dtype == dt && shape_of(*x) == s && strides_of(*x) == contiguous(s);
  };
  return ok(w.x) && ok(w.y) && (gt[0] == nullptr || ok(gt[0])) && (gt[1] == nullptr || ok(gt[1]));
}

// d(loss)/d(cos) per row of cosine_embedding_loss: each output's term, summed in output order
// over the outputs a row serves (broadcast rows serve several).
std::vector<double> cosine_upstream(const Call& c, const Upstream& up, const RowData& rd) {
  const std::int64_t n = numel(c.out_shape);
  std::vector<double> gcos(static_cast<std::size_t>(c.rows[0].n), 0.0);
  for (std::int64_t l = 0; l < n; ++l) {
    const auto r = static_cast<std::size_t>(offset(l, c.out_shape, c.row_st));
    const double y =
        load_float(c.target->data, c.target->dtype, offset(l, c.out_shape, c.target_st));
    gcos[r] += F::CosineEmbeddingLoss::dcos(rd.p[r], rd.m1[r], rd.m2[r], y, up.at(l), c.params);
  }
  return gcos;
}

// Whether output l of cosine_embedding_loss is row l, for every l (no broadcast rows).
bool cosine_rows_are_outputs(const Call& c) {
  const std::int64_t n = numel(c.out_shape);
  if (n != c.rows[0].n) return false;
  for (std::int64_t l = 0; l < n; ++l)
    if (offset(l, c.out_shape, c.row_st) != l) return false;
  return true;
}

// Row i's float64 gradient constants in double-double, s = {P, M1, M2, T1, T2} as hi, lo pairs:
// T_k = G / (den M_k), den = sqrt(M1 M2) (M1 itself where M1 == M2). Where a sum or scale is not
// finite or den not positive, T_k's double value with lo 0 (the double formula's).
void cosine_dd_scales(const RowData& rd, std::size_t i, double G, double* s) {
  using F::DD;
  const DD P(rd.p[i], rd.p_lo[i]), M1(rd.m1[i], rd.m1_lo[i]), M2(rd.m2[i], rd.m2_lo[i]);
  const DD den = M1.hi == M2.hi && M1.lo == M2.lo ? M1 : F::vsqrt(M1 * M2);
  DD t1 = DD(G) / (den * M1), t2 = DD(G) / (den * M2);
  if (!(den.hi > 0.0 && std::isfinite(den.hi) && std::isfinite(t1.hi) && std::isfinite(t2.hi))) {
    t1 = DD(G / (F::cosine_denominator(M1.hi, M2.hi) * M1.hi));
    t2 = DD(G / (F::cosine_denominator(M2.hi, M1.hi) * M2.hi));
  }
  const double v[10] = {P.hi, P.lo, M1.hi, M1.lo, M2.hi, M2.lo, t1.hi, t1.lo, t2.hi, t2.lo};
  for (int k = 0; k < 10; ++k) s[k] = v[k];
}

// d: row_data's dot products and norms, or, with `fused` (cosine_rows_are_outputs), the sums
// computed here, each row's just before its gradients, while its 2 D floats are still in cache
// (cosine_rows' per-row code, so the same values): one pass over the inputs instead of two.
void cosine_fast_backward(const Call& c, const Upstream& up, lb_tensor* const* gt, RowData* d,
                          int threads, bool fused) {
  const Rows& w = c.rows[0];
  RowData& rd = d[0];
  const std::int64_t D = w.D;
  const bool row_fast = fused && cosine_rows_fast(w, true, c.kernels);
  if (fused) cosine_rows_alloc(w, c.eps_ce, rd);
  // Each row's d(loss)/d(cos) (cosine_upstream; 0 + the row's one term where fused).
  std::vector<double> gcos =
      fused ? std::vector<double>(static_cast<std::size_t>(w.n), 0.0) : cosine_upstream(c, up, rd);
  const bool f64 = w.x->dtype == LB_FLOAT64;
  const float* x1 = static_cast<const float*>(w.x->data);
  const float* x2 = static_cast<const float*>(w.y->data);
  float* g1 = gt[0] ? static_cast<float*>(gt[0]->data) : nullptr;
  float* g2 = gt[1] ? static_cast<float*>(gt[1]->data) : nullptr;
  // Non-temporal stores for gradients too large to stay in cache (rows that start aligned).
  const bool stream =
      w.n * D * static_cast<std::int64_t>(f64 ? sizeof(double) : sizeof(float)) >= kStreamBytes;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t r = 0; r < w.n; ++r) {
    const auto i = static_cast<std::size_t>(r);
    if (fused) {
      cosine_row(w, c.eps_ce, true, row_fast, rd, r, c.kernels);
      const double y =
          load_float(c.target->data, c.target->dtype, offset(r, c.out_shape, c.target_st));
      gcos[i] += F::CosineEmbeddingLoss::dcos(rd.p[i], rd.m1[i], rd.m2[i], y, up.at(r), c.params);
    }
    if (f64) {
      // float64: the scales G / (den M_k) in double-double (cosine_dd_scales), the numerators
      // and products in double-double in the kernel.
      double s[10];
      cosine_dd_scales(rd, i, gcos[i], s);
      const std::int64_t o = r * D;
      double* o1 = gt[0] ? static_cast<double*>(gt[0]->data) + o : nullptr;
      double* o2 = gt[1] ? static_cast<double*>(gt[1]->data) + o : nullptr;
      const bool aligned = (o1 == nullptr || reinterpret_cast<std::uintptr_t>(o1) % 64 == 0) &&
                           (o2 == nullptr || reinterpret_cast<std::uintptr_t>(o2) % 64 == 0);
      c.kernels->cos_grad_row_f64(static_cast<const double*>(w.x->data) + o,
                                  static_cast<const double*>(w.y->data) + o, D, s, o1, o2,
                                  stream && aligned);
      continue;
    }
    const double G = gcos[i], p = rd.p[i], m1 = rd.m1[i], m2 = rd.m2[i];
    // G dx = G (x2 m1 - p x1) / den1 as (x2 m1 - p x1) (G / den1): one scale per row and side
    // (CosineEmbeddingLoss::dx's denominators), within a double rounding of the quotient.
    const double s[5] = {p, m1, m2, G / (F::cosine_denominator(m1, m2) * m1),
                         G / (F::cosine_denominator(m2, m1) * m2)};
    const std::int64_t o = r * D;
    float* o1 = g1 != nullptr ? g1 + o : nullptr;
    float* o2 = g2 != nullptr ? g2 + o : nullptr;
    const bool aligned = (o1 == nullptr || reinterpret_cast<std::uintptr_t>(o1) % 64 == 0) &&
                         (o2 == nullptr || reinterpret_cast<std::uintptr_t>(o2) % 64 == 0);
    c.kernels->cos_grad_row_f32(x1 + o, x2 + o, D, s, o1, o2, stream && aligned);
  }
}

// Near-parallel rows, where y M - P x is far below its terms: there double-double's 2^-104 of the
// terms can outweigh the value, and Lagrange's identity (exact 0 for parallel rows) serves better.
constexpr double kParallel = 0x1p-48;

void run_backward(const Call& c, const Upstream& up, Grad* g) {
  const std::int64_t n = numel(c.out_shape);
  if (c.kind == Call::cosine_embedding) {
    const Rows& w = c.rows[0];
    RowData rd;
    cosine_rows(w, c.eps_ce, true, rd, 1, c.kernels);
    const std::vector<double> gcos = cosine_upstream(c, up, rd);
    // One side: x with its own last dimension dx (1 or D), y the other input.
    auto side = [&](const lb_tensor& x, bool first, Grad& out) {
      if (!out.out) return;
      const std::int64_t dx = x.ndim ? x.shape[x.ndim - 1] : 1;
      for (std::int64_t r = 0; r < w.n; ++r) {
        const auto i = static_cast<std::size_t>(r);
        const double m_self = first ? rd.m1[i] : rd.m2[i], m_other = first ? rd.m2[i] : rd.m1[i];
        const std::int64_t so = first ? w.xo(r) : w.yo(r), oo = first ? w.yo(r) : w.xo(r);
        const std::int64_t go = first ? w.xgo(r) : w.ygo(r), gsd = first ? w.xgd : w.ygd;
        auto self = [&](std::int64_t j) { return first ? w.xv(so, j) : w.yv(so, j); };
        auto other = [&](std::int64_t j) { return first ? w.yv(oo, j) : w.xv(oo, j); };
        const bool collapsed = dx == 1 && w.D != 1;
        if (collapsed) {
          // s2 m1 - p x1 = s2 (x1^2 + EPS) - x1^2 s2 = s2 EPS exactly.
          double s = 0;
          for (std::int64_t j = 0; j < w.D; ++j) s += other(j);
          out.add(go, gcos[i] * F::CosineEmbeddingLoss::dx_from(s * c.eps_ce, m_self, m_other));
        } else if (c.dtype == LB_FLOAT64 && !rd.p_lo.empty() && std::isfinite(m_self) &&
                   std::isfinite(rd.p[i])) {
          // float64: the numerator other_j M_self - P self_j from the DD sums (dd_cos_numerator);
          // near-parallel rows of at most kLagrangeMax features by Lagrange's identity.
          double sc[10];
          cosine_dd_scales(rd, i, gcos[i], sc);
          const double mh = first ? sc[2] : sc[4], ml = first ? sc[3] : sc[5];
          const double th = first ? sc[6] : sc[8], tl = first ? sc[7] : sc[9];
          const bool short_row = w.D <= kLagrangeMax;
          double xs[kLagrangeMax], ys[kLagrangeMax];
          for (std::int64_t j = 0; short_row && j < w.D; ++j) {
            xs[j] = self(j);
            ys[j] = other(j);
          }
          for (std::int64_t j = 0; j < w.D; ++j) {
            const double y = other(j);
            double nh, nl;
            F::dd_cos_numerator(self(j), y, mh, ml, sc[0], sc[1], nh, nl);
            if (short_row && std::fabs(nh) <= kParallel * std::fabs(y * mh)) {
              nh = std::fma(ys[j], c.eps_ce, F::lagrange_numerator(xs, ys, w.D, j));
              nl = 0.0;
            }
            out.add(go + j * gsd, F::dd_scaled(nh, nl, th, tl));
          }
        } else if (w.D <= kLagrangeMax) {
          double xs[kLagrangeMax], ys[kLagrangeMax];
          for (std::int64_t j = 0; j < w.D; ++j) {
            xs[j] = self(j);
            ys[j] = other(j);
          }
          for (std::int64_t j = 0; j < w.D; ++j) {
            const double num = std::fma(ys[j], c.eps_ce, F::lagrange_numerator(xs, ys, w.D, j));
            out.add(go + j * gsd, gcos[i] * F::CosineEmbeddingLoss::dx_from(num, m_self, m_other));
          }
        } else {
          for (std::int64_t j = 0; j < w.D; ++j)
            out.add(go + j * gsd, gcos[i] * F::CosineEmbeddingLoss::dx(rd.p[i], m_self, m_other,
                                                                       self(j), other(j)));
        }
      }
    };
    side(*w.x, true, g[0]);
    side(*w.y, false, g[1]);
    return;
  }
  RowData d[3];
  // float64 with a general p: the distances in double-double too, for norm_backward_dd.
  const bool general_dd =
      c.kind == Call::triplet && c.dtype == LB_FLOAT64 && pnorm_of(c).kind == F::PNorm::general;
  for (int k = 0; k < c.num_rows; ++k) distances(c, k, d[k], 1, general_dd);
  std::vector<double> gd[3];
  for (int k = 0; k < c.num_rows; ++k) gd[k].assign(d[k].d.size(), 0.0);
  for (std::int64_t l = 0; l < n; ++l) {
    std::size_t r[3] = {0, 0, 0};
    double v[3] = {0, 0, 0}, gv[3] = {0, 0, 0};
    for (int k = 0; k < c.num_rows; ++k) {
      r[k] = static_cast<std::size_t>(offset(l, c.out_shape, c.dist_st[k]));
      v[k] = d[k].d[r[k]];
    }
    F::TripletMarginLoss::backward(v[0], v[1], v[2], c.swap, backward_margin(c, d, l, v), up.at(l),
                                   gv[0], gv[1], gv[2]);
    for (int k = 0; k < c.num_rows; ++k) gd[k][r[k]] += gv[k];
  }
  // Pair k: (x, y) gradients into the inputs ix, iy.
  const int ix[3] = {0, 0, 1}, iy[3] = {1, 2, 2};
  const F::PNorm norm = pnorm_of(c);
  for (int k = 0; k < c.num_rows; ++k) {
    const Rows& w = c.rows[k];
    Grad& gx = g[ix[k]];
    Grad& gy = g[iy[k]];
    for (std::int64_t r = 0; r < w.n; ++r) {
      const auto i = static_cast<std::size_t>(r);
      const double G = gd[k][i];
      const std::int64_t xo = w.xo(r), yo = w.yo(r), xg = w.xgo(r), yg = w.ygo(r);
      const bool short_row = c.kind == Call::triplet_cosine && w.D <= kLagrangeMax;
      double xs[kLagrangeMax], ys[kLagrangeMax];
      for (std::int64_t j = 0; short_row && j < w.D; ++j) {
        xs[j] = w.xv(xo, j);
        ys[j] = w.yv(yo, j);
      }
      for (std::int64_t j = 0; j < w.D; ++j) {
        const double x = w.xv(xo, j), y = w.yv(yo, j);
        if (c.kind == Call::triplet_cosine) {
          const bool fin = d[k].finite[i] != 0;
          double lx = short_row ? F::lagrange_numerator(xs, ys, w.D, j) : F::kNaN;
          double ly = short_row ? F::lagrange_numerator(ys, xs, w.D, j) : F::kNaN;
          // y a1 - p x from the DD sums (dd_cos_numerator), Lagrange's where near-parallel;
          // where neither norm is clamped (N = n), the gradient -G num / (n1 a1 n2) in DD, added
          // to the element in DD (add_dd) and rounded once (float64: the double chain's roundings
          // left up to 3 ULP). Every dtype: the anchor's two pairs cancel where one element
          // dominates both rows (float32 fuzz seed 20261201 case 17094: the two terms agree to
          // 2^-37, and their double values left 21 ULP).
          if (fin && !d[k].p_lo.empty() && std::isfinite(d[k].p[i])) {
            const F::DD P(d[k].p[i], d[k].p_lo[i]), A1(d[k].m1[i], d[k].m1_lo[i]),
                A2(d[k].m2[i], d[k].m2_lo[i]);
            F::DD nx, ny;  // y a1 - p x and x a2 - p y
            F::dd_cos_numerator(x, y, A1.hi, A1.lo, P.hi, P.lo, nx.hi, nx.lo);
            F::dd_cos_numerator(y, x, A2.hi, A2.lo, P.hi, P.lo, ny.hi, ny.lo);
            if (short_row && std::fabs(nx.hi) <= kParallel * std::fabs(y * A1.hi)) nx = F::DD(lx);
            if (short_row && std::fabs(ny.hi) <= kParallel * std::fabs(x * A2.hi)) ny = F::DD(ly);
            const double e2 = c.eps * c.eps;
            if (A1.hi >= e2 && A2.hi >= e2 && A1.hi > 0.0 && A2.hi > 0.0 && std::isfinite(A1.hi) &&
                std::isfinite(A2.hi) && !std::isnan(nx.hi) && !std::isnan(ny.hi)) {
              const F::DD n1 = F::vsqrt(A1), n2 = F::vsqrt(A2), gs(-G);
              const F::DD vx = gs * nx / (n1 * A1 * n2), vy = gs * ny / (n2 * A2 * n1);
              if (std::isfinite(vx.hi) && std::isfinite(vy.hi)) {
                gx.add_dd(xg + j * w.xgd, vx.hi, vx.lo);
                gy.add_dd(yg + j * w.ygd, vy.hi, vy.lo);
                continue;
              }
            }
            lx = nx.hi + nx.lo;
            ly = ny.hi + ny.lo;
          }
          gx.add(xg + j * w.xgd,
                 F::CosineDistance::dx(x, y, d[k].p[i], d[k].m1[i], d[k].m2[i], c.eps, G, fin, lx));
          gy.add(yg + j * w.ygd,
                 F::CosineDistance::dx(y, x, d[k].p[i], d[k].m2[i], d[k].m1[i], c.eps, G, fin, ly));
        } else {
          // float64, general p: the term in DD, added in DD (Grad::add_dd) and rounded once: the
          // anchor's two terms (and under swap the positive's) cancel where the distances agree,
          // and the double formula's pow roundings were amplified (lossbench fuzz seed 20261203
          // case 478, p = 3 with swap: 19.4 ULP; case 4668, p = 1.5: 53.1 ULP).
          F::DD vd;
          if (general_dd && !d[k].dd_hi.empty() && !std::isnan(d[k].dd_hi[i]) &&
              norm_backward_dd(x, y, c.eps, norm.p, F::DD(d[k].dd_hi[i], d[k].dd_lo[i]), G, vd)) {
            gx.add_dd(xg + j * w.xgd, vd.hi, vd.lo);
            gy.add_dd(yg + j * w.ygd, -vd.hi, -vd.lo);
            continue;
          }
          const double v = norm.backward(x - y + c.eps, d[k].d[i], G, d[k].ties[i]);
          gx.add(xg + j * w.xgd, v);
          gy.add(yg + j * w.ygd, -v);
        }
      }
    }
  }
  const lb_tensor* t[3] = {c.rows[0].x, c.rows[0].y, c.rows[1].y};
  if (c.kind != Call::triplet || shape_of(*t[1]) != shape_of(*t[0]) ||
      shape_of(*t[2]) != shape_of(*t[0]) || numel(c.out_shape) != c.rows[0].n)
    return;
  const Rows& w0 = c.rows[0];
  // p = 2 with anchor, positive and negative of one shape (row r of every pair is row r of each
  // tensor): where the anchor's or the positive's two terms can cancel, that row's gradient
  // again in double-double (triplet_cancelling_row), replacing the sum.
  if (norm.kind != F::PNorm::two) return;
  std::vector<double> ga(static_cast<std::size_t>(w0.D)), gp(ga.size());
  for (std::int64_t r = 0; r < w0.n; ++r) {
    const auto i = static_cast<std::size_t>(r);
    const double G[3] = {gd[0][i], gd[1][i], c.num_rows == 3 ? gd[2][i] : 0.0};
    const double v[3] = {d[0].d[i], d[1].d[i], c.num_rows == 3 ? d[2].d[i] : 0.0};
    // An element whose sum (the accumulated gradient) is below `tiny` times its pair-0 term
    // cancelled (kernels.hpp: kTripletCancelF32).
    const double tiny = c.dtype == LB_FLOAT64 ? kTripletCancelF64 : kTripletCancelF32;
    const auto cancels = [&](const Grad& gr, std::int64_t o, std::int64_t st, double sign) {
      if (gr.out == nullptr || G[0] == 0.0) return false;
      for (std::int64_t j = 0; j < w0.D; ++j) {
        const double t0 = norm.backward(w0.xv(w0.xo(r), j) - w0.yv(w0.yo(r), j) + c.eps, v[0],
                                        sign * G[0], d[0].ties[i]);
        if (std::fabs(gr.acc[static_cast<std::size_t>(o + j * st)]) < tiny * std::fabs(t0))
          return true;
      }
      return false;
    };
    const bool want_a = G[1] == -G[0] && cancels(g[0], w0.xgo(r), w0.xgd, 1.0);
    const bool want_p = c.num_rows == 3 && G[2] == -G[0] && cancels(g[1], w0.ygo(r), w0.ygd, -1.0);
    if (!want_a && !want_p) continue;
    const int done = triplet_cancelling_row(c, r, G, v, want_a ? ga.data() : nullptr,
                                            want_p ? gp.data() : nullptr);
    for (std::int64_t j = 0; j < w0.D; ++j) {
      const double x = ga[static_cast<std::size_t>(j)], y = gp[static_cast<std::size_t>(j)];
      if ((done & 1) && !std::isnan(x))
        g[0].set(static_cast<std::size_t>(w0.xgo(r) + j * w0.xgd), x);
      if ((done & 2) && !std::isnan(y))
        g[1].set(static_cast<std::size_t>(w0.ygo(r) + j * w0.ygd), y);
    }
  }
}

}  // namespace

bool handles(const char* loss) {
  if (loss == nullptr) return false;
  const std::string_view l(loss);
  return l == "cosine_embedding_loss" || l == "triplet_margin_loss" ||
         l == "triplet_margin_with_distance_loss";
}

std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size, const KernelTable* k) {
  return guarded(error, error_size, [&] {
    Call c;
    build(call, c);
    c.kernels = k;
    threads = threads_for(c.rows[0].n * std::max<std::int64_t>(c.rows[0].D, 1), threads);
    check_output(c, output);
    run_forward(c, output, threads);
  });
}

namespace {
Upstream upstream_of(const Call& c, const lb_tensor* grad_output) {
  Upstream up;
  up.g = grad_output;
  up.reduce = c.reduce;
  up.divisor = c.mean ? static_cast<double>(numel(c.out_shape)) : 1.0;
  up.shape = c.out_shape;
  if (grad_output != nullptr) up.st = strides_of(*grad_output);
  return up;
}
}  // namespace

namespace {
// triplet_fast's or cosine_fast's gradients in one pass over the rows, leaving the rows' data in
// d for forward_from (cosine rows serving several outputs take row_data first).
void fast_backward(const Call& c, const Upstream& up, lb_tensor* const* gt, RowData* d,
                   int threads) {
  if (c.kind == Call::triplet) {
    triplet_fast_backward(c, up, gt, d, threads);
    return;
  }
  const bool one_pass = cosine_rows_are_outputs(c);
  if (!one_pass) row_data(c, d, threads);
  cosine_fast_backward(c, up, gt, d, threads, one_pass);
}
}  // namespace

std::int32_t forward_backward(const lb_call& call, lb_tensor& output, const lb_tensor* grad_output,
                              lb_tensor* grads, std::int32_t num_grads, int threads, char* error,
                              std::size_t error_size, const KernelTable* k, bool& fused) {
  fused = false;
  return guarded(error, error_size, [&] {
    Call c;
    build(call, c);
    c.kernels = k;
    threads = threads_for(c.rows[0].n * std::max<std::int64_t>(c.rows[0].D, 1), threads);
    check_output(c, output);
    lb_tensor* gt[3] = {};
    match_grads(call, c, grads, num_grads, gt);
    check_grad_output(c, grad_output);
    if (!triplet_fast(c, gt) && !cosine_fast(c, gt)) return;  // the caller makes the two calls
    // One pass: each row's data, then its gradients (the backward computes the rows' data); the
    // loss from those data after. Cosine rows serving several outputs take row_data first.
    RowData d[3];
    fast_backward(c, upstream_of(c, grad_output), gt, d, threads);
    forward_from(c, d, output, threads);
    fused = true;
  });
}

std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size,
                      const KernelTable* k) {
  return guarded(error, error_size, [&] {
    Call c;
    build(call, c);
    c.kernels = k;
    threads = threads_for(c.rows[0].n * std::max<std::int64_t>(c.rows[0].D, 1), threads);
    lb_tensor* gt[3] = {};
    match_grads(call, c, grads, num_grads, gt);
    check_grad_output(c, grad_output);
    const Upstream up = upstream_of(c, grad_output);
    if (triplet_fast(c, gt) || cosine_fast(c, gt)) {
      RowData d[3];
      fast_backward(c, up, gt, d, threads);
      return;
    }
    Grad g[3];
    for (int j = 0; j < 3; ++j) g[j].init(gt[j]);
    run_backward(c, up, g);
    for (auto& x : g) x.store();
  });
}

void match_grads(const lb_call& call, const Call& c, lb_tensor* grads, std::int32_t num_grads,
                 lb_tensor** out) {
  const bool ce = c.kind == Call::cosine_embedding;
  const char* names_ce[3] = {"input1", "input2", "target"};
  const char* names_tr[3] = {"anchor", "positive", "negative"};
  const char* const* names = ce ? names_ce : names_tr;
  for (int j = 0; j < 3; ++j) out[j] = nullptr;
  for (std::int32_t k = 0; k < num_grads; ++k) {
    const std::string_view name = grads[k].name ? grads[k].name : "";
    int which = -1;
    for (int j = 0; j < (ce ? 2 : 3); ++j)
      if (name == names[j]) which = j;
    if (which < 0) bad("no gradient for input '" + std::string(name) + "'");
    const lb_tensor& in = *input(call, names[which]);
    if (!floating(grads[k].dtype) || shape_of(grads[k]) != shape_of(in))
      bad("gradient '" + std::string(name) + "': wrong dtype or shape");
    out[which] = &grads[k];
  }
}

void check_grad_output(const Call& c, const lb_tensor* grad_output) {
  if (grad_output == nullptr) return;
  const Shape gs = shape_of(*grad_output);
  if (c.reduce ? numel(gs) != 1 : gs != c.out_shape) bad("grad_output has the wrong shape");
}

}  // namespace lossbench::opt::pairwise
