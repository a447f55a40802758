#pragma once
// The CUDA elementwise driver (driver.cu): plain descriptions of a planned call with device
// pointers (DevPlan, built from the CPU backend's Plan by to_dev_plan), and the host functions
// that launch the kernels. Included by nvcc (driver.cu, the benchmark) and by the host compiler
// (api.cpp), so it names no CUDA type.
#include <cstdint>
#include <string>

#include "drivers/elementwise.hpp"
#include "kernels.hpp"

namespace lossbench::opt::cuda {

inline constexpr int kMaxDims = 16;

// One formula input on the device: a tensor viewed with the output's shape, or a constant.
struct DevOperand {
  const void* data = nullptr;  // device pointer; nullptr: `constant`
  std::int32_t dtype = LB_FLOAT64;
  std::int32_t dense = 0;  // contiguous with the output's shape (element i at data[i])
  double constant = 1.0;
  std::int64_t strides[kMaxDims] = {};       // over the output shape, in elements
  std::int64_t grad_strides[kMaxDims] = {};  // of a contiguous gradient of this input
};

struct DevPlan {
  std::int32_t loss = 0;  // Loss
  std::int32_t ndim = 0;
  std::int32_t num_inputs = 0;
  std::int32_t reduce = 0;
  formulas::Params params;
  std::int64_t numel = 0;
  double divisor = 1.0;
  std::int64_t shape[kMaxDims] = {};
  DevOperand in[kMaxInputs];
};

// A gradient tensor to write (contiguous, the input's shape), or none (data == nullptr).
struct DevGrad {
  void* data = nullptr;
  std::int32_t dtype = LB_FLOAT64;
  std::int64_t numel = 0;
};

// The operand of a host-planned input whose data lives at `device_data`.
DevOperand to_dev_operand(const Operand& op, const void* device_data, int ndim);
// The plan with device pointers: device_data[j] is formula input j's device pointer (ignored
// for constant operands).
DevPlan to_dev_plan(const Plan& plan, const void* const* device_data);

// Number of CUDA devices; 0 when there is none or the runtime fails (`why` says which).
int device_count(std::string* why = nullptr);
// "NVIDIA H200, sm_90" for device 0.
std::string device_name();

// Forward: the loss into `out` (contiguous, the output's shape, or one element when reduced).
// Synchronous. Returns "" or the CUDA error's text.
std::string forward(const DevPlan& plan, void* out, std::int32_t out_dtype);
// Backward: grad_output (device; nullptr: ones) with the output's shape (one element when
// reduced), described by `g` (its data is grad_output); grads[j] for formula input j.
std::string backward(const DevPlan& plan, const DevOperand& g, const DevGrad* grads);

}  // namespace lossbench::opt::cuda
