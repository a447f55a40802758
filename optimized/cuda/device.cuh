#pragma once
// Device helpers shared by the CUDA drivers (driver.cu, classification.cu, ctc.cu,
// multilabel.cu): double-double sums, loads and stores of every dtype with the scorer's own
// conversions (conformance/elements.hpp, compiled for the device), the block's fixed-order
// tree sum, and the grid and scratch rules. Included by nvcc only.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "elements.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt::cuda::dev {

inline constexpr int kThreads = 256;
inline constexpr std::int64_t kMaxBlocks = 1024;
inline constexpr int kMaxDims = 16;

struct DD {
  double hi;
  double lo;
};

// hi + lo += a (the CPU drivers' compensated step; infinities and NaN: IEEE's sum).
__device__ inline void dd_add(DD& s, double a_hi, double a_lo) {
  if (!(fabs(s.hi) < HUGE_VAL) || !(fabs(a_hi) < HUGE_VAL)) {
    s.hi += a_hi;
    s.lo = 0.0;
    return;
  }
  const double t = s.hi + a_hi;
  const double bb = t - s.hi;
  const double e = (s.hi - (t - bb)) + (a_hi - bb);
  double lo = s.lo + a_lo + e;
  const double t2 = t + lo;
  lo = lo - (t2 - t);
  s.hi = t2;
  s.lo = lo;
}

// (hi + lo) / d rounded to double (nearly correctly).
__device__ inline double dd_div(double hi, double lo, double d) {
  const double q = hi / d;
  if (!(fabs(q) < HUGE_VAL) || d == 0) return (hi + lo) / d;
  const double r = fma(-q, d, hi) + lo;
  return q + r / d;
}

__device__ inline double load(const void* p, std::int32_t dtype, std::int64_t i) {
  switch (dtype) {
    case LB_FLOAT64: return static_cast<const double*>(p)[i];
    case LB_FLOAT32: return static_cast<const float*>(p)[i];
    case LB_FLOAT16: return conformance::half_to_double(static_cast<const std::uint16_t*>(p)[i]);
    case LB_BFLOAT16:
      return conformance::bfloat16_to_double(static_cast<const std::uint16_t*>(p)[i]);
    case LB_INT64: return static_cast<double>(static_cast<const std::int64_t*>(p)[i]);
    default: return __builtin_nan("");
  }
}

__device__ inline void store(void* p, std::int32_t dtype, std::int64_t i, double v) {
  switch (dtype) {
    case LB_FLOAT64: static_cast<double*>(p)[i] = v; break;
    case LB_FLOAT32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case LB_FLOAT16: static_cast<std::uint16_t*>(p)[i] = conformance::double_to_half(v); break;
    case LB_BFLOAT16: static_cast<std::uint16_t*>(p)[i] = conformance::double_to_bfloat16(v); break;
    default: break;
  }
}

// A tensor's shape and strides (in elements), for flat -> offset on the device.
struct Desc {
  std::int32_t ndim = 0;
  std::int64_t shape[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};
};

// Offset of the row-major flat index `flat` (the CPU drivers' offset_of / strided_offset).
__device__ inline std::int64_t offset_of(const Desc& t, std::int64_t flat) {
  std::int64_t off = 0, rest = flat;
  for (int d = t.ndim - 1; d >= 0; --d) {
    off += (rest % t.shape[d]) * t.strides[d];
    rest /= t.shape[d];
  }
  return off;
}

// Combines the block's per-thread values in a fixed tree; thread 0 gets the total. Every
// thread of the block must call it (it synchronizes).
__device__ inline DD block_sum(DD v) {
  __shared__ DD s[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  s[t] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (t < half) dd_add(s[t], s[t + half].hi, s[t + half].lo);
    __syncthreads();
  }
  const DD r = s[0];
  __syncthreads();  // s is reused by the next call
  return r;
}

// Blocks for n items, per_block per block: a function of n only (never of the device).
inline int grid_for(std::int64_t n, std::int64_t per_block = kThreads) {
  return static_cast<int>(std::clamp<std::int64_t>((n + per_block - 1) / per_block, 1, kMaxBlocks));
}

inline std::string text(cudaError_t e) {
  return e == cudaSuccess ? std::string() : std::string("CUDA: ") + cudaGetErrorString(e);
}

// Device buffers of one call, freed at the end of the call.
struct Buffers {
  void* p[16] = {};
  int n = 0;
  cudaError_t error = cudaSuccess;
  template <class T>
  T* alloc(std::size_t count) {
    if (error != cudaSuccess || n == 16) return nullptr;
    void* q = nullptr;
    error = cudaMalloc(&q, std::max<std::size_t>(count, 1) * sizeof(T));
    if (error != cudaSuccess) return nullptr;
    p[n++] = q;
    return static_cast<T*>(q);
  }
  template <class T>
  T* upload(const T* host, std::size_t count) {
    T* d = alloc<T>(count);
    if (d != nullptr && count > 0)
      error = cudaMemcpy(d, host, count * sizeof(T), cudaMemcpyHostToDevice);
    return error == cudaSuccess ? d : nullptr;
  }
  Buffers() = default;
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
  ~Buffers() {
    for (int k = 0; k < n; ++k) cudaFree(p[k]);
  }
};

// Gradient element e of an operand broadcast over `shape` = the sum of `full` (doubles over
// `shape`, contiguous) over the output elements that read it; grad_strides: the operand's
// contiguous strides seen in `shape` (0 along broadcast dimensions). Defined in driver.cu.
cudaError_t sum_back(const double* full, int ndim, const std::int64_t* shape,
                     const std::int64_t* grad_strides, std::int64_t grad_numel, void* dst,
                     std::int32_t dtype);

}  // namespace lossbench::opt::cuda::dev
