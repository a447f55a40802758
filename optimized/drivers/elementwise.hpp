#pragma once
// The elementwise driver: every loss whose per-element value depends on the elements of its
// (broadcast) inputs at the same index. It owns the loops, the conversion of each dtype to
// double and back (one rounding), broadcasting and strides, reductions and threads.
//
// Work is cut into fixed blocks of kBlock elements of the output's (broadcast) index space. A
// block's inputs are gathered into double buffers, the ISA kernel applies the formula, and the
// block is stored (reduction 'none') or summed into a double-double. Block partial sums are
// combined in block order, so a reduction is bitwise the same whatever the thread count.
// Gradients of broadcast inputs are summed back with one double-double per element, in the
// order of the output index (single-threaded, deterministic).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../kernels.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {

inline constexpr std::int64_t kBlock = 4096;

// One input of the formula: a tensor viewed with the output's shape (stride 0 along broadcast
// dimensions), or a constant (an absent optional input such as weight = None).
struct Operand {
  const lb_tensor* tensor = nullptr;
  double constant = 1.0;
  std::vector<std::int64_t> strides;       // data strides over the output shape, in elements
  std::vector<std::int64_t> grad_strides;  // strides of a contiguous gradient of the input
  bool dense = false;                      // contiguous with the output's shape: no gather
};

struct Plan {
  Loss loss = Loss::count;
  formulas::Params params;
  std::int32_t dtype = LB_FLOAT32;  // the loss dtype
  std::vector<std::int64_t> shape;  // the output (broadcast) shape
  std::int64_t numel = 0;
  int num_inputs = 0;
  Operand in[kMaxInputs];
  bool reduce = false;   // mean, sum or batchmean
  double divisor = 1.0;  // of the reduced sum (numel, input.size(0), or 1)
  // PyTorch's value checks (binary_cross_entropy's input and target, gaussian_nll_loss's var),
  // when the caller left them to the driver (api.cpp: build): it raises PyTorch's error if a
  // value is one PyTorch rejects. The drivers call it before any other work on the gather path;
  // on the dense path the kernels check the values as they read them (DenseIO::invalid), and the
  // driver calls it after them only if one was flagged (the outputs may then be partly written,
  // which the ABI allows for any status but LB_OK). Empty: the checks were made.
  std::function<void()> value_check;
};

// Views `t` (whose shape broadcasts to `shape`) as an operand.
Operand make_operand(const lb_tensor& t, const std::vector<std::int64_t>& shape);
// The same for a tensor seen with `view_shape`: its own shape, or its shape with a trailing 1
// (gaussian_nll_loss's var unsqueezed at -1).
Operand make_operand(const lb_tensor& t, const std::vector<std::int64_t>& view_shape,
                     const std::vector<std::int64_t>& shape);
Operand constant_operand(double value, const std::vector<std::int64_t>& shape);

// Number of threads the drivers use: OMP's default, or LOSSBENCH_CPU_THREADS when set.
int driver_threads();

void run_forward(const KernelTable& k, const Plan& plan, lb_tensor& output, int threads);
// grads[j] is the gradient tensor of formula input j, or nullptr when not requested. grad_output
// has the output's shape (0-d when reduced).
void run_backward(const KernelTable& k, const Plan& plan, const lb_tensor& grad_output,
                  lb_tensor* const* grads, int threads);
// Forward and backward in one pass over the inputs, when the dense fast path applies to every
// tensor of the call; false (nothing written) otherwise: the caller runs the two.
bool run_fused(const KernelTable& k, const Plan& plan, lb_tensor& output,
               const lb_tensor& grad_output, lb_tensor* const* grads, int threads);

}  // namespace lossbench::opt
