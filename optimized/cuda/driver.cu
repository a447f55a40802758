// The CUDA elementwise driver (driver.hpp). One grid-stride kernel per loss and direction, a
// template over the loss's formula (optimized/formulas/, the same headers as the CPU backend),
// evaluated in double whatever the dtype and rounded once to the output dtype with the
// scorer's own conversions (conformance/elements.hpp, compiled for the device).
//
// Determinism: the grid is a function of the element count only (never of the device), each
// thread visits its elements in increasing order, and every sum is a double-double (TwoSum)
// combined in a fixed tree: per-thread sums -> one partial per block (a buffer) -> one block
// combines the partials in order. No atomics. Gradients of broadcast inputs are written in
// double to a scratch buffer, then each gradient element is summed by one block the same way.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "device.cuh"
#include "driver.hpp"
#include "elements.hpp"

namespace lossbench::opt::cuda {

namespace {

using dev::block_sum;
using dev::DD;
using dev::dd_add;
using dev::dd_div;
using dev::grid_for;
using dev::kMaxBlocks;
using dev::kThreads;
using dev::load;
using dev::store;
using dev::text;

// Element i (flat, of the output's index space) of an operand.
__device__ double operand(const DevOperand& op, int ndim, const std::int64_t* shape,
                          std::int64_t i) {
  if (op.data == nullptr) return op.constant;
  if (op.dense) return load(op.data, op.dtype, i);
  std::int64_t off = 0, rest = i;
  for (int d = ndim - 1; d >= 0; --d) {
    off += (rest % shape[d]) * op.strides[d];
    rest /= shape[d];
  }
  return load(op.data, op.dtype, off);
}

template <class F>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const __grid_constant__ DevPlan p, void* out, std::int32_t out_dtype,
                   DD* partials) {
  double in[kMaxInputs] = {};
  DD acc{0.0, 0.0};
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < p.numel; i += stride) {
    for (int j = 0; j < F::kInputs; ++j) in[j] = operand(p.in[j], p.ndim, p.shape, i);
    const double v = F::template forward<double>(in, p.params);
    if (p.reduce)
      dd_add(acc, v, 0.0);
    else
      store(out, out_dtype, i, v);
  }
  if (!p.reduce) return;
  const DD b = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = b;
}

// One block: the partials in order, then the mean's division and the one rounding.
__global__ void __launch_bounds__(kThreads)
    final_kernel(const DD* partials, int n, double divisor, void* out, std::int32_t out_dtype) {
  DD acc{0.0, 0.0};
  for (int k = static_cast<int>(threadIdx.x); k < n; k += kThreads)
    dd_add(acc, partials[k].hi, partials[k].lo);
  const DD s = block_sum(acc);
  if (threadIdx.x != 0) return;
  const double v = divisor == 1.0 ? s.hi + s.lo : dd_div(s.hi, s.lo, divisor);
  store(out, out_dtype, 0, v);
}

struct BackwardArgs {
  DevOperand g;                         // grad_output
  void* dst[kMaxInputs] = {};           // gradient j: its tensor, or the double scratch
  std::int32_t dtype[kMaxInputs] = {};  // of dst[j] (LB_FLOAT64 for the scratch)
};

template <class F>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const __grid_constant__ DevPlan p, const __grid_constant__ BackwardArgs a) {
  double in[kMaxInputs] = {};
  double out[kMaxInputs] = {};
  // Reduced: d(mean)/d(element) = grad_output / divisor for every element.
  const double g_reduced =
      p.reduce ? (a.g.data != nullptr ? load(a.g.data, a.g.dtype, 0) : 1.0) / p.divisor : 0.0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < p.numel; i += stride) {
    for (int j = 0; j < F::kInputs; ++j) in[j] = operand(p.in[j], p.ndim, p.shape, i);
    const double g = p.reduce ? g_reduced : operand(a.g, p.ndim, p.shape, i);
    F::template backward<double>(in, g, p.params, out);
    for (int j = 0; j < F::kInputs; ++j)
      if (a.dst[j] != nullptr) store(a.dst[j], a.dtype[j], i, out[j]);
  }
}

struct SumBackArgs {
  const double* scratch = nullptr;  // the gradient per output element
  void* dst = nullptr;
  std::int32_t dtype = LB_FLOAT64;
  std::int32_t ndim = 0;
  std::int64_t numel = 0;  // of the gradient
  std::int64_t count = 1;  // output elements per gradient element
  std::int64_t shape[kMaxDims] = {};
  std::int64_t grad_strides[kMaxDims] = {};
  std::int64_t out_strides[kMaxDims] = {};  // contiguous strides of the output
  std::int32_t num_bdims = 0;               // the broadcast dimensions
  std::int32_t bdims[kMaxDims] = {};
};

// Gradient element e = the sum over the output elements that read input element e; one block
// per gradient element, each thread a fixed strided subset, then the fixed tree.
__global__ void __launch_bounds__(kThreads) sum_back_kernel(const __grid_constant__ SumBackArgs s) {
  for (std::int64_t e = blockIdx.x; e < s.numel; e += gridDim.x) {
    std::int64_t base = 0;
    for (int d = 0; d < s.ndim; ++d)
      if (s.grad_strides[d] != 0) base += (e / s.grad_strides[d]) % s.shape[d] * s.out_strides[d];
    DD acc{0.0, 0.0};
    for (std::int64_t b = threadIdx.x; b < s.count; b += kThreads) {
      std::int64_t off = base, rest = b;
      for (int k = s.num_bdims - 1; k >= 0; --k) {
        const int d = s.bdims[k];
        off += (rest % s.shape[d]) * s.out_strides[d];
        rest /= s.shape[d];
      }
      dd_add(acc, s.scratch[off], 0.0);
    }
    const DD t = block_sum(acc);
    if (threadIdx.x == 0) store(s.dst, s.dtype, e, t.hi + t.lo);
  }
}

// ---------------------------------------------------------------- host side

// Device scratch, grown on demand and kept (calls come from one thread at a time).
struct Scratch {
  void* p = nullptr;
  std::size_t bytes = 0;
  cudaError_t reserve(std::size_t n) {
    if (n <= bytes) return cudaSuccess;
    if (p != nullptr) cudaFree(p);
    p = nullptr;
    bytes = 0;
    const cudaError_t e = cudaMalloc(&p, n);
    if (e == cudaSuccess) bytes = n;
    return e;
  }
};

Scratch& partial_scratch() {
  static Scratch s;
  return s;
}

template <class F>
cudaError_t launch_forward(const DevPlan& p, void* out, std::int32_t out_dtype) {
  const int grid = grid_for(p.numel);
  DD* partials = nullptr;
  if (p.reduce) {
    if (const cudaError_t e = partial_scratch().reserve(sizeof(DD) * kMaxBlocks)) return e;
    partials = static_cast<DD*>(partial_scratch().p);
  }
  forward_kernel<F><<<grid, kThreads>>>(p, out, out_dtype, partials);
  if (p.reduce) final_kernel<<<1, kThreads>>>(partials, grid, p.divisor, out, out_dtype);
  return cudaGetLastError();
}

template <class F>
cudaError_t launch_backward(const DevPlan& p, const BackwardArgs& a) {
  backward_kernel<F><<<grid_for(p.numel), kThreads>>>(p, a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t dev::sum_back(const double* full, int ndim, const std::int64_t* shape,
                          const std::int64_t* grad_strides, std::int64_t grad_numel, void* dst,
                          std::int32_t dtype) {
  if (grad_numel == 0) return cudaSuccess;
  SumBackArgs s;
  s.scratch = full;
  s.dst = dst;
  s.dtype = dtype;
  s.ndim = ndim;
  s.numel = grad_numel;
  std::int64_t stride = 1, total = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    s.shape[d] = shape[d];
    s.grad_strides[d] = grad_strides[d];
    s.out_strides[d] = stride;
    stride *= shape[d];
    total *= shape[d];
  }
  for (int d = 0; d < ndim; ++d)
    if (s.grad_strides[d] == 0 && s.shape[d] > 1) {
      s.bdims[s.num_bdims++] = d;
      s.count *= s.shape[d];
    }
  if (total == 0)  // an empty broadcast: the gradient is zeros (all bits 0 in every dtype)
    return cudaMemset(dst, 0,
                      static_cast<std::size_t>(grad_numel) * conformance::element_size(dtype));
  const int grid = static_cast<int>(std::min<std::int64_t>(grad_numel, 65535));
  sum_back_kernel<<<grid, kThreads>>>(s);
  return cudaGetLastError();
}

DevOperand to_dev_operand(const Operand& op, const void* device_data, int ndim) {
  DevOperand d;
  d.data = op.tensor != nullptr ? device_data : nullptr;
  d.dtype = op.tensor != nullptr ? op.tensor->dtype : LB_FLOAT64;
  d.dense = op.dense ? 1 : 0;
  d.constant = op.constant;
  for (int k = 0; k < ndim && k < kMaxDims; ++k) {
    d.strides[k] = op.strides[static_cast<std::size_t>(k)];
    d.grad_strides[k] = op.grad_strides[static_cast<std::size_t>(k)];
  }
  return d;
}

DevPlan to_dev_plan(const Plan& plan, const void* const* device_data) {
  DevPlan d;
  d.loss = static_cast<std::int32_t>(plan.loss);
  d.ndim = static_cast<std::int32_t>(plan.shape.size());
  d.num_inputs = plan.num_inputs;
  d.reduce = plan.reduce ? 1 : 0;
  d.params = plan.params;
  d.numel = plan.numel;
  d.divisor = plan.divisor;
  for (int k = 0; k < d.ndim; ++k) d.shape[k] = plan.shape[static_cast<std::size_t>(k)];
  for (int j = 0; j < plan.num_inputs; ++j)
    d.in[j] = to_dev_operand(plan.in[j], device_data[j], d.ndim);
  return d;
}

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why != nullptr) *why = cudaGetErrorString(e);
    cudaGetLastError();  // clear it
    return 0;
  }
  if (n == 0 && why != nullptr) *why = "cudaGetDeviceCount returned 0";
  return n;
}

std::string device_name() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "unknown device";
  return std::string(prop.name) + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
}

std::string forward(const DevPlan& plan, void* out, std::int32_t out_dtype) {
  if (plan.numel == 0 && !plan.reduce) return {};
  cudaError_t e = cudaErrorInvalidValue;
  switch (static_cast<Loss>(plan.loss)) {
#define LOSSBENCH_CUDA_FORWARD(id, F) \
  case Loss::id: e = launch_forward<formulas::F>(plan, out, out_dtype); break;
    LOSSBENCH_OPT_LOSSES(LOSSBENCH_CUDA_FORWARD)
#undef LOSSBENCH_CUDA_FORWARD
    default: break;
  }
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return text(e);
}

std::string backward(const DevPlan& plan, const DevOperand& g, const DevGrad* grads) {
  BackwardArgs a;
  a.g = g;
  // Gradients of inputs that are not dense (broadcast or strided): doubles per output element
  // first, summed back afterwards.
  std::size_t scratch_doubles = 0;
  std::size_t scratch_at[kMaxInputs] = {};
  for (int j = 0; j < plan.num_inputs; ++j) {
    if (grads[j].data == nullptr || plan.in[j].dense) continue;
    scratch_at[j] = scratch_doubles;
    scratch_doubles += static_cast<std::size_t>(std::max<std::int64_t>(plan.numel, 1));
  }
  void* scratch = nullptr;
  if (scratch_doubles > 0) {
    if (const cudaError_t e = cudaMalloc(&scratch, scratch_doubles * sizeof(double)))
      return text(e);
  }
  for (int j = 0; j < plan.num_inputs; ++j) {
    if (grads[j].data == nullptr) continue;
    if (plan.in[j].dense) {
      a.dst[j] = grads[j].data;
      a.dtype[j] = grads[j].dtype;
    } else {
      a.dst[j] = static_cast<double*>(scratch) + scratch_at[j];
      a.dtype[j] = LB_FLOAT64;
    }
  }
  cudaError_t e = cudaSuccess;
  if (plan.numel > 0) {
    e = cudaErrorInvalidValue;
    switch (static_cast<Loss>(plan.loss)) {
#define LOSSBENCH_CUDA_BACKWARD(id, F) \
  case Loss::id: e = launch_backward<formulas::F>(plan, a); break;
      LOSSBENCH_OPT_LOSSES(LOSSBENCH_CUDA_BACKWARD)
#undef LOSSBENCH_CUDA_BACKWARD
      default: break;
    }
  }
  for (int j = 0; j < plan.num_inputs && e == cudaSuccess; ++j) {
    if (grads[j].data == nullptr || plan.in[j].dense || grads[j].numel == 0) continue;
    e = dev::sum_back(static_cast<const double*>(a.dst[j]), plan.ndim, plan.shape,
                      plan.in[j].grad_strides, grads[j].numel, grads[j].data, grads[j].dtype);
  }
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (scratch != nullptr) cudaFree(scratch);
  return text(e);
}

}  // namespace lossbench::opt::cuda
