// The ABI of the CUDA backend (cuda.hpp). Argument checks and plans are the CPU backend's
// (plan.hpp for the elementwise losses; the checked calls of drivers/classification.hpp,
// ctc.hpp, multilabel.hpp for the others), run on a host description of the call: tensors keep
// their device pointers, except the few whose values the checks read (reads_values() below:
// binary_cross_entropy's input and target, gaussian_nll_loss's var, class-index targets and
// weights, CTC's targets and lengths, multilabel_margin_loss's target), which are copied to the
// host first. The kernels are in driver.cu (elementwise), classification.cu, ctc.cu and
// multilabel.cu.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cuda.hpp"
#include "driver.hpp"
#include "drivers/args.hpp"
#include "elements.hpp"
#include "families.hpp"
#include "plan.hpp"

namespace lossbench::opt {

namespace {

constexpr lb_device kDevice{LB_DEVICE_CUDA, 0};

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

enum class Family {
  elementwise,
  classification,
  ctc,
  multilabel_margin,
  multilabel_soft,
  pairwise,
  none
};

Family family_of(const char* loss) {
  if (loss == nullptr) return Family::none;
  if (plans_loss(loss)) return Family::elementwise;
  if (is_classification(loss)) return Family::classification;
  if (ctc::handles(loss)) return Family::ctc;
  const std::string_view l(loss);
  if (l == "multilabel_margin_loss") return Family::multilabel_margin;
  if (l == "multilabel_soft_margin_loss") return Family::multilabel_soft;
  if (pairwise::handles(loss)) return Family::pairwise;
  return Family::none;
}

// Do the CPU code's checks (or its plan) read the values of this input? Those are copied to the
// host; the others stay on the device and are only described.
bool reads_values(const lb_call& call, const lb_tensor& t) {
  if (t.name == nullptr) return false;
  const char* loss = call.loss;
  const std::string_view n(t.name);
  switch (family_of(loss)) {
    case Family::elementwise: return checks_values(loss, t.name);
    case Family::pairwise: {
      // The cosine losses' extreme-magnitude check reads every element of their inputs.
      if (std::string_view(loss) == "cosine_embedding_loss") return n != "target";
      if (std::string_view(loss) != "triplet_margin_with_distance_loss") return false;
      for (std::int32_t k = 0; k < call.num_params; ++k) {
        const lb_param& q = call.params[k];
        if (q.name != nullptr && std::string_view(q.name) == "distance_function" &&
            q.type == LB_PARAM_STRING && q.s != nullptr && std::string_view(q.s) == "cosine")
          return true;
      }
      return false;
    }
    case Family::classification:  // class indices (multi_margin_loss reads any dtype's bits)
      return n == "weight" || (n == "target" && (t.dtype == LB_INT64 ||
                                                 std::string_view(loss) == "multi_margin_loss"));
    case Family::ctc: return n == "targets" || n == "input_lengths" || n == "target_lengths";
    case Family::multilabel_margin: return n == "target";
    default: return false;
  }
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
    if (!reads_values(in, t)) continue;
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

// The device pointer of a tensor of the host view (nullptr for none).
const void* device_data(const lb_call& in, const HostView& v, const lb_tensor* t) {
  return t == nullptr ? nullptr : in.inputs[t - v.tensors.data()].data;
}

// An output or gradient tensor described as the CPU code's checks expect (on the host).
lb_tensor described(const lb_tensor& t) {
  lb_tensor d = t;
  d.device = {LB_DEVICE_CPU, 0};
  return d;
}

cuda::PairwiseData pairwise_data(const lb_call& in, const HostView& v) {
  cuda::PairwiseData d;
  for (std::size_t k = 0; k < v.tensors.size() && k < cuda::PairwiseData::kMax; ++k) {
    d.host[k] = &v.tensors[k];
    d.device[k] = in.inputs[k].data;
  }
  return d;
}

void refuse_many_classes(const multilabel::Margin& m) {
  if (m.dim > cuda::kMultilabelMaxClasses)
    unsupported("multilabel_margin_loss with more than " +
                std::to_string(cuda::kMultilabelMaxClasses) + " classes on CUDA");
}

void fail_on(const std::string& cuda_error) {
  if (!cuda_error.empty()) throw Failure{LB_INTERNAL_ERROR, cuda_error};
}

// The row losses' forward and backward: the CPU code's checks on the host view, then the kernels.
void row_forward(const lb_call& in, const HostView& v, const lb_tensor& output) {
  const lb_tensor out = described(output);
  switch (family_of(in.loss)) {
    case Family::classification: {
      ClassificationPlan p;
      build_classification(v.call, p);
      check_classification_output(p, out);
      const bool mean = p.reduction == ClassificationPlan::Reduction::mean;
      const double W = !p.prob && mean && p.loss != Loss::multi_margin_loss
                           ? classification_total_weight(p)
                           : 1.0;
      const cuda::ClassificationData d{device_data(in, v, p.input), device_data(in, v, p.target),
                                       device_data(in, v, p.weight)};
      fail_on(cuda::classification_forward(p, d, W, output));
      return;
    }
    case Family::ctc: {
      ctc::Call c;
      ctc::build(v.call, c);
      ctc::check_output(c, out);
      fail_on(cuda::ctc_forward(c, device_data(in, v, c.lp), output));
      return;
    }
    case Family::multilabel_margin: {
      multilabel::Margin m;
      multilabel::build(v.call, m);
      multilabel::check_output(m.c, m.none_shape, out);
      refuse_many_classes(m);
      fail_on(cuda::multilabel_margin_forward(m, device_data(in, v, m.c.input), output));
      return;
    }
    case Family::multilabel_soft: {
      multilabel::Soft s;
      multilabel::build(v.call, s);
      multilabel::check_output(s.c, s.out_shape, out);
      const cuda::SoftData d{device_data(in, v, s.c.input), device_data(in, v, s.c.target),
                             device_data(in, v, s.c.weight)};
      fail_on(cuda::multilabel_soft_forward(s, d, output));
      return;
    }
    case Family::pairwise: {
      pairwise::Call c;
      pairwise::build(v.call, c);
      pairwise::check_output(c, out);
      fail_on(cuda::pairwise_forward(c, pairwise_data(in, v), output));
      return;
    }
    default: unsupported(std::string("loss '") + (in.loss ? in.loss : "") + "'");
  }
}

void row_backward(const lb_call& in, const HostView& v, const lb_tensor* grad_output,
                  lb_tensor* grads, std::int32_t num_grads) {
  switch (family_of(in.loss)) {
    case Family::classification: {
      ClassificationPlan p;
      build_classification(v.call, p);
      const lb_tensor *gx = nullptr, *gt = nullptr, *gw = nullptr;
      match_classification_grads(p, grad_output, grads, num_grads, gx, gt, gw);
      const bool mean = p.reduction == ClassificationPlan::Reduction::mean;
      const double W = !p.prob && mean && p.loss != Loss::multi_margin_loss
                           ? classification_total_weight(p)
                           : 1.0;
      const cuda::ClassificationData d{device_data(in, v, p.input), device_data(in, v, p.target),
                                       device_data(in, v, p.weight)};
      fail_on(cuda::classification_backward(p, d, W, grad_output, gx, gt, gw));
      return;
    }
    case Family::ctc: {
      ctc::Call c;
      ctc::build(v.call, c);
      const lb_tensor* g = ctc::match_grads(c, grads, num_grads);
      if (g != nullptr) fail_on(cuda::ctc_backward(c, device_data(in, v, c.lp), grad_output, *g));
      return;
    }
    case Family::multilabel_margin: {
      multilabel::Margin m;
      multilabel::build(v.call, m);
      const lb_tensor* gx = multilabel::match_margin_grads(m, grads, num_grads);
      multilabel::check_grad_output(m.c, grad_output, m.none_shape);
      refuse_many_classes(m);
      if (gx != nullptr)
        fail_on(
            cuda::multilabel_margin_backward(m, device_data(in, v, m.c.input), grad_output, *gx));
      return;
    }
    case Family::multilabel_soft: {
      multilabel::Soft s;
      multilabel::build(v.call, s);
      lb_tensor *gx = nullptr, *gy = nullptr, *gw = nullptr;
      multilabel::match_soft_grads(s, grads, num_grads, gx, gy, gw);
      multilabel::check_grad_output(s.c, grad_output, s.out_shape);
      const cuda::SoftData d{device_data(in, v, s.c.input), device_data(in, v, s.c.target),
                             device_data(in, v, s.c.weight)};
      if (gx != nullptr || gy != nullptr || gw != nullptr)
        fail_on(cuda::multilabel_soft_backward(s, d, grad_output, gx, gy, gw));
      return;
    }
    case Family::pairwise: {
      pairwise::Call c;
      pairwise::build(v.call, c);
      lb_tensor* g[3] = {};
      pairwise::match_grads(v.call, c, grads, num_grads, g);
      pairwise::check_grad_output(c, grad_output);
      if (g[0] != nullptr || g[1] != nullptr || g[2] != nullptr)
        fail_on(cuda::pairwise_backward(c, pairwise_data(in, v), grad_output, g));
      return;
    }
    default: unsupported(std::string("loss '") + (in.loss ? in.loss : "") + "'");
  }
}

std::int32_t finish(const std::string& cuda_error, char* error, std::size_t size) {
  if (cuda_error.empty()) return LB_OK;
  set_error(error, size, cuda_error);
  return LB_INTERNAL_ERROR;
}

std::int32_t cuda_supports(const char* loss, std::int32_t dtype, lb_device device, const char*) {
  if (!availability().ok || device.type != LB_DEVICE_CUDA || device.index != 0) return 0;
  return family_of(loss) != Family::none && dtype >= LB_FLOAT64 && dtype <= LB_BFLOAT16 ? 1 : 0;
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
  if (status == LB_OK && family_of(call->loss) != Family::elementwise)
    return guarded(error, size, [&] { row_forward(*call, v, *output); });
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
  if (status == LB_OK && family_of(call->loss) != Family::elementwise)
    return guarded(error, size, [&] { row_backward(*call, v, grad_output, grads, num_grads); });
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
      kDevice,        cuda_alloc,      cuda_free,     cuda_copy,
      nullptr};  // forward_backward: the caller makes the two calls
  return &table;
}

}  // namespace lossbench::opt
