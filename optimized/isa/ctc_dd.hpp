#pragma once
// ctc_loss's float64 kernels on AVX-512 (KernelTable::ctc_paths_f64 and ctc_grad_f64; the float64
// table, isa/avx512_f64.cpp, registers them): drivers/ctc.cpp's double-double recursion in linear
// space (nll_linear_dd, grad_linear_dd) vectorised over the states of a time step, with the
// float32 kernels' planar rows (drivers/block.hpp: blank state j at 1 + j, label state j at
// P + 1 + j, P = ctc_half(S)).
// - Each state is a probability (hi + lo) 2^e: a double-double mantissa with hi in [0.5, 1) (or 0)
//   and a binary exponent of its own (VS), so that no state underflows however far below the
//   others it is (one scale per row would lose those).
// - An emission exp(lp) comes from exp_scaled: exp's reduction with ln2/16 in three parts and a
//   degree-10 polynomial whose terms of degree 2 to 4 are double-doubles. Against mpmath (12903
//   points in [-40000, 40000], denser near 0 and near multiples of ln2/16) it is within 2^-85.0
//   of the result; the driver's formulas::DD exp, measured the same way, within 2^-82.1.
// - Sums align the exponents (scalef), add in double-double and renormalize (getexp).
// The kernels give a sample up (false; the driver's scalar path then) where an emission they read
// is +inf or NaN or below -kMaxLp, or no path is possible; the gradient kernel also where any
// log_prob of the sample is +inf or NaN (PyTorch's values there are the general path's), found
// as it writes that row: the driver then rewrites all of the sample's rows.
#include "f64_dd.hpp"

#if HWY_TARGET != HWY_AVX3 || !defined(LOSSBENCH_F64_MATH)
#error "isa/ctc_dd.hpp is for the float64 table (isa/avx512_f64.cpp) only"
#endif

#include <vector>

namespace lossbench::opt::simd {
inline namespace LOSSBENCH_FORMULA_NS {
namespace ctcdd {

using dd2::VDD;
using opt::CtcSample;

// The emissions' range: |lp| below it keeps exp's reduction exact (k ln2/16 with |k| < 2^20).
inline constexpr double kMaxLp = 40000.0;
// The exponent of a zero probability: far below any other, so that aligning to it gives 0.
inline constexpr double kZeroE = -0x1p40;

struct VS {
  VD hi, lo, e;
};

HWY_INLINE VD raw(__m512d x) { return VD(hn::Vec<D>{x}); }
HWY_INLINE VD scalef(VD x, VD e) { return raw(_mm512_scalef_pd(x.v.raw, e.v.raw)); }
HWY_INLINE VS zero() { return {VD(0.0), VD(0.0), VD(kZeroE)}; }

// (hi + lo) 2^e with hi in [0.5, 1): scaled by 2^-(getexp(hi) + 1), exactly; 0 as zero().
HWY_INLINE VS normalized(VD hi, VD lo, VD e) {
  const VD k = raw(_mm512_getexp_pd(hi.v.raw)) + VD(1.0);
  const MD z = hi == VD(0.0);
  const VD nk = -k;
  return {vselect(z, VD(0.0), scalef(hi, nk)), vselect(z, VD(0.0), scalef(lo, nk)),
          vselect(z, VD(kZeroE), e + k)};
}

// a's mantissa at the exponent emax >= a.e (0 where it is more than ~2^1074 below).
HWY_INLINE VDD at(const VS& a, VD emax) {
  const VD f = a.e - emax;
  return {scalef(a.hi, f), scalef(a.lo, f)};
}

// Sums (not normalized: the mantissa is below 3) and products (normalized) of probabilities.
HWY_INLINE VS sum2(const VS& a, const VS& b) {
  const VD m = vmax(a.e, b.e);
  const VDD s = dd2::add(at(a, m), at(b, m));
  return {s.hi, s.lo, m};
}
HWY_INLINE VS sum3(const VS& a, const VS& b, const VS& c) {
  const VD m = vmax(a.e, vmax(b.e, c.e));
  const VDD s = dd2::add(dd2::add(at(a, m), at(b, m)), at(c, m));
  return {s.hi, s.lo, m};
}
// a + b, normalized (a sum kept, rather than multiplied at once).
HWY_INLINE VS plus(const VS& a, const VS& b) {
  const VS u = sum2(a, b);
  return normalized(u.hi, u.lo, u.e);
}
HWY_INLINE VS times(const VS& a, const VS& q) {
  const VDD p = dd2::mul(VDD{a.hi, a.lo}, VDD{q.hi, q.lo});
  return normalized(p.hi, p.lo, a.e + q.e);
}
// The value (hi + lo) 2^e as a double-double: 0 or subnormal where it is that small.
HWY_INLINE VDD value(const VS& a) { return {scalef(a.hi, a.e), scalef(a.lo, a.e)}; }

// exp(v) for v finite with |v| <= kMaxLp, or v = -inf (zero): v = k ln2/16 + r with ln2/16 in
// three parts (the first two products exact, the third's error below 2^-110 of the result), r as
// rh + rl; exp(r) - 1 = rh + rh^2/2 + rh^3/6 + rh^4/24 + rh^5 P(rh) + rl (1 + ...), P the Taylor
// terms of degree 5 to 10 (truncation below 2^-86), the terms of degree 2 to 4 as double-doubles
// added by Fast2Sums, so that only terms below 2^-34 of the result are rounded; then 2^(k/16)
// (1 + ...) by expd's table step (isa/f64_dd.hpp: exp_reduce_dd, exp_table_step).
HWY_INLINE VS exp_scaled(VD v) {
  const MD none = v == VD(-HUGE_VAL);
  __m512d rh, rl, e;
  __m512i j;
  dd2::exp_reduce_dd<true>(vselect(none, VD(0.0), v).v.raw, rh, rl, e, j);
  // P(rh) = 1/5! + rh/6! + ... + rh^5/10!.
  __m512d q = _mm512_set1_pd(1.0 / 3628800);
  for (const double c : {1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120})
    q = _mm512_fmadd_pd(q, rh, _mm512_set1_pd(c));
  // rh^2 (sq + sql), rh^3 (cube + cube_lo) and rh^4 (quad + quad_lo) as double-doubles; rh^3/6
  // and rh^4/24 too, with 1/6 and 1/24 in two parts.
  const __m512d sq = _mm512_mul_pd(rh, rh);
  const __m512d sql = _mm512_fmsub_pd(rh, rh, sq);
  const __m512d cube = _mm512_mul_pd(sq, rh);
  const __m512d cube_lo = _mm512_fmadd_pd(sql, rh, _mm512_fmsub_pd(sq, rh, cube));
  const __m512d quad = _mm512_mul_pd(sq, sq);
  const __m512d quad_lo =
      _mm512_fmadd_pd(_mm512_add_pd(sql, sql), sq, _mm512_fmsub_pd(sq, sq, quad));
  // (a + a_lo)(c + c_lo) as r + lo (a_lo c_lo dropped).
  const auto scaled = [](__m512d a, __m512d a_lo, double c, double c_lo, __m512d& lo) {
    const __m512d cv = _mm512_set1_pd(c);
    const __m512d r = _mm512_mul_pd(a, cv);
    lo = _mm512_fmadd_pd(a, _mm512_set1_pd(c_lo),
                         _mm512_fmadd_pd(a_lo, cv, _mm512_fmsub_pd(a, cv, r)));
    return r;
  };
  __m512d c6lo, c24lo;
  const __m512d c6 = scaled(cube, cube_lo, 0x1.5555555555555p-3, 0x1.5555555555555p-57, c6lo);
  const __m512d c24 = scaled(quad, quad_lo, 0x1.5555555555555p-5, 0x1.5555555555555p-59, c24lo);
  const __m512d half = _mm512_mul_pd(sq, _mm512_set1_pd(0.5));
  // rh + half + c6 + c24 by three Fast2Sums (each term below the last sum).
  const __m512d p1 = _mm512_add_pd(rh, half);
  const __m512d e1 = _mm512_sub_pd(half, _mm512_sub_pd(p1, rh));
  const __m512d p2 = _mm512_add_pd(p1, c6);
  const __m512d e2 = _mm512_sub_pd(c6, _mm512_sub_pd(p2, p1));
  const __m512d ph = _mm512_add_pd(p2, c24);
  const __m512d e3 = _mm512_sub_pd(c24, _mm512_sub_pd(ph, p2));
  // The rest: rh^5 P(rh) (below 2^-34.6, rounded there), rl (1 + ph), the low parts.
  __m512d pl = _mm512_fmadd_pd(_mm512_mul_pd(quad, rh), q, _mm512_fmadd_pd(rl, ph, rl));
  pl = _mm512_add_pd(pl, _mm512_fmadd_pd(sql, _mm512_set1_pd(0.5),
                                         _mm512_add_pd(_mm512_add_pd(c6lo, c24lo),
                                                       _mm512_add_pd(e1, _mm512_add_pd(e2, e3)))));
  __m512d h2, l2;
  dd2::exp_table_step(j, ph, pl, h2, l2);
  const VS r = normalized(raw(h2), raw(l2), raw(e));
  return {vselect(none, VD(0.0), r.hi), vselect(none, VD(0.0), r.lo),
          vselect(none, VD(kZeroE), r.e)};
}

// A row of probabilities: mantissas' high parts, low parts and exponents, R entries each.
struct Row {
  double* p;
  std::int64_t R;
  HWY_INLINE VS load(std::int64_t i) const {
    return {VD(hn::LoadU(D(), p + i)), VD(hn::LoadU(D(), p + R + i)),
            VD(hn::LoadU(D(), p + 2 * R + i))};
  }
  HWY_INLINE void store(const VS& a, std::int64_t i) const {
    hn::StoreU(a.hi.v, D(), p + i);
    hn::StoreU(a.lo.v, D(), p + R + i);
    hn::StoreU(a.e.v, D(), p + 2 * R + i);
  }
  void clear() const {
    for (std::int64_t i = 0; i < R; ++i) {
      p[i] = p[R + i] = 0.0;
      p[2 * R + i] = kZeroE;
    }
  }
  void set(std::int64_t i, double hi, double lo, double e) const {
    p[i] = hi;
    p[R + i] = lo;
    p[2 * R + i] = e;
  }
  // Entry i set to lane k of a.
  void set_lane(std::int64_t i, const VS& a, std::size_t k) const {
    alignas(64) double h[8], l[8], e[8];
    hn::Store(a.hi.v, D(), h);
    hn::Store(a.lo.v, D(), l);
    hn::Store(a.e.v, D(), e);
    set(i, h[k], l[k], e[k]);
  }
};

// One sample's lattice and emissions: lanes of n label states (n = S + 1 rounded up to whole
// vectors; labels past S have zero emission), allow[j] = 1 where label state j - 1 leads to j.
struct Lattice {
  std::int64_t S, P, R, n;
  std::vector<double> allow, lpv, em;  // em: the labels' emissions (hi, lo, e; n each)
  explicit Lattice(const CtcSample& s)
      : S(s.S),
        P(opt::ctc_half(s.S)),
        R(2 * P),
        n((s.S + 1 + 7) / 8 * 8),
        allow(static_cast<std::size_t>(P + 1), 0.0),
        lpv(static_cast<std::size_t>(n), -HUGE_VAL),
        em(static_cast<std::size_t>(3 * n)) {
    for (std::int64_t j = 1; j < S; ++j)
      allow[static_cast<std::size_t>(j)] = s.tgt[j] != s.tgt[j - 1] ? 1.0 : 0.0;
  }
  // Time step t's emissions: the blank's into *eb (every lane), the labels' into em; false where
  // one read is +inf, NaN or below -kMaxLp.
  bool emit(const CtcSample& s, std::int64_t t, VS* eb) {
    const double* row = s.lp64 + t * s.st;
    const double b = row[s.blank];
    bool ok = b < HUGE_VAL && (b >= -kMaxLp || b == -HUGE_VAL) && b <= kMaxLp;
    for (std::int64_t j = 0; j < S; ++j) {
      const double v = row[s.tgt[j]];
      ok = ok && v < HUGE_VAL && (v >= -kMaxLp || v == -HUGE_VAL) && v <= kMaxLp;
      lpv[static_cast<std::size_t>(j)] = v;
    }
    if (!ok) return false;
    *eb = exp_scaled(VD(b));
    const Row out{em.data(), n};
    for (std::int64_t j = 0; j < n; j += 8)
      out.store(exp_scaled(VD(hn::LoadU(D(), lpv.data() + j))), j);
    return true;
  }
  // Labels j..j+8's emissions (j a multiple of 8).
  VS label(std::int64_t j) const { return Row{const_cast<double*>(em.data()), n}.load(j); }
  // Label j's emission into entry i of r.
  void put_label(const Row& r, std::int64_t i, std::int64_t j) const {
    r.set_lane(i, label(j / 8 * 8), static_cast<std::size_t>(j % 8));
  }
  HWY_INLINE VS skip_from(const Row& r, std::int64_t i, std::int64_t j) const {
    const MD on = VD(hn::LoadU(D(), allow.data() + j)) > VD(0.5);
    const VS a = r.load(i), z = zero();
    return {vselect(on, a.hi, z.hi), vselect(on, a.lo, z.lo), vselect(on, a.e, z.e)};
  }
};

// alpha's row t (c) from row t - 1 (p).
HWY_INLINE void alpha_step(Lattice& lt, const Row& p, const Row& c, const VS& eb) {
  const std::int64_t P = lt.P;
  c.set(0, 0.0, 0.0, kZeroE);
  c.set(P, 0.0, 0.0, kZeroE);
  // blank j: from blank j and label j - 1.
  for (std::int64_t j = 0; j < lt.n; j += 8)
    c.store(times(sum2(p.load(1 + j), p.load(P + j)), eb), 1 + j);
  // label j: from label j, blank j and (a different) label j - 1.
  for (std::int64_t j = 0; j < lt.n; j += 8)
    c.store(times(sum3(p.load(P + 1 + j), p.load(1 + j), lt.skip_from(p, P + j, j)), lt.label(j)),
            P + 1 + j);
}

// alpha: all L rows (all) or two in turn, from rows of 3 R doubles at a; false as the header says.
// last: the last row.
inline bool alpha_rows(const CtcSample& s, Lattice& lt, double* a, bool all, const double** last) {
  const std::int64_t R = lt.R;
  VS eb;
  const Row r0{a, R};
  r0.clear();
  if (!lt.emit(s, 0, &eb)) return false;
  r0.set_lane(1, eb, 0);
  if (lt.S > 0) lt.put_label(r0, lt.P + 1, 0);
  for (std::int64_t t = 1; t < s.L; ++t) {
    const Row p{a + (all ? t - 1 : (t - 1) % 2) * 3 * R, R};
    const Row c{a + (all ? t : t % 2) * 3 * R, R};
    if (!lt.emit(s, t, &eb)) return false;
    alpha_step(lt, p, c, eb);
  }
  *last = a + (all ? s.L - 1 : (s.L - 1) % 2) * 3 * R;
  return true;
}

// KernelTable::ctc_paths_f64: the probabilities of the last row's blank state S and (S > 0)
// label state S - 1, each as hi, lo, e into out[0..3) and out[3..6) (hi = 0 for zero).
inline bool paths(const CtcSample& s, double* out) {
  Lattice lt(s);
  std::vector<double> a(static_cast<std::size_t>(6 * lt.R));
  const double* last;
  if (!alpha_rows(s, lt, a.data(), false, &last)) return false;
  const std::int64_t R = lt.R, b = 1 + lt.S, l = lt.P + lt.S;
  out[0] = last[b];
  out[1] = last[R + b];
  out[2] = last[2 * R + b];
  out[3] = out[4] = out[5] = 0.0;
  if (lt.S > 0) {
    out[3] = last[l];
    out[4] = last[R + l];
    out[5] = last[2 * R + l];
  }
  return true;
}

// The sum of a's lanes (each lane of the result holds it; the order is fixed).
HWY_INLINE VS lane_sum(VS a) {
  const __m512i sw1 = _mm512_set_epi64(6, 7, 4, 5, 2, 3, 0, 1);
  const __m512i sw2 = _mm512_set_epi64(5, 4, 7, 6, 1, 0, 3, 2);
  const __m512i sw4 = _mm512_set_epi64(3, 2, 1, 0, 7, 6, 5, 4);
  for (const __m512i idx : {sw1, sw2, sw4}) {
    const VS b{raw(_mm512_permutexvar_pd(idx, a.hi.v.raw)),
               raw(_mm512_permutexvar_pd(idx, a.lo.v.raw)),
               raw(_mm512_permutexvar_pd(idx, a.e.v.raw))};
    a = plus(a, b);
  }
  return a;
}

// (p - num / (p P)) gr rounded once, for p and num normalized (p = 0: NaN, unused).
HWY_INLINE VD grad_value(const VS& p, const VS& num, const VS& total, VD gr) {
  const VDD den = dd2::mul(VDD{p.hi, p.lo}, VDD{total.hi, total.lo});
  const VDD q = dd2::quot(VDD{num.hi, num.lo}, den);
  const VS post{q.hi, q.lo, num.e - p.e - total.e};
  const VDD v = dd2::mul(dd2::add(value(p), dd2::neg(value(post))), gr);
  return v.hi + v.lo;
}

// exp(v) gr rounded once (exp_scaled's double-double times gr), NaN where v = -inf (PyTorch's
// exp(-inf) - exp(-inf + inf)), for v finite with |v| <= kMaxLp or -inf; where |v| is larger
// (classes outside the target), exp(v) gr from exp to half an ULP and a product.
HWY_INLINE VD exp_times(VD v, VD gr) {
  const MD far = vabs(v) > VD(kMaxLp);
  const VS e = exp_scaled(vselect(far, VD(0.0), v));
  const VDD p = dd2::mul(VDD{e.hi, e.lo}, gr);
  VD r = scalef(p.hi, e.e) + scalef(p.lo, e.e);
  if (HWY_UNLIKELY(vany(far))) r = vselect(far, vexp(v) * gr, r);
  return vselect(v == VD(-HUGE_VAL), VD(__builtin_nan("")), r);
}

// KernelTable::ctc_grad_f64: rows t < L of the gradient (C doubles each, row t at g + t gst):
// exp(lp) gr rounded once for the classes outside the target (exp_times; NaN where lp = -inf), and
// for the blank's and the labels' (p - posterior) gr with p = exp(lp), the posterior sum(alpha
// beta) / (p P) in double-double, rounded once.
inline bool grad(const CtcSample& s, double gr, double* g, std::int64_t gst) {
  const std::int64_t C = s.C, S = s.S, L = s.L;
  Lattice lt(s);
  const std::int64_t R = lt.R, P = lt.P, n = lt.n;
  std::vector<double> a(static_cast<std::size_t>(L * 3 * R + 3 * R));
  const double* last;
  if (!alpha_rows(s, lt, a.data(), true, &last)) return false;
  // P, the probability of every path.
  const auto bcast = [](const double* r, std::int64_t R_, std::int64_t i) {
    return VS{VD(r[i]), VD(r[R_ + i]), VD(r[2 * R_ + i])};
  };
  VS total = bcast(last, R, 1 + S);
  if (S > 0) total = plus(total, bcast(last, R, P + S));
  if (last[1 + S] == 0.0 && (S == 0 || last[P + S] == 0.0)) return false;
  // The first label state of each class (first[j] = j for it; duplicates add into it).
  std::vector<std::int64_t> first(static_cast<std::size_t>(S));
  for (std::int64_t j = 0; j < S; ++j) {
    std::int64_t f = j;
    for (std::int64_t i = 0; i < j; ++i)
      if (s.tgt[i] == s.tgt[j]) {
        f = i;
        break;
      }
    first[static_cast<std::size_t>(j)] = f;
  }
  std::vector<double> beta(static_cast<std::size_t>(6 * R)), num(static_cast<std::size_t>(3 * n)),
      val(static_cast<std::size_t>(n));
  const Row b0{beta.data(), R}, b1{beta.data() + 3 * R, R}, nr{num.data(), n};
  b0.clear();
  b1.clear();
  const VD vgr(gr);
  for (std::int64_t t = L - 1; t >= 0; --t) {
    const Row c = t % 2 == 0 ? b0 : b1, nx = t % 2 == 0 ? b1 : b0;
    VS eb;
    lt.emit(s, t, &eb);  // (checked by alpha_rows)
    if (t == L - 1) {
      c.set_lane(1 + S, eb, 0);
      if (S > 0) lt.put_label(c, P + S, S - 1);
    } else {
      // blank j: to blank j and label j.
      for (std::int64_t j = 0; j < n; j += 8)
        c.store(times(sum2(nx.load(1 + j), nx.load(P + 1 + j)), eb), 1 + j);
      // label j: to label j, blank j + 1 and (a different) label j + 1.
      for (std::int64_t j = 0; j < n; j += 8)
        c.store(times(sum3(nx.load(P + 1 + j), nx.load(2 + j), lt.skip_from(nx, P + 2 + j, 1 + j)),
                      lt.label(j)),
                P + 1 + j);
    }
    const Row al{a.data() + t * 3 * R, R};
    // The blank's posterior numerator: its states' alpha beta, summed.
    VS acc = zero();
    for (std::int64_t j = 0; j < n; j += 8) acc = plus(acc, times(al.load(1 + j), c.load(1 + j)));
    const VS nb = lane_sum(acc);
    // The labels': each state's, then the duplicates' added into their class's first state.
    for (std::int64_t j = 0; j < n; j += 8)
      nr.store(times(al.load(P + 1 + j), c.load(P + 1 + j)), j);
    for (std::int64_t j = 1; j < S; ++j) {
      const std::int64_t f = first[static_cast<std::size_t>(j)];
      if (f == j) continue;
      nr.set_lane(f, plus(bcast(num.data(), n, f), bcast(num.data(), n, j)), 0);
    }
    // The row: exp(lp) gr outside the target (NaN where lp = -inf), then the target's classes.
    // A log_prob of +inf or NaN gives the sample up here (the driver then rewrites all of its
    // rows).
    const double* row = s.lp64 + t * s.st;
    double* out = g + t * gst;
    MD bad = VD(0.0) < VD(0.0);
    std::int64_t k = 0;
    for (; k + 8 <= C; k += 8) {
      const VD v(hn::LoadU(D(), row + k));
      bad = bad | !(v < VD(HUGE_VAL));
      hn::StoreU(exp_times(v, vgr).v, D(), out + k);
    }
    if (k < C) {
      alignas(64) double v[8], r[8];
      for (std::int64_t i = 0; i < 8; ++i) v[i] = k + i < C ? row[k + i] : 0.0;
      const VD vv(hn::Load(D(), v));
      bad = bad | !(vv < VD(HUGE_VAL));
      hn::Store(exp_times(vv, vgr).v, D(), r);
      for (std::int64_t i = 0; k + i < C; ++i) out[k + i] = r[i];
    }
    if (vany(bad)) return false;
    for (std::int64_t j = 0; j < n; j += 8)
      hn::StoreU(grad_value(lt.label(j), nr.load(j), total, vgr).v, D(), val.data() + j);
    const double* emh = lt.em.data();
    for (std::int64_t j = 0; j < S; ++j)
      if (first[static_cast<std::size_t>(j)] == j && emh[j] != 0.0)
        out[s.tgt[j]] = val[static_cast<std::size_t>(j)];
    if (row[s.blank] != -HUGE_VAL) out[s.blank] = hn::GetLane(grad_value(eb, nb, total, vgr).v);
  }
  return true;
}

}  // namespace ctcdd
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::simd
