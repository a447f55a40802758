#pragma once
// The optimized CPU backend behind the ABI (include/lossbench/abi.h): "cpu" (the best ISA this
// machine has, capped by LOSSBENCH_CPU_ISA=scalar|avx2|avx512), and "cpu-scalar", "cpu-avx2",
// "cpu-avx512" (one ISA each; supports() is false for every case when the machine lacks it), and
// the opt-in "cpu-fast": cpu-avx512 with the float32 losses that have exp or log (and
// multilabel_soft_margin_loss's float32 rows) evaluated in float instead of double on their dense
// path, faster and several ULPs off instead of one (optimized/README.md).
#include <string>

#include "lossbench/abi.h"

namespace lossbench::opt {

// avx512_fast: the cpu-fast table on AVX-512 (never detected; only "cpu-fast" asks for it).
enum class Isa { scalar = 0, avx2 = 1, avx512 = 2, avx512_fast = 3 };

// The best ISA of this machine (CPUID), capped by LOSSBENCH_CPU_ISA when it is set.
Isa detected_isa();
bool machine_has(Isa isa);
const char* isa_name(Isa isa);

const lb_impl* cpu_impl();         // "cpu": detected_isa() at each call
const lb_impl* cpu_scalar_impl();  // "cpu-scalar"
const lb_impl* cpu_avx2_impl();    // "cpu-avx2"
const lb_impl* cpu_avx512_impl();  // "cpu-avx512"
const lb_impl* cpu_fast_impl();    // "cpu-fast"

}  // namespace lossbench::opt
