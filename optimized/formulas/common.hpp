#pragma once
// The vocabulary of the per-element formulas (optimized/formulas/<id>.hpp).
//
// A formula is a function template over the value type V: `double` for the scalar path (and
// CUDA later), a SIMD wrapper (optimized/isa/simd.hpp) for the vector paths. It uses only the
// operators + - * / and unary -, comparisons, and the free functions below, found by ordinary
// lookup for double and by argument-dependent lookup for the SIMD wrapper:
//   vselect(mask, a, b)  a where mask, else b (both evaluated)
//   vany(mask)           true when the mask holds in any lane (to skip a rarely needed branch)
//   vcount(mask)         the number of lanes where the mask holds
//   vabs, vexp, vexpm1, vlog, vlog1p, visnan, visinf, visfinite, vsign (sgn with sgn(0) = sgn(NaN)
//   = 0), vfma (a b + c rounded once), vmax (the larger; with a NaN, either operand); masks
//   combine with & | and negate with !
// Formulas compute in double whatever the tensor dtype (float-in / double-inside); the drivers
// round once to the output dtype.
//
// Everything here lives in an inline namespace named per translation unit
// (LOSSBENCH_FORMULA_NS, set by optimized/CMakeLists.txt for each ISA's file), so that an
// instantiation compiled with -mavx512f can never be merged by the linker with the scalar
// file's copy of the same inline function.
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LOSSBENCH_HD __host__ __device__
#else
// Host: always inlined, so that a kernel that evaluates a formula's forward and backward on the
// same lanes (dense_forward's fused mode) shares their loads and common subexpressions, and every
// kernel contracts the same expressions the same way.
#define LOSSBENCH_HD __attribute__((always_inline))
#endif

#ifndef LOSSBENCH_FORMULA_NS
#define LOSSBENCH_FORMULA_NS generic
#endif

namespace lossbench::opt::formulas {

#if !defined(__CUDA_ARCH__)
// exp(x) - y for finite x and y with exp(x) in double-double (formulas/dd_tables.cpp): correct to
// the last bits whatever cancels. vexp_minus's fix-up on the host, for the lanes where exp(x) and
// y agree to 20 bits or more.
double exp_minus_dd(double x, double y);
#endif

// A loss's scalar parameters, already rounded as PyTorch rounds them; each formula header says
// what s0, s1, f0 and f1 mean for it. (A plain aggregate: shared by every ISA's file.)
struct Params {
  double s0 = 0;
  double s1 = 0;
  bool f0 = false;
  bool f1 = false;
  double s2 = 0;
  double s3 = 0;
};

inline namespace LOSSBENCH_FORMULA_NS {

LOSSBENCH_HD inline double vselect(bool c, double a, double b) { return c ? a : b; }
LOSSBENCH_HD inline double vabs(double x) { return std::fabs(x); }
LOSSBENCH_HD inline double vmax(double a, double b) { return a < b ? b : a; }
LOSSBENCH_HD inline double vexp(double x) { return std::exp(x); }
LOSSBENCH_HD inline double vexpm1(double x) { return std::expm1(x); }
LOSSBENCH_HD inline double vlog(double x) { return std::log(x); }
LOSSBENCH_HD inline double vlog1p(double x) { return std::log1p(x); }
LOSSBENCH_HD inline bool visnan(double x) { return x != x; }
LOSSBENCH_HD inline bool visinf(double x) { return std::fabs(x) == HUGE_VAL; }
LOSSBENCH_HD inline bool visfinite(double x) { return std::fabs(x) < HUGE_VAL; }
LOSSBENCH_HD inline bool vany(bool m) { return m; }
LOSSBENCH_HD inline std::int64_t vcount(bool m) { return m ? 1 : 0; }
LOSSBENCH_HD inline double vsign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }
LOSSBENCH_HD inline double vfma(double a, double b, double c) { return std::fma(a, b, c); }

// Error-free transformation: s + e == a + b exactly (TwoSum), for any lane type; the
// double-double lane types have their own overloads (formulas/dd.hpp, isa/exact64_avx512.cpp).
template <class V>
LOSSBENCH_HD inline void two_sum(V a, V b, V& s, V& e) {
  s = a + b;
  const V bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

// max(t, 0) that keeps NaN (t < 0 is false for NaN).
template <class V>
LOSSBENCH_HD inline V relu(V t) {
  return vselect(t < V(0.0), V(0.0), t);
}

// exp(x) - y with the smaller of two rounding errors: (exp(x) - 1) - (y - 1) where exp(x) > 1/2
// (there |expm1(x)| < exp(x), and y - 1 is exact for a 16/32-bit y near 1), exp(x) - y below
// (where expm1(x) is near -1 and would cancel against y - 1). Either still carries exp's rounding,
// 2^-53 of exp(x) or of expm1(x): where the result is under 2^-20 of y, the host's scalar path
// redoes it in double-double (exp_minus_dd). The SIMD lanes have their own (isa/simd.hpp: one
// argument reduction on AVX-512, the same fix-up per lane elsewhere); the double-double lanes'
// exp is exact enough as it is.
template <class V>
LOSSBENCH_HD inline V vexp_minus_plain(V x, V y) {
  return vselect(x > V(-0.693147180559945309), vexpm1(x) - (y - V(1.0)), vexp(x) - y);
}
template <class V>
LOSSBENCH_HD inline V vexp_minus(V x, V y) {
  return vexp_minus_plain(x, y);
}
// Where vexp_minus redoes r = vexp_minus_plain(x, y) in double-double: r under 2^-20 of y, x and
// y finite (a lane mask for SIMD types: isa/simd.hpp's fix-up).
template <class V>
LOSSBENCH_HD inline auto exp_minus_close(V x, V y, V r) {
  return (vabs(r) < V(0x1p-20) * vabs(y)) & visfinite(x) & visfinite(y);
}
#if !defined(__CUDA_ARCH__)
// Host code only (nvcc's host pass included, so that its formulas match the host compiler's);
// CUDA device code keeps vexp_minus_plain.
inline __attribute__((always_inline)) double vexp_minus(double x, double y) {
  const double r = vexp_minus_plain(x, y);
  const bool close = exp_minus_close(x, y, r);
  return __builtin_expect(close, 0) ? exp_minus_dd(x, y) : r;
}
#endif

// log1p(exp(-|t|)), softplus's tail: in [0, log 2] for every t (0 at t = +-inf), NaN for NaN.
// AVX-512 has its own (isa/simd.hpp: one exp and a log1p for arguments in [0, 1] only, with no
// special values to sort out).
template <class V>
LOSSBENCH_HD inline V softplus_tail(V t) {
  return vlog1p(vexp(-vabs(t)));
}

// a / u for u a positive normal number (the formulas divide by 1 + exp(-|t|) in [1, 2], or a
// small multiple of it). AVX-512 multiplies by a Newton-refined reciprocal instead (isa/simd.hpp:
// relative error under 2^-51, for float32 and 16-bit results only); everywhere else, a division.
template <class V>
LOSSBENCH_HD inline V vdiv_pos(V a, V u) {
  return a / u;
}

// log(1 + exp(t)) for finite t, without overflow or cancellation: max(t, 0) + log1p(exp(-|t|)).
template <class V>
LOSSBENCH_HD inline V softplus(V t) {
  return relu(t) + softplus_tail(t);
}

// softplus(t) and softplus(-t) from one exp and one log1p (log1p(exp(-|t|)) is common to both).
template <class V>
LOSSBENCH_HD inline void softplus_pair(V t, V& sp, V& sp_neg) {
  const V l = softplus_tail(t);
  sp = relu(t) + l;
  sp_neg = relu(-t) + l;
}

// sigmoid(t) and sigmoid(-t) from one exp and one division (same values as sigmoid() below).
template <class V>
LOSSBENCH_HD inline void sigmoid_pair(V t, V& s, V& s_neg) {
  const V e = vexp(-vabs(t));
  const V r = vdiv_pos(V(1.0), V(1.0) + e);
  s = vselect(t >= V(0.0), r, e * r);
  s_neg = vselect(-t >= V(0.0), r, e * r);
}

// 1 / (1 + exp(-t)) for finite t, stable on both sides.
template <class V>
LOSSBENCH_HD inline V sigmoid(V t) {
  const V e = vexp(-vabs(t));
  const V r = vdiv_pos(V(1.0), V(1.0) + e);
  return vselect(t >= V(0.0), r, e * r);
}

inline constexpr double kInf = HUGE_VAL;
inline constexpr double kNaN = __builtin_nan("");

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::formulas
