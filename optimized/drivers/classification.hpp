#pragma once
// The classification driver: cross_entropy, nll_loss and multi_margin_loss, inputs of shape (C),
// (N, C) or (N, C, d1..dk) seen as positions i = (n, s) (S = d1 * ... * dk) by classes. It owns the
// argument checks (PyTorch 2.2's nll_loss_nd and cross_entropy checks, docs/losses/*.md), the
// loops, threads and reductions; the per-ISA work is the KernelTable's row_exp and sum.
//
// cross_entropy reads each row of logits once (gathered into a per-thread row buffer of C
// doubles while its max is tracked), computes exp(x - m) and the compensated sum S of the exps
// other than the argmax's in double (z = 1 + S, lse = log1p(S)), and writes the gradient row
// once. No temporary of the input's size. Positions are cut into fixed blocks; block partial
// sums (double-double) are combined in block order, so results are bitwise identical for any
// thread count.
#include <cstdint>
#include <string>
#include <vector>

#include "../kernels.hpp"
#include "args.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {

// A read-only view of int64 targets (std::span's part the drivers use; this header is also
// compiled as C++17 by nvcc, optimized/cuda/).
struct TargetView {
  const std::int64_t* ptr = nullptr;
  std::size_t n = 0;
  std::size_t size() const { return n; }
  const std::int64_t* data() const { return ptr; }
  const std::int64_t* begin() const { return ptr; }
  const std::int64_t* end() const { return ptr + n; }
  std::int64_t operator[](std::size_t i) const { return ptr[i]; }
};

struct ClassificationPlan {
  Loss loss = Loss::count;
  std::int32_t dtype = LB_FLOAT32;
  bool unbatched = false;               // input of shape (C)
  std::int64_t n = 1, c = 0, s = 1;     // N, C, d1 * ... * dk
  std::vector<std::int64_t> spatial;    // d1..dk
  std::vector<std::int64_t> out_shape;  // the 'none' output ({} when unbatched)
  std::int64_t positions = 0;           // targets read (0 or 1 when unbatched)
  const lb_tensor* input = nullptr;
  const lb_tensor* target = nullptr;
  const lb_tensor* weight = nullptr;
  std::vector<double> w;  // weights (C), 1 without weight
  bool w_ones = false;    // every entry of w is 1 (reused_plan keeps w and this flag)
  // The class-index targets (index modes), per position: the caller's int64 data when it is
  // contiguous (read in place), else t_copy.
  TargetView t;
  std::vector<std::int64_t> t_copy;
  std::int64_t valid_targets = 0;  // the targets of t that are not ignore_index
  bool prob = false;               // cross_entropy with probability targets
  std::int64_t ignore_index = -100;
  bool smoothing = false;           // label_smoothing > 0
  double keep = 1.0, spread = 0.0;  // 1 - e and e / C, rounded as PyTorch
  enum class Reduction { none, sum, mean } reduction = Reduction::mean;
  // multi_margin_loss: margin (rounded to the dtype), p == 2, the 'none' output shape ((N) with a
  // 1-D target, else 0-d).
  double margin = 1.0;
  bool p2 = false;
};

bool is_classification(const char* loss);
// The calling thread's plan, reset to a fresh one but for the capacity of its vectors, which the
// previous call on this thread left: building a plan then allocates nothing new (for a call as
// short as nll_loss's forward, fresh heap pages and their faults were most of the time). Valid
// until the thread's next reused_plan().
ClassificationPlan& reused_plan();
// Checks a call as PyTorch 2.2 does; throws Failure (args.hpp).
void build_classification(const lb_call& call, ClassificationPlan& plan);

// The shared pieces of the drivers' checks (also used by the CUDA backend, optimized/cuda/):
// the output's shape; the gradient tensors by name ("input", and "target" and "weight" of
// cross_entropy's probability mode) and grad_output's shape (nullptr: ones, 0-d); the total
// weight W of the non-ignored targets (the mean's divisor of the index modes), summed in
// position order.
void check_classification_output(const ClassificationPlan& plan, const lb_tensor& output);
void match_classification_grads(const ClassificationPlan& plan, const lb_tensor* grad_output,
                                lb_tensor* grads, std::int32_t num_grads, const lb_tensor*& gx,
                                const lb_tensor*& gt, const lb_tensor*& gw);
double classification_total_weight(const ClassificationPlan& plan);

void run_classification_forward(const KernelTable& k, const ClassificationPlan& plan,
                                lb_tensor& output, int threads);
// grads: "input" (both losses), "target" and "weight" (cross_entropy's probability mode).
void run_classification_backward(const KernelTable& k, const ClassificationPlan& plan,
                                 const lb_tensor& grad_output, lb_tensor* grads,
                                 std::int32_t num_grads, int threads);
// forward_backward in one read of the logits: cross_entropy with class-index targets, no
// smoothing, float32 logits whose rows the fast path reads, the input's gradient only. False
// when the call is not that case, or a row is not (an ignored target, a NaN or infinite
// logit): the caller then runs forward and backward, which write every element again.
bool run_classification_fused(const KernelTable& k, const ClassificationPlan& plan,
                              lb_tensor& output, const lb_tensor& grad_output, lb_tensor* grads,
                              std::int32_t num_grads, int threads);

}  // namespace lossbench::opt
