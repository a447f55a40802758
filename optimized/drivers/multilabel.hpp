#pragma once
// The multilabel driver: multilabel_margin_loss and multilabel_soft_margin_loss. Argument checks
// as PyTorch 2.2 (docs/losses/multilabel_*.md), samples in parallel (OpenMP, one sample per
// iteration, its class sum in a fixed order), reductions and the sum-back of broadcast gradients
// in index order, so results do not depend on the thread count. Every ISA runs the same scalar
// double code (formulas/multilabel_margin_loss.hpp, formulas/multilabel_soft_margin_loss.hpp).
#include <cstddef>
#include <cstdint>

#include "lossbench/abi.h"

namespace lossbench::opt::multilabel {

bool handles(const char* loss);
std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size);
std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size);

}  // namespace lossbench::opt::multilabel
