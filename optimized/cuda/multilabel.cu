// The CUDA multilabel driver (families.hpp): multilabel_margin_loss and
// multilabel_soft_margin_loss on the CPU driver's checked calls (drivers/multilabel.hpp) with
// formulas/multilabel_margin_loss.hpp and multilabel_soft_margin_loss.hpp.
//
// multilabel_margin_loss: one block per sample; the target list (validated on the host) marks
// the listed classes in shared memory; each thread takes classes d in a fixed stride and sums
// the hinges of its non-listed d against every listed entry (double-double), the block combines
// them in a fixed tree. The gradient needs no cross-thread sum: the signed count of active
// pairs of an element is computed by its own thread (listed: minus its multiplicity times its
// active non-listed partners; non-listed: its active listed partners).
// multilabel_soft_margin_loss: one thread per sample (its classes summed in order); the
// gradients of broadcast target/weight go through a double buffer summed back per element.
// Reductions: per-block partials combined in order by one block; no atomics.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device.cuh"
#include "families.hpp"
#include "formulas/multilabel_margin_loss.hpp"
#include "formulas/multilabel_soft_margin_loss.hpp"

namespace lossbench::opt::cuda {

namespace {

using dev::block_sum;
using dev::DD;
using dev::dd_add;
using dev::dd_div;
using dev::Desc;
using dev::kThreads;
using dev::load;
using dev::offset_of;
using dev::store;
using formulas::MultilabelMarginLoss;
using formulas::MultilabelSoftMarginLoss;

enum Red : int { kNone = 0, kSum = 1, kMean = 2 };

struct Args {
  int reduction = kMean;
  std::int64_t n = 0, dim = 1;  // samples, classes
  const void* x = nullptr;
  std::int32_t x_dtype = LB_FLOAT32;
  Desc xd;  // input (margin), or shape = the broadcast shape with input's view strides (soft)
  const std::int64_t* t = nullptr;  // margin: (n, dim) targets
  // soft
  const void* y = nullptr;
  std::int32_t y_dtype = LB_FLOAT32;
  Desc yd;
  const void* w = nullptr;
  std::int32_t w_dtype = LB_FLOAT32;
  Desc wd;
  std::int64_t reduced = 1, inner = 1;
  double classes = 0;
  // output / partials
  void* out = nullptr;
  std::int32_t out_dtype = LB_FLOAT32;
  Desc od;
  DD* partials = nullptr;
  // backward
  const void* g = nullptr;
  std::int32_t g_dtype = LB_FLOAT64;
  Desc gd;
  bool g_each = false;
  void* gx = nullptr;
  std::int32_t gx_dtype = LB_FLOAT64;
  Desc gxd;
  void* gy = nullptr;  // (soft: destination, maybe the double buffer)
  std::int32_t gy_dtype = LB_FLOAT64;
  void* gw = nullptr;
  std::int32_t gw_dtype = LB_FLOAT64;
  bool gx_direct = true, gy_direct = true, gw_direct = true;  // soft: own shape == broadcast
  Desc gxo, gyo, gwo;  // soft: the gradient tensors (direct stores)
};

__device__ double upstream(const Args& a, std::int64_t i) {
  double g = a.g == nullptr ? 1.0 : load(a.g, a.g_dtype, a.g_each ? offset_of(a.gd, i) : 0);
  if (a.reduction == kMean) g = g / static_cast<double>(a.n);
  return g;
}

// Row r's input element k.
__device__ double mx(const Args& a, std::int64_t r, std::int64_t k) {
  return load(a.x, a.x_dtype, offset_of(a.xd, r * a.dim + k));
}

// Marks the listed classes of row r (dynamic shared memory, dim bytes); returns the list length.
__device__ std::int64_t mark(const Args& a, std::int64_t r, unsigned char* is_target) {
  __shared__ std::int64_t listed;
  const std::int64_t* tr = a.t + r * a.dim;
  for (std::int64_t k = threadIdx.x; k < a.dim; k += blockDim.x) is_target[k] = 0;
  if (threadIdx.x == 0) {
    std::int64_t l = 0;
    while (l < a.dim && tr[l] >= 0) ++l;
    listed = l;
  }
  __syncthreads();
  const std::int64_t l = listed;
  for (std::int64_t k = threadIdx.x; k < l; k += blockDim.x) is_target[tr[k]] = 1;
  __syncthreads();
  return l;
}

__global__ void __launch_bounds__(kThreads) margin_forward_kernel(const __grid_constant__ Args a) {
  extern __shared__ unsigned char is_target[];
  DD acc{0.0, 0.0};
  for (std::int64_t r = blockIdx.x; r < a.n; r += gridDim.x) {
    const std::int64_t listed = mark(a, r, is_target);
    const std::int64_t* tr = a.t + r * a.dim;
    DD h{0.0, 0.0};
    for (std::int64_t d = threadIdx.x; d < a.dim; d += blockDim.x) {
      if (is_target[d]) continue;
      const double xd = mx(a, r, d);
      for (std::int64_t k = 0; k < listed; ++k) {
        const double z = MultilabelMarginLoss::z(mx(a, r, tr[k]), xd);
        if (MultilabelMarginLoss::active(z)) dd_add(h, MultilabelMarginLoss::term(z), 0.0);
      }
    }
    h = block_sum(h);
    if (threadIdx.x == 0) {
      const double v = dd_div(h.hi, h.lo, static_cast<double>(a.dim));
      if (a.reduction == kNone)
        store(a.out, a.out_dtype, offset_of(a.od, r), v);
      else
        dd_add(acc, v, 0.0);
    }
    __syncthreads();  // is_target is rewritten for the next row
  }
  if (a.reduction != kNone && threadIdx.x == 0) a.partials[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kThreads) margin_backward_kernel(const __grid_constant__ Args a) {
  extern __shared__ unsigned char is_target[];
  const double C = static_cast<double>(a.dim);
  for (std::int64_t r = blockIdx.x; r < a.n; r += gridDim.x) {
    const std::int64_t listed = mark(a, r, is_target);
    const std::int64_t* tr = a.t + r * a.dim;
    const double gr = upstream(a, r);
    for (std::int64_t e = threadIdx.x; e < a.dim; e += blockDim.x) {
      const double xe = mx(a, r, e);
      double count = 0.0;
      if (is_target[e]) {
        double mult = 0.0, active = 0.0;
        for (std::int64_t k = 0; k < listed; ++k) mult += tr[k] == e ? 1.0 : 0.0;
        for (std::int64_t d = 0; d < a.dim; ++d)
          if (!is_target[d] &&
              MultilabelMarginLoss::active(MultilabelMarginLoss::z(xe, mx(a, r, d))))
            active += 1.0;
        count = -(mult * active);
      } else {
        for (std::int64_t k = 0; k < listed; ++k)
          if (MultilabelMarginLoss::active(MultilabelMarginLoss::z(mx(a, r, tr[k]), xe)))
            count += 1.0;
      }
      store(a.gx, a.gx_dtype, offset_of(a.gxd, r * a.dim + e),
            MultilabelMarginLoss::grad(count, gr, C));
    }
    __syncthreads();
  }
}

// One block: the partials in order, then the mean's division.
__global__ void __launch_bounds__(kThreads)
    final_kernel(const __grid_constant__ Args a, int blocks) {
  DD s{0.0, 0.0};
  for (int k = static_cast<int>(threadIdx.x); k < blocks; k += kThreads)
    dd_add(s, a.partials[k].hi, a.partials[k].lo);
  s = block_sum(s);
  if (threadIdx.x != 0) return;
  store(a.out, a.out_dtype, 0,
        a.reduction == kMean ? dd_div(s.hi, s.lo, static_cast<double>(a.n)) : s.hi + s.lo);
}

// Soft: flat index (in the broadcast shape) of class r of sample o, and back.
__device__ std::int64_t soft_flat(const Args& a, std::int64_t o, std::int64_t r) {
  return ((o / a.inner) * a.reduced + r) * a.inner + o % a.inner;
}

__global__ void __launch_bounds__(kThreads) soft_forward_kernel(const __grid_constant__ Args a) {
  DD acc{0.0, 0.0};
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < a.n;
       o += stride) {
    DD h{0.0, 0.0};
    for (std::int64_t r = 0; r < a.reduced; ++r) {
      const std::int64_t i = soft_flat(a, o, r);
      const double l = MultilabelSoftMarginLoss::term(load(a.x, a.x_dtype, offset_of(a.xd, i)),
                                                      load(a.y, a.y_dtype, offset_of(a.yd, i)));
      dd_add(h, a.w != nullptr ? l * load(a.w, a.w_dtype, offset_of(a.wd, i)) : l, 0.0);
    }
    const double v = dd_div(h.hi, h.lo, a.classes);  // C = 0: 0 / 0 = NaN
    if (a.reduction == kNone)
      store(a.out, a.out_dtype, offset_of(a.od, o), v);
    else
      dd_add(acc, v, 0.0);
  }
  if (a.reduction == kNone) return;
  const DD b = block_sum(acc);
  if (threadIdx.x == 0) a.partials[blockIdx.x] = b;
}

__global__ void __launch_bounds__(kThreads)
    soft_backward_kernel(const __grid_constant__ Args a, std::int64_t total) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const std::int64_t o = (i / (a.reduced * a.inner)) * a.inner + i % a.inner;
    const double h = upstream(a, o) / a.classes;  // backward of sum(dim) / C
    const double x = load(a.x, a.x_dtype, offset_of(a.xd, i));
    const double y = load(a.y, a.y_dtype, offset_of(a.yd, i));
    const double w = a.w != nullptr ? load(a.w, a.w_dtype, offset_of(a.wd, i)) : 1.0;
    const double gl = a.w != nullptr ? h * w : h;
    if (a.gx != nullptr) {
      const double v = MultilabelSoftMarginLoss::grad_input(x, y, gl);
      store(a.gx, a.gx_dtype, a.gx_direct ? offset_of(a.gxo, i) : i, v);
    }
    if (a.gy != nullptr)
      store(a.gy, a.gy_dtype, a.gy_direct ? offset_of(a.gyo, i) : i,
            MultilabelSoftMarginLoss::grad_target(x, gl));
    if (a.gw != nullptr)
      store(a.gw, a.gw_dtype, a.gw_direct ? offset_of(a.gwo, i) : i,
            MultilabelSoftMarginLoss::grad_weight(MultilabelSoftMarginLoss::term(x, y), h));
  }
}

Desc desc_of(const lb_tensor& t) {
  Desc d;
  d.ndim = t.ndim;
  for (std::int32_t k = 0; k < t.ndim && k < dev::kMaxDims; ++k) {
    d.shape[k] = t.shape[k];
    d.strides[k] = t.strides[k];
  }
  return d;
}

Desc view_desc(const Shape& shape, const Shape& strides) {
  Desc d;
  d.ndim = static_cast<std::int32_t>(shape.size());
  for (std::size_t k = 0; k < shape.size() && k < dev::kMaxDims; ++k) {
    d.shape[k] = shape[k];
    d.strides[k] = strides[k];
  }
  return d;
}

int reduction_of(const multilabel::Common& c) {
  using R = multilabel::Common::Reduction;
  return c.reduction == R::none ? kNone : (c.reduction == R::sum ? kSum : kMean);
}

void set_upstream(Args& a, const lb_tensor* go) {
  if (go == nullptr) return;
  a.g = go->data;
  a.g_dtype = go->dtype;
  a.gd = desc_of(*go);
  a.g_each = a.reduction == kNone && go->ndim > 0;
}

std::string finish(cudaError_t e) {
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return dev::text(e);
}

Args margin_args(const multilabel::Margin& m, const void* input, dev::Buffers& buf) {
  Args a;
  a.reduction = reduction_of(m.c);
  a.n = m.n;
  a.dim = m.dim;
  a.x = input;
  a.x_dtype = m.c.input->dtype;
  a.xd = desc_of(*m.c.input);
  a.t = buf.upload(m.targets(), static_cast<std::size_t>(m.n * m.dim));
  return a;
}

Args soft_args(const multilabel::Soft& s, const SoftData& d) {
  Args a;
  a.reduction = reduction_of(s.c);
  a.n = s.samples();
  a.x = d.input;
  a.x_dtype = s.c.input->dtype;
  a.xd = view_desc(s.shape, s.sx);
  a.y = d.target;
  a.y_dtype = s.c.target->dtype;
  a.yd = view_desc(s.shape, s.sy);
  if (s.c.weight != nullptr) {
    a.w = d.weight;
    a.w_dtype = s.c.weight->dtype;
    a.wd = view_desc(s.shape, s.sw);
  }
  a.reduced = s.reduced;
  a.inner = s.inner;
  a.classes = static_cast<double>(s.classes);
  return a;
}

}  // namespace

std::string multilabel_margin_forward(const multilabel::Margin& m, const void* input,
                                      const lb_tensor& output) {
  if (m.dim > kMultilabelMaxClasses) return "multilabel_margin_loss: too many classes";
  dev::Buffers buf;
  Args a = margin_args(m, input, buf);
  a.out = output.data;
  a.out_dtype = output.dtype;
  a.od = desc_of(output);
  const int grid = static_cast<int>(std::clamp<std::int64_t>(m.n, 1, dev::kMaxBlocks));
  if (a.reduction != kNone) a.partials = buf.alloc<DD>(static_cast<std::size_t>(grid));
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (m.n > 0 || a.reduction != kNone)
    margin_forward_kernel<<<grid, kThreads, static_cast<std::size_t>(m.dim)>>>(a);
  if (a.reduction != kNone) final_kernel<<<1, kThreads>>>(a, grid);
  return finish(cudaSuccess);
}

std::string multilabel_margin_backward(const multilabel::Margin& m, const void* input,
                                       const lb_tensor* grad_output, const lb_tensor& grad) {
  if (m.dim > kMultilabelMaxClasses) return "multilabel_margin_loss: too many classes";
  dev::Buffers buf;
  Args a = margin_args(m, input, buf);
  set_upstream(a, grad_output);
  a.gx = grad.data;
  a.gx_dtype = grad.dtype;
  a.gxd = desc_of(grad);
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (m.n > 0) {
    const int grid = static_cast<int>(std::min<std::int64_t>(m.n, 65535));
    margin_backward_kernel<<<grid, kThreads, static_cast<std::size_t>(m.dim)>>>(a);
  }
  return finish(cudaSuccess);
}

std::string multilabel_soft_forward(const multilabel::Soft& s, const SoftData& d,
                                    const lb_tensor& output) {
  dev::Buffers buf;
  Args a = soft_args(s, d);
  a.out = output.data;
  a.out_dtype = output.dtype;
  a.od = desc_of(output);
  const int grid = dev::grid_for(a.n);
  if (a.reduction != kNone) a.partials = buf.alloc<DD>(static_cast<std::size_t>(grid));
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (a.n > 0 || a.reduction != kNone) soft_forward_kernel<<<grid, kThreads>>>(a);
  if (a.reduction != kNone) final_kernel<<<1, kThreads>>>(a, grid);
  return finish(cudaSuccess);
}

std::string multilabel_soft_backward(const multilabel::Soft& s, const SoftData& d,
                                     const lb_tensor* grad_output, const lb_tensor* gx,
                                     const lb_tensor* gy, const lb_tensor* gw) {
  dev::Buffers buf;
  Args a = soft_args(s, d);
  set_upstream(a, grad_output);
  const std::int64_t total = numel(s.shape);
  // A gradient of the broadcast shape is stored directly; another goes through doubles.
  struct Target {
    const lb_tensor* grad;
    const lb_tensor* operand;
    void** dst;
    std::int32_t* dtype;
    bool* direct;
    Desc* desc;
    double* full = nullptr;
  } targets[3] = {{gx, s.c.input, &a.gx, &a.gx_dtype, &a.gx_direct, &a.gxo},
                  {gy, s.c.target, &a.gy, &a.gy_dtype, &a.gy_direct, &a.gyo},
                  {gw, s.c.weight, &a.gw, &a.gw_dtype, &a.gw_direct, &a.gwo}};
  for (auto& t : targets) {
    if (t.grad == nullptr) continue;
    *t.direct = shape_of(*t.operand) == s.shape;
    if (*t.direct) {
      *t.dst = t.grad->data;
      *t.dtype = t.grad->dtype;
      *t.desc = desc_of(*t.grad);
    } else {
      t.full = buf.alloc<double>(static_cast<std::size_t>(total));
      *t.dst = t.full;
      *t.dtype = LB_FLOAT64;
    }
  }
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (total > 0) soft_backward_kernel<<<dev::grid_for(total), kThreads>>>(a, total);
  cudaError_t e = cudaGetLastError();
  for (auto& t : targets) {
    if (t.grad == nullptr || *t.direct || e != cudaSuccess) continue;
    // The operand's contiguous strides seen in the broadcast shape (0 where broadcast).
    const Shape os = shape_of(*t.operand);
    Shape cs(s.shape.size(), 0);
    const std::size_t off = s.shape.size() - os.size();
    std::int64_t stride = 1;
    for (std::size_t k = os.size(); k-- > 0;) {
      if (os[k] != 1) cs[off + k] = stride;
      stride *= os[k];
    }
    e = dev::sum_back(t.full, static_cast<int>(s.shape.size()), s.shape.data(), cs.data(),
                      numel(os), t.grad->data, t.grad->dtype);
  }
  return finish(e);
}

}  // namespace lossbench::opt::cuda
