// liblossbench_cpu.so: the optimized CPU backend ("cpu": the best ISA of the machine, capped by
// LOSSBENCH_CPU_ISA) as an ABI plugin (include/lossbench/abi.h), for tools outside the C++
// build: benchmarks/torch_side_by_side.py loads it with ctypes, `lossbench check --impl` with
// dlopen.
#include "cpu.hpp"

extern "C" LB_EXPORT const lb_impl* lossbench_impl_v1(void) { return lossbench::opt::cpu_impl(); }
