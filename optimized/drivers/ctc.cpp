// The CTC driver (see ctc.hpp).
#include "ctc.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../formulas/ctc_loss.hpp"
#include "../formulas/dd.hpp"
#include "../kernels.hpp"
#include "args.hpp"
#include "elements.hpp"

namespace lossbench::opt::ctc {

namespace {

using F = formulas::CtcLoss;
using conformance::load_float;
using conformance::load_int;
using conformance::store_float;
constexpr double kNegInf = -HUGE_VAL;

std::int64_t numel(const lb_tensor& t) {
  std::int64_t n = 1;
  for (std::int32_t d = 0; d < t.ndim; ++d) n *= t.shape[d];
  return n;
}

const lb_tensor* input(const lb_call& call, std::string_view name) {
  for (std::int32_t k = 0; k < call.num_inputs; ++k)
    if (call.inputs[k].name != nullptr && name == call.inputs[k].name) return &call.inputs[k];
  bad("missing input '" + std::string(name) + "'");
}

std::int64_t int_at(const lb_tensor& t, std::int64_t flat) {
  if (t.dtype != LB_INT64) bad("an int64 tensor is expected");
  return load_int(t.data, conformance::strided_offset(t, flat));
}

}  // namespace

void build(const lb_call& call, Call& c) {
  if (call.device.type != LB_DEVICE_CPU) unsupported("the cpu backend runs on the CPU only");
  const std::string_view red = call.reduction ? call.reduction : "mean";
  if (red != "none" && red != "mean" && red != "sum")
    bad(std::string(red) + " is not a valid value for reduction");
  c.reduce = red != "none";
  c.mean = red == "mean";
  for (std::int32_t k = 0; k < call.num_params; ++k) {
    const lb_param& p = call.params[k];
    const std::string_view n = p.name ? p.name : "";
    if (n == "blank" && p.type == LB_PARAM_INT)
      c.blank = p.i;
    else if (n == "zero_infinity" && p.type == LB_PARAM_BOOL)
      c.zero_infinity = p.b != 0;
    else
      unsupported("parameter '" + std::string(n) + "'");
  }
  const lb_tensor& lp = *input(call, "log_probs");
  const lb_tensor& tg = *input(call, "targets");
  const lb_tensor& ilt = *input(call, "input_lengths");
  const lb_tensor& tlt = *input(call, "target_lengths");
  for (const lb_tensor* t : {&lp, &tg, &ilt, &tlt})
    if (t->device.type != LB_DEVICE_CPU) unsupported("tensors must be on the CPU");
  c.lp = &lp;
  c.dtype = lp.dtype;
  if (lp.dtype == LB_FLOAT16) bad("\"ctc_loss_cpu\" not implemented for 'Half'");
  if (lp.dtype == LB_BFLOAT16) bad("\"ctc_loss_cpu\" not implemented for 'BFloat16'");
  if (lp.dtype != LB_FLOAT32 && lp.dtype != LB_FLOAT64) bad("log_probs: a floating dtype");
  c.unbatched = lp.ndim == 2;
  if (lp.ndim != 2 && lp.ndim != 3)
    bad("Expected 3-dimensional tensor, but got " + std::to_string(lp.ndim + 1) +
        "-dimensional tensor for argument #1 'log_probs'");
  c.T = lp.shape[0];
  c.st = lp.strides[0];
  if (c.unbatched) {
    c.N = 1;
    c.sn = 0;
    c.C = lp.shape[1];
    c.sc = lp.strides[1];
  } else {
    c.N = lp.shape[1];
    c.sn = lp.strides[1];
    c.C = lp.shape[2];
    c.sc = lp.strides[2];
  }
  if (tg.ndim < 1 || tg.ndim > 2)
    bad("Expected 1 to 2 dimensions, but got " + std::to_string(tg.ndim) +
        "-dimensional tensor for argument #2 'targets'");
  if (c.blank < 0 || c.blank >= c.C) bad("blank must be in label range");
  if (numel(ilt) != c.N) bad("input_lengths must be of size batch_size");
  if (numel(tlt) != c.N) bad("target_lengths must be of size batch_size");
  c.il.resize(static_cast<std::size_t>(c.N));
  c.tl.resize(static_cast<std::size_t>(c.N));
  std::int64_t total = 0, most = 0;
  for (std::int64_t b = 0; b < c.N; ++b) {
    const auto i = static_cast<std::size_t>(b);
    c.il[i] = int_at(ilt, b);
    c.tl[i] = int_at(tlt, b);
  }
  for (std::int64_t b = 0; b < c.N; ++b)
    if (c.il[static_cast<std::size_t>(b)] < 0)
      bad("Expected input_lengths to have value at least 0, but got value " +
          std::to_string(c.il[static_cast<std::size_t>(b)]));
  for (std::int64_t b = 0; b < c.N; ++b) {
    const std::int64_t v = c.tl[static_cast<std::size_t>(b)];
    if (v < 0)
      bad("Expected target_lengths to have value at least 0, but got value " + std::to_string(v));
    total += v;
    most = std::max(most, v);
  }
  const std::int64_t ts0 = tg.strides[0], ts1 = tg.ndim == 2 ? tg.strides[1] : 0;
  if (tg.dtype != LB_INT64) bad("targets: int64 expected");
  if (tg.ndim == 1) {
    if (tg.shape[0] != total)
      bad("Expected tensor to have size " + std::to_string(total) +
          " at dimension 0, but got size " + std::to_string(tg.shape[0]) +
          " for argument #2 'targets'");
  } else {
    if (tg.shape[0] != c.N)
      bad("Expected tensor to have size " + std::to_string(c.N) + " at dimension 0, but got size " +
          std::to_string(tg.shape[0]) + " for argument #2 'targets'");
    if (tg.shape[1] < most)
      bad("Expected tensor to have size at least " + std::to_string(most) +
          " at dimension 1, but got size " + std::to_string(tg.shape[1]) +
          " for argument #2 'targets'");
  }
  for (std::int64_t b = 0; b < c.N; ++b)
    if (c.il[static_cast<std::size_t>(b)] > c.T)
      bad("Expected input_lengths to have value at most " + std::to_string(c.T) +
          ", but got value " + std::to_string(c.il[static_cast<std::size_t>(b)]));
  c.targets.resize(static_cast<std::size_t>(c.N));
  std::int64_t start = 0;
  for (std::int64_t b = 0; b < c.N; ++b) {
    const std::int64_t n = c.tl[static_cast<std::size_t>(b)];
    auto& v = c.targets[static_cast<std::size_t>(b)];
    for (std::int64_t s = 0; s < n; ++s) {
      const std::int64_t off = tg.ndim == 1 ? (start + s) * ts0 : b * ts0 + s * ts1;
      const std::int64_t x = load_int(tg.data, off);
      if (x < 0 || x >= c.C)
        bad("Target " + std::to_string(x) + " is out of bounds: targets must be in [0, " +
            std::to_string(c.C) + ")");
      if (x == c.blank) bad("Target " + std::to_string(x) + " equals the blank label");
      v.push_back(x);
    }
    start += n;
  }
}

namespace {

// One sample: log_alpha (L x S') and the nll.
struct Sample {
  std::vector<double> la;
  double nll = 0;
};

std::int64_t prime(const Call& c, const std::vector<std::int64_t>& tgt, std::int64_t s) {
  return s % 2 == 0 ? c.blank : tgt[static_cast<std::size_t>(s / 2)];
}

void alpha(const Call& c, std::int64_t b, Sample& out) {
  const auto& tgt = c.targets[static_cast<std::size_t>(b)];
  const std::int64_t L = c.il[static_cast<std::size_t>(b)];
  const std::int64_t S = static_cast<std::int64_t>(tgt.size()), W = 2 * S + 1;
  if (L == 0) {  // PyTorch PR #123193's definition (docs/losses/ctc_loss.md)
    out.nll = S == 0 ? 0.0 : HUGE_VAL;
    return;
  }
  out.la.assign(static_cast<std::size_t>(L * W), kNegInf);
  auto la = [&](std::int64_t t, std::int64_t s) -> double& {
    return out.la[static_cast<std::size_t>(t * W + s)];
  };
  la(0, 0) = c.lp_at(0, b, c.blank);
  if (S > 0) la(0, 1) = c.lp_at(0, b, tgt[0]);
  for (std::int64_t t = 1; t < L; ++t)
    for (std::int64_t s = 0; s < W; ++s) {
      const std::int64_t cur = prime(c, tgt, s);
      const double a1 = la(t - 1, s);
      const double a2 = s > 0 ? la(t - 1, s - 1) : kNegInf;
      const double a3 = s > 1 && prime(c, tgt, s - 2) != cur ? la(t - 1, s - 2) : kNegInf;
      la(t, s) = F::log_add3(a1, a2, a3) + c.lp_at(t, b, cur);
    }
  out.nll = S == 0 ? -la(L - 1, 0) : -F::log_add2(la(L - 1, 2 * S), la(L - 1, 2 * S - 1));
}

// exp(v) as m 2^k with m a double-double in [0.7, 1.42] (k = round(v / ln 2)), so that no value of
// v underflows or overflows; m = 0 for v = -inf. v is finite or -inf.
void exp_split(double v, formulas::DD& m, std::int64_t& k) {
  using formulas::DD;
  if (v == kNegInf) {
    m = DD(0.0);
    k = 0;
    return;
  }
  const double kd = std::nearbyint(v / formulas::dd::kLn2Hi);
  k = static_cast<std::int64_t>(kd);
  m = formulas::vexp(DD(v) - DD(kd) * DD(formulas::dd::kLn2Hi, formulas::dd::kLn2Lo));
}

// A probability as a double-double mantissa m (m.hi in [0.5, 1), or m = 0) times 2^e: no value
// underflows, however far below the others, so a state keeps its own future (linear space with
// one scale per row would lose a state more than ~2^-1000 below its row's largest).
struct Scaled {
  formulas::DD m;
  std::int64_t e = 0;
};

// 2^k for a normal result (|k| < 1023).
inline double pow2(std::int64_t k) {
  return std::bit_cast<double>(static_cast<std::uint64_t>(k + 1023) << 52);
}

// m (finite, m.hi normal or 0) as a Scaled.
inline Scaled normalized(formulas::DD m, std::int64_t e) {
  if (m.hi == 0.0) return {};
  const auto k =
      static_cast<std::int64_t>((std::bit_cast<std::uint64_t>(m.hi) >> 52) & 0x7ff) - 1022;
  const double f = pow2(-k);  // exact: m.hi f in [0.5, 1), m.lo f stays normal or 0
  return {formulas::DD(m.hi * f, m.lo * f), e + k};
}

// a + b; a term more than 2^-120 below the other is below the sum's last bit and is dropped.
Scaled add(const Scaled& a, const Scaled& b) {
  if (b.m.hi == 0.0) return a;
  if (a.m.hi == 0.0) return b;
  const Scaled& big = a.e >= b.e ? a : b;
  const Scaled& small = a.e >= b.e ? b : a;
  const std::int64_t d = big.e - small.e;
  if (d > 120) return big;
  const double f = pow2(-d);
  return normalized(big.m + formulas::DD(small.m.hi * f, small.m.lo * f), big.e);
}

Scaled times(const Scaled& a, const Scaled& q) {
  return a.m.hi == 0.0 || q.m.hi == 0.0 ? Scaled{} : normalized(a.m * q.m, a.e + q.e);
}

// a / q for q != 0.
Scaled over(const Scaled& a, const Scaled& q) {
  return a.m.hi == 0.0 ? Scaled{} : normalized(a.m / q.m, a.e - q.e);
}

// The value as a double-double (0 or subnormal where it is that small, inf where that large).
formulas::DD value_of(const Scaled& a) {
  const int e = static_cast<int>(std::clamp<std::int64_t>(a.e, -4000, 4000));
  return {std::ldexp(a.m.hi, e), std::ldexp(a.m.lo, e)};
}

// The distinct classes of sample b's extended target (the blank and the labels), each state's
// index among them (cls) and whether state s - 2 leads to s (from2).
struct Lattice {
  std::vector<std::int64_t> classes;
  std::vector<std::size_t> cls;
  std::vector<char> from2;
};
Lattice lattice_of(const Call& c, std::int64_t b) {
  const auto& tgt = c.targets[static_cast<std::size_t>(b)];
  const std::int64_t W = 2 * static_cast<std::int64_t>(tgt.size()) + 1;
  Lattice lt;
  lt.classes.assign(tgt.begin(), tgt.end());
  lt.classes.push_back(c.blank);
  std::sort(lt.classes.begin(), lt.classes.end());
  lt.classes.erase(std::unique(lt.classes.begin(), lt.classes.end()), lt.classes.end());
  lt.cls.resize(static_cast<std::size_t>(W));
  lt.from2.resize(static_cast<std::size_t>(W));
  for (std::int64_t s = 0; s < W; ++s) {
    lt.cls[static_cast<std::size_t>(s)] = static_cast<std::size_t>(
        std::lower_bound(lt.classes.begin(), lt.classes.end(), prime(c, tgt, s)) -
        lt.classes.begin());
    lt.from2[static_cast<std::size_t>(s)] = s > 1 && prime(c, tgt, s - 2) != prime(c, tgt, s);
  }
  return lt;
}

// exp(v) as a Scaled (exp_split; m in [0.7, 1.42] is normal), 0 for v = -inf.
Scaled scaled_exp(double v) {
  formulas::DD m;
  std::int64_t k;
  exp_split(v, m, k);
  return normalized(m, k);
}

// alpha at state s from the previous step's row and the state's emission probability.
Scaled alpha_next(const Scaled* prev, std::size_t s, const Lattice& lt, const Scaled& emission) {
  Scaled sum = prev[s];
  if (s > 0) sum = add(sum, prev[s - 1]);
  if (lt.from2[s]) sum = add(sum, prev[s - 2]);
  return times(sum, emission);
}

// P, the probability of every path: the last row's final state(s).
Scaled paths_total(const Scaled* last, std::int64_t S) {
  return S == 0 ? last[0]
                : add(last[static_cast<std::size_t>(2 * S)],
                      last[static_cast<std::size_t>(2 * S - 1)]);
}

// -log P in double-double (inf where P = 0).
formulas::DD nll_of(const Scaled& tot) {
  using formulas::DD;
  if (tot.m.hi == 0.0) return DD(HUGE_VAL);
  return -(formulas::vlog(tot.m) +
           DD(static_cast<double>(tot.e)) * DD(formulas::dd::kLn2Hi, formulas::dd::kLn2Lo));
}

// A probability given as (hi, lo, binary exponent) by KernelTable::ctc_paths_f64.
Scaled scaled_of(const double* v) {
  return v[0] == 0.0 ? Scaled{} : Scaled{formulas::DD(v[0], v[1]), static_cast<std::int64_t>(v[2])};
}

// float64 forward: alpha in linear space in double-double with a binary exponent per state
// (Scaled) and a DD exp per step and class of the target (exp_split), so that the rounding of T
// steps does not accumulate (the double recursion reached 2.55 ULP on a corpus case of condition
// number under 2^10); the nll is rounded once, after the reduction. Returns false (alpha() then:
// PyTorch's special values) where an emission is +inf or NaN or the input length is 0.
bool nll_linear_dd(const Call& c, std::int64_t b, formulas::DD& nll) {
  using formulas::DD;
  const auto& tgt = c.targets[static_cast<std::size_t>(b)];
  const std::int64_t L = c.il[static_cast<std::size_t>(b)];
  const std::int64_t S = static_cast<std::int64_t>(tgt.size()), W = 2 * S + 1;
  if (L == 0) return false;
  const Lattice lt = lattice_of(c, b);
  const std::vector<std::int64_t>& classes = lt.classes;
  const std::vector<std::size_t>& cls = lt.cls;
  std::vector<Scaled> p(classes.size());
  const auto emit = [&](std::int64_t t) {
    for (std::size_t j = 0; j < classes.size(); ++j) {
      const double v = c.lp_at(t, b, classes[j]);
      if (!(v < HUGE_VAL)) return false;  // +inf or NaN
      p[j] = scaled_exp(v);
    }
    return true;
  };
  std::vector<Scaled> prev(static_cast<std::size_t>(W)), cur(prev.size());
  if (!emit(0)) return false;
  prev[0] = p[cls[0]];
  if (S > 0) prev[1] = p[cls[1]];
  for (std::int64_t t = 1; t < L; ++t) {
    if (!emit(t)) return false;
    for (std::size_t s = 0; s < static_cast<std::size_t>(W); ++s)
      cur[s] = alpha_next(prev.data(), s, lt, p[cls[s]]);
    std::swap(prev, cur);
  }
  nll = nll_of(paths_total(prev.data(), S));
  return true;
}

// float64 gradient: alpha and beta in linear space in double-double with a binary exponent per
// state (as nll_linear_dd), the posterior of the blank's and the labels' classes
// sum(alpha beta) / (p P), and their elements (p - posterior) gr rounded once (the double
// recursions' errors, amplified where the two terms cancel, reached 2.6e4 ULP on the corpus);
// the other classes' elements, exp(lp) gr, in double (within 1 ULP: no cancellation there); NaN
// where lp is -inf, as PyTorch's. Returns false (alpha() and beta() then) where an emission is
// +inf or NaN, the input length is 0 or no path is possible.
bool grad_linear_dd(const Call& c, std::int64_t b, double gr, double* g) {
  using formulas::DD;
  const auto& tgt = c.targets[static_cast<std::size_t>(b)];
  const std::int64_t L = c.il[static_cast<std::size_t>(b)];
  const std::int64_t S = static_cast<std::int64_t>(tgt.size()), W = 2 * S + 1, C = c.C;
  if (L == 0) return false;
  for (std::int64_t t = 0; t < L; ++t)
    for (std::int64_t k = 0; k < C; ++k)
      if (!(c.lp_at(t, b, k) < HUGE_VAL)) return false;  // +inf or NaN
  const Lattice lt = lattice_of(c, b);
  const std::size_t J = lt.classes.size();
  std::vector<Scaled> p(static_cast<std::size_t>(L) * J);
  for (std::int64_t t = 0; t < L; ++t)
    for (std::size_t j = 0; j < J; ++j)
      p[static_cast<std::size_t>(t) * J + j] = scaled_exp(c.lp_at(t, b, lt.classes[j]));
  const auto pe = [&](std::int64_t t, std::int64_t s) -> const Scaled& {
    return p[static_cast<std::size_t>(t) * J + lt.cls[static_cast<std::size_t>(s)]];
  };
  const auto W_ = static_cast<std::size_t>(W);
  std::vector<Scaled> A(static_cast<std::size_t>(L) * W_), B(A.size());
  const auto at = [&](std::vector<Scaled>& v, std::int64_t t, std::int64_t s) -> Scaled& {
    return v[static_cast<std::size_t>(t) * W_ + static_cast<std::size_t>(s)];
  };
  at(A, 0, 0) = pe(0, 0);
  if (S > 0) at(A, 0, 1) = pe(0, 1);
  for (std::int64_t t = 1; t < L; ++t)
    for (std::int64_t s = 0; s < W; ++s)
      at(A, t, s) = alpha_next(&at(A, t - 1, 0), static_cast<std::size_t>(s), lt, pe(t, s));
  at(B, L - 1, 2 * S) = pe(L - 1, 2 * S);
  if (S > 0) at(B, L - 1, 2 * S - 1) = pe(L - 1, 2 * S - 1);
  for (std::int64_t t = L - 2; t >= 0; --t)
    for (std::int64_t s = 2 * S; s >= 0; --s) {
      Scaled sum = at(B, t + 1, s);
      if (s < 2 * S) sum = add(sum, at(B, t + 1, s + 1));
      if (s < 2 * S - 1 && lt.from2[static_cast<std::size_t>(s + 2)])
        sum = add(sum, at(B, t + 1, s + 2));
      at(B, t, s) = times(sum, pe(t, s));
    }
  const Scaled P = paths_total(&at(A, L - 1, 0), S);
  if (P.m.hi == 0.0) return false;
  for (std::int64_t i = 0; i < c.T * C; ++i) g[i] = 0.0;
  std::vector<Scaled> num(J);
  std::vector<char> in_target(static_cast<std::size_t>(C), 0);
  for (const std::int64_t k : lt.classes) in_target[static_cast<std::size_t>(k)] = 1;
  for (std::int64_t t = 0; t < L; ++t) {
    std::fill(num.begin(), num.end(), Scaled{});
    for (std::int64_t s = 0; s < W; ++s) {
      const std::size_t j = lt.cls[static_cast<std::size_t>(s)];
      num[j] = add(num[j], times(at(A, t, s), at(B, t, s)));
    }
    for (std::size_t j = 0; j < J; ++j) {
      const Scaled& pj = p[static_cast<std::size_t>(t) * J + j];
      if (pj.m.hi == 0.0) continue;  // lp = -inf: NaN below
      const DD post = value_of(over(num[j], times(pj, P)));
      const DD v = (value_of(pj) - post) * DD(gr);
      g[t * C + lt.classes[j]] = v.hi + v.lo;
    }
    for (std::int64_t k = 0; k < C; ++k) {
      const double lp = c.lp_at(t, b, k);
      if (lp == kNegInf)  // PyTorch's exp(-inf) - exp(... + inf), docs/losses/ctc_loss.md
        g[t * C + k] = std::numeric_limits<double>::quiet_NaN();
      else if (!in_target[static_cast<std::size_t>(k)])
        g[t * C + k] = std::exp(lp) * gr;
    }
  }
  return true;
}

// Whether some element of sample b's gradient computed in double (value(t, k)) may be off by
// more than a float32 rounding: exp(lp) and the posterior cancel to under 2^-20 of exp(lp) gr
// (the double recursions' errors, ~2^-45 of exp(lp) on the cases seen, then exceed 2^-25 of the
// result). Only the blank's and the target's classes have a posterior; an element under the
// bound without its exp is tested with it. (Special-values fuzz case: 7.4 float32 ULP where the
// terms cancel to 8.5e-10 from 0.17.)
template <class Value>
bool any_cancels(const Call& c, std::int64_t b, double gr, const Value& value) {
  const std::int64_t L = c.il[static_cast<std::size_t>(b)];
  const double bound = 0x1p-20 * std::fabs(gr);
  const Lattice lt = lattice_of(c, b);
  for (std::int64_t t = 0; t < L; ++t)
    for (const std::int64_t k : lt.classes) {
      const double a = std::fabs(value(t, k)), lp = c.lp_at(t, b, k);
      if ((a < bound || lp > 0.0) && a < bound * std::exp(lp)) return true;
    }
  return false;
}

// Gradient of sample b into g (T x C, row-major, doubles), upstream gr.
void beta(const Call& c, std::int64_t b, const Sample& smp, double gr, double* g) {
  const auto& tgt = c.targets[static_cast<std::size_t>(b)];
  const std::int64_t L = c.il[static_cast<std::size_t>(b)];
  const std::int64_t S = static_cast<std::int64_t>(tgt.size()), W = 2 * S + 1;
  const std::int64_t C = c.C;
  for (std::int64_t i = 0; i < c.T * C; ++i) g[i] = 0.0;
  if (L == 0) return;
  if (c.zero_infinity && smp.nll == HUGE_VAL) return;
  std::vector<double> lb(static_cast<std::size_t>(L * W), kNegInf);
  auto bt = [&](std::int64_t t, std::int64_t s) -> double& {
    return lb[static_cast<std::size_t>(t * W + s)];
  };
  auto al = [&](std::int64_t t, std::int64_t s) {
    return smp.la[static_cast<std::size_t>(t * W + s)];
  };
  for (std::int64_t i = 0; i < L * C; ++i) g[i] = kNegInf;
  bt(L - 1, 2 * S) = c.lp_at(L - 1, b, c.blank);
  g[(L - 1) * C + c.blank] = al(L - 1, 2 * S) + bt(L - 1, 2 * S);
  if (S > 0) {
    const std::int64_t cur = prime(c, tgt, 2 * S - 1);
    bt(L - 1, 2 * S - 1) = c.lp_at(L - 1, b, cur);
    g[(L - 1) * C + cur] = al(L - 1, 2 * S - 1) + bt(L - 1, 2 * S - 1);
  }
  for (std::int64_t t = L - 2; t >= 0; --t)
    for (std::int64_t s = 2 * S; s >= 0; --s) {
      const std::int64_t cur = prime(c, tgt, s);
      const double b1 = bt(t + 1, s);
      const double b2 = s < 2 * S ? bt(t + 1, s + 1) : kNegInf;
      const double b3 = s < 2 * S - 1 && prime(c, tgt, s + 2) != cur ? bt(t + 1, s + 2) : kNegInf;
      bt(t, s) = F::log_add3(b1, b2, b3) + c.lp_at(t, b, cur);
      const double lab = al(t, s) + bt(t, s);
      double& lcab = g[t * C + cur];
      lcab = lcab == kNegInf ? lab : F::log_add2(lcab, lab);
    }
  for (std::int64_t t = 0; t < L; ++t)
    for (std::int64_t k = 0; k < C; ++k) {
      double& r = g[t * C + k];
      r = F::grad(c.lp_at(t, b, k), r, smp.nll, gr);
    }
}

double final_nll(const Call& c, double nll) {
  return c.zero_infinity && nll == HUGE_VAL ? 0.0 : nll;
}

// The float32 fast path (kernels.hpp: CtcSample): float32 log_probs with contiguous classes.
bool fast_input(const Call& c, const KernelTable* k) {
  return k != nullptr && c.dtype == LB_FLOAT32 && (c.sc == 1 || c.C == 1);
}
// The float64 vector kernels (the float64 table on AVX-512 has them): float64 log_probs with
// contiguous classes.
bool fast_input64(const Call& c, const KernelTable* k) {
  return k != nullptr && k->ctc_paths_f64 != nullptr && c.dtype == LB_FLOAT64 &&
         (c.sc == 1 || c.C == 1);
}

CtcSample sample_of(const Call& c, std::int64_t b) {
  CtcSample s;
  if (c.dtype == LB_FLOAT64)
    s.lp64 = static_cast<const double*>(c.lp->data) + b * c.sn;
  else
    s.lp = static_cast<const float*>(c.lp->data) + b * c.sn;
  s.st = c.st;
  s.C = c.C;
  s.L = c.il[static_cast<std::size_t>(b)];
  s.S = c.tl[static_cast<std::size_t>(b)];
  s.blank = c.blank;
  s.tgt = c.targets[static_cast<std::size_t>(b)].data();
  return s;
}

// The sample's nll (float64 log_probs: with its low part in lo, else lo = 0): the float32 fast
// path where it applies (and has finite emissions), nll_linear_dd for float64, else alpha().
double sample_nll(const Call& c, const KernelTable* k, std::int64_t b, std::vector<double>& work,
                  double& lo) {
  lo = 0.0;
  if (fast_input(c, k) && c.il[static_cast<std::size_t>(b)] > 0) {
    const CtcSample s = sample_of(c, b);
    work.resize(static_cast<std::size_t>(4 * ctc_half(s.S)));
    double nll;
    if (k->ctc_alpha_f32(s, work.data(), false, &nll)) return nll;
  }
  if (fast_input64(c, k) && c.il[static_cast<std::size_t>(b)] > 0) {
    double last[6];
    if (k->ctc_paths_f64(sample_of(c, b), last)) {
      const Scaled blank = scaled_of(last);
      const formulas::DD nll =
          nll_of(c.tl[static_cast<std::size_t>(b)] == 0 ? blank : add(blank, scaled_of(last + 3)));
      if (std::fabs(nll.hi) < HUGE_VAL) lo = nll.lo;
      return nll.hi;
    }
  }
  if (formulas::DD nll; c.dtype == LB_FLOAT64 && nll_linear_dd(c, b, nll)) {
    if (std::fabs(nll.hi) < HUGE_VAL) lo = nll.lo;
    return nll.hi;
  }
  Sample smp;
  alpha(c, b, smp);
  return smp.nll;
}

// Is the gradient tensor of that dtype and contiguous ((T, N, C) or (T, C) row-major)?
bool dense(const lb_tensor& g, std::int32_t dtype) {
  if (g.dtype != dtype) return false;
  std::int64_t want = 1;
  for (std::int32_t d = g.ndim - 1; d >= 0; --d) {
    if (g.shape[d] != 1 && g.strides[d] != want) return false;
    want *= g.shape[d];
  }
  return true;
}

}  // namespace

bool handles(const char* loss) { return loss != nullptr && std::string_view(loss) == "ctc_loss"; }

std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size, const KernelTable* k) {
  return guarded(error, error_size, [&] {
    Call c;
    build(call, c);
    check_output(c, output);
    std::vector<double> nll(static_cast<std::size_t>(c.N)), lo(nll.size());
#pragma omp parallel num_threads(threads)
    {
      std::vector<double> work;
#pragma omp for schedule(dynamic)
      for (std::int64_t b = 0; b < c.N; ++b) {
        const auto i = static_cast<std::size_t>(b);
        nll[i] = final_nll(c, sample_nll(c, k, b, work, lo[i]));
        if (nll[i] == 0.0) lo[i] = 0.0;  // (zero_infinity's zero)
      }
    }
    if (!c.reduce) {
      for (std::int64_t b = 0; b < c.N; ++b)
        store_float(output.data, output.dtype, conformance::strided_offset(output, b),
                    nll[static_cast<std::size_t>(b)] + lo[static_cast<std::size_t>(b)]);
      return;
    }
    if (c.dtype == LB_FLOAT64) {
      // In double-double, in batch order, rounded once: the samples' low parts, each division
      // by a target length and the one by N do not round to double on the way.
      using formulas::DD;
      DD s(0.0);
      for (std::int64_t b = 0; b < c.N; ++b) {
        const auto i = static_cast<std::size_t>(b);
        const DD v(nll[i], lo[i]);
        s = s + (c.mean ? v / DD(static_cast<double>(std::max<std::int64_t>(c.tl[i], 1))) : v);
      }
      if (c.mean) s = s / DD(static_cast<double>(c.N));
      store_float(output.data, output.dtype, 0, s.hi + s.lo);
      return;
    }
    double s = 0;  // in batch order
    for (std::int64_t b = 0; b < c.N; ++b) {
      const auto i = static_cast<std::size_t>(b);
      s += c.mean ? nll[i] / static_cast<double>(std::max<std::int64_t>(c.tl[i], 1)) : nll[i];
    }
    if (c.mean) s /= static_cast<double>(c.N);
    store_float(output.data, output.dtype, 0, s);
  });
}

std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size,
                      const KernelTable* k) {
  return guarded(error, error_size, [&] {
    Call c;
    build(call, c);
    lb_tensor* gt = match_grads(c, grads, num_grads);
    if (gt == nullptr) return;
    const std::int64_t TC = c.T * c.C;
    const bool fast = fast_input(c, k) && dense(*gt, LB_FLOAT32);
    const bool fast64 = fast_input64(c, k);
    const bool direct64 = fast64 && dense(*gt, LB_FLOAT64);
    // Each sample writes its own rows of the gradient ((T, N, C) or (T, C)): the fast path
    // directly (rounded once to float32), the general path through a (T, C) row of doubles.
#pragma omp parallel num_threads(threads)
    {
      std::vector<double> work;
#pragma omp for schedule(dynamic)
      for (std::int64_t b = 0; b < c.N; ++b) {
        const auto i = static_cast<std::size_t>(b);
        double gr = 1.0;
        if (grad_output != nullptr)
          gr = load_float(
              grad_output->data, grad_output->dtype,
              c.reduce || c.unbatched ? 0 : conformance::strided_offset(*grad_output, b));
        if (c.mean)
          gr = gr /
               (static_cast<double>(c.N) * static_cast<double>(std::max<std::int64_t>(c.tl[i], 1)));
        if (fast && c.il[i] > 0) {
          const CtcSample s = sample_of(c, b);
          work.resize(static_cast<std::size_t>(s.L * 2 * ctc_half(s.S)));
          double nll;
          // A sample with an infinite nll (zero_infinity's zeros, or PyTorch's NaNs) takes
          // the general path; one whose gradient cancels, the double-double one.
          if (k->ctc_alpha_f32(s, work.data(), true, &nll) && std::fabs(nll) < HUGE_VAL) {
            float* g = static_cast<float*>(gt->data) + b * c.C;
            k->ctc_grad_f32(s, work.data(), nll, gr, g, c.N * c.C);
            for (std::int64_t t = s.L; t < c.T; ++t)
              for (std::int64_t x = 0; x < c.C; ++x) g[t * c.N * c.C + x] = 0.0f;
            if (!any_cancels(c, b, gr, [&](std::int64_t t, std::int64_t x) {
                  return static_cast<double>(g[t * c.N * c.C + x]);
                }))
              continue;
          }
        }
        // float64 with the vector kernels: into the gradient's rows when they are contiguous.
        work.resize(static_cast<std::size_t>(TC));
        // float64 with the vector kernels: into the gradient's rows when they are contiguous
        // (then done), else into work (stored below); rows t >= L are zeros.
        bool done = false;
        if (fast64 && c.il[i] > 0) {
          const std::int64_t rs = direct64 ? c.N * c.C : c.C;  // (T, N, C); (T, C) has N = 1
          double* g = direct64 ? static_cast<double*>(gt->data) + b * c.C : work.data();
          done = k->ctc_grad_f64(sample_of(c, b), gr, g, rs);
          if (done) {
            for (std::int64_t t = c.il[i]; t < c.T; ++t)
              std::fill(g + t * rs, g + t * rs + c.C, 0.0);
            if (direct64) continue;
          }
        }
        // float64: double-double always (the vector kernels where the table has them);
        // float32 and 16-bit: where the double recursion's gradient cancels.
        const auto of_work = [&](std::int64_t t, std::int64_t x) {
          return work[static_cast<std::size_t>(t * c.C + x)];
        };
        if (!done && (c.dtype != LB_FLOAT64 || !grad_linear_dd(c, b, gr, work.data()))) {
          Sample smp;
          alpha(c, b, smp);
          beta(c, b, smp, gr, work.data());
          if (c.dtype != LB_FLOAT64 && any_cancels(c, b, gr, of_work))
            grad_linear_dd(c, b, gr, work.data());  // (false: the double gradient stays)
        }
        for (std::int64_t t = 0; t < c.T; ++t)
          for (std::int64_t x = 0; x < c.C; ++x)
            store_float(gt->data, gt->dtype,
                        conformance::strided_offset(*gt, (t * c.N + b) * c.C + x),
                        work[static_cast<std::size_t>(t * c.C + x)]);
      }
    }
  });
}

void check_output(const Call& c, const lb_tensor& output) {
  const std::int64_t want = c.reduce || c.unbatched ? 1 : c.N;
  if (numel(output) != want) bad("output: wrong shape");
}

lb_tensor* match_grads(const Call& c, lb_tensor* grads, std::int32_t num_grads) {
  lb_tensor* gt = nullptr;
  for (std::int32_t k = 0; k < num_grads; ++k) {
    if (grads[k].name == nullptr || std::string_view(grads[k].name) != "log_probs")
      bad(std::string("no gradient for input '") + (grads[k].name ? grads[k].name : "") + "'");
    if (numel(grads[k]) != numel(*c.lp)) bad("gradient 'log_probs': wrong shape");
    gt = &grads[k];
  }
  return gt;
}

}  // namespace lossbench::opt::ctc
