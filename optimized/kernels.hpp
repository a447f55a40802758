#pragma once
// The interface between the drivers (ISA-independent: loops, blocks, reductions, threads) and
// the per-ISA kernels (isa/*.cpp: the formulas applied to a block of doubles, and the block sum).
#include <cstddef>

#include "formulas/all.hpp"

namespace lossbench::opt {

enum class Loss {
#define LOSSBENCH_OPT_ENUM(id, F) id,
  LOSSBENCH_OPT_LOSSES(LOSSBENCH_OPT_ENUM) LOSSBENCH_OPT_CLASSIFICATION_LOSSES(LOSSBENCH_OPT_ENUM)
#undef LOSSBENCH_OPT_ENUM
      count
};
inline constexpr int kLossCount = static_cast<int>(Loss::count);
inline constexpr int kMaxInputs = 4;
// Every block buffer is padded to a multiple of this many doubles (the widest vector).
inline constexpr std::size_t kPad = 8;

// Applies the loss's formula to n elements (n a multiple of kPad; in[k] holds input k of the
// formula, broadcast and converted to double).
using ForwardKernel = void (*)(const double* const* in, double* out, std::size_t n,
                               const formulas::Params& p);
// out[k] receives the gradient with respect to input k (times the upstream gradient g).
using BackwardKernel = void (*)(const double* const* in, const double* g, double* const* out,
                                std::size_t n, const formulas::Params& p);
// Compensated sum of v[0..n) into hi + lo (a double-double); may overwrite v[n..round_up(n)).
using SumKernel = void (*)(double* v, std::size_t n, double* hi, double* lo);

struct KernelTable {
  const char* isa;
  ForwardKernel forward[kLossCount];  // null for the classification losses
  BackwardKernel backward[kLossCount];
  SumKernel sum;
  // The classification driver's row kernel: out = exp(in[0] - p.s0) (formulas/cross_entropy.hpp).
  ForwardKernel row_exp;
};

// One per ISA, each defined in its own translation unit compiled with its own -m flags.
const KernelTable& scalar_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();

}  // namespace lossbench::opt
