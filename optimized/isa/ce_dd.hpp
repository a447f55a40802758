#pragma once
// cross_entropy's float64 rows on AVX-512 (KernelTable::ce_row_f64 and ce_grad_row_f64; the
// float64 table, isa/avx512_f64.cpp, registers them): the float32 fast path's row kernels
// (drivers/block.hpp: ce_row_f32, ce_grad_row_f32) for float64 logits, in double-double.
// - x - m as d_hi + d_lo (TwoSum), exp(x - m) = expd(d_hi) (1 + d_lo) as a double-double
//   (isa/f64_dd.hpp: within 2^-68; exp(d_hi) below 2^-980 loses its low part to the subnormals,
//   a term that small moves neither the sum nor a gradient above 2^-1000 of its scale);
// - the sum S of the row's exps but the argmax's compensated (four accumulators per lane, as the
//   float32 kernel; the terms at the max counted), so that the loss's log1p(S) is that of the
//   general path;
// - each gradient element (e_hi + e_lo)(q_hi + q_lo) rounded once, q = -dl_t / z the caller's
//   double-double: within about half an ULP where the general path (exp to half an ULP, a
//   product and a division) rounds three times.
#include "f64_dd.hpp"

#if HWY_TARGET != HWY_AVX3 || !defined(LOSSBENCH_F64_MATH)
#error "isa/ce_dd.hpp is for the float64 table (isa/avx512_f64.cpp) only"
#endif

namespace lossbench::opt::simd {
inline namespace LOSSBENCH_FORMULA_NS {
namespace cedd {

// exp(x - m) for the lanes of x (x <= m, m finite) as hi + lo.
HWY_INLINE dd2::VDD row_exp(VD x, VD m) {
  VD d_hi, d_lo;
  formulas::two_sum(x, -m, d_hi, d_lo);
  d_lo = vselect(visfinite(d_hi), d_lo, VD(0.0));  // x = -inf: exp is 0
  const dd2::VDD e = dd2::expd(d_hi);
  return {e.hi, vfma(e.hi, d_lo, e.lo)};
}

// KernelTable::ce_row_f64: the row's max m and S as s_hi + s_lo; with e non-null each exp(x_k -
// m) as e[k] + e_lo[k]. False where the row holds a NaN or its max is not finite (the general
// path then). The last partial vector is read from a copy padded with -inf.
inline bool row(const double* x, std::int64_t C, double* m_out, double* s_hi, double* s_lo,
                double* e, double* e_lo) {
  using T = kernels::Traits<VD>;
  constexpr std::int64_t L = 8;
  const std::int64_t full = C / L * L, rest = C - full;
  alignas(64) double tail[L];
  for (std::int64_t j = 0; j < L; ++j) tail[j] = j < rest ? x[full + j] : -HUGE_VAL;
  const auto at = [&](std::int64_t i) { return i < full ? T::load(x + i) : T::load(tail); };
  const std::int64_t end = rest > 0 ? full + L : full;
  VD mx(-HUGE_VAL);
  MD nan = visnan(mx);
  for (std::int64_t i = 0; i < end; i += L) {
    const VD v = at(i);
    nan = nan | visnan(v);
    mx = vmax(v, mx);
  }
  if (vany(nan)) return false;
  const double m = hn::GetLane(hn::MaxOfLanes(D(), mx.v));
  if (!(std::fabs(m) < HUGE_VAL)) return false;
  constexpr std::size_t kAcc = 4;
  VD s[kAcc], c[kAcc];
  for (std::size_t k = 0; k < kAcc; ++k) s[k] = c[k] = VD(0.0);
  const VD vm(m);
  std::int64_t at_max = 0;
  for (std::int64_t i = 0; i < end; i += L) {
    const auto k = static_cast<std::size_t>(i / L) % kAcc;
    const VD v = at(i);
    const dd2::VDD r = row_exp(v, vm);
    if (e != nullptr) {
      if (i < full) {
        T::store(r.hi, e + i);
        T::store(r.lo, e_lo + i);
      } else {
        alignas(64) double h[L], l[L];
        T::store(r.hi, h);
        T::store(r.lo, l);
        for (std::int64_t j = 0; j < rest; ++j) {
          e[full + j] = h[j];
          e_lo[full + j] = l[j];
        }
      }
    }
    // The terms at the max (exp(0) = 1 exactly) are counted, not summed: S keeps its relative
    // accuracy where the others are all far below 1 (a sum with the 1 in it would hold them in
    // its compensation, in plain double: 1.24 ULP of a gradient at the target so).
    const MD top = v == vm;
    at_max += vcount(top);
    VD err;
    formulas::two_sum(s[k], vselect(top, VD(0.0), r.hi), s[k], err);
    c[k] = c[k] + (err + vselect(top, VD(0.0), r.lo));
  }
  double hi, lo;
  kernels::finish_sum<VD, kAcc>(s, c, &hi, &lo);
  // S: the sum and the terms at the max but one (the argmax's), exactly.
  double err;
  formulas::two_sum(static_cast<double>(at_max - 1), hi, *s_hi, err);
  *s_lo = err + lo;
  *m_out = m;
  return true;
}

// KernelTable::ce_grad_row_f64: out[k] = (e[k] + e_lo[k]) (q_hi + q_lo), rounded once; stream:
// non-temporal stores where out is 64-byte aligned, then a fence.
inline void grad_row(const double* e, const double* e_lo, std::int64_t C, double q_hi, double q_lo,
                     double* out, bool stream) {
  using T = kernels::Traits<VD>;
  constexpr std::int64_t L = 8;
  const std::int64_t full = C / L * L;
  const VD qh(q_hi), ql(q_lo);
  stream = stream && reinterpret_cast<std::uintptr_t>(out) % 64 == 0;
  for (std::int64_t i = 0; i < full; i += L) {
    const VD h = T::load(e + i), l = T::load(e_lo + i);
    kernels::put<T>(vfma(h, qh, vfma(h, ql, l * qh)), out + i, stream);
  }
  kernels::stream_fence(stream);  // the caller stores the target's gradient into this row next
  for (std::int64_t i = full; i < C; ++i)
    out[i] = std::fma(e[i], q_hi, std::fma(e[i], q_lo, e_lo[i] * q_hi));
}

}  // namespace cedd
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::simd
