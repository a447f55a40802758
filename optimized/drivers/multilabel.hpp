#pragma once
// The multilabel driver: multilabel_margin_loss and multilabel_soft_margin_loss. Argument checks
// as PyTorch 2.2 (docs/losses/multilabel_*.md), samples in parallel (OpenMP, one sample per
// iteration, its class sum in a fixed order), reductions and the sum-back of broadcast gradients
// in index order, so results do not depend on the thread count. Every ISA runs the same scalar
// double code (formulas/multilabel_margin_loss.hpp, formulas/multilabel_soft_margin_loss.hpp).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "args.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {
struct KernelTable;
}

namespace lossbench::opt::multilabel {

bool handles(const char* loss);

// Checked calls (shared with the CUDA backend, optimized/cuda/).
struct Common {
  const lb_tensor* input = nullptr;
  const lb_tensor* target = nullptr;
  const lb_tensor* weight = nullptr;
  enum class Reduction { none, sum, mean } reduction = Reduction::mean;
};

struct Margin {
  Common c;
  std::int64_t n = 1, dim = 1;
  Shape none_shape;
  std::vector<std::int64_t> t;  // (n, dim), row-major: a copy, unless the tensor is contiguous
  const std::int64_t* contiguous_t = nullptr;  // ... in which case its data is used in place
  const std::int64_t* targets() const { return contiguous_t ? contiguous_t : t.data(); }
};

struct Soft {
  Common c;
  Shape shape, out_shape;
  std::int64_t outer = 1, reduced = 1, inner = 1, classes = 0;
  Shape sx, sy, sw;  // view strides
  std::int64_t offset(const Shape& st, std::int64_t flat) const {
    std::int64_t off = 0;
    for (std::size_t d = shape.size(); d-- > 0;) {
      off += (flat % shape[d]) * st[d];
      flat /= shape[d];
    }
    return off;
  }
  std::int64_t samples() const { return outer * inner; }
  // Flat index (in `shape`) of class r of sample o.
  std::int64_t flat(std::int64_t o, std::int64_t r) const {
    return ((o / inner) * reduced + r) * inner + o % inner;
  }
};

// PyTorch 2.2's checks; throw Failure (args.hpp). multilabel_margin_loss reads its target's
// values (a host tensor); input, and the soft loss's tensors, are only described.
void build(const lb_call& call, Margin& m);
void build(const lb_call& call, Soft& s);
void check_output(const Common& c, const Shape& none_shape, const lb_tensor& output);
// grad_output (nullptr: ones) against the 'none' shape or a single element.
void check_grad_output(const Common& c, const lb_tensor* grad_output, const Shape& none_shape);
lb_tensor* match_margin_grads(const Margin& m, lb_tensor* grads, std::int32_t num_grads);
void match_soft_grads(const Soft& s, lb_tensor* grads, std::int32_t num_grads, lb_tensor*& gx,
                      lb_tensor*& gy, lb_tensor*& gw);
// k: the ISA's kernels for multilabel_soft_margin_loss's float32 fast path (nullptr: none).
std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size, const KernelTable* k = nullptr);
std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size,
                      const KernelTable* k = nullptr);

// forward then backward with one range check of the target and, for multilabel_margin_loss's
// float32 fast path, one pass per sample: fused = true when done; otherwise nothing is written
// (fused = false) and the caller makes the two calls.
std::int32_t forward_backward(const lb_call& call, lb_tensor& output, const lb_tensor* grad_output,
                              lb_tensor* grads, std::int32_t num_grads, int threads, char* error,
                              std::size_t error_size, const KernelTable* k, bool& fused);

}  // namespace lossbench::opt::multilabel
