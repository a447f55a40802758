// The float64 double-double kernels (isa/exact64.cpp) on AVX-512: DDV, eight DD lanes in two
// registers (hi, lo), with the same operations, accuracy and special values as formulas/dd.hpp's
// scalar DD, so that the formulas over DDV give each lane the value they give over DD. Compiled
// with the AVX-512 flags; api.cpp uses it on the AVX-512 path for gaussian_nll_loss (the other
// cancelling losses have isa/f64_dd.hpp's formulas there).
#include <immintrin.h>

// GCC 12's own AVX-512 headers trip -Wmaybe-uninitialized on their _mm512_undefined_pd()
// pass-through operands (getexp, getmant, scalef, roundscale, ...) once inlined here: a known
// false positive of that compiler, silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "../drivers/block.hpp"
#include "../formulas/dd.hpp"

namespace lossbench::opt {
namespace formulas {
inline namespace LOSSBENCH_FORMULA_NS {

struct MK {
  __mmask8 m;
};
struct DDV {
  __m512d hi;
  __m512d lo;
  DDV() : hi(_mm512_setzero_pd()), lo(_mm512_setzero_pd()) {}
  DDV(double c) : hi(_mm512_set1_pd(c)), lo(_mm512_setzero_pd()) {}  // NOLINT: constants
  DDV(__m512d h, __m512d l) : hi(h), lo(l) {}
  explicit DDV(__m512d h) : hi(h), lo(_mm512_setzero_pd()) {}
};

#define LB_DDV inline __attribute__((always_inline))

namespace ddv {

LB_DDV __m512d set(double c) { return _mm512_set1_pd(c); }
LB_DDV __mmask8 finite(__m512d x) {
  return _mm512_cmp_pd_mask(_mm512_abs_pd(x), set(HUGE_VAL), _CMP_LT_OQ);
}
LB_DDV void two_sum(__m512d a, __m512d b, __m512d& s, __m512d& e) {
  s = _mm512_add_pd(a, b);
  const __m512d bb = _mm512_sub_pd(s, a);
  e = _mm512_add_pd(_mm512_sub_pd(a, _mm512_sub_pd(s, bb)), _mm512_sub_pd(b, bb));
}
// (s, e) renormalized where e != 0 and s is finite; elsewhere (s, 0) (dd::norm).
LB_DDV DDV norm(__m512d s, __m512d e) {
  const __m512d h = _mm512_add_pd(s, e);
  const __m512d l = _mm512_sub_pd(e, _mm512_sub_pd(h, s));
  const __mmask8 renorm = finite(s) & _mm512_cmp_pd_mask(e, _mm512_setzero_pd(), _CMP_NEQ_UQ);
  return {_mm512_mask_blend_pd(renorm, s, h), _mm512_maskz_mov_pd(renorm, l)};
}

}  // namespace ddv

LB_DDV MK operator&(MK a, MK b) { return {static_cast<__mmask8>(a.m & b.m)}; }
LB_DDV MK operator|(MK a, MK b) { return {static_cast<__mmask8>(a.m | b.m)}; }
LB_DDV MK operator!(MK a) { return {static_cast<__mmask8>(~a.m)}; }
LB_DDV bool vany(MK a) { return a.m != 0; }

LB_DDV DDV operator-(DDV a) {
  const __m512d sign = _mm512_set1_pd(-0.0);
  return {_mm512_xor_pd(a.hi, sign), _mm512_xor_pd(a.lo, sign)};
}
LB_DDV DDV operator+(DDV a, DDV b) {
  __m512d s, e, t, f;
  ddv::two_sum(a.hi, b.hi, s, e);
  ddv::two_sum(a.lo, b.lo, t, f);
  const DDV r = ddv::norm(s, _mm512_add_pd(e, t));
  const DDV r2 = ddv::norm(r.hi, _mm512_add_pd(r.lo, f));
  const __mmask8 fin = ddv::finite(s);
  return {_mm512_mask_blend_pd(fin, s, r2.hi), _mm512_maskz_mov_pd(fin, r2.lo)};
}
LB_DDV DDV operator-(DDV a, DDV b) { return a + (-b); }
LB_DDV DDV operator*(DDV a, DDV b) {
  const __m512d p = _mm512_mul_pd(a.hi, b.hi);
  __m512d e = _mm512_fmsub_pd(a.hi, b.hi, p);
  e = _mm512_add_pd(e, _mm512_fmadd_pd(a.hi, b.lo, _mm512_mul_pd(a.lo, b.hi)));
  // norm keeps (p, 0) where p is not finite; where p == 0 so are e and the cross terms' sum.
  const __mmask8 zero = _mm512_cmp_pd_mask(p, _mm512_setzero_pd(), _CMP_EQ_OQ);
  const DDV r = ddv::norm(p, e);
  return {_mm512_mask_blend_pd(zero, r.hi, p),
          _mm512_mask_blend_pd(zero, r.lo, _mm512_setzero_pd())};
}
LB_DDV DDV operator/(DDV a, DDV b) {
  const __m512d q1 = _mm512_div_pd(a.hi, b.hi);
  DDV r = a - b * DDV(q1);
  const __m512d q2 = _mm512_div_pd(r.hi, b.hi);
  r = r - b * DDV(q2);
  const __m512d q3 = _mm512_div_pd(r.hi, b.hi);
  const DDV q = ddv::norm(q1, q2) + DDV(q3);
  const __mmask8 keep = ~ddv::finite(q1) | _mm512_cmp_pd_mask(q1, _mm512_setzero_pd(), _CMP_EQ_OQ);
  return {_mm512_mask_blend_pd(keep, q.hi, q1),
          _mm512_mask_blend_pd(keep, q.lo, _mm512_setzero_pd())};
}
LB_DDV MK operator<(DDV a, DDV b) {
  return {static_cast<__mmask8>(
      _mm512_cmp_pd_mask(a.hi, b.hi, _CMP_LT_OQ) |
      (_mm512_cmp_pd_mask(a.hi, b.hi, _CMP_EQ_OQ) & _mm512_cmp_pd_mask(a.lo, b.lo, _CMP_LT_OQ)))};
}
LB_DDV MK operator<=(DDV a, DDV b) {
  return {static_cast<__mmask8>(
      _mm512_cmp_pd_mask(a.hi, b.hi, _CMP_LT_OQ) |
      (_mm512_cmp_pd_mask(a.hi, b.hi, _CMP_EQ_OQ) & _mm512_cmp_pd_mask(a.lo, b.lo, _CMP_LE_OQ)))};
}
LB_DDV MK operator>(DDV a, DDV b) { return b < a; }
LB_DDV MK operator>=(DDV a, DDV b) { return b <= a; }
LB_DDV MK operator==(DDV a, DDV b) {
  return {static_cast<__mmask8>(_mm512_cmp_pd_mask(a.hi, b.hi, _CMP_EQ_OQ) &
                                _mm512_cmp_pd_mask(a.lo, b.lo, _CMP_EQ_OQ))};
}

LB_DDV DDV vselect(MK c, DDV a, DDV b) {
  return {_mm512_mask_blend_pd(c.m, b.hi, a.hi), _mm512_mask_blend_pd(c.m, b.lo, a.lo)};
}
LB_DDV DDV vabs(DDV x) {
  const __mmask8 neg = _mm512_movepi64_mask(_mm512_castpd_si512(x.hi));
  return vselect({neg}, -x, x);
}
LB_DDV MK visnan(DDV x) { return {_mm512_cmp_pd_mask(x.hi, x.hi, _CMP_UNORD_Q)}; }
LB_DDV MK visinf(DDV x) {
  return {_mm512_cmp_pd_mask(_mm512_abs_pd(x.hi), ddv::set(HUGE_VAL), _CMP_EQ_OQ)};
}
LB_DDV MK visfinite(DDV x) { return {ddv::finite(x.hi)}; }
LB_DDV DDV vsign(DDV x) {
  const DDV z(0.0);
  return vselect(x > z, DDV(1.0), vselect(x < z, DDV(-1.0), z));
}

namespace ddv {

// DDV times 1/2, exactly.
LB_DDV DDV half(DDV a) { return {_mm512_mul_pd(a.hi, set(0.5)), _mm512_mul_pd(a.lo, set(0.5))}; }

// A DD table entry's parts for the lanes' indices j (DD entries are two doubles).
LB_DDV DDV gather(const double (*t)[2], __m512i j) {
  const double* base = &t[0][0];
  const __m512i j2 = _mm512_slli_epi64(j, 1);
  return {_mm512_i64gather_pd(j2, base, 8),
          _mm512_i64gather_pd(_mm512_add_epi64(j2, _mm512_set1_epi64(1)), base, 8)};
}

// dd::log_pos for the lanes where x > 0 is finite (others: any value).
LB_DDV DDV log_pos(__m512d x) {
  const dd_data::Tables& tb = dd::tables();
  const __mmask8 tiny = _mm512_cmp_pd_mask(x, set(0x1p-1022), _CMP_LT_OQ);
  x = _mm512_mask_mul_pd(x, tiny, x, set(0x1p54));
  __m512d e = _mm512_getexp_pd(x);
  e = _mm512_mask_sub_pd(e, tiny, e, set(54.0));
  __m512d m = _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
  const __mmask8 big = _mm512_cmp_pd_mask(m, set(1.5), _CMP_GE_OQ);
  m = _mm512_mask_mul_pd(m, big, m, set(0.5));
  e = _mm512_mask_add_pd(e, big, e, set(1.0));
  __m512i j =
      _mm512_cvttpd_epi64(_mm512_mul_pd(_mm512_sub_pd(m, set(0.75)), set(dd::kTable / 0.75)));
  j = _mm512_min_epi64(_mm512_max_epi64(j, _mm512_setzero_si512()),
                       _mm512_set1_epi64(dd::kTable - 1));
  const __m512d invc = _mm512_i64gather_pd(j, tb.invc, 8);
  const __m512d ph = _mm512_mul_pd(m, invc);
  const __m512d pl = _mm512_fmsub_pd(m, invc, ph);
  const DDV r = norm(_mm512_sub_pd(ph, set(1.0)), pl);
  const __m512d rh = r.hi;
  __m512d p = set(-1.0 / 10);
  p = _mm512_fmadd_pd(p, rh, set(1.0 / 9));
  p = _mm512_fmadd_pd(p, rh, set(-1.0 / 8));
  p = _mm512_fmadd_pd(p, rh, set(1.0 / 7));
  p = _mm512_fmadd_pd(p, rh, set(-1.0 / 6));
  p = _mm512_fmadd_pd(p, rh, set(1.0 / 5));
  p = _mm512_fmadd_pd(p, rh, set(-1.0 / 4));
  p = _mm512_fmadd_pd(p, rh, set(1.0 / 3));
  const __m512d tail = _mm512_mul_pd(_mm512_mul_pd(rh, rh), _mm512_fmadd_pd(rh, p, r.lo));
  const DDV main = r - half(r * r);
  const DDV ln2e = DDV(set(dd::kLn2Hi), set(dd::kLn2Lo)) * DDV(e);
  return ln2e + gather(tb.logc, j) + (main + DDV(tail));
}

// dd::expm1_small.
LB_DDV DDV expm1_small(DDV r) {
  const __m512d rh = r.hi;
  __m512d q = set(1.0 / 40320);
  q = _mm512_fmadd_pd(q, rh, set(1.0 / 5040));
  q = _mm512_fmadd_pd(q, rh, set(1.0 / 720));
  q = _mm512_fmadd_pd(q, rh, set(1.0 / 120));
  q = _mm512_fmadd_pd(q, rh, set(1.0 / 24));
  q = _mm512_fmadd_pd(q, rh, set(1.0 / 6));
  return (r + half(r * r)) + DDV(_mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(rh, rh), rh), q));
}

// dd::exp_finite for every lane, scalef applying the power of two (one rounding where the result
// overflows or falls below the normal range); x is clamped to +-1000 first. Lanes whose result
// is not finite get lo = 0.
LB_DDV DDV exp_all(__m512d x) {
  const dd_data::Tables& tb = dd::tables();
  x = _mm512_min_pd(_mm512_max_pd(x, set(-1000.0)), set(1000.0));
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, set(dd::kTable / dd::kLn2Hi)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const DDV r = DDV(x) - DDV(set(dd::kLn2Hi / dd::kTable), set(dd::kLn2Lo / dd::kTable)) * DDV(k);
  const __m512i kk = _mm512_cvtpd_epi64(k);
  const __m512i j = _mm512_and_si512(kk, _mm512_set1_epi64(dd::kTable - 1));
  const __m512d sc = _mm512_cvtepi64_pd(_mm512_srai_epi64(kk, dd::kTableBits));
  const DDV t = gather(tb.pow2, j);
  const DDV v = t + t * expm1_small(r);
  const __m512d hi = _mm512_scalef_pd(v.hi, sc);
  return {hi, _mm512_maskz_mov_pd(finite(hi), _mm512_scalef_pd(v.lo, sc))};
}

}  // namespace ddv

LB_DDV DDV vlog(DDV x) {
  const __m512d h = x.hi;
  const __mmask8 regular = _mm512_cmp_pd_mask(h, _mm512_setzero_pd(), _CMP_GT_OQ) & ddv::finite(h);
  const __m512d safe = _mm512_mask_blend_pd(regular, ddv::set(1.0), h);
  DDV l = ddv::log_pos(safe);
  // + lo / hi, where some lane has a low part (inputs read from memory have none).
  const __m512d xlo = _mm512_maskz_mov_pd(regular, x.lo);
  if (_mm512_cmp_pd_mask(xlo, _mm512_setzero_pd(), _CMP_NEQ_UQ) != 0)
    l = l + DDV(_mm512_div_pd(xlo, safe));
  // Others: log 0 = -inf, log inf = inf, NaN below 0 and for NaN.
  __m512d special = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(h, _mm512_setzero_pd(), _CMP_EQ_OQ),
                                         ddv::set(__builtin_nan("")), ddv::set(-HUGE_VAL));
  special = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(h, ddv::set(HUGE_VAL), _CMP_EQ_OQ), special, h);
  return {_mm512_mask_blend_pd(regular, special, l.hi), _mm512_maskz_mov_pd(regular, l.lo)};
}

LB_DDV DDV vexp(DDV x) {
  const DDV e = ddv::exp_all(x.hi);
  const DDV r =
      _mm512_cmp_pd_mask(x.lo, _mm512_setzero_pd(), _CMP_NEQ_UQ) != 0 ? e + e * DDV(x.lo) : e;
  const __mmask8 fin = ddv::finite(e.hi);
  // NaN stays NaN (exp_all's clamp would not keep it).
  const __mmask8 nan = _mm512_cmp_pd_mask(x.hi, x.hi, _CMP_UNORD_Q);
  return {_mm512_mask_blend_pd(nan, _mm512_mask_blend_pd(fin, e.hi, r.hi), x.hi),
          _mm512_maskz_mov_pd(fin & ~nan, r.lo)};
}

LB_DDV DDV vexpm1(DDV x) {
  const __m512d h = x.hi;
  const __mmask8 small =
      _mm512_cmp_pd_mask(_mm512_abs_pd(h), ddv::set(dd::kLn2Hi / (2 * dd::kTable)), _CMP_LE_OQ);
  const DDV s = ddv::expm1_small(DDV(_mm512_maskz_mov_pd(small, h)));
  const DDV big = ddv::exp_all(h) - DDV(1.0);
  const DDV r = vselect({small}, s, big);
  // (Where exp overflowed, r is inf and stays so.)
  const DDV out = vselect(visfinite(r), r + (r + DDV(1.0)) * DDV(x.lo), r);
  // Not finite: expm1's IEEE values (inf, -1, NaN).
  const __mmask8 fin = ddv::finite(h);
  __m512d special = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(h, _mm512_setzero_pd(), _CMP_LT_OQ), h,
                                         ddv::set(-1.0));
  special = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(h, h, _CMP_UNORD_Q), special, h);
  return {_mm512_mask_blend_pd(fin, special, out.hi), _mm512_maskz_mov_pd(fin, out.lo)};
}

LB_DDV DDV vlog1p(DDV x) {
  const __m512d h = x.hi;
  const __mmask8 regular = _mm512_cmp_pd_mask(h, ddv::set(-1.0), _CMP_GT_OQ) & ddv::finite(h);
  const DDV xs = vselect({regular}, x, DDV(0.0));
  const __mmask8 tiny = _mm512_cmp_pd_mask(_mm512_abs_pd(h), ddv::set(0x1p-20), _CMP_LT_OQ);
  const DDV x2 = xs * xs;
  const DDV series = xs - x2 * (DDV(0.5) - xs * (DDV(1.0 / 3) - xs * DDV(0.25)));
  const DDV u = DDV(1.0) + xs;
  const __mmask8 upos = _mm512_cmp_pd_mask(u.hi, _mm512_setzero_pd(), _CMP_GT_OQ);
  const __m512d uh = _mm512_mask_blend_pd(upos, ddv::set(1.0), u.hi);
  const DDV l = ddv::log_pos(uh) + DDV(_mm512_div_pd(_mm512_maskz_mov_pd(upos, u.lo), uh));
  const DDV r = vselect({tiny}, series, l);
  // Others: log1p(-1) = -inf, inf at inf, NaN below -1 and for NaN.
  __m512d special = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(h, ddv::set(-1.0), _CMP_EQ_OQ),
                                         ddv::set(__builtin_nan("")), ddv::set(-HUGE_VAL));
  special = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(h, ddv::set(HUGE_VAL), _CMP_EQ_OQ), special, h);
  return {_mm512_mask_blend_pd(regular, special, r.hi), _mm512_maskz_mov_pd(regular, r.lo)};
}

// The drivers' accumulators (dd.hpp's DD overloads, eight lanes): the lanes and accumulators are
// added in DD in a fixed order.
LB_DDV void two_sum(DDV a, DDV b, DDV& s, DDV& e) {
  s = a + b;
  e = DDV(0.0);
}
inline bool finish_sum(const DDV* s, const DDV* c, double* hi, double* lo) {
  alignas(64) double h[8], l[8];
  DD t(0.0);
  for (int k = 0; k < 8; ++k) {
    const DDV& v = k < 4 ? s[k] : c[k - 4];
    _mm512_store_pd(h, v.hi);
    _mm512_store_pd(l, v.lo);
    for (int j = 0; j < 8; ++j) t = t + DD(h[j], l[j]);
  }
  *hi = t.hi;
  *lo = t.lo;
  return dd::finite(t.hi);
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace formulas

namespace kernels {
inline namespace LOSSBENCH_FORMULA_NS {
template <>
struct Traits<formulas::DDV> {
  static constexpr std::size_t kLanes = 8;
  static formulas::DDV load(const double* p) { return formulas::DDV(_mm512_loadu_pd(p)); }
  static formulas::DDV load(const float* p) {
    return formulas::DDV(_mm512_cvtps_pd(_mm256_loadu_ps(p)));
  }
  static void store(formulas::DDV v, double* p) { _mm512_storeu_pd(p, _mm512_add_pd(v.hi, v.lo)); }
  static void store_split(formulas::DDV v, double* hi, double* lo) {
    _mm512_storeu_pd(hi, v.hi);
    _mm512_storeu_pd(lo, v.lo);
  }
  static void store(formulas::DDV v, float* p) {
    _mm256_storeu_ps(p, _mm512_cvtpd_ps(_mm512_add_pd(v.hi, v.lo)));
  }
  // Non-temporal stores (block.hpp: put); p aligned to the stored vector's width.
  static void stream(formulas::DDV v, double* p) { _mm512_stream_pd(p, _mm512_add_pd(v.hi, v.lo)); }
  static void stream(formulas::DDV v, float* p) {
    _mm256_stream_ps(p, _mm512_cvtpd_ps(_mm512_add_pd(v.hi, v.lo)));
  }
};
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace kernels

namespace {
void dd_math(int fn, const double* in, double* hi, double* lo, std::size_t n) {
  using namespace formulas;
  for (std::size_t i = 0; i < n; i += 8) {
    const DDV x(_mm512_loadu_pd(in + i));
    const DDV r = fn == 0 ? vexp(x) : fn == 1 ? vlog(x) : fn == 2 ? vlog1p(x) : vexpm1(x);
    _mm512_storeu_pd(hi + i, r.hi);
    _mm512_storeu_pd(lo + i, r.lo);
  }
}
}  // namespace

// As isa/exact64.cpp: the float64 entries of the cancelling losses, the block sum, dd_math.
const KernelTable& exact64_avx512_kernels() {
  static const KernelTable table = kernels::make_exact_table<formulas::DDV>("avx512-dd", dd_math);
  return table;
}

}  // namespace lossbench::opt
