#pragma once
// The CTC driver (ctc_loss): argument checks (PyTorch 2.2's errors), one sample per OpenMP
// iteration (alpha/beta tables in double, formulas/ctc_loss.hpp), reductions in batch order, so
// results do not depend on the thread count. Every ISA runs the same (scalar double) code.
#include <cstddef>
#include <cstdint>

#include "lossbench/abi.h"

namespace lossbench::opt::ctc {

bool handles(const char* loss);
std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size);
std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size);

}  // namespace lossbench::opt::ctc
