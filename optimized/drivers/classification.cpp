// The classification driver (see classification.hpp). Compiled for the baseline ISA; the
// per-ISA work (exp over a row, compensated sums) is behind the KernelTable.
#include "classification.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string_view>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "../formulas/dd.hpp"
#include "args.hpp"
#include "elements.hpp"

namespace lossbench::opt {

namespace {

using formulas::CrossEntropy;
using formulas::MultiMarginLoss;
using formulas::NllLoss;
using Reduction = ClassificationPlan::Reduction;

constexpr std::int64_t kPositionBlock = 512;  // positions per block (fixed: determinism)
constexpr std::size_t kRowPad = 32;           // row buffers: whole sum_block steps of any ISA

// Whether a float32 input gradient of `count` elements is written with non-temporal stores
// (args.hpp: kStreamBytes); a row is then streamed where its start is 64-byte aligned.
bool stream_grad(const lb_tensor* gx, std::int64_t count) {
  return gx != nullptr && gx->dtype == LB_FLOAT32 && count * 4 >= kStreamBytes;
}

// The same for a float64 input gradient (the float64 row kernels: multi_margin_loss,
// cross_entropy).
bool stream_grad64(const lb_tensor* gx, std::int64_t count) {
  return gx != nullptr && gx->dtype == LB_FLOAT64 && count * 8 >= kStreamBytes;
}

// Either, by the gradient's dtype.
bool stream_grad_any(const lb_tensor* gx, std::int64_t count) {
  return stream_grad(gx, count) || stream_grad64(gx, count);
}

// n float32 or float64 zeros at row: with non-temporal 16-byte stores over its aligned middle when
// `stream` (then fenced: the caller stores into the row next), else a plain fill.
template <class E>
void zero_row(E* row, std::int64_t n, bool stream) {
#if defined(__SSE2__)
  if (stream) {
    constexpr std::int64_t kStep = 16 / sizeof(E);
    std::int64_t i = 0;
    for (; i < n && reinterpret_cast<std::uintptr_t>(row + i) % 16 != 0; ++i) row[i] = E(0);
    for (; i + kStep <= n; i += kStep) {
      if constexpr (sizeof(E) == 4)
        _mm_stream_ps(row + i, _mm_setzero_ps());
      else
        _mm_stream_pd(row + i, _mm_setzero_pd());
    }
    for (; i < n; ++i) row[i] = E(0);
    _mm_sfence();
    return;
  }
#endif
  std::fill(row, row + n, E(0));
}

// Offset (in elements) of the flat index `flat` of t (row-major over its shape).
std::int64_t offset_of(const lb_tensor& t, std::int64_t flat) {
  std::int64_t off = 0, rest = flat;
  for (std::int32_t d = t.ndim; d-- > 0;) {
    off += (rest % t.shape[d]) * t.strides[d];
    rest /= t.shape[d];
  }
  return off;
}

double load(const lb_tensor& t, std::int64_t off) {
  return conformance::load_float(t.data, t.dtype, off);
}

void store(const lb_tensor& t, std::int64_t i, double v) {
  switch (t.dtype) {
    case LB_FLOAT64: static_cast<double*>(t.data)[i] = v; break;
    case LB_FLOAT32: static_cast<float*>(t.data)[i] = static_cast<float>(v); break;
    case LB_FLOAT16: static_cast<std::uint16_t*>(t.data)[i] = conformance::double_to_half(v); break;
    case LB_BFLOAT16:
      static_cast<std::uint16_t*>(t.data)[i] = conformance::double_to_bfloat16(v);
      break;
    default: break;
  }
}

// v in the compute type: double, or float32. Out of line, through a volatile float: GCC 12.2 at
// -O2/-O3 folded static_cast<double>(static_cast<float>(1.0 - e)) to 1.0 - e inside
// build_classification (observed: the float32 keep/spread of label smoothing came out unrounded).
__attribute__((noinline)) double compute_type_value(double v, bool is_double) {
  if (is_double) return v;
  volatile float f = static_cast<float>(v);
  return static_cast<double>(f);
}

// Row-major offsets of positions: input[i, k] is at base(i) + k * class_stride.
struct RowIndex {
  std::int64_t class_stride = 1;
  std::int64_t base(const ClassificationPlan& p, const lb_tensor& t, std::int64_t i) const {
    if (p.unbatched) return 0;
    if (p.s == 1) return i * t.strides[0];  // (N, C): no division
    const std::int64_t n = i / p.s;
    std::int64_t rest = i % p.s, off = n * t.strides[0];
    for (std::int32_t d = t.ndim; d-- > 2;) {
      off += (rest % t.shape[d]) * t.strides[d];
      rest /= t.shape[d];
    }
    return off;
  }
};

RowIndex row_index(const ClassificationPlan& p, const lb_tensor& t) {
  RowIndex r;
  r.class_stride = p.unbatched ? t.strides[0] : t.strides[1];
  return r;
}

// Contiguous gradient: [i, k] at grad_base(i) + k * grad_stride.
std::int64_t grad_base(const ClassificationPlan& p, std::int64_t i) {
  if (p.unbatched) return 0;
  return (i / p.s) * p.c * p.s + i % p.s;
}
std::int64_t grad_stride(const ClassificationPlan& p) { return p.unbatched ? 1 : p.s; }

// One row of logits and its softmax pieces (per thread).
struct Row {
  std::vector<double> x, e, tmp;
  double m = 0, s_hi = 0, s_lo = 0, lse = 0, z = 0;
  std::int64_t arg = 0;
  bool nan = false;
  explicit Row(std::int64_t c) {
    const std::size_t n = (static_cast<std::size_t>(c) + kRowPad - 1) / kRowPad * kRowPad + kRowPad;
    x.resize(n);
    e.resize(n);
    tmp.resize(n);
  }
  // x - m = d_hi + d_lo exactly (d_lo = 0 when d_hi is not finite).
  void diff(std::int64_t k, double& d_hi, double& d_lo) const {
    CrossEntropy::diff(x[k], m, d_hi, d_lo);
  }
  double log_prob(std::int64_t k) const {
    double d_hi, d_lo;
    diff(k, d_hi, d_lo);
    return CrossEntropy::log_prob(d_hi, d_lo, lse);
  }
};

// Reads row i of t (online max; NaN anywhere, an infinite max or an empty row: a NaN row).
void gather_row(const ClassificationPlan& p, const lb_tensor& t, std::int64_t i, Row& r) {
  const RowIndex ri = row_index(p, t);
  const std::int64_t base = ri.base(p, t, i);
  double m = -HUGE_VAL;
  bool nan = false;
  for (std::int64_t k = 0; k < p.c; ++k) {
    const double v = load(t, base + k * ri.class_stride);
    r.x[k] = v;
    nan = nan || v != v;
    m = v > m ? v : m;
  }
  r.m = m;
  r.nan = nan || !std::isfinite(m);
}

// exp(x - m), S = sum of the exps but the argmax's (compensated), lse = log1p(S), z = 1 + S.
void softmax_row(const KernelTable& k, const ClassificationPlan& p, Row& r) {
  const std::int64_t C = p.c;
  if (r.nan) {
    std::fill(r.e.begin(), r.e.begin() + C, formulas::kNaN);
    r.s_hi = r.lse = r.z = formulas::kNaN;
    r.s_lo = 0;
    return;
  }
  const std::size_t padded = (static_cast<std::size_t>(C) + kPad - 1) / kPad * kPad;
  for (std::size_t j = static_cast<std::size_t>(C); j < padded; ++j) r.x[j] = r.m;
  formulas::Params fp;
  fp.s0 = r.m;
  const double* in[1] = {r.x.data()};
  k.row_exp(in, r.e.data(), padded, fp);
  r.arg = C;
  for (std::int64_t j = 0; j < C; ++j) {
    double d_hi, d_lo;
    r.diff(j, d_hi, d_lo);
    r.e[j] = CrossEntropy::refine_exp(r.e[j], d_lo);
    if (r.arg == C && r.x[j] == r.m) r.arg = j;
    r.tmp[j] = r.e[j];
  }
  r.tmp[r.arg] = 0.0;
  k.sum(r.tmp.data(), static_cast<std::size_t>(C), &r.s_hi, &r.s_lo);
  const double S = r.s_hi + r.s_lo;
  r.lse = std::log1p(S);
  r.z = 1.0 + S;
}

// cross_entropy's fast path (KernelTable::ce_row_f32, ce_row_f64): class-index targets without
// label smoothing, contiguous classes, float32 logits, or float64 ones where the table has the
// double-double rows (the float64 table on AVX-512). For float32, x - m is exact in double
// wherever exp(x - m) is not negligible, so the general path's correction term vanishes; the
// float64 rows keep it (isa/ce_dd.hpp).
bool ce_fast_path(const ClassificationPlan& p, const RowIndex& xi, const KernelTable& k) {
  return p.loss == Loss::cross_entropy && !p.prob && !p.smoothing && p.c > 0 &&
         xi.class_stride == 1 &&
         (p.input->dtype == LB_FLOAT32 ||
          (p.input->dtype == LB_FLOAT64 && k.ce_row_f64 != nullptr));
}

// Position i's row of logits (contiguous classes).
const void* ce_row_ptr(const ClassificationPlan& p, const RowIndex& xi, std::int64_t i) {
  return element_at(*p.input, xi.base(p, *p.input, i));
}

// The fast path's sums of a row: its max m and s_hi + s_lo, the exp-sum less the argmax's 1.
struct FastRow {
  double m = 0.0, s_hi = 0.0, s_lo = 0.0;
};

// The row's sums, and its exps into e (float64: their low parts into e_lo) when non-null; false
// where the row takes the general path (a NaN, an infinite max).
bool ce_fast_row(const KernelTable& k, const ClassificationPlan& p, const void* x, double* e,
                 double* e_lo, FastRow& r) {
  if (p.input->dtype == LB_FLOAT64)
    return k.ce_row_f64(static_cast<const double*>(x), p.c, &r.m, &r.s_hi, &r.s_lo, e, e_lo);
  return k.ce_row_f32(static_cast<const float*>(x), p.c, &r.m, &r.s_hi, &r.s_lo, e);
}

// The fast path's loss of one row; t the target, wt its weight (the general path's formula).
double ce_fast_nll(const ClassificationPlan& p, const void* x, std::int64_t t, const FastRow& r,
                   double wt) {
  const double lse = std::log1p(r.s_hi + r.s_lo);
  double d_hi, d_lo;
  if (p.input->dtype == LB_FLOAT64)
    CrossEntropy::diff(static_cast<const double*>(x)[t], r.m, d_hi, d_lo);
  else
    d_hi = static_cast<const float*>(x)[t] - r.m, d_lo = 0.0;
  return NllLoss::term(CrossEntropy::log_prob(d_hi, d_lo, lse), wt);
}

// grad_k = p_k dl_t' with dl = d loss / d log p = (0, .., dl_t, .., 0): for k != t -e_k dl_t / z,
// and at t dl_t (z - e_t) / z (CrossEntropy::grad); the row written once. float64: z, q =
// -dl_t / z and z - e_t as double-doubles, each element rounded once.
void ce_fast_grad_row(const KernelTable& k, const ClassificationPlan& p, const void* x,
                      std::int64_t t, const FastRow& r, const double* e, const double* e_lo,
                      double dl_t, void* out, bool stream) {
  const std::int64_t C = p.c;
  if (p.input->dtype == LB_FLOAT64) {
    using formulas::DD;
    const DD S(r.s_hi, r.s_lo), z = DD(1.0) + S, q = DD(-dl_t) / z;
    double* o = static_cast<double*>(out);
    k.ce_grad_row_f64(e, e_lo, C, q.hi, q.lo, o, stream);
    DD et;
    formulas::dd::two_sum(e[t], e_lo[t], et.hi, et.lo);
    const DD zmt = static_cast<const double*>(x)[t] == r.m ? S : z - et;
    const DD v = -(zmt * q);
    o[t] = v.hi + v.lo;
    return;
  }
  const double z = 1.0 + (r.s_hi + r.s_lo);
  const double e_t = e[t];
  float* o = static_cast<float*>(out);
  k.ce_grad_row_f32(e, C, -dl_t / z, o, stream);
  const double zmt =
      static_cast<const float*>(x)[t] == r.m ? r.s_hi + r.s_lo : 1.0 + ((r.s_hi - e_t) + r.s_lo);
  o[t] = static_cast<float>(CrossEntropy::grad(dl_t, e_t, zmt, 0.0, z));
}

// p.w: the weight tensor's C values, or C ones without one. A vector of ones left by the thread's
// previous call is only resized (a fresh fill of C doubles was a tenth of nll_loss's forward).
void set_weights(ClassificationPlan& p) {
  const auto c = static_cast<std::size_t>(p.c);
  if (p.weight == nullptr) {
    if (p.w_ones)
      p.w.resize(c, 1.0);
    else
      p.w.assign(c, 1.0);
    p.w_ones = true;
    return;
  }
  p.w.resize(c);
  p.w_ones = false;
  for (std::int64_t k = 0; k < p.c; ++k)
    p.w[static_cast<std::size_t>(k)] = load(*p.weight, offset_of(*p.weight, k));
}

// The target class of position i, or -1 when ignored (or absent).
std::int64_t target_of(const ClassificationPlan& p, std::int64_t i) {
  if (i >= static_cast<std::int64_t>(p.t.size())) return -1;
  const std::int64_t t = p.t[static_cast<std::size_t>(i)];
  return t == p.ignore_index ? -1 : t;
}

std::int64_t layout_positions(const ClassificationPlan& p) { return p.unbatched ? 1 : p.n * p.s; }

bool per_position(const ClassificationPlan& p) {
  return p.reduction == Reduction::none && !p.unbatched;
}

// The (W) total weight of the non-ignored targets, serially in position order.
void total_weight(const ClassificationPlan& p, double& hi, double& lo) {
  hi = lo = 0.0;
  if (p.weight == nullptr) {
    // Unweighted: the count of targets that are not ignored, exact in a double (< 2^53).
    hi = static_cast<double>(p.valid_targets);
    return;
  }
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(p.t.size()); ++i) {
    const std::int64_t t = target_of(p, i);
    if (t >= 0) dd_add(hi, lo, p.w[static_cast<std::size_t>(t)], 0.0);
  }
}

// The smallest and largest target that is not ignored (0 and -1 when none) and the count of
// ignored ones, in one branch-free pass. Compiled for AVX-512, AVX2 and the baseline, chosen at
// load time (64-bit integer min/max vectorize only from AVX-512 / compare from AVX2 on).
__attribute__((target_clones("avx512f", "avx2", "default"))) void target_range(
    const std::int64_t* v, std::int64_t count, std::int64_t ignore, std::int64_t& lo_out,
    std::int64_t& hi_out, std::int64_t& ignored_out) {
  std::int64_t lo = 0, hi = -1, ignored = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi) reduction(+ : ignored)
  for (std::int64_t i = 0; i < count; ++i) {
    const bool skip = v[i] == ignore;
    ignored += skip ? 1 : 0;
    lo = std::min(lo, skip ? std::int64_t{0} : v[i]);
    hi = std::max(hi, skip ? std::int64_t{-1} : v[i]);
  }
  lo_out = lo;
  hi_out = hi;
  ignored_out = ignored;
}

void check_nll(const ClassificationPlan& p, const Shape& input, const lb_tensor& target,
               const lb_tensor* weight) {
  const std::size_t dim = input.size();
  const Shape ts = shape_of(target);
  if (dim < 1) bad("Expected 1 or more dimensions (got 0)");
  if (dim >= 2) {
    const std::int64_t tb = ts.empty() ? 0 : ts[0];
    if (input[0] != tb)
      bad("Expected input batch_size (" + std::to_string(input[0]) +
          ") to match target batch_size (" + std::to_string(tb) + ").");
  }
  const std::int64_t classes = dim == 1 ? input[0] : input[1];
  if (dim <= 2) {
    if (ts.size() > 1) bad("0D or 1D target tensor expected, multi-target not supported");
    if (!((dim == 1 && ts.empty()) || (ts.size() == 1 && input[0] == ts[0])))
      bad("size mismatch (got input: " + shape_string(input) + ", target: " + shape_string(ts) +
          ")");
    if (weight && !(weight->ndim == 1 && weight->shape[0] == classes))
      bad("weight tensor should be defined either for all " + std::to_string(classes) +
          " classes or no classes but got weight tensor of shape: " +
          shape_string(shape_of(*weight)));
  } else {
    if (dim != 4) {
      const Shape want_tail(input.begin() + 2, input.end());
      const Shape got_tail = ts.empty() ? Shape{} : Shape(ts.begin() + 1, ts.end());
      if (got_tail != want_tail) bad("Expected target size " + shape_string(ts));
    } else if (ts.size() != 3) {
      bad("only batches of spatial targets supported (3D tensors) but got targets of dimension: " +
          std::to_string(ts.size()));
    }
    if (weight && numel(shape_of(*weight)) != classes)
      bad("weight tensor should be defined either for all or no classes");
    if (dim == 4 && !(ts[0] == input[0] && ts[1] == input[2] && ts[2] == input[3]))
      bad("size mismatch (got input: " + shape_string(input) + " , target: " + shape_string(ts));
  }
  if (target.dtype != LB_INT64) bad("expected scalar type Long");
  (void)p;
}

// multi_margin_loss's checks, in PyTorch's order (docs/losses/multi_margin_loss.md).
void build_multi_margin(ClassificationPlan& p, const Shape& xs, const Shape& ts,
                        std::int64_t p_norm) {
  if (p_norm != 1 && p_norm != 2) bad("only p == 1 and p == 2 supported");
  p.p2 = p_norm == 2;
  if (p.weight && p.weight->ndim != 1) bad("weight must be one-dimensional");
  const std::size_t nd = xs.size();
  if (!((nd == 2 && xs[1] != 0) || (nd == 1 && xs[0] != 0) || nd == 0))
    bad("Expected non-empty vector or matrix with optional 0-dim batch size, but got: " +
        shape_string(xs));
  p.unbatched = nd <= 1;
  p.n = nd <= 1 ? 1 : xs[0];
  p.c = nd == 0 ? 1 : xs[nd - 1];
  if (!(ts.size() <= 1 && numel(ts) == p.n))
    bad("inconsistent target size, expected " + std::to_string(p.n) + " but got " +
        shape_string(ts));
  if (p.weight && numel(shape_of(*p.weight)) != p.c)
    bad("inconsistent weight size, expected " + std::to_string(p.c) + " but got " +
        shape_string(shape_of(*p.weight)));
  if (!ts.empty()) p.out_shape = {p.n};
  if (p.n == 0 && p.reduction != Reduction::none)
    bad("multi_margin_loss of an empty batch with reduction 'mean' or 'sum' is undefined");
  const lb_tensor& t = *p.target;
  p.t_copy.resize(static_cast<std::size_t>(p.n));
  p.t = {p.t_copy.data(), p.t_copy.size()};
  for (std::int64_t i = 0; i < p.n; ++i) {
    const std::int64_t v = static_cast<const std::int64_t*>(t.data)[offset_of(t, i)];
    p.t_copy[static_cast<std::size_t>(i)] = v;
    if (!(v >= 0 && v < p.c))
      bad("target out of range: " + std::to_string(v) + " not in [0, " + std::to_string(p.c) + ")");
  }
  p.positions = p.n;
  set_weights(p);
  // margin.to<scalar_t>(): rounded to the loss dtype, 16-bit ones included.
  switch (p.dtype) {
    case LB_FLOAT32: p.margin = static_cast<float>(p.margin); break;
    case LB_FLOAT16:
      p.margin = conformance::half_to_double(conformance::double_to_half(p.margin));
      break;
    case LB_BFLOAT16:
      p.margin = conformance::bfloat16_to_double(conformance::double_to_bfloat16(p.margin));
      break;
    default: break;
  }
}

// Offset of input[n, k] for multi_margin_loss (0-d, (C) or (N, C) input).
std::int64_t mm_offset(const ClassificationPlan& p, std::int64_t n, std::int64_t k) {
  const lb_tensor& x = *p.input;
  if (x.ndim == 0) return 0;
  if (x.ndim == 1) return k * x.strides[0];
  return n * x.strides[0] + k * x.strides[1];
}

// Row n of multi_margin_loss: the loss sum_i w_y h(z_i) / C, and (when grad) the local
// gradient row (before the upstream factor and 1/C) into `local`.
double mm_row(const ClassificationPlan& p, std::int64_t n, std::vector<double>& x, double* local) {
  const std::int64_t C = p.c;
  for (std::int64_t k = 0; k < C; ++k) x[k] = load(*p.input, mm_offset(p, n, k));
  const std::int64_t y = p.t[static_cast<std::size_t>(n)];
  const double wy = p.w[static_cast<std::size_t>(y)];
  formulas::Params fp;
  fp.f0 = p.p2;
  double hi = 0.0, lo = 0.0, g_hi = 0.0, g_lo = 0.0;
  for (std::int64_t i = 0; i < C; ++i) {
    if (i == y) continue;
    const double z = MultiMarginLoss::z(p.margin, x[y], x[i]);
    if (!(z > 0)) {
      if (local) local[i] = 0.0;
      continue;
    }
    dd_add(hi, lo, MultiMarginLoss::term(z, wy, fp), 0.0);
    if (local) {
      local[i] = MultiMarginLoss::grad(z, wy, fp);
      dd_add(g_hi, g_lo, -local[i], 0.0);
    }
  }
  if (local) local[y] = g_hi + g_lo;
  return dd_div(hi, lo, static_cast<double>(C));
}

// multi_margin_loss's float32 fast path (KernelTable::mm_row_f32): contiguous classes. The
// row's hinge terms (the target's own left out) are summed in plain double over the SIMD lanes;
// times w_y / C.
bool mm_fast(const ClassificationPlan& p) {
  const lb_tensor& x = *p.input;
  return x.dtype == LB_FLOAT32 && p.c > 0 && x.ndim > 0 && x.strides[x.ndim - 1] == 1;
}

// The row kernels' parameters (formulas::MultiMarginRow): margin - x_y as a double-double.
// The compensation (f1) only where margin - x_y is not exact in double: otherwise s0 + x_i is the
// exact z rounded once, whose sign is the exact sign.
formulas::Params mm_row_params(const ClassificationPlan& p, double xy) {
  double s, e;
  two_sum(p.margin, -xy, s, e);
  formulas::Params fp;
  fp.f0 = p.p2;
  fp.s0 = s;
  fp.s1 = e;
  fp.f1 = std::isfinite(s) && e != 0.0;
  return fp;
}

// The row kernel's description (KernelTable::mm_row_f32) of sample n.
MmRow mm_row_desc(const ClassificationPlan& p, std::int64_t n) {
  MmRow r;
  r.x = static_cast<const float*>(p.input->data) + mm_offset(p, n, 0);
  r.c = p.c;
  r.y = p.t[static_cast<std::size_t>(n)];
  r.p = mm_row_params(p, r.x[r.y]);
  return r;
}

double mm_row_fast(const KernelTable& k, const ClassificationPlan& p, std::int64_t n) {
  MmRow r = mm_row_desc(p, n);
  k.mm_row_f32(r);
  return p.w[static_cast<std::size_t>(r.y)] * r.sums[0] / static_cast<double>(p.c);
}

// multi_margin_loss's float64 fast path (KernelTable::mm_row_f64): contiguous classes. A row
// whose margin - x_y is not finite, or whose sums are not (an infinite input, an overflowing
// square), takes the general path (mm_row).
bool mm_fast64(const ClassificationPlan& p) {
  const lb_tensor& x = *p.input;
  return x.dtype == LB_FLOAT64 && p.c > 0 && x.ndim > 0 && x.strides[x.ndim - 1] == 1;
}

// The row kernel's description (KernelTable::mm_row_f64) of sample n; false where the row takes
// the general path.
bool mm_row64_desc(const ClassificationPlan& p, std::int64_t n, MmRow64& r) {
  r.x = static_cast<const double*>(p.input->data) + mm_offset(p, n, 0);
  r.c = p.c;
  r.y = p.t[static_cast<std::size_t>(n)];
  r.p = mm_row_params(p, r.x[r.y]);
  return std::isfinite(r.p.s0);
}

// A row's loss as a double-double: the reductions add it without rounding it first.
struct RowLoss {
  double hi = 0.0, lo = 0.0;
};

// w_y (h_hi + h_lo) / C in double-double.
RowLoss mm_row64_loss(const ClassificationPlan& p, const MmRow64& r) {
  using formulas::DD;
  const DD v = DD(r.sums[0], r.sums[1]) * DD(p.w[static_cast<std::size_t>(r.y)]) /
               DD(static_cast<double>(p.c));
  return {v.hi, v.lo};
}

// multi_margin_loss's row losses, reduced as the call asks: row(n, x) gives row n's loss (x:
// scratch of 2 C doubles per thread, mm_row's row and local gradient). 'none' stores each;
// otherwise blocks of kPositionBlock rows are summed as double-doubles and the blocks added in
// order (the same bits for any thread count). forward and the fused forward_backward both reduce
// here, so their losses agree bitwise.
template <class Row>
void mm_reduce_rows(const ClassificationPlan& p, lb_tensor& output, int threads, Row row) {
  const bool none = p.reduction == Reduction::none;
  const std::int64_t nb = (p.n + kPositionBlock - 1) / kPositionBlock;
  std::vector<double> part(static_cast<std::size_t>(nb) * 2, 0.0);
#pragma omp parallel num_threads(threads) if (nb > 1)
  {
    std::vector<double> x(static_cast<std::size_t>(p.c) * 2);
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < nb; ++blk) {
      const std::int64_t end = std::min(p.n, (blk + 1) * kPositionBlock);
      double hi = 0.0, lo = 0.0;
      for (std::int64_t n = blk * kPositionBlock; n < end; ++n) {
        const RowLoss v = row(n, x);
        if (none)
          store(output, n, v.hi + v.lo);
        else
          dd_add(hi, lo, v.hi, v.lo);
      }
      part[static_cast<std::size_t>(blk) * 2] = hi;
      part[static_cast<std::size_t>(blk) * 2 + 1] = lo;
    }
  }
  if (none) return;
  double hi = 0.0, lo = 0.0;
  for (std::int64_t blk = 0; blk < nb; ++blk)
    dd_add(hi, lo, part[static_cast<std::size_t>(blk) * 2],
           part[static_cast<std::size_t>(blk) * 2 + 1]);
  store(output, 0,
        p.reduction == Reduction::mean ? dd_div(hi, lo, static_cast<double>(p.n)) : hi + lo);
}

// The upstream gradient of row n: grad_output's element n for 'none' with a shaped
// grad_output, else its single value; over N for 'mean'.
double mm_upstream(const ClassificationPlan& p, const lb_tensor& grad_output, std::int64_t n) {
  const bool per_row = p.reduction == Reduction::none && grad_output.ndim > 0;
  const double g = load(grad_output, per_row ? offset_of(grad_output, n) : 0);
  return p.reduction == Reduction::mean ? g / static_cast<double>(p.n) : g;
}

// The upstream factor of row n's float64 gradients as a double-double: w_y g / C, over N for
// 'mean' (mm_upstream's g, not rounded).
formulas::DD mm_scale64(const ClassificationPlan& p, const lb_tensor& grad_output, std::int64_t n,
                        double wy) {
  using formulas::DD;
  const bool per_row = p.reduction == Reduction::none && grad_output.ndim > 0;
  const double g = load(grad_output, per_row ? offset_of(grad_output, n) : 0);
  DD s = DD(g) * DD(wy) / DD(static_cast<double>(p.c));
  if (p.reduction == Reduction::mean) s = s / DD(static_cast<double>(p.n));
  return s;
}

// Row n by the float64 fast path: its loss, and where grad_output is given its gradient row at
// out (w_y g d_i / C, the target's entry minus their sum). False where the row takes the general
// path (out may then hold partial values: the caller overwrites the row).
bool mm_row64_fast(const KernelTable& k, const ClassificationPlan& p, std::int64_t n,
                   const lb_tensor* grad_output, double* out, bool stream, RowLoss& loss) {
  MmRow64 r;
  if (!mm_row64_desc(p, n, r)) return false;
  formulas::DD scale;
  if (grad_output != nullptr) {
    scale = mm_scale64(p, *grad_output, n, p.w[static_cast<std::size_t>(r.y)]);
    if (!std::isfinite(scale.hi)) return false;
    r.scale = scale.hi;
    r.scale_lo = scale.lo;
    r.out = out;
    r.stream = stream && reinterpret_cast<std::uintptr_t>(out) % 64 == 0;
  }
  k.mm_row_f64(r);
  if (!std::isfinite(r.sums[0]) || !std::isfinite(r.sums[2])) return false;
  loss = mm_row64_loss(p, r);
  if (grad_output != nullptr) {
    const formulas::DD v = formulas::DD(r.sums[2], r.sums[3]) * scale;
    out[r.y] = 0.0 - (v.hi + v.lo);  // +0 for no active class
  }
  return true;
}

// The general path's row n with its gradient row stored into gx (x: 2 C doubles of scratch).
RowLoss mm_row_general(const ClassificationPlan& p, std::int64_t n, const lb_tensor& grad_output,
                       const lb_tensor& gx, std::vector<double>& x) {
  double* local = x.data() + p.c;
  const double loss = mm_row(p, n, x, local);
  const double g = mm_upstream(p, grad_output, n), C = static_cast<double>(p.c);
  for (std::int64_t c = 0; c < p.c; ++c) store(gx, n * p.c + c, local[c] * g / C);
  return {loss, 0.0};
}

void mm_forward(const KernelTable& k, const ClassificationPlan& p, lb_tensor& output, int threads) {
  check_classification_output(p, output);
  const bool fast = mm_fast(p), fast64 = mm_fast64(p);
  mm_reduce_rows(p, output, threads, [&](std::int64_t n, std::vector<double>& x) -> RowLoss {
    if (fast) return {mm_row_fast(k, p, n), 0.0};
    RowLoss v;
    if (fast64 && mm_row64_fast(k, p, n, nullptr, nullptr, false, v)) return v;
    return {mm_row(p, n, x, nullptr), 0.0};
  });
}

// multi_margin_loss's float32 gradient fast path (KernelTable::mm_row_f32): contiguous classes
// and a contiguous float32 gradient. One pass writes every other class's d_i (w_y g / C) and sums
// the derivatives; the target's entry is then -w_y (that sum) g / C. Returns the row's loss.
double mm_grad_row_fast(const KernelTable& k, const ClassificationPlan& p, std::int64_t n, double g,
                        float* out, bool stream) {
  MmRow r = mm_row_desc(p, n);
  const double wy = p.w[static_cast<std::size_t>(r.y)];
  const double C = static_cast<double>(p.c);
  r.scale = wy * g / C;
  r.out = out;
  r.stream = stream && reinterpret_cast<std::uintptr_t>(out) % 64 == 0;
  k.mm_row_f32(r);
  out[r.y] = static_cast<float>((0.0 - r.sums[1] * wy) * g / C);  // +0 for no active class
  return wy * r.sums[0] / C;
}

// forward_backward's multi_margin_loss float32 fast path: each row's loss and gradient from one
// pass (mm_grad_row_fast), the losses reduced as mm_forward reduces them (the same values as the
// two calls, bitwise). False (nothing written) where it does not apply.
bool mm_fused(const KernelTable& k, const ClassificationPlan& p, lb_tensor& output,
              const lb_tensor& grad_output, lb_tensor* grads, std::int32_t num_grads, int threads) {
  const lb_tensor* gx = nullptr;
  const lb_tensor* gt = nullptr;
  const lb_tensor* gw = nullptr;
  match_classification_grads(p, &grad_output, grads, num_grads, gx, gt, gw);
  if (gx == nullptr || gt != nullptr || gw != nullptr) return false;
  if (gx->dtype == LB_FLOAT64 && mm_fast64(p)) {
    check_classification_output(p, output);
    const bool stream = stream_grad64(gx, p.n * p.c);
    double* out = static_cast<double*>(gx->data);
    mm_reduce_rows(p, output, threads, [&](std::int64_t n, std::vector<double>& x) {
      RowLoss v;
      if (mm_row64_fast(k, p, n, &grad_output, out + n * p.c, stream, v)) return v;
      return mm_row_general(p, n, grad_output, *gx, x);
    });
    return true;
  }
  if (gx->dtype != LB_FLOAT32 || !mm_fast(p)) return false;
  check_classification_output(p, output);
  const bool stream = stream_grad(gx, p.n * p.c);
  float* out = static_cast<float*>(gx->data);
  mm_reduce_rows(p, output, threads, [&](std::int64_t n, std::vector<double>&) -> RowLoss {
    return {mm_grad_row_fast(k, p, n, mm_upstream(p, grad_output, n), out + n * p.c, stream), 0.0};
  });
  return true;
}

void mm_backward(const KernelTable& k, const ClassificationPlan& p, const lb_tensor& grad_output,
                 const lb_tensor& gx, int threads) {
  // gx is contiguous (the ABI's rule).
  const bool fast = mm_fast(p) && gx.dtype == LB_FLOAT32;
  const bool fast64 = mm_fast64(p) && gx.dtype == LB_FLOAT64;
  const bool stream = fast64 ? stream_grad64(&gx, p.n * p.c) : stream_grad(&gx, p.n * p.c);
#pragma omp parallel num_threads(threads) if (p.n > kPositionBlock)
  {
    std::vector<double> x(static_cast<std::size_t>(p.c) * 2);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < p.n; ++n) {
      if (fast) {
        const double g = mm_upstream(p, grad_output, n);
        mm_grad_row_fast(k, p, n, g, static_cast<float*>(gx.data) + n * p.c, stream);
        continue;
      }
      RowLoss v;
      if (fast64 &&
          mm_row64_fast(k, p, n, &grad_output, static_cast<double*>(gx.data) + n * p.c, stream, v))
        continue;
      mm_row_general(p, n, grad_output, gx, x);
    }
  }
}

}  // namespace

ClassificationPlan& reused_plan() {
  thread_local ClassificationPlan plan;
  std::vector<double> w = std::move(plan.w);
  std::vector<std::int64_t> t = std::move(plan.t_copy);
  const bool w_ones = plan.w_ones && w.size() > 0;
  plan = ClassificationPlan{};
  t.clear();
  plan.w = std::move(w);  // its contents too: set_weights need not refill a vector of ones
  plan.w_ones = w_ones;
  plan.t_copy = std::move(t);
  return plan;
}

bool is_classification(const char* loss) {
  if (loss == nullptr) return false;
  const std::string_view l(loss);
  return l == "cross_entropy" || l == "nll_loss" || l == "multi_margin_loss";
}

void build_classification(const lb_call& call, ClassificationPlan& p) {
  if (call.device.type != LB_DEVICE_CPU) unsupported("the cpu backend runs on the CPU only");
  const std::string_view id(call.loss);
  const bool ce = id == "cross_entropy";
  const bool mm = id == "multi_margin_loss";
  p.loss = ce ? Loss::cross_entropy : (mm ? Loss::multi_margin_loss : Loss::nll_loss);
  for (std::int32_t k = 0; k < call.num_inputs; ++k) {
    const lb_tensor& t = call.inputs[k];
    const std::string_view name = t.name ? t.name : "";
    if (t.device.type != LB_DEVICE_CPU) unsupported("tensors must be on the CPU");
    if (t.ndim > 16) unsupported("more than 16 dimensions");
    if (name == "input")
      p.input = &t;
    else if (name == "target")
      p.target = &t;
    else if (name == "weight")
      p.weight = &t;
    else
      unsupported("unknown input '" + std::string(name) + "'");
  }
  if (p.input == nullptr || p.target == nullptr) bad("missing input or target");
  const lb_tensor& x = *p.input;
  if (x.dtype < LB_FLOAT64 || x.dtype > LB_BFLOAT16) bad("input: a floating dtype is expected");
  if (p.weight && p.weight->dtype != x.dtype) bad("expected weight to have the input's dtype");
  p.dtype = x.dtype;

  // Parameters.
  double e = 0.0;
  std::int64_t p_norm = 1;
  for (std::int32_t k = 0; k < call.num_params; ++k) {
    const lb_param& q = call.params[k];
    const std::string_view name = q.name ? q.name : "";
    if (mm && name == "p") {
      if (q.type != LB_PARAM_INT) bad("p: an integer is expected");
      p_norm = q.i;
    } else if (mm && name == "margin") {
      if (q.type == LB_PARAM_FLOAT)
        p.margin = q.f;
      else if (q.type == LB_PARAM_INT)
        p.margin = static_cast<double>(q.i);
      else
        bad("margin: a number is expected");
    } else if (!mm && name == "ignore_index") {
      if (q.type != LB_PARAM_INT) bad("ignore_index: an integer is expected");
      p.ignore_index = q.i;
    } else if (ce && name == "label_smoothing") {
      if (q.type == LB_PARAM_FLOAT)
        e = q.f;
      else if (q.type == LB_PARAM_INT)
        e = static_cast<double>(q.i);
      else
        bad("label_smoothing: a number is expected");
    } else {
      unsupported("unknown parameter '" + std::string(name) + "'");
    }
  }
  const std::string_view red = call.reduction ? call.reduction : "mean";
  if (red == "none")
    p.reduction = Reduction::none;
  else if (red == "sum")
    p.reduction = Reduction::sum;
  else if (red == "mean")
    p.reduction = Reduction::mean;
  else
    bad(std::string(red) + " is not a valid value for reduction");

  const Shape xs = shape_of(x);
  const Shape ts = shape_of(*p.target);
  if (mm) {
    build_multi_margin(p, xs, ts, p_norm);
    return;
  }
  p.prob = ce && xs == ts;
  if (e > 1.0) {
    std::ostringstream m;
    m << "label_smoothing must be between 0.0 and 1.0. Got: " << e;
    bad(m.str());
  }
  if (p.prob) {
    if (p.target->dtype < LB_FLOAT64 || p.target->dtype > LB_BFLOAT16)
      bad("Expected floating point type for target with class probabilities");
    if (p.target->dtype != x.dtype) bad("expected target to have the input's dtype");
    if (p.ignore_index >= 0) bad("ignore_index is not supported for floating point target");
    if (xs.empty()) bad("Dimension specified as 1 but tensor has no dimensions");
  } else {
    if (xs.empty()) bad("Dimension out of range (expected to be in range of [-1, 0], but got 1)");
    check_nll(p, xs, *p.target, p.weight);
  }
  p.unbatched = xs.size() == 1;
  if (p.unbatched) {
    p.c = xs[0];
  } else {
    p.n = xs[0];
    p.c = xs[1];
    p.out_shape.push_back(xs[0]);
    for (std::size_t d = 2; d < xs.size(); ++d) {
      p.spatial.push_back(xs[d]);
      p.s *= xs[d];
      p.out_shape.push_back(xs[d]);
    }
  }
  if (p.prob && p.weight && !(p.weight->ndim == 1 && p.weight->shape[0] == p.c))
    bad("cross_entropy: weight tensor should be defined either for all " + std::to_string(p.c) +
        " classes or no classes but got weight tensor of shape: " +
        shape_string(shape_of(*p.weight)));
  p.smoothing = ce && e > 0.0;
  // PyTorch multiplies by the C++ doubles 1 - e and e / C, converted to the compute type:
  // double for float64, float32 otherwise (opmath for the 16-bit dtypes).
  const bool compute_double = p.dtype == LB_FLOAT64;
  p.keep = compute_type_value(1.0 - e, compute_double);
  p.spread = compute_type_value(e / static_cast<double>(p.c), compute_double);
  if (!p.prob && p.smoothing && p.weight && xs.size() > 1 && p.weight->ndim != 1)
    bad("shape of the weight is invalid for the smoothing term's view [1, C, 1, ...]");

  set_weights(p);
  if (p.prob) {
    p.positions = layout_positions(p);
    return;
  }
  // Class-index targets (a 1-D input reads target[0] only).
  const lb_tensor& t = *p.target;
  const std::int64_t tn = numel(ts);
  const std::int64_t count = p.unbatched ? std::min<std::int64_t>(tn, 1) : tn;
  const auto* td = static_cast<const std::int64_t*>(t.data);
  if (t.ndim <= 1 && (t.ndim == 0 || t.strides[0] == 1 || count <= 1)) {
    p.t = {td, static_cast<std::size_t>(count)};  // read in place
  } else {
    p.t_copy.resize(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; ++i)
      p.t_copy[static_cast<std::size_t>(i)] = td[offset_of(t, i)];
    p.t = {p.t_copy.data(), p.t_copy.size()};
  }
  // One branch-free pass flags a bad target and counts the ignored ones; the loop below only
  // runs to name the first bad one.
  bool any_bad = false;
  std::int64_t ignored = 0;
  {
    std::int64_t lo = 0, hi = -1;
    target_range(p.t.data(), count, p.ignore_index, lo, hi, ignored);
    any_bad = lo < 0 || hi >= p.c;
  }
  p.valid_targets = count - ignored;
  if (any_bad)
    for (const std::int64_t v : p.t)
      if (v != p.ignore_index && !(v >= 0 && v < p.c))
        bad("Target " + std::to_string(v) + " is out of bounds.");
  p.positions = count;
}

// nll_loss over (N, C) float32 or float64 rows, positions start .. start + n: one loop of
// independent gathers and their terms, with the logit kAhead positions on prefetched (positions
// past the block too), so that as many misses are in flight as the core allows; the terms into
// a (and the output, each).
template <class E>
void nll_rows_block(const ClassificationPlan& p, const lb_tensor& output, const E* x,
                    const RowIndex& xi, std::int64_t start, std::int64_t n, bool store_each,
                    double* a) {
  const std::int64_t rs = p.input->strides[0], cs = xi.class_stride;
  const std::int64_t* t = p.t.data();
  constexpr std::int64_t kAhead = 64;
  const std::int64_t prefetch_end = std::min(p.positions, start + n + kAhead);
  for (std::int64_t i = start; i < start + n; ++i) {
    if (i + kAhead < prefetch_end) {
      const std::int64_t tn = t[i + kAhead];
      __builtin_prefetch(x + (i + kAhead) * rs + (tn == p.ignore_index ? 0 : tn) * cs);
    }
    const std::int64_t cls = t[i];
    const bool ignored = cls == p.ignore_index;
    const E v = x[i * rs + (ignored ? 0 : cls) * cs];
    // Without a weight, w_t = 1 (NllLoss::term(x, 1) is -x, bitwise).
    const double wt = p.weight == nullptr || ignored ? 1.0 : p.w[static_cast<std::size_t>(cls)];
    const double nll = ignored ? 0.0 : NllLoss::term(static_cast<double>(v), wt);
    if (store_each) store(output, i, nll);
    a[i - start] = nll;
  }
}

void run_classification_forward(const KernelTable& k, const ClassificationPlan& p,
                                lb_tensor& output, int threads) {
  // nll_loss with class-index targets reads one logit per position, not a row: a gather that
  // misses every cache level, weighed as the 16 float32 elements of the line it brings in (the
  // second thread doubles the misses in flight once there are thousands of them).
  const bool gathers = p.loss == Loss::nll_loss && !p.prob;
  threads =
      threads_for(layout_positions(p) * (gathers ? 16 : std::max<std::int64_t>(p.c, 1)), threads);
  if (p.loss == Loss::multi_margin_loss) return mm_forward(k, p, output, threads);
  check_classification_output(p, output);
  const std::int64_t P = p.positions;
  const std::int64_t nb = (P + kPositionBlock - 1) / kPositionBlock;
  const bool store_each = per_position(p);
  // Per block: [0] the NLL terms (or probability-mode losses), [1] the smoothing terms.
  std::vector<double> part(static_cast<std::size_t>(nb) * 4, 0.0);
  const bool ce = p.loss == Loss::cross_entropy;
#pragma omp parallel num_threads(threads) if (nb > 1)
  {
    Row r(ce ? p.c : 0);
    std::vector<double> a(kPositionBlock + kRowPad), b(kPositionBlock + kRowPad);
    const RowIndex xi = row_index(p, *p.input);
    const RowIndex ti = p.prob ? row_index(p, *p.target) : RowIndex{};
    const bool fast = ce_fast_path(p, xi, k);
    const bool nll_rows = !ce && !p.prob && !p.unbatched && p.s == 1 && p.c > 0 &&
                          (p.input->dtype == LB_FLOAT32 || p.input->dtype == LB_FLOAT64) &&
                          static_cast<std::int64_t>(p.t.size()) == P;
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < nb; ++blk) {
      const std::int64_t start = blk * kPositionBlock;
      const std::int64_t n = std::min(kPositionBlock, P - start);
      if (nll_rows) {
        if (p.input->dtype == LB_FLOAT64)
          nll_rows_block(p, output, static_cast<const double*>(p.input->data), xi, start, n,
                         store_each, a.data());
        else
          nll_rows_block(p, output, static_cast<const float*>(p.input->data), xi, start, n,
                         store_each, a.data());
        if (!store_each) {
          const std::size_t q = static_cast<std::size_t>(blk) * 4;
          k.sum(a.data(), static_cast<std::size_t>(n), &part[q], &part[q + 1]);
        }
        continue;
      }
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t i = start + j;
        double nll = 0.0, smooth = 0.0;
        if (p.prob) {
          if (p.c > 0) {
            gather_row(p, *p.input, i, r);
            softmax_row(k, p, r);
          }
          const std::int64_t tb = ti.base(p, *p.target, i);
          formulas::Params fp;
          fp.f0 = p.smoothing;
          fp.s0 = p.keep;
          fp.s1 = p.spread;
          for (std::int64_t c = 0; c < p.c; ++c) {
            const double tc =
                CrossEntropy::smoothed_target(load(*p.target, tb + c * ti.class_stride), fp);
            r.tmp[c] = (r.log_prob(c) * tc) * p.w[static_cast<std::size_t>(c)];
          }
          double hi = 0.0, lo = 0.0;
          if (p.c > 0) k.sum(r.tmp.data(), static_cast<std::size_t>(p.c), &hi, &lo);
          nll = -(hi + lo);
        } else {
          const std::int64_t t = target_of(p, i);
          if (t >= 0) {
            const double wt = p.w[static_cast<std::size_t>(t)];
            if (!ce) {
              nll =
                  NllLoss::term(load(*p.input, xi.base(p, *p.input, i) + t * xi.class_stride), wt);
            } else if (FastRow fr;
                       fast && ce_fast_row(k, p, ce_row_ptr(p, xi, i), nullptr, nullptr, fr)) {
              // The fast path (no smoothing): one read of the row's logits.
              nll = ce_fast_nll(p, ce_row_ptr(p, xi, i), t, fr, wt);
            } else {
              gather_row(p, *p.input, i, r);
              softmax_row(k, p, r);
              nll = NllLoss::term(r.log_prob(t), wt);
              if (p.smoothing) {
                for (std::int64_t c = 0; c < p.c; ++c)
                  r.tmp[c] = r.log_prob(c) * p.w[static_cast<std::size_t>(c)];
                double hi, lo;
                k.sum(r.tmp.data(), static_cast<std::size_t>(p.c), &hi, &lo);
                smooth = -(hi + lo);
              }
            }
          }
        }
        if (store_each)
          store(output, i, p.smoothing && !p.prob ? p.keep * nll + smooth * p.spread : nll);
        a[j] = nll;
        b[j] = smooth;
      }
      if (!store_each) {
        const std::size_t q = static_cast<std::size_t>(blk) * 4;
        k.sum(a.data(), static_cast<std::size_t>(n), &part[q], &part[q + 1]);
        k.sum(b.data(), static_cast<std::size_t>(n), &part[q + 2], &part[q + 3]);
      }
    }
  }
  if (store_each) return;
  double a_hi = 0.0, a_lo = 0.0, b_hi = 0.0, b_lo = 0.0;
  for (std::int64_t blk = 0; blk < nb; ++blk) {
    const std::size_t q = static_cast<std::size_t>(blk) * 4;
    dd_add(a_hi, a_lo, part[q], part[q + 1]);
    dd_add(b_hi, b_lo, part[q + 2], part[q + 3]);
  }
  double v;
  if (p.prob) {
    if (p.reduction == Reduction::mean) {
      const std::int64_t numel_x = p.c * layout_positions(p);
      v = numel_x == 0 ? formulas::kNaN : dd_div(a_hi, a_lo, static_cast<double>(P));
    } else {
      v = a_hi + a_lo;
    }
  } else {
    double nll = a_hi + a_lo, smooth = b_hi + b_lo;
    if (p.reduction == Reduction::mean) {
      double w_hi, w_lo;
      total_weight(p, w_hi, w_lo);
      const double W = w_hi + w_lo;
      nll = dd_div(a_hi, a_lo, W);
      smooth = dd_div(b_hi, b_lo, W);
    }
    v = p.smoothing ? p.keep * nll + smooth * p.spread : nll;
  }
  store(output, 0, v);
}

// The row's exps exp(x_c - m) in DD into e (the argmax's exactly 1) and their sum but the
// argmax's, S.
formulas::DD ce_row_exps_dd(const ClassificationPlan& p, const Row& r,
                            std::vector<formulas::DD>& e) {
  using formulas::DD;
  e.resize(static_cast<std::size_t>(p.c));
  DD S;
  for (std::int64_t c = 0; c < p.c; ++c) {
    double d_hi, d_lo;
    r.diff(c, d_hi, d_lo);
    const auto k = static_cast<std::size_t>(c);
    e[k] = c == r.arg ? DD(1.0) : formulas::vexp(DD(d_hi, d_lo));
    if (c != r.arg) S = S + e[k];
  }
  return S;
}

// cross_entropy's float64 gradient row on the general path, each element rounded once from
// double-double values (the double formula's inputs e_c, z, dl_c and their sums each carried a
// rounding, which p_c sum_k dl_k - dl_c amplifies where p_c is near its target share: lossbench
// fuzz seed 20261203 case 369, probability targets, 453 ULP; and without cancellation the four
// roundings reached 2.2 ULP, case 1536). g is the row's upstream scale in DD (s, s / count, or
// s / W), tc the row's raw probability targets (null for class indices), t the target class.
// Plain class-index rows (no smoothing): grad_c = e_c q for c != t and -zmt q at t, with
// q = -dl_t / z in DD and e_c the row's double exps (one more rounding). Probability targets and
// label smoothing: e_c = exp(x_c - m) in DD for every class, dl_c, z and their sums in DD.
// S_ready: e and S already from ce_row_exps_dd (null: computed here). Returns false where a
// value is not finite (the caller keeps the double formula).
bool ce_grad_row_dd(const ClassificationPlan& p, const Row& r, std::int64_t t, formulas::DD g,
                    const double* tc, std::vector<formulas::DD>& e, std::vector<formulas::DD>& dl,
                    const formulas::DD* S_ready, double* out) {
  using formulas::DD;
  const std::int64_t C = p.c;
  const auto w = [&](std::int64_t c) { return DD(p.w[static_cast<std::size_t>(c)]); };
  if (tc == nullptr && !p.smoothing) {
    const DD S(r.s_hi, r.s_lo), z = DD(1.0) + S, q = (g * w(t)) / z;
    for (std::int64_t c = 0; c < C; ++c) {
      const DD v = DD(r.e[c]) * q;
      out[c] = v.hi + v.lo;
    }
    const DD zmt = t == r.arg ? S : z - DD(r.e[t]);
    const DD v = -(zmt * q);
    out[t] = v.hi + v.lo;
    return std::isfinite(q.hi) && std::isfinite(z.hi);
  }
  const DD S = S_ready != nullptr ? *S_ready : ce_row_exps_dd(p, r, e);
  dl.resize(e.size());
  DD D;
  for (std::int64_t c = 0; c < C; ++c) {
    const auto k = static_cast<std::size_t>(c);
    if (tc != nullptr) {
      const DD tt = p.smoothing ? DD(tc[c]) * DD(p.keep) + DD(p.spread) : DD(tc[c]);
      dl[k] = -(g * (w(c) * tt));
    } else {
      const DD a = c == t ? DD(p.keep) * w(t) : DD(0.0);
      dl[k] = -(g * (a + DD(p.spread) * w(c)));
    }
    D = D + dl[k];
  }
  const DD z = DD(1.0) + S;
  if (!std::isfinite(z.hi) || !std::isfinite(D.hi)) return false;
  for (std::int64_t c = 0; c < C; ++c) {
    const auto k = static_cast<std::size_t>(c);
    const DD zmc = c == r.arg ? S : z - e[k];
    const DD v = (dl[k] * zmc - e[k] * (D - dl[k])) / z;
    if (!std::isfinite(v.hi)) return false;
    out[c] = v.hi + v.lo;
  }
  return true;
}

void run_classification_backward(const KernelTable& k, const ClassificationPlan& p,
                                 const lb_tensor& grad_output, lb_tensor* grads,
                                 std::int32_t num_grads, int threads) {
  threads = threads_for(layout_positions(p) * std::max<std::int64_t>(p.c, 1), threads);
  const lb_tensor* gx = nullptr;
  const lb_tensor* gt = nullptr;
  const lb_tensor* gw = nullptr;
  match_classification_grads(p, &grad_output, grads, num_grads, gx, gt, gw);
  if (p.loss == Loss::multi_margin_loss) {
    if (gx) mm_backward(k, p, grad_output, *gx, threads);
    return;
  }
  const bool each = per_position(p);
  const Shape gs = shape_of(grad_output);
  const bool ce = p.loss == Loss::cross_entropy;
  // The upstream of position i: g_i, or g (over W or the position count for mean).
  double g0 = each && !gs.empty() ? 0.0 : load(grad_output, 0);
  double W = 1.0;
  double W_lo = 0.0;
  if (!p.prob && p.reduction == Reduction::mean) {
    double hi, lo;
    total_weight(p, hi, lo);
    formulas::dd::fast_two_sum(hi, lo, W, W_lo);  // W + W_lo: the total weight in DD
  }
  const double count = static_cast<double>(p.positions);
  auto upstream = [&](std::int64_t i) {
    return each && !gs.empty() ? load(grad_output, offset_of(grad_output, i)) : g0;
  };
  const std::int64_t L = layout_positions(p);
  const std::int64_t gstride = grad_stride(p);
  const bool stream = stream_grad_any(gx, L * p.c);
  std::vector<double> dw_hi(gw ? static_cast<std::size_t>(p.c) : 0, 0.0), dw_lo(dw_hi);
  const std::int64_t nb = (L + kPositionBlock - 1) / kPositionBlock;
  // The weight gradient sums over positions: one thread, positions in order (deterministic).
#pragma omp parallel num_threads(gw ? 1 : threads) if (nb > 1)
  {
    Row r(ce ? p.c : 0);
    std::vector<double> dl((static_cast<std::size_t>(p.c) + kRowPad) / kRowPad * kRowPad + kRowPad);
    const RowIndex ti = p.prob ? row_index(p, *p.target) : RowIndex{};
    const RowIndex xi = row_index(p, *p.input);
    // The fast path writes the gradient in the logits' dtype.
    const bool fast =
        gx != nullptr && gx->dtype == p.input->dtype && gstride == 1 && ce_fast_path(p, xi, k);
    std::vector<double> e_lo(fast && p.input->dtype == LB_FLOAT64 ? r.e.size() : 0);
    // The float64 rows in double-double (ce_grad_row_dd): raw targets, the row's gradient, DDs.
    const bool dd_rows = ce && gx != nullptr && gx->dtype == LB_FLOAT64;
    std::vector<double> tcv(dd_rows && p.prob ? r.e.size() : 0), gout(dd_rows ? r.e.size() : 0);
    std::vector<formulas::DD> dd_e, dd_dl;
    formulas::Params fp;
    fp.f0 = p.smoothing;
    fp.s0 = p.keep;
    fp.s1 = p.spread;
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < nb; ++blk) {
      const std::int64_t end = std::min(L, (blk + 1) * kPositionBlock);
      for (std::int64_t i = blk * kPositionBlock; i < end; ++i) {
        const std::int64_t gb = grad_base(p, i);
        if (!ce) {
          if (gx == nullptr) continue;
          const std::int64_t t = target_of(p, i);
          const double s = p.reduction == Reduction::mean ? upstream(i) / W : upstream(i);
          // A float32 or float64 row of zeros, one value.
          const auto one_value = [&](auto* row) {
            zero_row(row, p.c, stream);
            if (t >= 0)
              row[t] = static_cast<std::remove_pointer_t<decltype(row)>>(
                  NllLoss::grad(p.w[static_cast<std::size_t>(t)], s));
          };
          if (gx->dtype == LB_FLOAT32 && gstride == 1) {
            one_value(static_cast<float*>(gx->data) + gb);
            continue;
          }
          if (gx->dtype == LB_FLOAT64 && gstride == 1) {
            one_value(static_cast<double*>(gx->data) + gb);
            continue;
          }
          for (std::int64_t c = 0; c < p.c; ++c)
            store(*gx, gb + c * gstride,
                  c == t ? NllLoss::grad(p.w[static_cast<std::size_t>(t)], s) : 0.0);
          continue;
        }
        if (p.c == 0) continue;
        if (fast) {
          const std::int64_t t = target_of(p, i);
          const void* x = ce_row_ptr(p, xi, i);
          FastRow fr;
          if (t >= 0 && ce_fast_row(k, p, x, r.e.data(), e_lo.data(), fr)) {
            const double s_nll = p.reduction == Reduction::mean ? upstream(i) / W : upstream(i);
            const double dl_t = NllLoss::grad(p.w[static_cast<std::size_t>(t)], s_nll);
            ce_fast_grad_row(k, p, x, t, fr, r.e.data(), e_lo.data(), dl_t, element_at(*gx, gb),
                             stream);
            continue;
          }
        }
        gather_row(p, *p.input, i, r);
        const double up = upstream(i);
        double s = up;
        std::int64_t t = -1;
        if (p.prob) {
          if (p.reduction == Reduction::mean) s = s / count;
        } else {
          t = target_of(p, i);
          if (t < 0) {  // ignored: 0, NaN for a NaN row
            if (gx)
              for (std::int64_t c = 0; c < p.c; ++c)
                store(*gx, gb + c * gstride, r.nan ? formulas::kNaN : 0.0);
            continue;
          }
        }
        softmax_row(k, p, r);
        // dl = d loss / d log p.
        // float64 probability targets: log p_c = (x_c - m) - log1p(S) and the target's and the
        // weight's gradients -s w_c log p_c (keep) and -s t'_c log p_c from double-double values
        // (S from the DD exps, which ce_grad_row_dd then reuses), each rounded once (the double
        // chain's four roundings: 2.2 and 2.52 ULP, fuzz seed 20261203 cases 5874 and 2538).
        bool e_ready = false;
        formulas::DD S_dd;
        if (p.prob) {
          using formulas::DD;
          const std::int64_t tb = ti.base(p, *p.target, i);
          const double ms = -s;
          const bool dd_lp = p.input->dtype == LB_FLOAT64 && !r.nan && (gt || gw);
          DD lse, ms_dd;
          if (dd_lp) {
            S_dd = ce_row_exps_dd(p, r, dd_e);
            e_ready = true;
            lse = formulas::vlog1p(S_dd);
            ms_dd = -(p.reduction == Reduction::mean ? DD(up) / DD(count) : DD(up));
          }
          for (std::int64_t c = 0; c < p.c; ++c) {
            const double wc = p.w[static_cast<std::size_t>(c)];
            const double raw = load(*p.target, tb + c * ti.class_stride);
            if (!tcv.empty()) tcv[static_cast<std::size_t>(c)] = raw;
            const double tc = CrossEntropy::smoothed_target(raw, fp);
            const double mw = ms * wc;
            dl[c] = mw * tc;
            const double lp = r.log_prob(c);
            DD lp_dd;
            if (dd_lp) {
              double d_hi, d_lo;
              r.diff(c, d_hi, d_lo);
              lp_dd = DD(d_hi, d_lo) - lse;
            }
            if (gt) {
              const double d = mw * lp;
              double v = p.smoothing ? d * p.keep : d;
              if (dd_lp) {
                const DD dd = ms_dd * DD(wc) * lp_dd;
                const DD vd = p.smoothing ? dd * DD(p.keep) : dd;
                if (std::isfinite(vd.hi)) v = vd.hi + vd.lo;
              }
              store(*gt, gb + c * gstride, v);
            }
            if (gw) {
              const DD vd =
                  dd_lp ? ms_dd * (lp_dd *
                                   (p.smoothing ? DD(raw) * DD(p.keep) + DD(p.spread) : DD(raw)))
                        : DD(0.0);
              if (dd_lp && std::isfinite(vd.hi))
                dd_add(dw_hi[c], dw_lo[c], vd.hi, vd.lo);
              else
                dd_add(dw_hi[c], dw_lo[c], ms * (lp * tc), 0.0);
            }
          }
        } else {
          double s_nll = p.smoothing ? p.keep * s : s;
          double s_sm = s * p.spread;
          if (p.reduction == Reduction::mean) {
            s_nll = s_nll / W;
            s_sm = s_sm / W;
          }
          const double wt = p.w[static_cast<std::size_t>(t)];
          for (std::int64_t c = 0; c < p.c; ++c) {
            const double a = c == t ? NllLoss::grad(wt, s_nll) : 0.0;
            dl[c] = p.smoothing ? a + -s_sm * p.w[static_cast<std::size_t>(c)] : a;
          }
        }
        if (gx == nullptr) continue;
        if (dd_rows && !r.nan) {
          using formulas::DD;
          const bool mean = p.reduction == Reduction::mean;
          const DD g = !mean ? DD(up) : p.prob ? DD(up) / DD(count) : DD(up) / DD(W, W_lo);
          if (ce_grad_row_dd(p, r, t, g, p.prob ? tcv.data() : nullptr, dd_e, dd_dl,
                             e_ready ? &S_dd : nullptr, gout.data())) {
            for (std::int64_t c = 0; c < p.c; ++c)
              store(*gx, gb + c * gstride, gout[static_cast<std::size_t>(c)]);
            continue;
          }
        }
        for (std::int64_t c = 0; c < p.c; ++c) r.tmp[c] = dl[c];
        double d_hi, d_lo;
        k.sum(r.tmp.data(), static_cast<std::size_t>(p.c), &d_hi, &d_lo);
        for (std::int64_t c = 0; c < p.c; ++c) {
          const double ec = r.e[c];
          const double zmc = c == r.arg ? r.s_hi + r.s_lo : 1.0 + ((r.s_hi - ec) + r.s_lo);
          const double rest = (d_hi - dl[c]) + d_lo;
          store(*gx, gb + c * gstride, CrossEntropy::grad(dl[c], ec, zmc, rest, r.z));
        }
      }
    }
  }
  if (gw)
    for (std::int64_t c = 0; c < p.c; ++c)
      store(*gw, c, dw_hi[static_cast<std::size_t>(c)] + dw_lo[static_cast<std::size_t>(c)]);
}

void check_classification_output(const ClassificationPlan& p, const lb_tensor& output) {
  const Shape os = shape_of(output);
  const bool each =
      p.loss == Loss::multi_margin_loss ? p.reduction == Reduction::none : per_position(p);
  if (each ? os != p.out_shape : numel(os) != 1)
    bad("output: shape " + shape_string(os) + " does not match the result");
}

void match_classification_grads(const ClassificationPlan& p, const lb_tensor* grad_output,
                                lb_tensor* grads, std::int32_t num_grads, const lb_tensor*& gx,
                                const lb_tensor*& gt, const lb_tensor*& gw) {
  gx = gt = gw = nullptr;
  for (std::int32_t j = 0; j < num_grads; ++j) {
    const std::string_view name = grads[j].name ? grads[j].name : "";
    const lb_tensor* src = nullptr;
    if (name == "input") {
      gx = &grads[j];
      src = p.input;
    } else if (name == "target" && p.prob) {
      gt = &grads[j];
      src = p.target;
    } else if (name == "weight" && p.prob && p.weight) {
      gw = &grads[j];
      src = p.weight;
    } else {
      bad("no gradient for input '" + std::string(name) + "'");
    }
    if (grads[j].dtype < LB_FLOAT64 || grads[j].dtype > LB_BFLOAT16 ||
        shape_of(grads[j]) != shape_of(*src))
      bad("gradient '" + std::string(name) + "': wrong dtype or shape");
  }
  // A 0-d grad_output (none given: ones) broadcasts.
  const Shape gs = grad_output != nullptr ? shape_of(*grad_output) : Shape{};
  const bool mm = p.loss == Loss::multi_margin_loss;
  const bool each = mm ? p.reduction == Reduction::none : per_position(p);
  if ((!mm || gx != nullptr) && (each ? !gs.empty() && gs != p.out_shape : numel(gs) != 1))
    bad("grad_output has the wrong shape");
}

bool run_classification_fused(const KernelTable& k, const ClassificationPlan& p, lb_tensor& output,
                              const lb_tensor& grad_output, lb_tensor* grads,
                              std::int32_t num_grads, int threads) {
  threads = threads_for(layout_positions(p) * std::max<std::int64_t>(p.c, 1), threads);
  if (p.loss == Loss::multi_margin_loss)
    return mm_fused(k, p, output, grad_output, grads, num_grads, threads);
  if (p.loss != Loss::cross_entropy || p.prob || p.smoothing || p.c == 0) return false;
  check_classification_output(p, output);
  const lb_tensor* gx = nullptr;
  const lb_tensor* gt = nullptr;
  const lb_tensor* gw = nullptr;
  match_classification_grads(p, &grad_output, grads, num_grads, gx, gt, gw);
  if (gx == nullptr || gt != nullptr || gw != nullptr || gx->dtype != p.input->dtype ||
      grad_stride(p) != 1)
    return false;
  const RowIndex xi = row_index(p, *p.input);
  if (!ce_fast_path(p, xi, k)) return false;
  // As run_classification_forward and run_classification_backward compute them.
  const bool each = per_position(p);
  const bool per_g = each && !shape_of(grad_output).empty();
  const double g0 = per_g ? 0.0 : load(grad_output, 0);
  double w_hi = 0.0, w_lo = 0.0;
  if (p.reduction == Reduction::mean) total_weight(p, w_hi, w_lo);
  const double W = p.reduction == Reduction::mean ? w_hi + w_lo : 1.0;
  const std::int64_t P = p.positions;
  const std::int64_t nb = (P + kPositionBlock - 1) / kPositionBlock;
  const bool stream = stream_grad_any(gx, layout_positions(p) * p.c);
  std::vector<double> part(static_cast<std::size_t>(nb) * 2, 0.0);
  int slow_row = 0;  // a row the fast path does not take: give up, the caller runs the two
#pragma omp parallel num_threads(threads) if (nb > 1)
  {
    std::vector<double> e((static_cast<std::size_t>(p.c) + kRowPad) / kRowPad * kRowPad + kRowPad);
    std::vector<double> e_lo(p.input->dtype == LB_FLOAT64 ? e.size() : 0);
    std::vector<double> a(kPositionBlock + kRowPad);
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < nb; ++blk) {
      int stop;
#pragma omp atomic read relaxed
      stop = slow_row;
      if (stop != 0) continue;
      const std::int64_t start = blk * kPositionBlock;
      const std::int64_t n = std::min(kPositionBlock, P - start);
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t i = start + j;
        const std::int64_t t = target_of(p, i);
        const void* x = ce_row_ptr(p, xi, i);
        FastRow fr;
        if (t < 0 || !ce_fast_row(k, p, x, e.data(), e_lo.data(), fr)) {
#pragma omp atomic write relaxed
          slow_row = 1;
          break;
        }
        const double wt = p.w[static_cast<std::size_t>(t)];
        const double nll = ce_fast_nll(p, x, t, fr, wt);
        if (each) store(output, i, nll);
        a[static_cast<std::size_t>(j)] = nll;
        const double up = per_g ? load(grad_output, offset_of(grad_output, i)) : g0;
        const double dl_t = NllLoss::grad(wt, p.reduction == Reduction::mean ? up / W : up);
        ce_fast_grad_row(k, p, x, t, fr, e.data(), e_lo.data(), dl_t,
                         element_at(*gx, grad_base(p, i)), stream);
      }
      if (!each) {
        const std::size_t q = static_cast<std::size_t>(blk) * 2;
        k.sum(a.data(), static_cast<std::size_t>(n), &part[q], &part[q + 1]);
      }
    }
  }
  if (slow_row != 0) return false;
  if (each) return true;
  double a_hi = 0.0, a_lo = 0.0;
  for (std::int64_t blk = 0; blk < nb; ++blk) {
    const std::size_t q = static_cast<std::size_t>(blk) * 2;
    dd_add(a_hi, a_lo, part[q], part[q + 1]);
  }
  store(output, 0, p.reduction == Reduction::mean ? dd_div(a_hi, a_lo, W) : a_hi + a_lo);
  return true;
}

double classification_total_weight(const ClassificationPlan& p) {
  double hi, lo;
  total_weight(p, hi, lo);
  return hi + lo;
}

}  // namespace lossbench::opt
