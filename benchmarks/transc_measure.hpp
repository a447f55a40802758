#pragma once
// The body of transc_detail::measure_* (transc.hpp), included once by each of
// transc_avx512.cpp, transc_avx2.cpp and transc_baseline.cpp with LOSSBENCH_TRANSC_MEASURE set
// to the function's name. Each is compiled with its target's flags and HWY_COMPILE_ONLY_STATIC,
// so hwy::HWY_NAMESPACE differs between them and nothing here is shared.
#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "transc.hpp"

namespace lossbench::bench::transc_detail {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
constexpr std::size_t kElements = 4096;  // 16 KiB per buffer: in and out both stay in L1

template <class F>
double ns_per_element(const float* in, float* out, F f) {
  using Clock = std::chrono::steady_clock;
  const hn::ScalableTag<float> d;
  const std::size_t lanes = hn::Lanes(d);
  double best = 1e300;
  for (int sample = 0; sample < 15; ++sample) {
    long passes = 0;
    double spent = 0;
    const auto t0 = Clock::now();
    do {
      for (std::size_t i = 0; i < kElements; i += lanes)
        hn::Store(f(d, hn::Load(d, in + i)), d, out + i);
      // The stores of every pass happen (the compiler may not drop a pass as redundant).
      asm volatile("" : : "r"(out) : "memory");
      ++passes;
      spent = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (spent < 2e-3);
    best = std::min(best, spent * 1e9 / (static_cast<double>(passes) * kElements));
  }
  return best;
}

}  // namespace

Transc LOSSBENCH_TRANSC_MEASURE() {
  // The benchmarks' input ranges: exp of [-6, 6] (the logits), log of [0.02, 4], log1p of
  // [0, 1] (softplus's log1p(exp(-|x|))).
  alignas(64) float ex[kElements], lg[kElements], l1p[kElements], out[kElements];
  for (std::size_t i = 0; i < kElements; ++i) {
    const float u = (static_cast<float>(i) + 0.5f) / kElements;
    ex[i] = -6.0f + 12.0f * u;
    lg[i] = 0.02f + 3.98f * u;
    l1p[i] = u;
  }
  Transc r;
  r.exp = ns_per_element(ex, out, [](auto d, auto v) { return hn::Exp(d, v); });
  r.log = ns_per_element(lg, out, [](auto d, auto v) { return hn::Log(d, v); });
  r.log1p = ns_per_element(l1p, out, [](auto d, auto v) { return hn::Log1p(d, v); });
  return r;
}

}  // namespace lossbench::bench::transc_detail
