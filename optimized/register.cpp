// Registers the optimized CPU backend with the scorer's implementation registry at static
// initialization. Linked as an object library (lossbench_optimized_register) into the programs
// that should know "cpu", "cpu-scalar", "cpu-avx2", "cpu-avx512" and "cpu-fast".
#include "conformance.hpp"
#include "cpu.hpp"

namespace {

const bool registered = [] {
  using lossbench::conformance::register_implementation;
  register_implementation("cpu", lossbench::opt::cpu_impl);
  register_implementation("cpu-scalar", lossbench::opt::cpu_scalar_impl);
  register_implementation("cpu-avx2", lossbench::opt::cpu_avx2_impl);
  register_implementation("cpu-avx512", lossbench::opt::cpu_avx512_impl);
  register_implementation("cpu-fast", lossbench::opt::cpu_fast_impl);
  return true;
}();

}  // namespace
