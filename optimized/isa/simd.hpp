#pragma once
// The SIMD lane type for the formulas: a thin wrapper over a Highway vector of doubles with
// the operators and free functions formulas/common.hpp lists. Included by the ISA files only
// (isa/avx2.cpp, isa/avx512*.cpp; isa/simd_f32.hpp adds float lanes): each is compiled with its own
// -m flags and HWY_COMPILE_ONLY_STATIC, so hwy::HWY_NAMESPACE is N_AVX2 or N_AVX3 and nothing here
// is shared between them.
//
// The math wrappers are forced inline so that the compiler can share one evaluation between the
// branches of a formula that both use it (e.g. kl_div's log y).
//
// Highway's contrib math is documented for a valid range only (Exp: x <= 706; Log: x > 0;
// Log1p: x >= 0); the wrappers below give the IEEE special values outside it (exp: inf, 0, NaN;
// log: -inf at 0, NaN below 0, inf at inf; subnormals rescaled), and log1p is computed from log
// for the whole domain (x > -1 included).
#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>
#include <immintrin.h>

#include "../drivers/block.hpp"

namespace lossbench::opt::simd {
inline namespace LOSSBENCH_FORMULA_NS {

namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<double>;

// The operators and the lane-wise vocabulary of formulas/common.hpp for a wrapper V over a
// Highway vector of tag D, with the mask wrapper M: VD below (doubles), and isa/simd_f32.hpp's
// float lanes (the cpu-fast table's).
#define LOSSBENCH_SIMD_LANES(V, M, D)                                                            \
  struct V {                                                                                     \
    hn::Vec<D> v;                                                                                \
    V() : v(hn::Zero(D())) {}                                                                    \
    V(hn::Vec<D> x) : v(x) {} /* implicit by design */                                           \
    /* implicit too: formulas' constants broadcast, rounded to the lane type */                  \
    V(double c) : v(hn::Set(D(), static_cast<hn::TFromD<D>>(c))) {}                              \
  };                                                                                             \
  struct M {                                                                                     \
    hn::Mask<D> m;                                                                               \
  };                                                                                             \
  inline V operator+(V a, V b) { return V(hn::Add(a.v, b.v)); }                                  \
  inline V operator-(V a, V b) { return V(hn::Sub(a.v, b.v)); }                                  \
  inline V operator*(V a, V b) { return V(hn::Mul(a.v, b.v)); }                                  \
  inline V operator/(V a, V b) { return V(hn::Div(a.v, b.v)); }                                  \
  inline V operator-(V a) { return V(hn::Neg(a.v)); }                                            \
  inline M operator<(V a, V b) { return {hn::Lt(a.v, b.v)}; }                                    \
  inline M operator<=(V a, V b) { return {hn::Le(a.v, b.v)}; }                                   \
  inline M operator>(V a, V b) { return {hn::Gt(a.v, b.v)}; }                                    \
  inline M operator>=(V a, V b) { return {hn::Ge(a.v, b.v)}; }                                   \
  inline M operator==(V a, V b) { return {hn::Eq(a.v, b.v)}; }                                   \
  inline M operator&(M a, M b) { return {hn::And(a.m, b.m)}; }                                   \
  inline M operator|(M a, M b) { return {hn::Or(a.m, b.m)}; }                                    \
  inline M operator!(M a) { return {hn::Not(a.m)}; }                                             \
  inline V vselect(M c, V a, V b) { return V(hn::IfThenElse(c.m, a.v, b.v)); }                   \
  inline V vabs(V x) { return V(hn::Abs(x.v)); }                                                 \
  inline V vmax(V a, V b) { return V(hn::Max(a.v, b.v)); }                                       \
  inline V vfma(V a, V b, V c) { return V(hn::MulAdd(a.v, b.v, c.v)); }                          \
  inline M visnan(V x) { return {hn::IsNaN(x.v)}; } /* (Ne is an ordered compare) */             \
  inline M visfinite(V x) { return vabs(x) < V(HUGE_VAL); }                                      \
  inline M visinf(V x) { return vabs(x) == V(HUGE_VAL); }                                        \
  /* Is the mask true in any lane? (Formulas compute a rarely needed branch, such as PyTorch's   \
     literal expression for infinite inputs, only when some lane needs it.) */                   \
  inline bool vany(M m) { return !hn::AllFalse(D(), m.m); }                                      \
  inline std::int64_t vcount(M m) { return static_cast<std::int64_t>(hn::CountTrue(D(), m.m)); } \
  inline V vsign(V x) { return vselect(x > V(0.0), V(1.0), vselect(x < V(0.0), V(-1.0), V(0.0))); }

LOSSBENCH_SIMD_LANES(VD, MD, D)

// table's lane i for each lane holding i (a small non-negative integer; block.hpp: mlm_grad).
inline VD vlookup(VD table, VD i) {
#if HWY_TARGET == HWY_AVX3
  // i + 2^52 holds i in its low bits, the only bits vpermpd reads.
  return VD(
      hn::Vec<D>{_mm512_permutexvar_pd(_mm512_castpd_si512((i + VD(0x1p52)).v.raw), table.v.raw)});
#else
  const hn::RebindToSigned<D> di;
  return VD(hn::TableLookupLanes(table.v, hn::IndicesFromVec(D(), hn::ConvertTo(di, i.v))));
#endif
}

// expm1 from Highway's Expm1 on the lanes where it is valid (finite x below `valid_below`, under
// Highway's documented range for the lane type), exp(x) - 1 on the others (inf, -1 at -inf);
// NaN kept. The double lanes' vexpm1 without AVX-512, and the float lanes' (isa/simd_f32.hpp).
// (vexp is found at instantiation, by argument-dependent lookup.)
template <class Tag, class V>
HWY_INLINE V expm1_highway(V x, double valid_below) {
  const auto regular = visfinite(x) & (x < V(valid_below));
  const V r(hn::Expm1(Tag(), vselect(regular, x, V(0.0)).v));
  return vselect(visnan(x), x, vselect(regular, r, vexp(x) - V(1.0)));
}

#if HWY_TARGET == HWY_AVX3
// AVX-512: exp and log without division, from 16-entry tables held in two registers each
// (vpermt2pd) and short polynomials, with getexp/getmant/scalef doing the exponent work. These
// serve the float32 and 16-bit dtypes only (float64 losses with exp/log run the scalar path with
// glibc's functions, api.cpp), so their target is a relative error of a few units of 2^-53, far
// below float32's 2^-24: tests/cpu_test.cpp (VectorMath) holds them to 2^-50 against glibc.
namespace avx512math {

inline __m512d table(const double (&t)[16], __m512i idx) {
  return _mm512_permutex2var_pd(_mm512_loadu_pd(t), idx, _mm512_loadu_pd(t + 8));
}

// 2^(j/16) rounded, j = 0..15 (exp_reduce's table).
inline constexpr double kPow2[16] = {
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
    0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0,
    0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0};

// exp's argument reduction for every double x but NaN: x = (16 e + j) ln2/16 + r, |r| <= ln2/32,
// exp(x) = 2^e t (1 + p) with t = 2^(j/16) and p = exp(r) - 1 by a degree-7 Taylor polynomial
// (error < 2^-59); x is clamped to +-1000 first.
inline void exp_reduce(__m512d x, __m512d& t, __m512d& p, __m512d& e, __m512i& j) {
  x = _mm512_min_pd(_mm512_max_pd(x, _mm512_set1_pd(-1000.0)), _mm512_set1_pd(1000.0));
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(0x1.71547652b82fep+4)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln2/16 in two parts; the first has 33 bits, so k times it is exact for |k| < 2^20.
  __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(0x1.62e42fef00000p-5), x);
  r = _mm512_fnmadd_pd(k, _mm512_set1_pd(0x1.473de6af278edp-38), r);
  e = _mm512_roundscale_pd(_mm512_mul_pd(k, _mm512_set1_pd(1.0 / 16)),
                           _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  j = _mm512_cvttpd_epi64(_mm512_fnmadd_pd(e, _mm512_set1_pd(16.0), k));
  p = _mm512_set1_pd(1.0 / 5040);
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
  p = _mm512_fmadd_pd(p, _mm512_mul_pd(r, r), r);  // p(r) - 1
  t = table(kPow2, j);
}

// exp(x): 2^e (t + t p), scalef rounding once into the subnormal range and overflowing to inf.
inline __m512d exp_core(__m512d x) {
  __m512d t, p, e;
  __m512i j;
  exp_reduce(x, t, p, e, j);
  return _mm512_scalef_pd(_mm512_fmadd_pd(t, p, t), e);
}

// 2^(j/16) - kPow2[j] (exp_reduce's table entries' rounding errors).
inline constexpr double kPow2Lo[16] = {0x0.0p+0,
                                       0x1.8a62e4adc610bp-54,
                                       -0x1.19041b9d78a76p-55,
                                       0x1.9b07eb6c70573p-54,
                                       0x1.6f46ad23182e4p-55,
                                       0x1.ada0911f09ebcp-55,
                                       0x1.d4397afec42e2p-56,
                                       0x1.6324c054647adp-54,
                                       -0x1.bdd3413b26456p-54,
                                       -0x1.41577ee04992fp-55,
                                       0x1.6e9f156864b27p-54,
                                       0x1.c7c46b071f2bep-56,
                                       0x1.7a1cd345dcc81p-54,
                                       0x1.11065895048ddp-55,
                                       0x1.2ed02d75b3707p-55,
                                       -0x1.e9c23179c2893p-54};

// exp(x) = a + b with a = 2^e t exact (or inf, or 0) and b = 2^e (t p + tlo), under 2.3% of a
// (tlo = 2^(j/16) - t, t's rounding error, added back), with exp_reduce's t, p and e for the
// callers' other forms. expm1_core, exp_minus_core and softplus_tail_acc_core.
struct ExpParts {
  __m512d t, p, e, a, b;
};
inline ExpParts exp_parts(__m512d x) {
  ExpParts q;
  __m512i j;
  exp_reduce(x, q.t, q.p, q.e, j);
  q.a = _mm512_scalef_pd(q.t, q.e);
  q.b = _mm512_scalef_pd(_mm512_fmadd_pd(q.t, q.p, table(kPow2Lo, j)), q.e);
  return q;
}

// expm1(x) = (2^e t - 1) + 2^e t p. 2^e t is exact (or inf, or 0), and 2^e t - 1 is exact
// wherever it is in [0.5, 2]; outside that the two terms do not cancel. Where k = 0
// (|x| <= ln2/32) t = 1, e = 0 and the result is p itself, with its relative accuracy.
// t's own rounding error (tlo = 2^(j/16) - t) is added back: relative to a result near 0 it
// would be dozens of ULPs.
inline __m512d expm1_core(__m512d x) {
  const ExpParts q = exp_parts(x);
  const __m512d r = _mm512_add_pd(_mm512_sub_pd(q.a, _mm512_set1_pd(1.0)), q.b);
  // Near overflow 2^e t alone can exceed the range where exp(x) does not: exp(x) - 1 there.
  const __mmask8 big = _mm512_cmp_pd_mask(x, _mm512_set1_pd(700.0), _CMP_GT_OQ);
  return _mm512_mask_sub_pd(r, big, _mm512_scalef_pd(_mm512_fmadd_pd(q.t, q.p, q.t), q.e),
                            _mm512_set1_pd(1.0));
}

// exp(x) - y = (2^e t - y) + 2^e (t p + tlo). 2^e t is exact, and so is its difference with y
// wherever the two are within a factor of 2 (Sterbenz), i.e. wherever they cancel; what is left
// is the rounding of the small term (under 2.3% of exp(x)) and the final one. Above x = 700:
// exp(x) - y.
inline __m512d exp_minus_core(__m512d x, __m512d y) {
  const ExpParts q = exp_parts(x);
  const __m512d r = _mm512_add_pd(_mm512_sub_pd(q.a, y), q.b);
  const __mmask8 big = _mm512_cmp_pd_mask(x, _mm512_set1_pd(700.0), _CMP_GT_OQ);
  return _mm512_mask_sub_pd(r, big, _mm512_scalef_pd(_mm512_fmadd_pd(q.t, q.p, q.t), q.e), y);
}

// P(r) with log1p(r) = r + r^2 P(r) for small |r|, from log1p's Taylor terms of degree 2 to
// kDegree: Horner from the top coefficient, (-1)^(k+1) / k each rounded once. log1p_taylor and
// log_acc_core.
template <int kDegree>
inline __m512d log1p_poly(__m512d r) {
  const auto coef = [](int k) { return (k % 2 == 1 ? 1.0 : -1.0) / k; };
  __m512d p = _mm512_set1_pd(coef(kDegree));
  for (int k = kDegree - 1; k >= 2; --k) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(coef(k)));
  return p;
}

// log1p(r) for small |r| by its Taylor polynomial of degree kDegree: r + r^2 P(r). log_core and
// log1p_unit_core.
template <int kDegree>
inline __m512d log1p_taylor(__m512d r) {
  return _mm512_fmadd_pd(log1p_poly<kDegree>(r), _mm512_mul_pd(r, r), r);
}

// log_core's table (below): 1/c and -log(1/c) of each interval.
inline constexpr double kInvC[16] = {
    0x1.4afd6a052bf5bp+0, 0x1.3813813813814p+0, 0x1.27350b8812735p+0, 0x1.1811811811812p+0,
    0x1.0a6810a6810a7p+0, 0x1.0000000000000p+0, 0x1.e573ac901e574p-1, 0x1.d0cb58f6ec074p-1,
    0x1.bdd2b899406f7p-1, 0x1.ac5701ac5701bp-1, 0x1.9c2d14ee4a102p-1, 0x1.8d3018d3018d3p-1,
    0x1.7f405fd017f40p-1, 0x1.724287f46debcp-1, 0x1.661ec6a5122f9p-1, 0x1.5ac056b015ac0p-1};
// -log(kInvC[j]), correctly rounded.
inline constexpr double kLogC[16] = {
    -0x1.07138604d5864p-2, -0x1.95a5adcf70182p-3, -0x1.23d712a49c201p-3,
    -0x1.700d30aeac0e8p-4, -0x1.466aed42de3f9p-5, 0x0.0p+0,
    0x1.b42dd711971b9p-5,  0x1.8c345d6319b23p-4,  0x1.1b72ad52f67a2p-3,
    0x1.6d60fe719d21bp-3,  0x1.bc286742d8cd4p-3,  0x1.0402594b4d041p-2,
    0x1.2895a13de86a4p-2,  0x1.4be5f957778a1p-2,  0x1.6e08eaa2ba1e4p-2,
    0x1.8f11e873662c8p-2};

// log(x) for x > 0 finite (subnormals included): x = 2^e m, m in [0.75, 1.5), m in one of 16
// intervals of width 3/64 with a point c (c = 1 exactly on the interval around 1, so that the
// result keeps its relative accuracy near x = 1; log_reduce gives m, e and the interval j,
// log_acc_core shares it); r = m / c - 1 = m invc - 1 (one FMA),
// |r| <= 2^-5; log x = e ln2 + log c + log1p(r), log1p by its degree-11 Taylor polynomial
// (relative error < 2^-53).
inline void log_reduce(__m512d x, __m512d& m, __m512d& e, __m512i& j) {
  const __m512d m1 = _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  const __mmask8 big = _mm512_cmp_pd_mask(m1, _mm512_set1_pd(1.5), _CMP_GE_OQ);
  m = _mm512_mask_mul_pd(m1, big, m1, _mm512_set1_pd(0.5));
  e = _mm512_mask_add_pd(_mm512_getexp_pd(x), big, _mm512_getexp_pd(x), _mm512_set1_pd(1.0));
  j = _mm512_cvttpd_epi64(
      _mm512_mul_pd(_mm512_sub_pd(m, _mm512_set1_pd(0.75)), _mm512_set1_pd(64.0 / 3)));
}

inline __m512d log_core(__m512d x) {
  __m512d m, e;
  __m512i j;
  log_reduce(x, m, e, j);
  const __m512d r = _mm512_fmsub_pd(m, table(kInvC, j), _mm512_set1_pd(1.0));
  const __m512d p = log1p_taylor<11>(r);
  // ln2 in two parts; the first has 42 bits, so e times it is exact.
  const __m512d low = _mm512_fmadd_pd(e, _mm512_set1_pd(0x1.ef35793c76730p-45), p);
  return _mm512_fmadd_pd(e, _mm512_set1_pd(0x1.62e42fefa3800p-1),
                         _mm512_add_pd(table(kLogC, j), low));
}

// log1p(e) for e in [0, 1] only (softplus's tail, e = exp(-|t|)): 1 + e = (1 + r) / q with
// q = 1 / (1 + k/16) rounded, k = round(16 e) clamped to 15, so that r = (1 + e) q - 1 =
// fma(e, q, q - 1) (q - 1 is exact, q being in [1/2, 1]) is rounded once and |r| <= 2^-4.95;
// log1p(e) = -log q + log1p(r), log1p(r) by its degree-10 Taylor polynomial (relative error
// < 2^-53). k = 0 has q = 1 and r = e exactly, so a tiny e keeps its relative accuracy. Neither
// a division nor special values: vlog1p's general path costs twice as much.
inline __m512d log1p_unit_core(__m512d e) {
  static constexpr double kQ[16] = {
      0x1.0000000000000p+0, 0x1.e1e1e1e1e1e1ep-1, 0x1.c71c71c71c71cp-1, 0x1.af286bca1af28p-1,
      0x1.999999999999ap-1, 0x1.8618618618618p-1, 0x1.745d1745d1746p-1, 0x1.642c8590b2164p-1,
      0x1.5555555555555p-1, 0x1.47ae147ae147bp-1, 0x1.3b13b13b13b14p-1, 0x1.2f684bda12f68p-1,
      0x1.2492492492492p-1, 0x1.1a7b9611a7b96p-1, 0x1.1111111111111p-1, 0x1.0842108421084p-1};
  // -log(kQ[k]), correctly rounded.
  static constexpr double kLogQ[16] = {0x0.0p+0,
                                       0x1.f0a30c01162a8p-5,
                                       0x1.e27076e2af2eap-4,
                                       0x1.5ff3070a793d6p-3,
                                       0x1.c8ff7c79a9a20p-3,
                                       0x1.1675cababa60fp-2,
                                       0x1.4618bc21c5ec2p-2,
                                       0x1.739d7f6bbd007p-2,
                                       0x1.9f323ecbf984dp-2,
                                       0x1.c8ff7c79a9a21p-2,
                                       0x1.f128f5faf06ecp-2,
                                       0x1.0be72e4252a83p-1,
                                       0x1.1e85f5e7040d1p-1,
                                       0x1.307d7334f10bep-1,
                                       0x1.41d8fe84672afp-1,
                                       0x1.52a2d265bc5abp-1};
  const __m512i k =
      _mm512_min_epi64(_mm512_cvt_roundpd_epi64(_mm512_mul_pd(e, _mm512_set1_pd(16.0)),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                       _mm512_set1_epi64(15));
  const __m512d q = table(kQ, k);
  const __m512d r = _mm512_fmadd_pd(e, q, _mm512_sub_pd(q, _mm512_set1_pd(1.0)));
  return _mm512_add_pd(table(kLogQ, k), log1p_taylor<10>(r));
}

// 1 / u to about 2^-56 for u normal: rcp14 and two Newton steps.
inline __m512d reciprocal(__m512d u) {
  __m512d y = _mm512_rcp14_pd(u);
  for (int k = 0; k < 2; ++k) {
    const __m512d err = _mm512_fnmadd_pd(u, y, _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(y, err, y);
  }
  return y;
}

// ---- the float64 table's functions (LOSSBENCH_F64_MATH, isa/avx512_f64.cpp): float64 results,
// so about half an ULP of double each, not just 2^-50.

// log(c) - kLogC[j] for log_core's table (c = 1 / kInvC[j] exactly as its logarithm is taken:
// -log(kInvC[j])), so that log c is a double-double.
inline constexpr double kLogCLo[16] = {
    0x1.24e912b16ec8bp-60,  -0x1.8a16283fdbd1cp-57, -0x1.51c7e9efae297p-57,
    -0x1.a36a677b4c8b2p-59, 0x1.9badefe942718p-60,  0x0.0p+0,
    0x1.0a34531f67db5p-59,  -0x1.294d2f5668495p-58, -0x1.fbe7ee5c69946p-57,
    0x1.d551d97132e87p-57,  0x1.cfce744870f57p-58,  -0x1.08ec217a5022dp-57,
    0x1.7ad24c13f040fp-56,  -0x1.4b366b609027ap-58, -0x1.bfb1b39ca3a0fp-56,
    0x1.f85da755a61a3p-56};

// log(x + corr + corr_lo) for x > 0 finite (subnormals included), |corr| below about 2^-52 x
// (the rounding error of the x a caller formed) and corr_lo below 2^-52 corr (a low part that
// corr's own rounding would lose): log_core's reduction, with r = m invc - 1 kept as a
// double-double (the product split by an fma; ph - 1 is exact, ph being within 2^-5 of 1) and
// corr folded into its low part; log x = e ln2 + log c + rh + rl + rh^2 P(rh) - rl (rh + rl / 2),
// the four leading terms added by TwoSums and everything else in the low part, rounded once at
// the end (about 0.52 ULP). log_acc_parts gives the value before that rounding, log x = s + t
// (|t| well below |s|), within about 2^-60 of the result (the polynomial tail's rounding and the
// tables'); log_acc_core rounds it.
// log_reduce with r = m invc - 1 as rh + rl (rl the product's rounding error, by an fma, plus
// corr scaled as m is): log_acc_parts and f64_dd.hpp's log_dd_parts.
struct LogReduced {
  __m512d invc, rh, rl, e, minus_e;
  __m512i j;
};
inline LogReduced log_reduce_dd(__m512d x, __m512d corr) {
  LogReduced q;
  __m512d m;
  log_reduce(x, m, q.e, q.j);
  q.invc = table(kInvC, q.j);
  const __m512d ph = _mm512_mul_pd(m, q.invc);
  q.rh = _mm512_sub_pd(ph, _mm512_set1_pd(1.0));
  q.minus_e = _mm512_sub_pd(_mm512_setzero_pd(), q.e);
  q.rl = _mm512_add_pd(_mm512_fmsub_pd(m, q.invc, ph),
                       _mm512_scalef_pd(_mm512_mul_pd(corr, q.invc), q.minus_e));
  return q;
}

inline void log_acc_parts(__m512d x, __m512d corr, __m512d corr_lo, __m512d& s, __m512d& t) {
  const LogReduced q = log_reduce_dd(x, corr);
  const __m512d invc = q.invc, rh = q.rh, rl = q.rl, e = q.e, minus_e = q.minus_e;
  const __m512i j = q.j;
  const __m512d tail = _mm512_mul_pd(log1p_poly<11>(rh), _mm512_mul_pd(rh, rh));  // rh^2 P(rh)
  __m512d s1, e1, s2, e2, s3, e3;
  formulas::two_sum(_mm512_mul_pd(e, _mm512_set1_pd(0x1.62e42fefa3800p-1)), table(kLogC, j), s1,
                    e1);
  formulas::two_sum(s1, rh, s2, e2);
  // rl by a TwoSum too: where the result is near 2^-52 (log1p of such x, softplus's tail of such
  // exp(-|t|)) rl is as large as the result, and its rounding in the low part would cost a
  // quarter of an ULP.
  formulas::two_sum(s2, rl, s3, e3);
  __m512d lo = _mm512_fmadd_pd(e, _mm512_set1_pd(0x1.ef35793c76730p-45), table(kLogCLo, j));
  lo = _mm512_add_pd(lo, _mm512_scalef_pd(_mm512_mul_pd(corr_lo, invc), minus_e));
  // -rl (rh + rl / 2): the low part's own square matters where it is the whole correction.
  const __m512d half_rl = _mm512_mul_pd(rl, _mm512_set1_pd(0.5));
  lo = _mm512_fnmadd_pd(rl, _mm512_add_pd(rh, half_rl), lo);
  lo = _mm512_add_pd(lo, _mm512_add_pd(e1, _mm512_add_pd(e2, e3)));
  s = s3;
  t = _mm512_add_pd(lo, tail);
}

inline __m512d log_acc_core(__m512d x, __m512d corr, __m512d corr_lo) {
  __m512d s, t;
  log_acc_parts(x, corr, corr_lo, s, t);
  return _mm512_add_pd(s, t);
}

// exp(x) to about 0.51 ULP: 2^e (t + (t p + tlo)), t's rounding error added back.
inline __m512d exp_acc_core(__m512d x) {
  __m512d t, p, e;
  __m512i j;
  exp_reduce(x, t, p, e, j);
  return _mm512_scalef_pd(_mm512_add_pd(t, _mm512_fmadd_pd(t, p, table(kPow2Lo, j))), e);
}

// log1p(exp(-|t|)) to about half an ULP: exp(-|t|) as the double-double 2^e t + 2^e (t p + tlo)
// (Fast2Sum: the second term is under 2.3% of the first), u = 1 + its high part, and u's
// rounding error and the low part as log_acc_core's two corrections.
inline __m512d softplus_tail_acc_core(__m512d t) {
  const ExpParts q = exp_parts(_mm512_or_pd(t, _mm512_set1_pd(-0.0)));
  const __m512d eh = _mm512_add_pd(q.a, q.b);
  const __m512d el = _mm512_sub_pd(q.b, _mm512_sub_pd(eh, q.a));
  const __m512d u = _mm512_add_pd(_mm512_set1_pd(1.0), eh);
  return log_acc_core(u, _mm512_sub_pd(eh, _mm512_sub_pd(u, _mm512_set1_pd(1.0))), el);
}
}  // namespace avx512math

// LOSSBENCH_F64_MATH (isa/avx512_f64.cpp, the float64 table): exp, log, log1p, softplus's tail
// and the division to about half an ULP of double (the *_acc_core functions); otherwise the
// cores above, which float32 and 16-bit results need only to 2^-50.
HWY_INLINE VD vexp(VD x) {
#if defined(LOSSBENCH_F64_MATH)
  VD r(hn::Vec<D>{avx512math::exp_acc_core(x.v.raw)});
#else
  VD r(hn::Vec<D>{avx512math::exp_core(x.v.raw)});
#endif
  return vselect(visnan(x), x, r);
}

// log with IEEE 754's special values, without a branch or a select: log_core on every lane,
// then one vfixupimmpd that replaces the lanes whose x is not a positive number, by x's class
// (a nibble per class, from class 0 up): QNaN and SNaN -> x quieted (2), zero -> -inf (4),
// one -> log_core's +0 (0), -inf -> NaN (3), +inf -> +inf (5), negative -> NaN (3), positive
// (subnormals included) -> log_core (0). log_core's values on those lanes are never used.
// (log_specials: that fixup of a log r of x; vlog, vlog1p and bce_dd::ln; kLogFixup, the table,
// serves isa/simd_f32.hpp's float version too.)
inline constexpr int kLogFixup = 0x03530422;
HWY_INLINE __m512d log_specials(__m512d r, __m512d x) {
  return _mm512_fixupimm_pd(r, x, _mm512_set1_epi64(kLogFixup), 0);
}
HWY_INLINE VD vlog(VD x) {
#if defined(LOSSBENCH_F64_MATH)
  const __m512d r = avx512math::log_acc_core(x.v.raw, _mm512_setzero_pd(), _mm512_setzero_pd());
#else
  const __m512d r = avx512math::log_core(x.v.raw);
#endif
  return VD(hn::Vec<D>{log_specials(r, x.v.raw)});
}

// log1p(x) = log(u) + (x - (u - 1)) / u with u = 1 + x rounded: the second term is the rounding
// error of u, tiny, so an approximate reciprocal serves; x - (u - 1) is exact for u <= 2. The
// correction is 0 where u is not in (0, 2^1000) (there the reciprocal could overflow, or the
// result is vlog's special value); u = 1 gives x itself.
HWY_INLINE VD vlog1p(VD x) {
  const VD u = VD(1.0) + x;
  const __mmask8 usable = _mm512_cmp_pd_mask(u.v.raw, _mm512_set1_pd(0.0), _CMP_GT_OQ) &
                          _mm512_cmp_pd_mask(u.v.raw, _mm512_set1_pd(0x1p+1000), _CMP_LT_OQ);
#if defined(LOSSBENCH_F64_MATH)
  // The rounding error of u as log_acc_core's correction (u = 1 gives x itself); vlog's special
  // values by u's class.
  const __m512d corr = _mm512_maskz_sub_pd(usable, x.v.raw, (u - VD(1.0)).v.raw);
  const __m512d r = avx512math::log_acc_core(u.v.raw, corr, _mm512_setzero_pd());
  const VD l(hn::Vec<D>{log_specials(r, u.v.raw)});
  return vselect(u == VD(1.0), x, l);
#else
  const __m512d inv = avx512math::reciprocal(u.v.raw);
  const VD correction(hn::Vec<D>{_mm512_maskz_mul_pd(usable, (x - (u - VD(1.0))).v.raw, inv)});
  return vselect(u == VD(1.0), x, vlog(u) + correction);
#endif
}

#else
HWY_INLINE VD vexp(VD x) {
  const D d;
  // Highway's Exp is valid up to 706: above, exp(x/2)^2 (overflows to inf past 709.78).
  const MD big = x > VD(700.0);
  const VD xs = vselect(big, x * VD(0.5), x);
  const VD safe = vselect(visfinite(xs), xs, VD(0.0));
  VD r(hn::Exp(d, safe.v));
  r = vselect(big, r * r, r);
  r = vselect(x < VD(-746.0), VD(0.0), r);
  r = vselect(x > VD(709.8), VD(HUGE_VAL), r);
  return vselect(visnan(x), x, r);
}

HWY_INLINE VD vlog(VD x) {
  const D d;
  const MD tiny = (x < VD(0x1p-1022)) & (x > VD(0.0));
  const VD scaled = vselect(tiny, x * VD(0x1p54), x);
  const MD regular = (scaled > VD(0.0)) & visfinite(scaled);
  VD r(hn::Log(d, vselect(regular, scaled, VD(1.0)).v));
  r = r - vselect(tiny, VD(54.0 * 0.693147180559945309417232121458176568), VD(0.0));
  r = vselect(x == VD(0.0), VD(-HUGE_VAL), r);
  r = vselect(x == VD(HUGE_VAL), x, r);
  return vselect((x < VD(0.0)) | visnan(x), VD(__builtin_nan("")), r);
}

// log1p(x) = log(u) * x / (u - 1) with u = 1 + x rounded (Goldberg): a few ULPs of double for
// every x > -1, from an accurate log.
HWY_INLINE VD vlog1p(VD x) {
  const VD u = VD(1.0) + x;
  VD r = vlog(u) * (x / (u - VD(1.0)));
  r = vselect(u == VD(1.0), x, r);
  return vselect(x == VD(HUGE_VAL), x, r);
}
#endif  // HWY_TARGET == HWY_AVX3

#if HWY_TARGET == HWY_AVX3
// expm1 on AVX-512: expm1_core (exp's reduction, no division), NaN kept.
HWY_INLINE VD vexpm1(VD x) {
  VD r(hn::Vec<D>{avx512math::expm1_core(x.v.raw)});
  return vselect(visnan(x), x, r);
}

// exp(x) - y on AVX-512 (formulas/common.hpp: the generic vexp_minus): exp_minus_core, NaN x kept.
HWY_INLINE VD vexp_minus(VD x, VD y) {
  VD r(hn::Vec<D>{avx512math::exp_minus_core(x.v.raw, y.v.raw)});
  return vselect(visnan(x), x, r);
}
// log1p(exp(-|t|)) (formulas/common.hpp): exp_core of -|t| (NaN and -inf clamp to -1000, so
// that e is 0 there) and log1p_unit_core; NaN kept.
HWY_INLINE VD softplus_tail(VD t) {
#if defined(LOSSBENCH_F64_MATH)
  VD r(hn::Vec<D>{avx512math::softplus_tail_acc_core(t.v.raw)});
#else
  const __m512d e = avx512math::exp_core(_mm512_or_pd(t.v.raw, _mm512_set1_pd(-0.0)));
  VD r(hn::Vec<D>{avx512math::log1p_unit_core(e)});
#endif
  return vselect(visnan(t), t, r);
}

// a / u for u a positive normal number (formulas/common.hpp): a times reciprocal(u), for a
// relative error under 2^-51 (two roundings after the reciprocal's 2^-56) instead of vdivpd's
// 2^-53 at several times the cost. Only float32 and 16-bit results come through here.
HWY_INLINE VD vdiv_pos(VD a, VD u) {
#if defined(LOSSBENCH_F64_MATH)
  return a / u;  // float64 results: the division, rounded once
#else
  return VD(hn::Vec<D>{_mm512_mul_pd(a.v.raw, avx512math::reciprocal(u.v.raw))});
#endif
}

#endif  // HWY_TARGET == HWY_AVX3

#if HWY_TARGET != HWY_AVX3
// expm1: Highway's Expm1 (4 ULP of double), expm1_highway below.
HWY_INLINE VD vexpm1(VD x) { return expm1_highway<D>(x, 700.0); }
// exp(x) - y (formulas/common.hpp's forms), with the lanes where it is under 2^-20 of y redone
// one at a time in double-double (exp_minus_dd).
HWY_INLINE VD vexp_minus(VD x, VD y) {
  const VD r = formulas::vexp_minus_plain(x, y);
  const MD close = formulas::exp_minus_close(x, y, r);
  if (HWY_LIKELY(!vany(close))) return r;
  constexpr std::size_t kN = HWY_LANES(double);
  double xs[kN], ys[kN], rs[kN];
  hn::StoreU(x.v, D(), xs);
  hn::StoreU(y.v, D(), ys);
  hn::StoreU(r.v, D(), rs);
  for (std::size_t i = 0; i < kN; ++i)
    if (formulas::exp_minus_close(xs[i], ys[i], rs[i]))
      rs[i] = formulas::exp_minus_dd(xs[i], ys[i]);
  return VD(hn::LoadU(D(), rs));
}
#endif  // HWY_TARGET == HWY_AVX3

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::simd

namespace lossbench::opt::kernels {
inline namespace LOSSBENCH_FORMULA_NS {
template <>
struct Traits<simd::VD> {
  static constexpr std::size_t kLanes = HWY_LANES(double);
  static simd::VD load(const double* p) { return simd::VD(simd::hn::LoadU(simd::D(), p)); }
  static void store(simd::VD v, double* p) { simd::hn::StoreU(v.v, simd::D(), p); }
  // float32 tensors: widened exactly to double on load, rounded once (to nearest) on store.
  static simd::VD load(const float* p) {
    const simd::hn::Rebind<float, simd::D> df;
    return simd::VD(simd::hn::PromoteTo(simd::D(), simd::hn::LoadU(df, p)));
  }
  static void store(simd::VD v, float* p) {
    const simd::hn::Rebind<float, simd::D> df;
    simd::hn::StoreU(simd::hn::DemoteTo(df, v.v), df, p);
  }
  // Non-temporal stores (block.hpp: put); p aligned to the stored vector's width.
  static void stream(simd::VD v, double* p) { simd::hn::Stream(v.v, simd::D(), p); }
  static void stream(simd::VD v, float* p) {
    const simd::hn::Rebind<float, simd::D> df;
    simd::hn::Stream(simd::hn::DemoteTo(df, v.v), df, p);
  }
};
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::kernels
