// The formula headers compiled by nvcc (host side here; driver.cu instantiates the device side):
// every loss's forward and backward, for the comparison with the host compiler's build in
// cuda_test.cpp. Compiled with LOSSBENCH_FORMULA_NS=nvcc, so nothing merges with the C++ copy.
#include "formulas_nvcc.hpp"
#include "kernels.hpp"
#include "row_formulas.hpp"

namespace lossbench::opt::cuda_test {

double nvcc_forward(int loss, const double* in, const formulas::Params& p) {
  switch (static_cast<Loss>(loss)) {
#define LOSSBENCH_NVCC_FORWARD(id, F) \
  case Loss::id: return formulas::F::forward<double>(in, p);
    LOSSBENCH_OPT_LOSSES(LOSSBENCH_NVCC_FORWARD)
#undef LOSSBENCH_NVCC_FORWARD
    default: return 0.0;
  }
}

void nvcc_backward(int loss, const double* in, double g, const formulas::Params& p, double* out) {
  switch (static_cast<Loss>(loss)) {
#define LOSSBENCH_NVCC_BACKWARD(id, F) \
  case Loss::id: formulas::F::backward<double>(in, g, p, out); break;
    LOSSBENCH_OPT_LOSSES(LOSSBENCH_NVCC_BACKWARD)
#undef LOSSBENCH_NVCC_BACKWARD
    default: break;
  }
}

void nvcc_row_formulas(const double* in, double* out) { formulas::row_formulas(in, out); }

}  // namespace lossbench::opt::cuda_test
