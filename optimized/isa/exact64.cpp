// The float64 path of the elementwise losses whose formulas cancel (formulas/all.hpp:
// LOSSBENCH_OPT_CANCELLING_LOSSES):
// the formulas over DD (formulas/dd.hpp), a double-double lane, so each element is evaluated to
// about 2^-75 and rounded once, and reductions sum the DD values without rounding them first.
// Compiled twice: here without any -m flag (Dekker's products; runs on every x86-64) for the
// scalar path, and as isa/exact64_fma.cpp with the AVX2 flags (FMA products, 1.4-1.7x faster) for
// the AVX2 path; the AVX-512 path has isa/exact64_avx512.cpp (the same operations on eight
// lanes).
#include "../formulas/dd.hpp"
// dd.hpp first: block.hpp's templates find DD's finish_sum and two_sum by argument-dependent
// lookup when they are instantiated.
#include "../drivers/block.hpp"

namespace lossbench::opt {
namespace kernels {
inline namespace LOSSBENCH_FORMULA_NS {
template <>
struct Traits<formulas::DD> {
  static constexpr std::size_t kLanes = 1;
  static formulas::DD load(const double* p) { return {*p}; }
  static formulas::DD load(const float* p) { return {static_cast<double>(*p)}; }
  static void store(formulas::DD v, double* p) { *p = v.hi + v.lo; }
  static void store(formulas::DD v, float* p) { *p = static_cast<float>(v.hi + v.lo); }
  static void store_split(formulas::DD v, double* hi, double* lo) {
    *hi = v.hi;
    *lo = v.lo;
  }
};
}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace kernels

namespace {
void dd_math(int fn, const double* in, double* hi, double* lo, std::size_t n) {
  using namespace formulas;
  for (std::size_t i = 0; i < n; ++i) {
    const DD x(in[i]);
    const DD r = fn == 0 ? vexp(x) : fn == 1 ? vlog(x) : fn == 2 ? vlog1p(x) : vexpm1(x);
    hi[i] = r.hi;
    lo[i] = r.lo;
  }
}
}  // namespace

// The float64 entries of the cancelling losses, the block sum and dd_math (block.hpp:
// make_exact_table).
#ifndef LOSSBENCH_EXACT64_NAME
#define LOSSBENCH_EXACT64_NAME exact64_kernels
#define LOSSBENCH_EXACT64_ISA "scalar-dd"
#endif

const KernelTable& LOSSBENCH_EXACT64_NAME() {
  static const KernelTable table =
      kernels::make_exact_table<formulas::DD>(LOSSBENCH_EXACT64_ISA, dd_math);
  return table;
}

}  // namespace lossbench::opt
