#pragma once
// The CTC driver (ctc_loss): argument checks (PyTorch 2.2's errors), one sample per OpenMP
// iteration (alpha/beta tables in double, formulas/ctc_loss.hpp), reductions in batch order, so
// results do not depend on the thread count. float32 log_probs with contiguous classes take the
// ISA's vector kernels (KernelTable::ctc_alpha_f32, ctc_grad_f32: the recursion vectorised over
// the states of a time step), and float64 ones on AVX-512 the double-double kernels
// (ctc_paths_f64, ctc_grad_f64: isa/ctc_dd.hpp); float64 elsewhere runs the scalar double-double
// recursion, and strided classes and samples with a NaN or +inf emission or an infinite nll the
// scalar code on every ISA.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "elements.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {
struct KernelTable;
}

namespace lossbench::opt::ctc {

bool handles(const char* loss);

// A checked call (shared with the CUDA backend, optimized/cuda/): sizes, log_probs' strides, the
// lengths and the targets of each sample (validated, read from the host tensors).
struct Call {
  const lb_tensor* lp = nullptr;
  std::int32_t dtype = LB_FLOAT32;
  std::int64_t T = 0, N = 0, C = 0;
  std::int64_t st = 0, sn = 0, sc = 0;  // log_probs strides (sn = 0 unbatched)
  bool unbatched = false;
  std::int64_t blank = 0;
  bool zero_infinity = false;
  bool reduce = false, mean = false;
  std::vector<std::int64_t> il, tl;
  std::vector<std::vector<std::int64_t>> targets;
  double lp_at(std::int64_t t, std::int64_t b, std::int64_t c) const {
    return conformance::load_float(lp->data, lp->dtype, t * st + b * sn + c * sc);
  }
};

// PyTorch 2.2's checks; throws Failure (args.hpp). Reads the values of targets, input_lengths
// and target_lengths (host tensors); log_probs is only described.
void build(const lb_call& call, Call& c);
void check_output(const Call& c, const lb_tensor& output);
// The gradient tensor of log_probs (nullptr when not requested), checked.
lb_tensor* match_grads(const Call& c, lb_tensor* grads, std::int32_t num_grads);
// k: the ISA's kernels for the float32 fast path (nullptr: the general path only).
std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size, const KernelTable* k = nullptr);
std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size,
                      const KernelTable* k = nullptr);

}  // namespace lossbench::opt::ctc
