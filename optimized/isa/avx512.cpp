// The AVX-512 path (8 doubles per vector). Compiled with the AVX2 flags plus -mavx512f
// -mavx512vl -mavx512dq -mavx512bw and
// HWY_COMPILE_ONLY_STATIC: Highway's static target is AVX3 here.
#include "simd.hpp"

#if HWY_TARGET != HWY_AVX3
#error "isa/avx512.cpp must be compiled with the AVX-512 flags (optimized/CMakeLists.txt)"
#endif

namespace lossbench::opt {

const KernelTable& avx512_kernels() {
  static const KernelTable table = kernels::make_table<simd::VD>("avx512");
  return table;
}

}  // namespace lossbench::opt
