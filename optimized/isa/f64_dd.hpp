#pragma once
// The float64 table's double-double formulas (isa/avx512_f64.cpp, LOSSBENCH_F64_MATH): the
// float64 losses whose formulas cancel inside (binary_cross_entropy(_with_logits), kl_div,
// poisson_nll_loss, gaussian_nll_loss, multilabel_soft_margin_loss's rows) on AVX-512, with the
// values of the exact64 kernels (formulas/dd.hpp) at a fraction of their cost. Each overload
// here replaces its formula's generic function for VD (the formula header says which;
// argument-dependent lookup picks the overload):
// - exp and log as double-doubles (dd2::expd, dd2::ln: within 2^-68 of the result, measured
//   against mpmath), products and sums in double-double, each result rounded once, so that an
//   element is within about half an ULP;
// - where the result cancels below 2^-8 of its largest term (cancels), or exp's low part would
//   be subnormal (exp_tiny), the lanes are evaluated again over formulas::DD (about 2^-75;
//   redo_lanes), which costs about as much as a whole vector here, and is rare;
// - so are the lanes with a special value (an input or a result that is not finite), whose
//   formulas (PyTorch's literal ones there) can cancel too; kl_div's lanes with y <= 0 take the
//   formula's own double value, exact there.
// Products are fmas (fma(a, b, 0)): a plain product could be contracted into the sum that uses
// it, and its error, taken by the next fma, counted twice.
#include "simd.hpp"

#if HWY_TARGET != HWY_AVX3 || !defined(LOSSBENCH_F64_MATH)
#error "isa/f64_dd.hpp is for the float64 table (isa/avx512_f64.cpp) only"
#endif

#include "../formulas/dd.hpp"

namespace lossbench::opt::simd {
inline namespace LOSSBENCH_FORMULA_NS {

namespace dd2 {
struct VDD {
  VD hi, lo;
};
HWY_INLINE VDD renorm(VD s, VD t) {
  VDD r;
  formulas::two_sum(s, t, r.hi, r.lo);
  return r;
}
HWY_INLINE VDD mul(VD a, VD b) {  // exact
  const VD p = vfma(a, b, VD(0.0));
  return {p, vfma(a, b, -p)};
}
HWY_INLINE VDD mul(VDD a, VD b) {
  const VDD p = mul(a.hi, b);
  return renorm(p.hi, vfma(a.lo, b, p.lo));
}
HWY_INLINE VDD mul(VDD a, VDD b) {
  const VDD p = mul(a.hi, b.hi);
  return renorm(p.hi, vfma(a.hi, b.lo, vfma(a.lo, b.hi, p.lo)));
}
HWY_INLINE VDD add(VDD a, VDD b) {
  VD s, e;
  formulas::two_sum(a.hi, b.hi, s, e);
  return renorm(s, e + (a.lo + b.lo));
}
HWY_INLINE VDD neg(VDD a) { return {-a.hi, -a.lo}; }
HWY_INLINE VDD quot(VDD a, VDD b) {
  const VD q1 = a.hi / b.hi;
  const VD r = vfma(-q1, b.lo, vfma(-q1, b.hi, a.hi) + a.lo);
  return renorm(q1, r / b.hi);
}
// log(x + corr + corr_lo) as s + t (|t| well below |s|) to about 2^-68 of it, for x > 0 finite
// and |corr|, |corr_lo| below about 2^-52 x (rounding errors of the x a caller formed), with
// log_acc_parts's reduction and tables (isa/simd.hpp). There the tail rh^2 P(rh) is rounded as
// a whole (about 2^-62 of the result, which a cancellation of 2^-8 would make a third of an
// ULP); here rh^2 / 2 is exact (the square split by an fma) and goes into the TwoSum chain, and
// so does rh^3 / 3 (a double-double product); only rh^4 (-1/4 + rh/5 - ...) (to degree 13) and
// the terms of r's low part rl (rl (rh + rl / 2 - rh^2 + rh^3)) are rounded into t. (Against
// mpmath, 16000 points: within 2^-68.3 of the result beside x = 1, where log c and rh cancel to
// 2^-6, and 2^-70.7 elsewhere.)
HWY_INLINE void log_dd_parts(__m512d x, __m512d corr, __m512d corr_lo, __m512d& s, __m512d& t) {
  using namespace avx512math;
  // r = rh + rl + rlo: corr into rl (each about 2^-53 of r's scale, so rounded at 2^-106
  // there), corr_lo kept apart (where x = 1, corr is the whole result and corr_lo its low part).
  const LogReduced red = log_reduce_dd(x, corr);
  const __m512d invc = red.invc, rh = red.rh, rl = red.rl, e = red.e, minus_e = red.minus_e;
  const __m512i j = red.j;
  const __m512d rlo = _mm512_scalef_pd(_mm512_mul_pd(corr_lo, invc), minus_e);
  // The low parts' sum for their terms of degree 2 to 4 below: corr_lo (exp's low part, for
  // softplus's tail) is as large as corr there, and its rh multiple 2^-60 of the result.
  const __m512d rls = _mm512_add_pd(rl, rlo);
  // rh^2 and rh^3 as double-doubles (sq + sql exactly; cube + cube_lo to about 2^-100).
  const __m512d sq = _mm512_mul_pd(rh, rh);
  const __m512d sql = _mm512_fmsub_pd(rh, rh, sq);
  const __m512d cube = _mm512_mul_pd(sq, rh);
  const __m512d cube_lo = _mm512_fmadd_pd(sql, rh, _mm512_fmsub_pd(sq, rh, cube));
  // rh^3 / 3 as third + third_lo (1/3 itself in two parts), and the terms of degree 4 to 13,
  // rh^4 (-1/4 + rh/5 - ...), whose rounding is below 2^-76.
  const __m512d k13 = _mm512_set1_pd(0x1.5555555555555p-2),
                k13lo = _mm512_set1_pd(0x1.5555555555555p-56);
  const __m512d third = _mm512_mul_pd(cube, k13);
  const __m512d third_lo = _mm512_fmadd_pd(
      cube, k13lo, _mm512_fmadd_pd(cube_lo, k13, _mm512_fmsub_pd(cube, k13, third)));
  __m512d q = _mm512_set1_pd(1.0 / 13);
  for (int k = 12; k >= 4; --k)
    q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd((k % 2 == 1 ? 1.0 : -1.0) / k));
  __m512d s1, e1, s2, e2, s3, e3, s4, e4, s5, e5;
  formulas::two_sum(_mm512_mul_pd(e, _mm512_set1_pd(0x1.62e42fefa3800p-1)), table(kLogC, j), s1,
                    e1);
  formulas::two_sum(s1, rh, s2, e2);
  formulas::two_sum(s2, rl, s3, e3);
  formulas::two_sum(s3, _mm512_mul_pd(sq, _mm512_set1_pd(-0.5)), s4, e4);
  formulas::two_sum(s4, third, s5, e5);
  __m512d lo = _mm512_fmadd_pd(e, _mm512_set1_pd(0x1.ef35793c76730p-45), table(kLogCLo, j));
  // rlo, then -rls (rh + rls / 2 - rh^2 + rh^3): the low parts' terms of degree 2 to 4 (rl rh^3
  // is 2^-69 near x = 1, where the result can be as small as 2^-6).
  const __m512d half_rl = _mm512_mul_pd(rls, _mm512_set1_pd(0.5));
  lo = _mm512_fnmadd_pd(rls, _mm512_add_pd(_mm512_sub_pd(_mm512_add_pd(rh, half_rl), sq), cube),
                        _mm512_add_pd(lo, rlo));
  lo = _mm512_fmadd_pd(sql, _mm512_set1_pd(-0.5), _mm512_add_pd(lo, third_lo));
  lo = _mm512_add_pd(lo, _mm512_add_pd(_mm512_add_pd(e1, e2), _mm512_add_pd(e3, e4)));
  s = s5;
  t = _mm512_fmadd_pd(_mm512_mul_pd(cube, rh), q, _mm512_add_pd(lo, e5));
}
// log(u + c) for u > 0 finite and c its rounding error (a caller's u = 1 - x or 1 + t), as a
// double-double; other lanes: vlog's special value of u, low part 0. kAcc: log_acc_parts (about
// 2^-62, a third cheaper) for binary_cross_entropy, whose sums of logs have one sign, so that
// half an ULP needs no more; otherwise log_dd_parts (2^-68).
template <bool kAcc = false>
HWY_INLINE VDD ln(VD u, VD c) {
  __m512d s, t;
  if constexpr (kAcc)
    avx512math::log_acc_parts(u.v.raw, c.v.raw, _mm512_setzero_pd(), s, t);
  else
    log_dd_parts(u.v.raw, c.v.raw, _mm512_setzero_pd(), s, t);
  const VDD r = renorm(VD(hn::Vec<D>{s}), VD(hn::Vec<D>{t}));
  const MD regular = (u > VD(0.0)) & visfinite(u);
  return {VD(hn::Vec<D>{log_specials(r.hi.v.raw, u.v.raw)}), vselect(regular, r.lo, VD(0.0))};
}
template <bool kAcc = false>
HWY_INLINE VDD log1m(VD x) {  // log(1 - x), x <= 1
  VD u, c;
  formulas::two_sum(VD(1.0), -x, u, c);
  return ln<kAcc>(u, c);
}
HWY_INLINE VDD sum(VD a, VD b) {  // exact
  VDD r;
  formulas::two_sum(a, b, r.hi, r.lo);
  return r;
}
HWY_INLINE VDD pick(MD c, VDD a, VDD b) {  // a where c, else b
  return {vselect(c, a.hi, b.hi), vselect(c, a.lo, b.lo)};
}
HWY_INLINE VDD clamp100(VDD a) {
  const MD low = a.hi < VD(-100.0);
  return {vselect(low, VD(-100.0), a.hi), vselect(low, VD(0.0), a.lo)};
}

// exp(x) as a double-double within 2^-68 of it for -680 <= x <= 709 (mpmath, 6000 points; below,
// the low part loses bits to the subnormals, above, the result overflows; callers redo or
// replace those lanes): exp_reduce's k, e and t, with r = x - k ln2/16 kept as
// rh + rl (the first product is exact, the second's rounding recovered by an fma), and
// exp(r) - 1 = rh + rh^2/2 + rh^3 P(rh) + rl (1 + rh) (rh^2 exact by an fma, P exp's Taylor
// terms of degree 3 to 8: truncation below 2^-68) as ph + pl; exp(x) = 2^e (t + t ph +
// (t pl + tlo (1 + ph))), tlo the table's rounding error (kPow2Lo).
// exp's reduction as a double-double, shared by expd and ctc_dd.hpp's exp_scaled: x = (16 e +
// j) ln2/16 + rh + rl with k = 16 e + j = round(16 x / ln2), ln2/16 in two parts (the first has
// 33 bits, so k times it is exact for |k| < 2^20) and, with kThird, a third (k c3 into rl: the
// second part's own error, below 2^-110 of the result then).
template <bool kThird>
HWY_INLINE void exp_reduce_dd(__m512d x, __m512d& rh, __m512d& rl, __m512d& e, __m512i& j) {
  const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(0x1.71547652b82fep+4)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512d c2 = _mm512_set1_pd(0x1.473de6af278edp-38);
  const __m512d r1 = _mm512_fnmadd_pd(k, _mm512_set1_pd(0x1.62e42fef00000p-5), x);  // exact
  rh = _mm512_fnmadd_pd(k, c2, r1);
  rl = _mm512_fnmadd_pd(k, c2, _mm512_sub_pd(r1, rh));
  if constexpr (kThird) rl = _mm512_fnmadd_pd(k, _mm512_set1_pd(-0x1.9ff0342542fc3p-94), rl);
  e = _mm512_roundscale_pd(_mm512_mul_pd(k, _mm512_set1_pd(1.0 / 16)),
                           _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  j = _mm512_cvttpd_epi64(_mm512_fnmadd_pd(e, _mm512_set1_pd(16.0), k));
}

// 2^(j/16) (1 + ph + pl) as h2 + l2 (|ph| < 2.3%, pl well below ph), with t = kPow2[j] and its
// rounding error tlo = kPow2Lo[j]: t + t ph by a Fast2Sum, then the low parts (t ph's rounding
// error, t pl and tlo (1 + ph)); expd and exp_scaled.
HWY_INLINE void exp_table_step(__m512i j, __m512d ph, __m512d pl, __m512d& h2, __m512d& l2) {
  const __m512d t = avx512math::table(avx512math::kPow2, j);
  const __m512d tlo = avx512math::table(avx512math::kPow2Lo, j);
  const __m512d bh = _mm512_mul_pd(t, ph);
  const __m512d bl = _mm512_add_pd(_mm512_fmsub_pd(t, ph, bh),
                                   _mm512_fmadd_pd(t, pl, _mm512_fmadd_pd(tlo, ph, tlo)));
  const __m512d s = _mm512_add_pd(t, bh);
  const __m512d lo = _mm512_add_pd(_mm512_sub_pd(bh, _mm512_sub_pd(s, t)), bl);
  h2 = _mm512_add_pd(s, lo);
  l2 = _mm512_sub_pd(lo, _mm512_sub_pd(h2, s));
}

HWY_INLINE VDD expd(VD xv) {
  const __m512d x =
      _mm512_min_pd(_mm512_max_pd(xv.v.raw, _mm512_set1_pd(-1000.0)), _mm512_set1_pd(1000.0));
  __m512d rh, rl, e;
  __m512i j;
  exp_reduce_dd<false>(x, rh, rl, e, j);
  __m512d q = _mm512_set1_pd(1.0 / 40320);
  q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd(1.0 / 5040));
  q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd(1.0 / 720));
  q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd(1.0 / 120));
  q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd(1.0 / 24));
  q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd(1.0 / 6));
  const __m512d sq = _mm512_mul_pd(rh, rh);
  const __m512d sql = _mm512_fmsub_pd(rh, rh, sq);
  const __m512d half = _mm512_mul_pd(sq, _mm512_set1_pd(0.5));
  // rh + half, Fast2Sum (|half| < |rh|).
  const __m512d ph = _mm512_add_pd(rh, half);
  const __m512d pe = _mm512_sub_pd(half, _mm512_sub_pd(ph, rh));
  __m512d pl = _mm512_fmadd_pd(_mm512_mul_pd(sq, rh), q, _mm512_fmadd_pd(rl, rh, rl));
  pl = _mm512_add_pd(pe, _mm512_fmadd_pd(sql, _mm512_set1_pd(0.5), pl));
  __m512d h2, l2;
  exp_table_step(j, ph, pl, h2, l2);
  return {VD(hn::Vec<D>{_mm512_scalef_pd(h2, e)}), VD(hn::Vec<D>{_mm512_scalef_pd(l2, e)})};
}

// log1p(e) for e = exp(-|t|) as a double-double (expd): softplus's tail, as
// softplus_tail_acc_core before its last rounding (u = 1 + e's high part, its rounding error and
// e's low part as log_dd_parts's corrections).
HWY_INLINE VDD softplus_tail(VDD e) {
  const VD u = VD(1.0) + e.hi;
  const VD corr = e.hi - (u - VD(1.0));
  __m512d s, t;
  log_dd_parts(u.v.raw, corr.v.raw, e.lo.v.raw, s, t);
  return renorm(VD(hn::Vec<D>{s}), VD(hn::Vec<D>{t}));
}

// |r| below 2^-8 |scale|: where a result r cancelled from terms of size scale (each within
// 2^-68 of itself: ln, expd) by more than 2^8, so that their errors could reach 2^-7 ULP of r.
HWY_INLINE MD cancels(VD r, VD scale) { return vabs(r) < vabs(scale) * VD(0x1p-8); }

// exp(t) at or below 2^-980 (t < -680): expd's low part loses bits to the subnormals there.
HWY_INLINE MD exp_tiny(VD t) { return t < VD(-680.0); }

// The lanes of `redo` evaluated again over formulas::DD: fn(a, o) takes a lane's inputs
// a[0..kIn) (in[k]'s lanes) and writes its results o[0..kOut), whose rounded values replace
// hi[j]'s lanes and whose low parts lo[j]'s (lo may be null). Out of line: it is rarely needed.
template <int kIn, int kOut, class Fn>
HWY_NOINLINE void redo_lanes_slow(MD redo, const VD* in, VD* hi, VD* lo, Fn fn) {
  constexpr std::size_t kN = HWY_LANES(double);
  alignas(64) double xs[kIn][kN], hs[kOut][kN], ls[kOut][kN];
  for (int k = 0; k < kIn; ++k) hn::Store(in[k].v, D(), xs[k]);
  for (int k = 0; k < kOut; ++k) {
    hn::Store(hi[k].v, D(), hs[k]);
    if (lo != nullptr) hn::Store(lo[k].v, D(), ls[k]);
  }
  const unsigned bits = static_cast<unsigned>(redo.m.raw);
  for (std::size_t i = 0; i < kN; ++i) {
    if (((bits >> i) & 1u) == 0) continue;
    formulas::DD a[kIn], o[kOut];
    for (int k = 0; k < kIn; ++k) a[k] = formulas::DD(xs[k][i]);
    fn(a, o);
    for (int k = 0; k < kOut; ++k) {
      const double s = o[k].hi + o[k].lo;
      hs[k][i] = s;
      ls[k][i] = std::fabs(s) < HUGE_VAL ? o[k].lo - (s - o[k].hi) : 0.0;
    }
  }
  for (int k = 0; k < kOut; ++k) {
    hi[k] = VD(hn::Load(D(), hs[k]));
    if (lo != nullptr) lo[k] = VD(hn::Load(D(), ls[k]));
  }
}
template <int kIn, int kOut, class Fn>
HWY_INLINE void redo_lanes(MD redo, const VD (&in)[kIn], VD* hi, VD* lo, Fn fn) {
  if (HWY_UNLIKELY(vany(redo))) redo_lanes_slow<kIn, kOut>(redo, in, hi, lo, fn);
}
}  // namespace dd2

// ---- binary_cross_entropy (formulas/binary_cross_entropy.hpp: bce_forward_split, bce_backward). x
// and y are in [0, 1] (api.cpp checks), so only the gradient's logit could cancel, near x = 1/2,
// where it is a log1p: no lane is redone.
// ((y - 1) log(1 - x) - y log x) w, both logs clamped at -100 (the generic formula's order, so
// that its zeros keep their signs).
// (The loss is hi + lo, hi its rounding: the sums of dense_forward take lo too.)
HWY_INLINE VD bce_forward_split(VD x, VD y, VD w, VD& lo) {
  using namespace dd2;
  const VDD lx = clamp100(ln<true>(x, VD(0.0))), l1x = clamp100(log1m<true>(x));
  VDD ym1;
  formulas::two_sum(y, VD(-1.0), ym1.hi, ym1.lo);
  const VDD t = add(mul(ym1, l1x), neg(mul(lx, y)));
  const VDD r = mul(t, w);
  lo = vselect(visfinite(r.hi), r.lo, VD(0.0));
  return r.hi;
}

// g (x - y) / max((1 - x) x, eps) w and -logit(x) g w (bce_backward), in double-double; the
// lanes whose logit is not finite (x = 0 or 1) take bce_backward's double formula.
HWY_INLINE void bce_backward(VD x, VD y, VD w, VD g, VD eps, VD* out) {
  using namespace dd2;
  VDD omx, xmy;
  formulas::two_sum(VD(1.0), -x, omx.hi, omx.lo);
  formulas::two_sum(x, -y, xmy.hi, xmy.lo);
  VDD den = mul(omx, x);
  const MD small = den.hi < eps;
  den = {vselect(small, eps, den.hi), vselect(small, VD(0.0), den.lo)};
  const VDD gx = mul(quot(mul(xmy, g), den), w);
  out[0] = gx.hi + gx.lo;
  // logit: near x = 1/2, log1p((2x - 1) / (1 - x)) (2x - 1 exact); elsewhere log x - log(1 - x).
  const VDD t = quot({VD(2.0) * x - VD(1.0), VD(0.0)}, omx);
  VD u, c;
  formulas::two_sum(VD(1.0), t.hi, u, c);
  const VDD near = ln<true>(u, c + t.lo);
  const VDD far = add(ln<true>(x, VD(0.0)), neg(log1m<true>(x)));
  const MD mid = (x >= VD(0.25)) & (x <= VD(0.75));
  const VDD logit = {vselect(mid, near.hi, far.hi), vselect(mid, near.lo, far.lo)};
  const VDD gy = mul(mul(neg(logit), g), w);
  out[1] = gy.hi + gy.lo;
  const MD odd = !visfinite(logit.hi);
  if (vany(odd)) {
    const VD plain = -(vlog(x) - vlog1p(-x)) * g * w;  // (bce_logit away from x = 1/2)
    out[1] = vselect(odd, plain, out[1]);
  }
}

// ---- kl_div (formulas/kl_div.hpp: kl_div_forward_split, kl_div_backward_split).
// y (log y - x), or exp(y) (y - x) for log_target; redone where log y - x cancels (cancels), and
// where exp(y) is tiny (exp_tiny).
HWY_INLINE VD kl_div_forward_split(VD x, VD y, const formulas::Params& p, VD& lo) {
  using namespace dd2;
  VDD r;
  MD regular = visfinite(x) & visfinite(y), redo, plain = VD(1.0) < VD(0.0);
  if (p.f0) {
    r = mul(expd(y), sum(y, -x));
    redo = exp_tiny(y);
  } else {
    const VDD l = ln(y, VD(0.0));
    const VDD d = add(l, {-x, VD(0.0)});
    r = mul(d, y);
    plain = regular & (y <= VD(0.0));
    regular = regular & (y > VD(0.0));
    redo = cancels(d.hi, l.hi);
  }
  regular = regular & visfinite(r.hi);
  VD hi = r.hi;
  lo = vselect(regular, r.lo, VD(0.0));
  if (HWY_UNLIKELY(vany(plain))) {
    VD plain_lo;  // (0)
    hi = vselect(plain, formulas::kl_div_forward_split(x, y, p, plain_lo), hi);
  }
  redo_lanes<2, 1>(
      (regular & redo) | !(regular | plain), {x, y}, &hi, &lo,
      [&p](const formulas::DD* a, formulas::DD* o) { o[0] = formulas::KlDiv::forward(a, p); });
  return hi;
}

// -g y and g (log y + 1 - x), or -g exp(y) and g exp(y) (y - x + 1) for log_target, redone as
// the forward; each as out + lo (lo for a broadcast input's gradient sums).
HWY_INLINE void kl_div_backward_split(VD x, VD y, VD g, const formulas::Params& p, VD* out,
                                      VD* lo) {
  using namespace dd2;
  MD regular = visfinite(x) & visfinite(y) & visfinite(g), redo, plain = VD(1.0) < VD(0.0);
  VDD r0, r1;
  if (p.f0) {
    const VDD ge = mul(expd(y), g);
    const VDD d = add(sum(y, -x), {VD(1.0), VD(0.0)});
    r0 = neg(ge);
    r1 = mul(ge, d);
    redo = exp_tiny(y);
  } else {
    r0 = mul(-g, y);
    const VDD l = ln(y, VD(0.0));
    const VDD d = add(add(l, {VD(1.0), VD(0.0)}), {-x, VD(0.0)});
    r1 = mul(d, g);
    plain = regular & (y <= VD(0.0));
    regular = regular & (y > VD(0.0));
    redo = cancels(d.hi, l.hi);
  }
  regular = regular & visfinite(r0.hi) & visfinite(r1.hi);
  out[0] = r0.hi;
  out[1] = r1.hi;
  lo[0] = vselect(regular, r0.lo, VD(0.0));
  lo[1] = vselect(regular, r1.lo, VD(0.0));
  if (HWY_UNLIKELY(vany(plain))) {
    VD v[2], v_lo[2];  // (v_lo: 0)
    formulas::kl_div_backward_split(x, y, g, p, v, v_lo);
    for (int k = 0; k < 2; ++k) out[k] = vselect(plain, v[k], out[k]);
  }
  redo_lanes<3, 2>(
      (regular & redo) | !(regular | plain), {x, y, g}, out, lo,
      [&p](const formulas::DD* a, formulas::DD* o) { formulas::KlDiv::backward(a, a[2], p, o); });
}

// ---- poisson_nll_loss (formulas/poisson_nll_loss.hpp: poisson_nll_forward_split,
// poisson_nll_backward_split). exp(x) - y x, or x - y log(x + eps) without log_input, plus
// Stirling's term for full; redone where the result cancels against its largest term (cancels),
// and, with log_input, where exp(x) is tiny (exp_tiny).

// Stirling's term y log y - y + log(2 pi y) / 2 where y > 1 (0 elsewhere; 2 pi y as the exact
// product of s1 and y), and the size of its largest term.
HWY_INLINE dd2::VDD poisson_stirling(VD y, const formulas::Params& p, VD& size) {
  using namespace dd2;
  const VDD yly = mul(ln(y, VD(0.0)), y);
  const VDD ty = mul(VD(p.s1), y);
  const VDD lt = ln(ty.hi, ty.lo);
  const VDD s = add(add(yly, {-y, VD(0.0)}), {lt.hi * VD(0.5), lt.lo * VD(0.5)});
  size = vmax(vabs(yly.hi), vabs(y));
  const MD big = y > VD(1.0);
  return {vselect(big, s.hi, VD(0.0)), vselect(big, s.lo, VD(0.0))};
}

HWY_INLINE VD poisson_nll_forward_split(VD x, VD y, const formulas::Params& p, VD& lo) {
  using namespace dd2;
  VDD r;
  VD size;
  MD regular = visfinite(x) & visfinite(y), redo;
  if (p.f0) {
    const VDD ex = expd(x), yx = mul(y, x);
    r = add(ex, neg(yx));
    size = vmax(ex.hi, vabs(yx.hi));
    redo = exp_tiny(x);
  } else {
    const VDD xe = sum(x, VD(p.s0));
    const VDD yl = mul(ln(xe.hi, xe.lo), y);
    r = add({x, VD(0.0)}, neg(yl));
    size = vmax(vabs(x), vabs(yl.hi));
    regular = regular & (xe.hi > VD(0.0));
    redo = VD(1.0) < VD(0.0);
  }
  if (p.f1) {
    VD ssize;
    r = add(r, poisson_stirling(y, p, ssize));
    size = vmax(size, ssize);
  }
  redo = redo | cancels(r.hi, size);
  regular = regular & visfinite(r.hi);
  VD hi = r.hi;
  lo = vselect(regular, r.lo, VD(0.0));
  redo_lanes<2, 1>(redo | !regular, {x, y}, &hi, &lo, [&p](const formulas::DD* a, formulas::DD* o) {
    o[0] = formulas::PoissonNllLoss::forward(a, p);
  });
  return hi;
}

// (exp(x) - y) g and -x g, or (x - y + eps) / (x + eps) g and -log(x + eps) g without
// log_input; full adds (log y + 1 / (2 y)) g to the target's. Each as out + lo (lo for a
// broadcast input's gradient sums).
HWY_INLINE void poisson_nll_backward_split(VD x, VD y, VD g, const formulas::Params& p, VD* out,
                                           VD* lo) {
  using namespace dd2;
  MD regular = visfinite(x) & visfinite(y) & visfinite(g), redo;
  VDD d1, r0;  // d1: the target's gradient over g
  if (p.f0) {
    const VDD ex = expd(x);
    const VDD d0 = add(ex, {-y, VD(0.0)});
    r0 = mul(d0, g);
    redo = exp_tiny(x) | cancels(d0.hi, vmax(ex.hi, vabs(y)));
    d1 = {-x, VD(0.0)};
  } else {
    const VDD xe = sum(x, VD(p.s0));
    const VDD num = add(sum(x, -y), {VD(p.s0), VD(0.0)});
    r0 = mul(quot(num, xe), g);
    d1 = neg(ln(xe.hi, xe.lo));
    regular = regular & (xe.hi > VD(0.0));
    redo = VD(1.0) < VD(0.0);
  }
  if (p.f1) {
    // + log y + 1 / (2 y) where y > 1; the formula's +0 where 0 < y <= 1 (a -0 becomes +0), and
    // its NaN where y <= 0.
    const VDD ly = ln(y, VD(0.0));
    const VD size = vmax(vabs(d1.hi), vabs(ly.hi));
    const VDD t = add(ly, quot({VD(0.5), VD(0.0)}, {y, VD(0.0)}));
    const MD big = y > VD(1.0);
    d1 = add(d1, {vselect(big, t.hi, VD(0.0)), vselect(big, t.lo, VD(0.0))});
    redo = redo | (big & cancels(d1.hi, size));
  }
  const VDD r1 = mul(d1, g);
  regular = regular & visfinite(r0.hi) & visfinite(r1.hi);
  out[0] = r0.hi;
  out[1] = r1.hi;
  lo[0] = vselect(regular, r0.lo, VD(0.0));
  lo[1] = vselect(regular, r1.lo, VD(0.0));
  if (p.f1) {
    const MD pos = y > VD(0.0);
    out[1] = vselect(pos, out[1] + VD(0.0), VD(formulas::kNaN));
    lo[1] = vselect(pos, lo[1], VD(0.0));
  }
  redo_lanes<3, 2>(redo | !regular, {x, y, g}, out, lo,
                   [&p](const formulas::DD* a, formulas::DD* o) {
                     formulas::PoissonNllLoss::backward(a, a[2], p, o);
                   });
}

// ---- gaussian_nll_loss (formulas/gaussian_nll_loss.hpp: gaussian_nll_forward_split,
// gaussian_nll_backward_split). (log v + d^2 / v) / 2 (+ the full constant) with d = x - y as an
// exact TwoSum and v the clamped var; redone where log v and d^2 / v cancel (cancels) and on the
// lanes with a special value. The gradients (g / v) d (the generic formula's order: g d / v would
// round a subnormal product before the division amplifies it) and (g / 2) ((v - d^2) / v) / v,
// whose v - d^2 keeps 2^-104 of v in double-double wherever it cancels.
HWY_INLINE VD gaussian_nll_forward_split(VD x, VD y, VD var, const formulas::Params& p, VD& lo) {
  using namespace dd2;
  const VDD d = sum(x, -y);
  const VD v = formulas::gaussian_nll_clamped(var, p);
  const VDD lv = ln(v, VD(0.0));
  const VDD q = quot(mul(d, d), {v, VD(0.0)});
  const VDD s = add(lv, q);
  VDD r{s.hi * VD(0.5), s.lo * VD(0.5)};
  VD size = vmax(vabs(lv.hi), q.hi);
  if (p.f0) {
    r = add(r, {VD(p.s1), VD(0.0)});
    size = vmax(size, VD(2.0) * vabs(VD(p.s1)));
  }
  const MD regular = visfinite(x) & visfinite(y) & visfinite(v) & visfinite(d.hi) & (v > VD(0.0)) &
                     visfinite(r.hi);
  VD hi = r.hi;
  lo = vselect(regular, r.lo, VD(0.0));
  redo_lanes<3, 1>(cancels(s.hi, size) | !regular, {x, y, var}, &hi, &lo,
                   [&p](const formulas::DD* a, formulas::DD* o) {
                     o[0] = formulas::GaussianNllLoss::forward(a, p);
                   });
  return hi;
}

HWY_INLINE void gaussian_nll_backward_split(VD x, VD y, VD var, VD g, const formulas::Params& p,
                                            VD* out, VD* lo) {
  using namespace dd2;
  const VDD d = sum(x, -y);
  const VD v = formulas::gaussian_nll_clamped(var, p);
  const VDD vv{v, VD(0.0)};
  const VDD gx = mul(quot({g, VD(0.0)}, vv), d);
  const VDD num = add(vv, neg(mul(d, d)));
  const VDD gv = mul(quot(quot(num, vv), vv), VD(0.5) * g);
  const MD regular = visfinite(x) & visfinite(y) & visfinite(v) & visfinite(g) & (v > VD(0.0)) &
                     visfinite(d.hi) & visfinite(gx.hi) & visfinite(gv.hi) & visfinite(d.hi * d.hi);
  out[0] = gx.hi;
  out[1] = -gx.hi;
  out[2] = gv.hi;
  lo[0] = vselect(regular, gx.lo, VD(0.0));
  lo[1] = -lo[0];
  lo[2] = vselect(regular, gv.lo, VD(0.0));
  redo_lanes<4, 3>(!regular, {x, y, var, g}, out, lo, [&p](const formulas::DD* a, formulas::DD* o) {
    formulas::GaussianNllLoss::backward(a, a[3], p, o);
  });
}

// The logistic terms of binary_cross_entropy_with_logits and multilabel_soft_margin_loss's
// elements (pos_weight pw = 1), from one double-double e = exp(-|x|): the loss's t0 = (1 - y)
// sp(x) and t1 = pw y sp(-x), or the input gradient's t0 = (1 - y) sigmoid(x) and t1 = pw y
// sigmoid(-x); d = t0 + t1 or t0 - t1.
struct LogisticTerms {
  dd2::VDD e, t0, t1, d;
};
HWY_INLINE LogisticTerms logistic_loss_terms(VD x, VD y, VD pw) {
  using namespace dd2;
  LogisticTerms r;
  r.e = expd(-vabs(x));
  const VDD l = softplus_tail(r.e);
  const VDD sp = add({vmax(x, VD(0.0)), VD(0.0)}, l);
  const VDD spn = add({vmax(-x, VD(0.0)), VD(0.0)}, l);
  r.t0 = mul(sum(VD(1.0), -y), sp);
  r.t1 = mul(mul(pw, y), spn);
  r.d = add(r.t0, r.t1);
  return r;
}
HWY_INLINE LogisticTerms logistic_grad_terms(VD x, VD y, VD pw) {
  using namespace dd2;
  LogisticTerms r;
  r.e = expd(-vabs(x));
  const VDD den = add({VD(1.0), VD(0.0)}, r.e);
  const VDD big = quot({VD(1.0), VD(0.0)}, den), small = quot(r.e, den);
  const MD pos = x >= VD(0.0);
  r.t0 = mul(sum(VD(1.0), -y), pick(pos, big, small));
  r.t1 = mul(mul(pw, y), pick(pos, small, big));
  r.d = add(r.t0, neg(r.t1));
  return r;
}
// The lanes to redo: where d cancels below 2^-8 of the larger term, or e is tiny.
HWY_INLINE MD logistic_redo(VD x, const LogisticTerms& q) {
  return dd2::exp_tiny(-vabs(x)) | dd2::cancels(q.d.hi, vmax(vabs(q.t0.hi), vabs(q.t1.hi)));
}

// ---- binary_cross_entropy_with_logits (formulas/binary_cross_entropy_with_logits.hpp:
// bcewl_forward_split, bcewl_backward). (1 - y) sp(x) + pw y sp(-x) and (1 - y) sigmoid(x) -
// pw y sigmoid(-x), softplus and sigmoid from one double-double exp(-|x|). The two terms have
// one sign for y in [0, 1] and pw >= 0 and cancel elsewhere (the losses) or near y = sigmoid(x)
// (the gradients): redone there (cancels), and where exp(-|x|) is tiny (exp_tiny).
HWY_INLINE VD bcewl_forward_split(VD x, VD y, VD w, VD pw, const formulas::Params& p, VD& lo) {
  using namespace dd2;
  const LogisticTerms q = logistic_loss_terms(x, y, pw);
  const VDD r = mul(q.d, w);
  const MD regular = visfinite(x) & visfinite(y) & visfinite(pw) & visfinite(w) & visfinite(r.hi);
  VD hi = r.hi;
  lo = vselect(regular, r.lo, VD(0.0));
  redo_lanes<4, 1>(logistic_redo(x, q) | !regular, {x, y, w, pw}, &hi, &lo,
                   [&p](const formulas::DD* a, formulas::DD* o) {
                     o[0] = formulas::BinaryCrossEntropyWithLogits::forward(a, p);
                   });
  return hi;
}

// ((1 - y) sigmoid(x) - pw y sigmoid(-x)) g w and, with pos_weight, ((pw - 1) sp(-x) - x) g w
// (without: -x g w); each product of three rounded once.
HWY_INLINE void bcewl_backward(VD x, VD y, VD w, VD pw, VD g, const formulas::Params& p, VD* out) {
  using namespace dd2;
  const LogisticTerms q = logistic_grad_terms(x, y, pw);
  const VDD r0 = mul(mul(q.d, g), w);
  VDD r1;
  MD redo = logistic_redo(x, q);
  if (p.f0) {
    const VDD spn = add({vmax(-x, VD(0.0)), VD(0.0)}, softplus_tail(q.e));
    const VDD c = mul(sum(pw, VD(-1.0)), spn);
    const VDD d1 = add(c, {-x, VD(0.0)});
    r1 = mul(mul(d1, g), w);
    redo = redo | cancels(d1.hi, vmax(vabs(c.hi), vabs(x)));
  } else {
    r1 = mul(mul(-x, g), w);
  }
  const MD regular = visfinite(x) & visfinite(y) & visfinite(pw) & visfinite(w) & visfinite(g) &
                     visfinite(r0.hi) & visfinite(r1.hi);
  out[0] = r0.hi;
  out[1] = r1.hi;
  redo_lanes<5, 2>(redo | !regular, {x, y, w, pw, g}, out, nullptr,
                   [&p](const formulas::DD* a, formulas::DD* o) {
                     formulas::DD all[4];
                     formulas::BinaryCrossEntropyWithLogits::backward(a, a[4], p, all);
                     o[0] = all[0];
                     o[1] = all[1];
                   });
}

// ---- multilabel_soft_margin_loss's rows (formulas/multilabel_soft_margin_loss.hpp:
// mlsm_row_forward_split, mlsm_row_backward): binary_cross_entropy_with_logits's terms with
// pos_weight 1, (1 - y) sp(x) + y sp(-x) times w, and the input's gradient g w ((1 - y) sigmoid(x)
// - y sigmoid(-x)), from one double-double exp(-|x|); the target's, -g w x, a product rounded
// once. Redone where the terms cancel (cancels: targets outside [0, 1], or y near sigmoid(x) for
// the gradient), where exp(-|x|) is tiny (exp_tiny) and on the lanes with a special value, by
// the generic row formula (PyTorch's literal expression) over formulas::DD.
HWY_INLINE VD mlsm_row_forward_split(VD x, VD y, VD w, VD& lo) {
  using namespace dd2;
  const LogisticTerms q = logistic_loss_terms(x, y, VD(1.0));
  const VDD r = mul(q.d, w);
  const MD regular = visfinite(x) & visfinite(y) & visfinite(w) & visfinite(r.hi);
  VD hi = r.hi;
  lo = vselect(regular, r.lo, VD(0.0));
  redo_lanes<3, 1>(logistic_redo(x, q) | !regular, {x, y, w}, &hi, &lo,
                   [](const formulas::DD* a, formulas::DD* o) {
                     formulas::DD l0;
                     o[0] = formulas::mlsm_row_forward_split(a[0], a[1], a[2], l0);
                   });
  return hi;
}

HWY_INLINE void mlsm_row_backward(VD x, VD y, VD w, VD g, VD* out) {
  using namespace dd2;
  const LogisticTerms q = logistic_grad_terms(x, y, VD(1.0));
  const VDD gl = mul(g, w);
  const VDD r0 = mul(q.d, gl), r1 = neg(mul(gl, x));
  const MD regular = visfinite(x) & visfinite(y) & visfinite(w) & visfinite(g) & visfinite(r0.hi) &
                     visfinite(r1.hi);
  out[0] = r0.hi;
  out[1] = r1.hi;
  out[2] = VD(0.0);
  redo_lanes<4, 3>(logistic_redo(x, q) | !regular, {x, y, w, g}, out, nullptr,
                   [](const formulas::DD* a, formulas::DD* o) {
                     formulas::mlsm_row_backward(a[0], a[1], a[2], a[3], o);
                   });
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::simd
