#pragma once
// Float lanes for the formulas (16 floats on AVX-512): the lane type of the opt-in "cpu-fast"
// table (isa/avx512_fast.cpp), which evaluates the float32 losses with exp/log in float
// (float-in/float-inside) instead of double. The formulas are the same templates; only the
// arithmetic is float's, with the float functions below: exp, log, log1p and softplus's tail
// without a division (table lookups in one or two registers and short polynomials, about 1-2
// ULP each; tests/cpu_test.cpp measures them), Highway's Expm1, and a reciprocal for vdiv_pos.
// So a result carries several float roundings, not one: cpu-fast trades the 1-ULP float32
// target for speed (optimized/budgets.txt has its measured budgets).
#include "simd.hpp"

#if HWY_TARGET != HWY_AVX3
#error "isa/simd_f32.hpp is for the AVX-512 files only"
#endif

namespace lossbench::opt::simd {
inline namespace LOSSBENCH_FORMULA_NS {

using DF = hn::ScalableTag<float>;

// ln2 in two floats (vexp's reduction, log_core's sum): the first has 13 bits, so an integer up to
// 2^8 times it is exact.
inline constexpr float kLn2HiF = 0x1.62ep-1f;
inline constexpr float kLn2LoF = 0x1.0bfbe8p-15f;

LOSSBENCH_SIMD_LANES(VF, MF, DF)

// 1/u for u != 0 (either sign): rcp14 and one Newton step, about 2^-23 relative (a float
// division costs several times as much).
HWY_INLINE VF reciprocal(VF u) {
  const VF y(hn::Vec<DF>{_mm512_rcp14_ps(u.v.raw)});
  return vfma(y, vfma(-u, y, VF(1.0)), y);
}

// exp(x) = 2^k exp(r), k = round(x / ln2), r = x - k ln2 (kLn2HiF + kLn2LoF), |r| <= ln2/2, exp(r)
// by its degree-7 Taylor polynomial (truncation under 2^-27); scalef multiplies by 2^k, rounding
// once into the subnormal range and overflowing to inf. x is clamped to [-110, 100] first (exp is 0
// or inf beyond; max and min return their second operand, x, where it is NaN, so NaN is kept). No
// division, no table.
HWY_INLINE VF vexp(VF x) {
  const __m512 xc =
      _mm512_min_ps(_mm512_set1_ps(100.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x.v.raw));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(0x1.715476p+0f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2HiF), xc);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kLn2LoF), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return VF(hn::Vec<DF>{_mm512_scalef_ps(p, k)});
}

// log1p(r) for |r| <= 2^-5 by its degree-5 Taylor polynomial (truncation under 2^-27 of r).
HWY_INLINE __m512 log1p_poly5(__m512 r) {
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.2f), r, _mm512_set1_ps(-0.25f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(-0.5f));
  return _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
}

// log(x + c) for x > 0 finite (subnormals included) and c a correction far below x (vlog1p's
// rounding error of 1 + x; 0 for log itself), without a division: x = 2^e m with m in
// [0.75, 1.5) (getmant/getexp), m in one of 16 intervals of width 3/64 with a point c0 (c0 = 1 on
// the interval around 1, so that results near x = 1 keep their relative accuracy): r = m / c0 - 1
// + c / (2^e c0) = m invc - 1 + c invc 2^-e, |r| <= 2^-5, log(x + c) = e ln2 + log c0 +
// log1p(r). The tables are isa/simd.hpp's kInvC rounded to float and -log of those floats as two
// floats each (log c0's rounding alone would be up to 2 ULP of results near 1, where log c0 and
// log1p(r) cancel); each table fits one register (vpermps). About 1.5 ULP.
HWY_INLINE __m512 log_core(__m512 x, __m512 c) {
  alignas(64) static constexpr float kInvC[16] = {
      0x1.4afd6ap+0f, 0x1.381382p+0f, 0x1.27350cp+0f, 0x1.181182p+0f,
      0x1.0a681p+0f,  0x1p+0f,        0x1.e573acp-1f, 0x1.d0cb58p-1f,
      0x1.bdd2b8p-1f, 0x1.ac5702p-1f, 0x1.9c2d14p-1f, 0x1.8d3018p-1f,
      0x1.7f406p-1f,  0x1.724288p-1f, 0x1.661ec6p-1f, 0x1.5ac056p-1f};
  alignas(64) static constexpr float kLogC[16] = {
      -0x1.071386p-2f, -0x1.95a5b2p-3f, -0x1.23d716p-3f, -0x1.700d3ep-4f,
      -0x1.466adap-5f, 0x0p+0f,         0x1.b42dep-5f,   0x1.8c3466p-4f,
      0x1.1b72bp-3f,   0x1.6d60fcp-3f,  0x1.bc286cp-3f,  0x1.04025cp-2f,
      0x1.2895ap-2f,   0x1.4be5fap-2f,  0x1.6e08ecp-2f,  0x1.8f11eap-2f};
  alignas(64) static constexpr float kLogCLo[16] = {
      0x1.654f3cp-31f, -0x1.dee02cp-28f, 0x1.b63e08p-31f,  0x1.153f76p-32f,
      0x1.7a439p-30f,  0x0p+0f,          0x1.232e3ap-30f,  -0x1.ce64bap-32f,
      0x1.2f67a8p-31f, 0x1.c33a44p-28f,  -0x1.d27314p-31f, -0x1.2965f6p-27f,
      0x1.7bd0d4p-27f, -0x1.9110ecp-27f, 0x1.eae87ap-28f,  0x1.ed98b4p-28f};
  // m in [0.75, 1.5) directly; where it is below 1, x = 2^(getexp(x) + 1) m.
  const __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_zero);
  const __mmask16 low_m = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.0f), _CMP_LT_OQ);
  const __m512 e0 = _mm512_getexp_ps(x);
  const __m512 e = _mm512_mask_add_ps(e0, low_m, e0, _mm512_set1_ps(1.0f));
  const __m512i j =
      _mm512_cvttps_epi32(_mm512_fmadd_ps(m, _mm512_set1_ps(64.0f / 3), _mm512_set1_ps(-16.0f)));
  const __m512 invc = _mm512_permutexvar_ps(j, _mm512_load_ps(kInvC));
  const __m512 r = _mm512_fmadd_ps(_mm512_scalef_ps(c, _mm512_sub_ps(_mm512_setzero_ps(), e)), invc,
                                   _mm512_fmsub_ps(m, invc, _mm512_set1_ps(1.0f)));
  const __m512 low =
      _mm512_add_ps(_mm512_permutexvar_ps(j, _mm512_load_ps(kLogCLo)), log1p_poly5(r));
  // e ln2 as kLn2HiF + kLn2LoF (e times the first exact, |e| < 2^8): low parts first, then log
  // c0's high part, then e ln2's.
  const __m512 sum = _mm512_add_ps(_mm512_permutexvar_ps(j, _mm512_load_ps(kLogC)),
                                   _mm512_fmadd_ps(e, _mm512_set1_ps(kLn2LoF), low));
  return _mm512_fmadd_ps(e, _mm512_set1_ps(kLn2HiF), sum);
}

// log: log_core; the lanes whose x is not a positive finite number take IEEE's values by x's
// class in one vfixupimmps, as isa/simd.hpp's log_specials: NaN quieted, 0 -> -inf, +inf -> +inf,
// negative and -inf -> NaN.
HWY_INLINE __m512 log_specials(__m512 l, __m512 x) {
  return _mm512_fixupimm_ps(l, x, _mm512_set1_epi32(kLogFixup), 0);
}
HWY_INLINE VF vlog(VF x) {
  return VF(hn::Vec<DF>{log_specials(log_core(x.v.raw, _mm512_setzero_ps()), x.v.raw)});
}

// log1p(x) = log(u + c) with u = 1 + x rounded and c = x - (u - 1) its rounding error (exact
// where u <= 2; elsewhere tiny next to u): vlog's reduction with c / 2^e folded into r, as
// c invc 2^-e (log_core below). c is 0 where u is not a positive finite number (vlog's special
// values by u's class); u = 1 gives x itself.
HWY_INLINE VF vlog1p(VF x) {
  const VF u = VF(1.0) + x;
  const VF c = vselect(visfinite(u), x - (u - VF(1.0)), VF(0.0));
  const VF l(hn::Vec<DF>{log_specials(log_core(u.v.raw, c.v.raw), u.v.raw)});
  return vselect(u == VF(1.0), x, l);
}

// log1p(exp(-|t|)), softplus's tail (formulas/common.hpp): e = exp(-|t|) in [0, 1], u = 1 + e in
// [1, 2] and its rounding error c = e - (u - 1) (exact: Fast2Sum), then log(u + c) from a table
// of 32 intervals of [1, 2] (c = 1 on the first, so that a tiny e keeps its relative accuracy:
// u = 1 and r = c = e there), r = u invc - 1 + c invc, |r| <= 2^-5, and log1p(r) by its degree-5
// Taylor polynomial; log(1/invc) in two floats. No special values to sort out but NaN (kept).
HWY_INLINE VF softplus_tail(VF t) {
  alignas(64) static constexpr float kInv[32] = {
      0x1.p+0f,       0x1.e9131ap-1f, 0x1.dae608p-1f, 0x1.cd8568p-1f, 0x1.c0e07p-1f,
      0x1.b4e81cp-1f, 0x1.a98ef6p-1f, 0x1.9ec8eap-1f, 0x1.948b1p-1f,  0x1.8acb9p-1f,
      0x1.818182p-1f, 0x1.78a4c8p-1f, 0x1.702e06p-1f, 0x1.681682p-1f, 0x1.605816p-1f,
      0x1.58ed24p-1f, 0x1.51d07ep-1f, 0x1.4afd6ap-1f, 0x1.446f86p-1f, 0x1.3e22ccp-1f,
      0x1.381382p-1f, 0x1.323e34p-1f, 0x1.2c9fb4p-1f, 0x1.27350cp-1f, 0x1.21fb78p-1f,
      0x1.1cf06ap-1f, 0x1.181182p-1f, 0x1.135c82p-1f, 0x1.0ecf56p-1f, 0x1.0a681p-1f,
      0x1.0624dep-1f, 0x1.020408p-1f};
  alignas(64) static constexpr float kLog[32] = {
      0x0.p+0f,       0x1.77459cp-5f, 0x1.341d74p-4f, 0x1.a926d8p-4f, 0x1.0d77e8p-3f,
      0x1.44d2b4p-3f, 0x1.7ab89p-3f,  0x1.af3c92p-3f, 0x1.e27076p-3f, 0x1.0a325p-2f,
      0x1.22941ep-2f, 0x1.3a64c6p-2f, 0x1.51aad8p-2f, 0x1.686c8p-2f,  0x1.7eaf84p-2f,
      0x1.94793ep-2f, 0x1.a9ceccp-2f, 0x1.beb4dap-2f, 0x1.d32fe8p-2f, 0x1.e74426p-2f,
      0x1.faf586p-2f, 0x1.0723e6p-1f, 0x1.109f3cp-1f, 0x1.19ee6ap-1f, 0x1.23130ep-1f,
      0x1.2c0eap-1f,  0x1.34e288p-1f, 0x1.3d9024p-1f, 0x1.4618bep-1f, 0x1.4e7d82p-1f,
      0x1.56bf9cp-1f, 0x1.5ee02ap-1f};
  alignas(64) static constexpr float kLogLo[32] = {
      0x0.p+0f,         -0x1.cd22dcp-33f, 0x1.86f478p-30f,  0x1.495aaep-29f,  0x1.9a11ccp-28f,
      -0x1.cd20b6p-29f, 0x1.043642p-29f,  -0x1.dfdp-29f,    -0x1.d50d1ap-31f, 0x1.4e721ep-27f,
      0x1.b3de5ap-28f,  -0x1.a5ae86p-28f, -0x1.e903eap-29f, 0x1.cd8a5ap-29f,  -0x1.bea81ep-29f,
      0x1.c422e2p-27f,  -0x1.197decp-28f, -0x1.58e484p-30f, 0x1.e01d7ap-27f,  -0x1.052f0ep-27f,
      0x1.9e3ccap-28f,  0x1.a39be8p-26f,  -0x1.5a566cp-26f, 0x1.d9f25cp-27f,  -0x1.90503p-27f,
      0x1.7123a6p-27f,  0x1.8e70fp-28f,   0x1.de2aep-26f,   -0x1.d8e84ep-27f, 0x1.6dd6eep-27f,
      -0x1.e6062ep-28f, 0x1.6482cep-26f};
  const __m512 e = vexp(VF(hn::Vec<DF>{_mm512_or_ps(t.v.raw, _mm512_set1_ps(-0.0f))})).v.raw;
  const __m512 u = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
  const __m512 c = _mm512_sub_ps(e, _mm512_sub_ps(u, _mm512_set1_ps(1.0f)));
  const __m512i j = _mm512_min_epi32(
      _mm512_cvttps_epi32(_mm512_fmadd_ps(u, _mm512_set1_ps(32.0f), _mm512_set1_ps(-32.0f))),
      _mm512_set1_epi32(31));
  const auto table = [&](const float(&v)[32]) {
    return _mm512_permutex2var_ps(_mm512_load_ps(v), j, _mm512_load_ps(v + 16));
  };
  const __m512 invc = table(kInv);
  const __m512 r = _mm512_fmadd_ps(c, invc, _mm512_fmsub_ps(u, invc, _mm512_set1_ps(1.0f)));
  const __m512 low = _mm512_add_ps(table(kLogLo), log1p_poly5(r));
  return VF(hn::Vec<DF>{_mm512_add_ps(table(kLog), low)});
}

// max(t, 0) keeping NaN (formulas/common.hpp): max returns its second operand, t, for NaN.
HWY_INLINE VF relu(VF t) { return VF(hn::Vec<DF>{_mm512_max_ps(_mm512_setzero_ps(), t.v.raw)}); }

// expm1: Highway's Expm1 (isa/simd.hpp: expm1_highway), below float's overflow.
HWY_INLINE VF vexpm1(VF x) { return expm1_highway<DF>(x, 88.0); }

// a / u for u a positive normal number (formulas/common.hpp): a times reciprocal(u).
HWY_INLINE VF vdiv_pos(VF a, VF u) { return a * reciprocal(u); }

// The two halves of a float vector widened exactly to doubles (sums in double).
HWY_INLINE VD lower_half(VF x) { return VD(hn::PromoteTo(D(), hn::LowerHalf(x.v))); }
HWY_INLINE VD upper_half(VF x) {
  return VD(hn::PromoteTo(D(), hn::UpperHalf(hn::Half<DF>(), x.v)));
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::simd

namespace lossbench::opt::kernels {
inline namespace LOSSBENCH_FORMULA_NS {
// float32 tensors (exact loads and stores); doubles for math_block only (the fast table's
// `math`, on float values held in doubles: rounded to float on load, exact on store).
template <>
struct Traits<simd::VF> {
  static constexpr std::size_t kLanes = HWY_LANES(float);
  static simd::VF load(const float* p) { return simd::VF(simd::hn::LoadU(simd::DF(), p)); }
  static void store(simd::VF v, float* p) { simd::hn::StoreU(v.v, simd::DF(), p); }
  static simd::VF load(const double* p) {
    const simd::hn::Half<simd::DF> dh;
    constexpr std::size_t kHalf = HWY_LANES(double);
    return simd::VF(simd::hn::Combine(simd::DF(),
                                      simd::hn::DemoteTo(dh, simd::hn::LoadU(simd::D(), p + kHalf)),
                                      simd::hn::DemoteTo(dh, simd::hn::LoadU(simd::D(), p))));
  }
  static void store(simd::VF v, double* p) {
    simd::hn::StoreU(simd::lower_half(v).v, simd::D(), p);
    simd::hn::StoreU(simd::upper_half(v).v, simd::D(), p + HWY_LANES(double));
  }
};
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::kernels
