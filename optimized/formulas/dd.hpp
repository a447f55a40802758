#pragma once
// DD: a double-double lane type for the formulas (a value is hi + lo with |lo| <= ulp(hi) / 2),
// about 104 bits of arithmetic and 75 or more bits of exp/log/log1p/expm1. The float64 losses
// whose formulas cancel (kl_div's log y - x, poisson_nll_loss's exp(x) - y x, gaussian_nll_loss's
// log v + d^2 / v, ...) evaluate their formula over DD (isa/exact64*.cpp), so that a float64
// result keeps its last bits whatever cancels inside the formula; the drivers round once.
//
// Special values: an operation whose leading part is not finite returns it with lo = 0 (inf and
// NaN propagate as in double); the sign of a zero result is the sign double arithmetic gives.
// Comparisons order (hi, lo) lexicographically; masks are bool, as for the scalar path.
//
// The exp/log tables are computed once, at load time, in DD arithmetic (series with ~110 bits of
// truncation error; formulas/dd_tables.cpp), so they need no library and no literal tables.
#include <bit>
#include <cmath>
#include <cstdint>

#include "common.hpp"

// The arithmetic is forced inline (its short dependency chains then interleave); exp and log are
// left to the compiler, which keeps the scalar kernels' compile time reasonable.
#define LOSSBENCH_DD_INLINE inline __attribute__((always_inline))

// The exp/log tables, one copy for every ISA's DD code (formulas/dd_tables.cpp builds it at load
// time; nothing calls the kernels during static initialization, so the hot paths read it without
// a guard). log on [0.75, 1.5) in kTable intervals of width 3/(4 kTable), the one around 1 with
// c = 1 exactly: invc = 1/c rounded, logc = -log(invc) as (hi, lo). exp: pow2[j] = 2^(j/kTable)
// as (hi, lo). Pairs are adjacent, so an eight-lane gather reads hi at 2j and lo at 2j + 1.
namespace lossbench::opt::formulas::dd_data {
inline constexpr int kTable = 256;
inline constexpr int kTableBits = 8;
inline constexpr int kOne = 85;  // [0.9990234375, 1.001953125) holds 1
struct Tables {
  double invc[kTable];
  double logc[kTable][2];
  double pow2[kTable][2];
};
extern const Tables kTables;
}  // namespace lossbench::opt::formulas::dd_data

namespace lossbench::opt::formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct DD {
  double hi = 0.0;
  double lo = 0.0;
  DD() = default;
  DD(double x) : hi(x) {}  // NOLINT: constants in formulas convert, as for the SIMD lanes
  DD(double h, double l) : hi(h), lo(l) {}
};

namespace dd {

LOSSBENCH_DD_INLINE bool finite(double x) { return std::fabs(x) < HUGE_VAL; }

// s + e == a + b exactly.
LOSSBENCH_DD_INLINE void two_sum(double a, double b, double& s, double& e) {
  s = a + b;
  const double bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}
// The same when |a| >= |b| (or a == 0).
LOSSBENCH_DD_INLINE void fast_two_sum(double a, double b, double& s, double& e) {
  s = a + b;
  e = b - (s - a);
}
// p + e == a * b exactly (barring underflow of e).
LOSSBENCH_DD_INLINE void two_prod(double a, double b, double& p, double& e) {
  p = a * b;
#ifdef __FMA__
  e = std::fma(a, b, -p);
#else
  // Dekker's product (no FMA on the baseline x86-64): exact unless a or b is beyond 2^995,
  // where the split would overflow and e is left 0.
  if (!(std::fabs(a) < 0x1p995 && std::fabs(b) < 0x1p995)) {
    e = 0.0;
    return;
  }
  constexpr double kSplit = 134217729.0;  // 2^27 + 1
  double t = kSplit * a;
  const double ah = t - (t - a), al = a - ah;
  t = kSplit * b;
  const double bh = t - (t - b), bl = b - bh;
  e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
#endif
}
// (s, e) renormalized; a zero e leaves s (and its sign) alone.
LOSSBENCH_DD_INLINE DD norm(double s, double e) {
  if (e == 0.0 || !finite(s)) return {s, 0.0};
  double h, l;
  fast_two_sum(s, e, h, l);
  return {h, l};
}

}  // namespace dd

LOSSBENCH_DD_INLINE DD operator-(DD a) { return {-a.hi, -a.lo}; }
LOSSBENCH_DD_INLINE DD operator+(DD a, DD b) {
  double s, e;
  dd::two_sum(a.hi, b.hi, s, e);
  if (!dd::finite(s)) return {s, 0.0};
  if (a.lo == 0.0 && b.lo == 0.0) return dd::norm(s, e);
  double t, f;
  dd::two_sum(a.lo, b.lo, t, f);
  const DD r = dd::norm(s, e + t);
  return dd::norm(r.hi, r.lo + f);
}
LOSSBENCH_DD_INLINE DD operator-(DD a, DD b) { return a + (-b); }
LOSSBENCH_DD_INLINE DD operator*(DD a, DD b) {
  double p, e;
  dd::two_prod(a.hi, b.hi, p, e);
  if (!dd::finite(p) || p == 0.0) return {p, 0.0};
  e += a.hi * b.lo + a.lo * b.hi;
  return dd::norm(p, e);
}
LOSSBENCH_DD_INLINE DD operator/(DD a, DD b) {
  const double q1 = a.hi / b.hi;
  if (!dd::finite(q1) || q1 == 0.0) return {q1, 0.0};
  DD r = a - b * DD(q1);
  const double q2 = r.hi / b.hi;
  r = r - b * DD(q2);
  const double q3 = r.hi / b.hi;
  return dd::norm(q1, q2) + DD(q3);
}
LOSSBENCH_DD_INLINE bool operator<(DD a, DD b) {
  return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}
LOSSBENCH_DD_INLINE bool operator>(DD a, DD b) { return b < a; }
LOSSBENCH_DD_INLINE bool operator<=(DD a, DD b) {
  return a.hi < b.hi || (a.hi == b.hi && a.lo <= b.lo);
}
LOSSBENCH_DD_INLINE bool operator>=(DD a, DD b) { return b <= a; }
LOSSBENCH_DD_INLINE bool operator==(DD a, DD b) { return a.hi == b.hi && a.lo == b.lo; }

LOSSBENCH_DD_INLINE DD vselect(bool c, DD a, DD b) { return c ? a : b; }
LOSSBENCH_DD_INLINE DD vabs(DD x) { return std::signbit(x.hi) ? -x : x; }
LOSSBENCH_DD_INLINE bool visnan(DD x) { return x.hi != x.hi; }
LOSSBENCH_DD_INLINE bool visinf(DD x) { return std::fabs(x.hi) == HUGE_VAL; }
LOSSBENCH_DD_INLINE bool visfinite(DD x) { return std::fabs(x.hi) < HUGE_VAL; }
LOSSBENCH_DD_INLINE DD vsign(DD x) { return x.hi > 0 ? DD(1.0) : (x.hi < 0 ? DD(-1.0) : DD(0.0)); }

namespace dd {

inline constexpr double kLn2Hi = 0x1.62e42fefa39efp-1;
inline constexpr double kLn2Lo = 0x1.abc9e3b39803fp-56;

using dd_data::kTable;
using dd_data::kTableBits;
LOSSBENCH_DD_INLINE const dd_data::Tables& tables() { return dd_data::kTables; }
LOSSBENCH_DD_INLINE DD table_dd(const double (&e)[2]) { return {e[0], e[1]}; }

// DD times 1/2, exactly.
LOSSBENCH_DD_INLINE DD half(DD a) { return {0.5 * a.hi, 0.5 * a.lo}; }

// log x for x > 0 finite, in DD: x = 2^e m, m in [0.75, 1.5), r = m invc - 1 (exact as DD),
// log x = e ln2 + logc + log1p(r), |r| < 2^-9: r - r^2/2 in DD, the rest (under 2^-19 r) in
// double to r^10 with the first cross term of (rh + rl)^3 / 3 (error under 2^-71 r).
inline DD log_pos(double x) {
  const dd_data::Tables& tb = tables();
  int e = 0;
  if (x < 0x1p-1022) {
    x *= 0x1p54;
    e = -54;
  }
  // x = 2^(ex - 1023) m with m in [1, 2), from the bits (x is normal here).
  const auto bits = std::bit_cast<std::uint64_t>(x);
  e += static_cast<int>(bits >> 52) - 1023;
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  if (m >= 1.5) {
    m *= 0.5;
    ++e;
  }
  int j = static_cast<int>((m - 0.75) * (kTable / 0.75));
  j = j < 0 ? 0 : (j > kTable - 1 ? kTable - 1 : j);
  double ph, pl;
  two_prod(m, tb.invc[j], ph, pl);
  const DD r = norm(ph - 1.0, pl);  // ph - 1 is exact (Sterbenz)
  const double rh = r.hi;
  double p = -1.0 / 10;
  p = p * rh + 1.0 / 9;
  p = p * rh - 1.0 / 8;
  p = p * rh + 1.0 / 7;
  p = p * rh - 1.0 / 6;
  p = p * rh + 1.0 / 5;
  p = p * rh - 1.0 / 4;
  p = p * rh + 1.0 / 3;
  const double tail = rh * rh * (rh * p + r.lo);
  const DD main = r - half(r * r);
  const DD ln2e = DD(kLn2Hi, kLn2Lo) * DD(static_cast<double>(e));
  return ln2e + table_dd(tb.logc[j]) + (main + DD(tail));
}

// exp(r) - 1 for |r| <= ln2/(2 kTable) (r a DD): r + r^2/2 in DD, the rest (under 2^-10 r) in
// double to r^8 (error under 2^-73 r).
inline DD expm1_small(DD r) {
  const double rh = r.hi;
  double q = 1.0 / 40320;
  q = q * rh + 1.0 / 5040;
  q = q * rh + 1.0 / 720;
  q = q * rh + 1.0 / 120;
  q = q * rh + 1.0 / 24;
  q = q * rh + 1.0 / 6;
  return (r + half(r * r)) + DD(rh * rh * rh * q);
}

// exp x in DD for finite x: x = k ln2/kTable + r, exp x = 2^(k >> kTableBits)
// pow2[k & (kTable - 1)] (1 + expm1(r)). x is clamped to +-1000; the power of two is applied as
// two normal factors, so the result rounds once where it overflows (inf) or falls below the
// normal range (as scalef does).
inline DD exp_finite(double x) {
  x = x < -1000.0 ? -1000.0 : (x > 1000.0 ? 1000.0 : x);
  // Rounded to the nearest integer by the 1.5 * 2^52 shift (|x kTable / ln2| < 2^19).
  const double k = (x * (kTable / kLn2Hi) + 0x1.8p52) - 0x1.8p52;
  const DD r = DD(x) - DD(kLn2Hi / kTable, kLn2Lo / kTable) * DD(k);
  const auto kk = static_cast<std::int64_t>(k);
  const DD t = table_dd(tables().pow2[kk & (kTable - 1)]);
  const DD v = t + t * expm1_small(r);
  const std::int64_t sc = kk >> kTableBits;  // floor(k / kTable), in [-1443, 1443]
  const std::int64_t h = sc / 2;
  const double f1 = std::bit_cast<double>(static_cast<std::uint64_t>(h + 1023) << 52);
  const double f2 = std::bit_cast<double>(static_cast<std::uint64_t>(sc - h + 1023) << 52);
  const double hi = v.hi * f1 * f2;
  return {hi, finite(hi) ? v.lo * f1 * f2 : 0.0};
}

}  // namespace dd

inline DD vlog(DD x) {
  if (!(x.hi > 0.0) || !dd::finite(x.hi)) return {std::log(x.hi), 0.0};
  const DD l = dd::log_pos(x.hi);
  return x.lo == 0.0 ? l : l + DD(x.lo / x.hi);
}

inline DD vexp(DD x) {
  if (!dd::finite(x.hi)) return {std::exp(x.hi), 0.0};
  const DD e = dd::exp_finite(x.hi);
  return x.lo == 0.0 ? e : e + e * DD(x.lo);
}

inline DD vexpm1(DD x) {
  if (!dd::finite(x.hi)) return {std::expm1(x.hi), 0.0};
  DD r;
  if (std::fabs(x.hi) <= dd::kLn2Hi / (2 * dd::kTable))  // exp_finite's k would be 0
    r = dd::expm1_small(DD(x.hi));
  else  // |expm1 x| > 2^-10: the subtraction loses at most 10 of the ~83 bits
    r = dd::exp_finite(x.hi) - DD(1.0);
  if (x.lo == 0.0) return r;
  // expm1(hi + lo) = expm1(hi) + exp(hi) lo (lo^2 is below the last bit).
  return r + (r + DD(1.0)) * DD(x.lo);
}

inline DD vlog1p(DD x) {
  if (!(x.hi > -1.0) || !dd::finite(x.hi)) return {std::log1p(x.hi), 0.0};
  if (std::fabs(x.hi) < 0x1p-20) {
    // x - x^2/2 + x^3/3 - x^4/4 (x^5/5 is under 2^-100 x).
    const DD x2 = x * x;
    return x - x2 * (DD(0.5) - x * (DD(1.0 / 3) - x * DD(0.25)));
  }
  const DD u = DD(1.0) + x;
  if (!(u.hi > 0.0)) return {std::log1p(x.hi), 0.0};
  const DD l = dd::log_pos(u.hi);
  return u.lo == 0.0 ? l : l + DD(u.lo / u.hi);
}

// sqrt a for a >= 0 (a.hi finite): s = sqrt(hi) and one Newton step, (a - s^2) / (2 s).
inline DD vsqrt(DD a) {
  const double s = std::sqrt(a.hi);
  if (!(s > 0.0) || !dd::finite(s)) return {s, 0.0};
  double p, e;
  dd::two_prod(s, s, p, e);
  return dd::norm(s, (((a.hi - p) - e) + a.lo) / (2.0 * s));
}

// The drivers' dense accumulators (drivers/block.hpp: dense_forward, sum_block) over DD: a DD
// sum is already compensated, so the error term is 0, and the accumulators are added in DD (the
// generic finish_sum would round each to double first). Found by argument-dependent lookup.
LOSSBENCH_DD_INLINE void two_sum(DD a, DD b, DD& s, DD& e) {
  s = a + b;
  e = DD(0.0);
}
inline bool finish_sum(const DD* s, const DD* c, double* hi, double* lo) {
  DD t = s[0];
  for (int k = 1; k < 4; ++k) t = t + s[k];
  for (int k = 0; k < 4; ++k) t = t + c[k];
  *hi = t.hi;
  *lo = t.lo;
  return dd::finite(t.hi);
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
