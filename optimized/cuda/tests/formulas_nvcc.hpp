#pragma once
// Host functions compiled by nvcc (formulas_nvcc.cu): the formulas of loss `loss` (Loss), and
// the row losses' pieces.
#include "formulas/common.hpp"

namespace lossbench::opt::cuda_test {

double nvcc_forward(int loss, const double* in, const formulas::Params& p);
void nvcc_backward(int loss, const double* in, double g, const formulas::Params& p, double* out);
// The row losses' formula pieces (row_formulas.hpp) as nvcc compiles them.
void nvcc_row_formulas(const double* in, double* out);

}  // namespace lossbench::opt::cuda_test
