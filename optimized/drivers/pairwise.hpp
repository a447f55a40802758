#pragma once
// The pairwise driver: the losses whose value is a function of reductions over a row (a feature
// dimension) of two inputs: cosine_embedding_loss, triplet_margin_loss and
// triplet_margin_with_distance_loss (distance_function None, "pairwise_distance", "cosine").
// It owns the argument checks of these losses, the loops over rows (OpenMP; each row is computed
// by one thread, so results do not depend on the thread count), the row sums (double), the loss
// reduction (a compensated sum in index order) and the sum-back of gradients over broadcast
// dimensions (in index order). The per-row formulas are formulas/<id>.hpp. Every ISA runs the
// same (scalar double) code here.
#include <cstddef>
#include <cstdint>

#include "lossbench/abi.h"

namespace lossbench::opt::pairwise {

bool handles(const char* loss);
std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size);
std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size);

}  // namespace lossbench::opt::pairwise
