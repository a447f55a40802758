#pragma once
// The optimized CPU backend behind the ABI (include/lossbench/abi.h): "cpu" (the best ISA this
// machine has, capped by LOSSBENCH_CPU_ISA=scalar|avx2|avx512), and "cpu-scalar", "cpu-avx2",
// "cpu-avx512" (one ISA each; supports() is false for every case when the machine lacks it).
#include <string>

#include "lossbench/abi.h"

namespace lossbench::opt {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

// The best ISA of this machine (CPUID), capped by LOSSBENCH_CPU_ISA when it is set.
Isa detected_isa();
bool machine_has(Isa isa);
const char* isa_name(Isa isa);

const lb_impl* cpu_impl();         // "cpu": detected_isa() at each call
const lb_impl* cpu_scalar_impl();  // "cpu-scalar"
const lb_impl* cpu_avx2_impl();    // "cpu-avx2"
const lb_impl* cpu_avx512_impl();  // "cpu-avx512"

}  // namespace lossbench::opt
