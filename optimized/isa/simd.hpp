#pragma once
// The SIMD lane type for the formulas: a thin wrapper over a Highway vector of doubles with
// the operators and free functions formulas/common.hpp lists. Included by isa/avx2.cpp and
// isa/avx512.cpp only: each is compiled with its own -m flags and HWY_COMPILE_ONLY_STATIC, so
// hwy::HWY_NAMESPACE is N_AVX2 or N_AVX3 and nothing here is shared between them.
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

#include "../drivers/block.hpp"

namespace lossbench::opt::simd {
inline namespace LOSSBENCH_FORMULA_NS {

namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<double>;

struct VD {
  hn::Vec<D> v;
  VD() : v(hn::Zero(D())) {}
  VD(hn::Vec<D> x) : v(x) {}            // NOLINT: implicit by design
  VD(double c) : v(hn::Set(D(), c)) {}  // NOLINT: constants in formulas broadcast
};
struct MD {
  hn::Mask<D> m;
};

inline VD operator+(VD a, VD b) { return VD(hn::Add(a.v, b.v)); }
inline VD operator-(VD a, VD b) { return VD(hn::Sub(a.v, b.v)); }
inline VD operator*(VD a, VD b) { return VD(hn::Mul(a.v, b.v)); }
inline VD operator/(VD a, VD b) { return VD(hn::Div(a.v, b.v)); }
inline VD operator-(VD a) { return VD(hn::Neg(a.v)); }
inline MD operator<(VD a, VD b) { return {hn::Lt(a.v, b.v)}; }
inline MD operator<=(VD a, VD b) { return {hn::Le(a.v, b.v)}; }
inline MD operator>(VD a, VD b) { return {hn::Gt(a.v, b.v)}; }
inline MD operator>=(VD a, VD b) { return {hn::Ge(a.v, b.v)}; }
inline MD operator==(VD a, VD b) { return {hn::Eq(a.v, b.v)}; }
inline MD operator&(MD a, MD b) { return {hn::And(a.m, b.m)}; }
inline MD operator|(MD a, MD b) { return {hn::Or(a.m, b.m)}; }
inline MD operator!(MD a) { return {hn::Not(a.m)}; }

inline VD vselect(MD c, VD a, VD b) { return VD(hn::IfThenElse(c.m, a.v, b.v)); }
inline VD vabs(VD x) { return VD(hn::Abs(x.v)); }
inline MD visnan(VD x) { return {hn::IsNaN(x.v)}; }  // (Ne is an ordered compare)
inline MD visfinite(VD x) { return {hn::Lt(hn::Abs(x.v), hn::Set(D(), HUGE_VAL))}; }
inline MD visinf(VD x) { return {hn::Eq(hn::Abs(x.v), hn::Set(D(), HUGE_VAL))}; }
// Is the mask true in any lane? (Formulas compute a rarely needed branch, such as PyTorch's
// literal expression for infinite inputs, only when some lane needs it.)
inline bool vany(MD m) { return !hn::AllFalse(D(), m.m); }
inline VD vsign(VD x) {
  return vselect(x > VD(0.0), VD(1.0), vselect(x < VD(0.0), VD(-1.0), VD(0.0)));
}

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

// expm1: Highway's Expm1 (4 ULP of double) where it is valid, exp(x) - 1 above 700.
HWY_INLINE VD vexpm1(VD x) {
  const D d;
  const MD regular = visfinite(x) & (x < VD(700.0));
  VD r(hn::Expm1(d, vselect(regular, x, VD(0.0)).v));
  r = vselect(regular, r, vexp(x) - VD(1.0));  // inf, -1 at -inf, NaN
  return vselect(visnan(x), x, r);
}

// log1p(x) = log(u) * x / (u - 1) with u = 1 + x rounded (Goldberg): a few ULPs of double for
// every x > -1, from an accurate log.
HWY_INLINE VD vlog1p(VD x) {
  const VD u = VD(1.0) + x;
  VD r = vlog(u) * (x / (u - VD(1.0)));
  r = vselect(u == VD(1.0), x, r);
  return vselect(x == VD(HUGE_VAL), x, r);
}

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
};
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::kernels
