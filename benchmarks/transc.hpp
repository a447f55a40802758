#pragma once
// The transcendental floor of the speed of light (benchmarks/README.md): how many exp, log and
// log1p a loss must evaluate, and what one costs on this machine, measured once per run.
#include <string>

namespace lossbench::bench {

// Counts of evaluations (a loss's floor) or ns per evaluation on one core (the measured costs).
struct Transc {
  double exp = 0, log = 0, log1p = 0;
};
constexpr Transc operator+(Transc a, Transc b) {
  return {a.exp + b.exp, a.log + b.log, a.log1p + b.log1p};
}
constexpr Transc operator*(double k, Transc a) { return {k * a.exp, k * a.log, k * a.log1p}; }
// ns on one core of `counts` evaluations at `ns_each` apiece.
constexpr double floor_ns(Transc counts, Transc ns_each) {
  return counts.exp * ns_each.exp + counts.log * ns_each.log + counts.log1p * ns_each.log1p;
}

// ns per element on one core of Highway's float32 Exp, Log and Log1p at the widest vector this
// CPU runs (16 lanes with AVX-512, 8 with AVX2, the baseline target otherwise), on an L1-resident
// buffer: the best of 15 samples of at least 2 ms each, measured on the first call.
struct TranscCosts {
  Transc ns;
  std::string target;  // "avx512", "avx2" or "baseline"
  std::string describe() const;
};
const TranscCosts& transc_costs();

namespace transc_detail {
// One per translation unit, each compiled for its target (benchmarks/CMakeLists.txt).
Transc measure_avx512();
Transc measure_avx2();
Transc measure_baseline();
}  // namespace transc_detail

}  // namespace lossbench::bench
