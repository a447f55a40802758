// isa/exact64.cpp compiled with the AVX2 flags: the same double-double kernels with FMA products,
// for the AVX2 path.
#if !defined(__FMA__)
#error "isa/exact64_fma.cpp must be compiled with the AVX2 flags (optimized/CMakeLists.txt)"
#endif
#define LOSSBENCH_EXACT64_NAME exact64_fma_kernels
#define LOSSBENCH_EXACT64_ISA "fma-dd"
#include "exact64.cpp"
