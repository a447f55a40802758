// The ABI of the CUDA backend (cuda.hpp). Argument checks and plans are the CPU backend's
// (plan.hpp), run on a host description of the call: tensors keep their device pointers, except
// the few whose values the checks read (binary_cross_entropy's input and target,
// gaussian_nll_loss's var), which are copied to the host for the check. The kernels are in
// driver.cu.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda.hpp"
#include "driver.hpp"
#include "elements.hpp"
#include "plan.hpp"

namespace lossbench::opt {

namespace {

constexpr lb_device kDevice{LB_DEVICE_CUDA, 0};

void set_error(char* error, std::size_t size, const std::string& m) {
  if (error != nullptr && size > 0) std::snprintf(error, size, "%s", m.c_str());
}

struct Availability {
  bool ok = false;
  std::string version;
};

const Availability& availability() {
  static const Availability a = [] {
    Availability r;
    std::string why;
    r.ok = cuda::device_count(&why) > 0;
    r.version = r.ok ? "lossbench CUDA 0.1 (" + cuda::device_name() + ")"
                     : "lossbench CUDA 0.1: no CUDA device (" + why + ")";
    return r;
  }();
  return a;
}

// The host description of the call's inputs: shapes and strides as given, device pointers,
// except host copies of the tensors whose values the argument checks read.
struct HostView {
  std::vector<lb_tensor> tensors;
  std::vector<std::vector<unsigned char>> copies;
  lb_call call{};
};

std::int32_t host_view(const lb_call& in, HostView& v, std::string& error) {
  if (in.device.type != LB_DEVICE_CUDA || in.device.index != 0) {
    error = "the cuda backend takes tensors on CUDA device 0";
    return LB_UNSUPPORTED;
  }
  v.tensors.assign(in.inputs, in.inputs + in.num_inputs);
  v.copies.resize(v.tensors.size());
  for (std::size_t k = 0; k < v.tensors.size(); ++k) {
    lb_tensor& t = v.tensors[k];
    if (t.device.type != LB_DEVICE_CUDA || t.device.index != 0) {
      error = "tensors must be on CUDA device 0";
      return LB_UNSUPPORTED;
    }
    t.device = {LB_DEVICE_CPU, 0};
    if (!checks_values(in.loss, t.name)) continue;
    // The span of storage the tensor covers (strides may be negative or zero).
    std::int64_t lo = 0, hi = 0;
    bool empty = false;
    for (std::int32_t d = 0; d < t.ndim; ++d) {
      if (t.shape[d] == 0) empty = true;
      const std::int64_t reach = (t.shape[d] - 1) * t.strides[d];
      (reach < 0 ? lo : hi) += reach;
    }
    if (empty) continue;
    const std::size_t es = conformance::element_size(t.dtype);
    auto& c = v.copies[k];
    c.resize(static_cast<std::size_t>(hi - lo + 1) * es);
    const auto* first =
        static_cast<const unsigned char*>(t.data) + lo * static_cast<std::int64_t>(es);
    const cudaError_t e = cudaMemcpy(c.data(), first, c.size(), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
      error = std::string("CUDA: ") + cudaGetErrorString(e);
      return LB_INTERNAL_ERROR;
    }
    t.data = c.data() + (-lo) * static_cast<std::int64_t>(es);
  }
  v.call = in;
  v.call.inputs = v.tensors.data();
  v.call.device = {LB_DEVICE_CPU, 0};
  return LB_OK;
}

// The device pointer of each formula input of a plan made on `v`.
void device_pointers(const lb_call& in, const HostView& v, const PlannedCall& pc,
                     const void** data) {
  for (int j = 0; j < kMaxInputs; ++j) {
    data[j] = nullptr;
    if (pc.inputs[j] == nullptr) continue;
    data[j] = in.inputs[pc.inputs[j] - v.tensors.data()].data;
  }
}

std::int32_t finish(const std::string& cuda_error, char* error, std::size_t size) {
  if (cuda_error.empty()) return LB_OK;
  set_error(error, size, cuda_error);
  return LB_INTERNAL_ERROR;
}

std::int32_t cuda_supports(const char* loss, std::int32_t dtype, lb_device device, const char*) {
  if (!availability().ok || device.type != LB_DEVICE_CUDA || device.index != 0) return 0;
  return plans_loss(loss) && dtype >= LB_FLOAT64 && dtype <= LB_BFLOAT16 ? 1 : 0;
}

std::int32_t cuda_forward(const lb_call* call, lb_tensor* output, char* error, std::size_t size) {
  std::string message;
  if (!availability().ok) {
    set_error(error, size, "no CUDA device");
    return LB_UNSUPPORTED;
  }
  HostView v;
  PlannedCall pc;
  lb_tensor out = *output;
  out.device = {LB_DEVICE_CPU, 0};
  std::int32_t status = host_view(*call, v, message);
  if (status == LB_OK) status = plan_forward(v.call, out, pc, message);
  if (status != LB_OK) {
    set_error(error, size, message);
    return status;
  }
  const void* data[kMaxInputs];
  device_pointers(*call, v, pc, data);
  return finish(cuda::forward(cuda::to_dev_plan(pc.plan, data), output->data, output->dtype), error,
                size);
}

std::int32_t cuda_backward(const lb_call* call, const lb_tensor* grad_output, lb_tensor* grads,
                           std::int32_t num_grads, char* error, std::size_t size) {
  std::string message;
  if (!availability().ok) {
    set_error(error, size, "no CUDA device");
    return LB_UNSUPPORTED;
  }
  HostView v;
  PlannedCall pc;
  std::int32_t status = host_view(*call, v, message);
  if (status == LB_OK) status = plan_backward(v.call, grad_output, grads, num_grads, pc, message);
  if (status != LB_OK) {
    set_error(error, size, message);
    return status;
  }
  const void* data[kMaxInputs];
  device_pointers(*call, v, pc, data);
  const cuda::DevPlan plan = cuda::to_dev_plan(pc.plan, data);
  cuda::DevOperand g;  // ones
  if (grad_output != nullptr) {
    g = pc.plan.reduce ? cuda::DevOperand{}
                       : cuda::to_dev_operand(make_operand(*grad_output, pc.plan.shape),
                                              grad_output->data, plan.ndim);
    g.data = grad_output->data;
    g.dtype = grad_output->dtype;
  }
  cuda::DevGrad dg[kMaxInputs];
  for (int j = 0; j < kMaxInputs; ++j) {
    if (pc.grads[j] == nullptr) continue;
    dg[j].data = pc.grads[j]->data;
    dg[j].dtype = pc.grads[j]->dtype;
    dg[j].numel = 1;
    for (std::int32_t d = 0; d < pc.grads[j]->ndim; ++d) dg[j].numel *= pc.grads[j]->shape[d];
  }
  return finish(cuda::backward(plan, g, dg), error, size);
}

void* cuda_alloc(lb_device, std::size_t bytes) {
  void* p = nullptr;
  return cudaMalloc(&p, bytes) == cudaSuccess ? p : nullptr;
}

void cuda_free(lb_device, void* p) { cudaFree(p); }

std::int32_t cuda_copy(void* dst, lb_device, const void* src, lb_device, std::size_t bytes) {
  return cudaMemcpy(dst, src, bytes, cudaMemcpyDefault) == cudaSuccess ? LB_OK : LB_INTERNAL_ERROR;
}

}  // namespace

bool cuda_available() { return availability().ok; }

const lb_impl* cuda_impl() {
  static const lb_impl table = {
      LB_ABI_VERSION, sizeof(lb_impl), "cuda",        availability().version.c_str(),
      cuda_supports,  cuda_forward,    cuda_backward,
      nullptr,  // calls are synchronous
      kDevice,        cuda_alloc,      cuda_free,     cuda_copy};
  return &table;
}

}  // namespace lossbench::opt
