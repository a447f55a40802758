#pragma once
// The block kernels, written once over a lane type (double, or a SIMD wrapper with the
// Traits below) and instantiated by each ISA's translation unit (isa/*.cpp). Included after the
// ISA's lane type; lives in that TU's inline namespace (see formulas/common.hpp).
#include <cmath>
#include <cstddef>

#include "../kernels.hpp"

namespace lossbench::opt::kernels {
inline namespace LOSSBENCH_FORMULA_NS {

// Traits<V>: kLanes, load(const double*), store(V, double*), and the double-double helpers.
template <class V>
struct Traits;

template <>
struct Traits<double> {
  static constexpr std::size_t kLanes = 1;
  static double load(const double* p) { return *p; }
  static void store(double v, double* p) { *p = v; }
};

template <class V, class F>
void forward_block(const double* const* in, double* out, std::size_t n, const formulas::Params& p) {
  using T = Traits<V>;
  for (std::size_t i = 0; i < n; i += T::kLanes) {
    V a[F::kInputs];
    for (int k = 0; k < F::kInputs; ++k) a[k] = T::load(in[k] + i);
    T::store(F::forward(a, p), out + i);
  }
}

template <class V, class F>
void backward_block(const double* const* in, const double* g, double* const* out, std::size_t n,
                    const formulas::Params& p) {
  using T = Traits<V>;
  for (std::size_t i = 0; i < n; i += T::kLanes) {
    V a[F::kInputs];
    V r[F::kInputs];
    for (int k = 0; k < F::kInputs; ++k) a[k] = T::load(in[k] + i);
    F::backward(a, T::load(g + i), p, r);
    for (int k = 0; k < F::kInputs; ++k) T::store(r[k], out[k] + i);
  }
}

// Error-free transformation: s + e == a + b exactly.
template <class V>
inline void two_sum(V a, V b, V& s, V& e) {
  s = a + b;
  const V bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

// Per lane: a running double-double (s, c) in TwoSum form, 4 independent accumulators; then
// the lanes and accumulators are combined in a fixed order. Deterministic for a given ISA.
template <class V>
void sum_block(double* v, std::size_t n, double* hi, double* lo) {
  using T = Traits<V>;
  constexpr std::size_t kAcc = 4;
  constexpr std::size_t kStep = kAcc * T::kLanes;
  std::size_t padded = (n + kStep - 1) / kStep * kStep;
  for (std::size_t i = n; i < padded; ++i) v[i] = 0.0;
  V s[kAcc], c[kAcc];
  for (std::size_t k = 0; k < kAcc; ++k) s[k] = c[k] = V(0.0);
  for (std::size_t i = 0; i < padded; i += kStep) {
    for (std::size_t k = 0; k < kAcc; ++k) {
      V e;
      two_sum(s[k], T::load(v + i + k * T::kLanes), s[k], e);
      c[k] = c[k] + e;
    }
  }
  double lanes_s[kAcc * T::kLanes], lanes_c[kAcc * T::kLanes];
  for (std::size_t k = 0; k < kAcc; ++k) {
    T::store(s[k], lanes_s + k * T::kLanes);
    T::store(c[k], lanes_c + k * T::kLanes);
  }
  double hs = 0.0, hc = 0.0;
  for (std::size_t j = 0; j < kAcc * T::kLanes; ++j) {
    double e;
    two_sum(hs, lanes_s[j], hs, e);
    hc += e + lanes_c[j];
  }
  two_sum(hs, hc, *hi, *lo);
  if (!(std::fabs(*hi) < HUGE_VAL)) {
    // An infinity or NaN among the terms: the compensation is meaningless; the plain sum gives
    // IEEE's answer (inf, -inf or NaN).
    double plain = 0.0;
    for (std::size_t i = 0; i < n; ++i) plain += v[i];
    *hi = plain;
    *lo = 0.0;
  }
}

template <class V>
KernelTable make_table(const char* isa) {
  KernelTable t{};
  t.isa = isa;
#define LOSSBENCH_OPT_FILL(id, F)                                        \
  t.forward[static_cast<int>(Loss::id)] = forward_block<V, formulas::F>; \
  t.backward[static_cast<int>(Loss::id)] = backward_block<V, formulas::F>;
  LOSSBENCH_OPT_LOSSES(LOSSBENCH_OPT_FILL)
#undef LOSSBENCH_OPT_FILL
  t.sum = sum_block<V>;
  t.row_exp = forward_block<V, formulas::CrossEntropyExp>;
  return t;
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::kernels
