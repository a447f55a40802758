// The AVX2 path (4 doubles per vector). Compiled with -mavx2 -mfma -mf16c -mbmi -mbmi2 and
// HWY_COMPILE_ONLY_STATIC: Highway's static target is AVX2 here.
#include "simd.hpp"

#if HWY_TARGET != HWY_AVX2
#error "isa/avx2.cpp must be compiled with the AVX2 flags (optimized/CMakeLists.txt)"
#endif

namespace lossbench::opt {

const KernelTable& avx2_kernels() {
  static const KernelTable table = kernels::make_table<simd::VD>("avx2");
  return table;
}

}  // namespace lossbench::opt
