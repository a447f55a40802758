#pragma once
// Host functions compiled by nvcc (formulas_nvcc.cu): the formulas of loss `loss` (Loss).
#include "formulas/common.hpp"

namespace lossbench::opt::cuda_test {

double nvcc_forward(int loss, const double* in, const formulas::Params& p);
void nvcc_backward(int loss, const double* in, double g, const formulas::Params& p, double* out);

}  // namespace lossbench::opt::cuda_test
