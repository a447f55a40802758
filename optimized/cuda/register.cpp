// Registers the CUDA backend as "cuda" at static initialization (an object library, linked into
// the programs that know the CPU backend). Without a CUDA device it is still registered: its
// supports() is false and its version says "no CUDA device".
#include "conformance.hpp"
#include "cuda.hpp"

namespace {

const bool registered = [] {
  lossbench::conformance::register_implementation("cuda", lossbench::opt::cuda_impl);
  return true;
}();

}  // namespace
