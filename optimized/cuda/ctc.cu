// The CUDA CTC driver (families.hpp): ctc_loss on the CPU driver's checked call
// (drivers/ctc.hpp) with formulas/ctc_loss.hpp. One block per sample; its threads run over
// the extended label states s = 0..2S (blank, l1, blank, l2, ..., blank) and step through time
// together (one __syncthreads per step), in log space in double as the CPU. The alpha and
// beta tables (L x (2S + 1) doubles per sample, as the CPU's) are device scratch. The
// gradient's posterior sums lcab over the states of one class are folded in the CPU's order
// (states descending) by the thread of the class's highest state, along per-sample chains
// built on the host. The reductions ('mean': each nll over its target length, then over the
// batch) run in batch order in one thread, as on the CPU.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device.cuh"
#include "families.hpp"
#include "formulas/ctc_loss.hpp"

namespace lossbench::opt::cuda {

namespace {

using dev::Desc;
using dev::kThreads;
using dev::load;
using dev::offset_of;
using dev::store;
using F = formulas::CtcLoss;

struct Args {
  std::int64_t T = 0, N = 0, C = 0;
  std::int64_t st = 0, sn = 0, sc = 0;
  std::int64_t blank = 0;
  bool zero_infinity = false, reduce = false, mean = false, unbatched = false;
  const void* lp = nullptr;
  std::int32_t lp_dtype = LB_FLOAT32;
  const std::int64_t* il = nullptr;
  const std::int64_t* tl = nullptr;
  const std::int64_t* targets = nullptr;  // sample b's at targets + toff[b]
  const std::int64_t* toff = nullptr;
  const std::int64_t* soff = nullptr;  // sample b's states (2S + 1) at soff[b]: prev, head
  const std::int64_t* prev = nullptr;  // next lower state of the same class, or -1
  const std::int64_t* head = nullptr;  // 1 for the highest state of its class
  const std::int64_t* aoff = nullptr;  // sample b's tables at aoff[b] (L x W)
  double* alpha = nullptr;
  double* beta = nullptr;
  double* nll = nullptr;  // per sample (before zero_infinity)
  // backward
  const void* g = nullptr;
  std::int32_t g_dtype = LB_FLOAT64;
  Desc gd;
  void* grad = nullptr;
  std::int32_t grad_dtype = LB_FLOAT32;
  Desc grad_desc;
};

__device__ double lp_at(const Args& a, std::int64_t t, std::int64_t b, std::int64_t c) {
  return load(a.lp, a.lp_dtype, t * a.st + b * a.sn + c * a.sc);
}

__device__ std::int64_t prime(const Args& a, const std::int64_t* tg, std::int64_t s) {
  return s % 2 == 0 ? a.blank : tg[s / 2];
}

// log_alpha of sample b into its table; returns the nll (every thread).
__device__ double alpha_pass(const Args& a, std::int64_t b) {
  __shared__ double result;
  const std::int64_t L = a.il[b], S = a.tl[b], W = 2 * S + 1;
  const std::int64_t* tg = a.targets + a.toff[b];
  double* la = a.alpha + a.aoff[b];
  if (L == 0) return S == 0 ? 0.0 : HUGE_VAL;  // PyTorch PR #123193's definition
  for (std::int64_t s = threadIdx.x; s < W; s += blockDim.x)
    la[s] = s == 0 ? lp_at(a, 0, b, a.blank) : (s == 1 ? lp_at(a, 0, b, tg[0]) : -HUGE_VAL);
  __syncthreads();
  for (std::int64_t t = 1; t < L; ++t) {
    const double* prev = la + (t - 1) * W;
    for (std::int64_t s = threadIdx.x; s < W; s += blockDim.x) {
      const std::int64_t cur = prime(a, tg, s);
      const double a1 = prev[s];
      const double a2 = s > 0 ? prev[s - 1] : -HUGE_VAL;
      const double a3 = s > 1 && prime(a, tg, s - 2) != cur ? prev[s - 2] : -HUGE_VAL;
      la[t * W + s] = F::log_add3(a1, a2, a3) + lp_at(a, t, b, cur);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double* last = la + (L - 1) * W;
    result = S == 0 ? -last[0] : -F::log_add2(last[2 * S], last[2 * S - 1]);
  }
  __syncthreads();
  const double r = result;
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(kThreads) forward_kernel(const __grid_constant__ Args a) {
  for (std::int64_t b = blockIdx.x; b < a.N; b += gridDim.x) {
    const double nll = alpha_pass(a, b);
    if (threadIdx.x == 0) a.nll[b] = nll;
  }
}

// The CPU driver's output loop, in batch order.
__global__ void reduce_kernel(const __grid_constant__ Args a, void* out, std::int32_t out_dtype,
                              const __grid_constant__ Desc od) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  auto final_nll = [&](double v) { return a.zero_infinity && v == HUGE_VAL ? 0.0 : v; };
  if (!a.reduce) {
    for (std::int64_t b = 0; b < a.N; ++b)
      store(out, out_dtype, offset_of(od, b), final_nll(a.nll[b]));
    return;
  }
  double s = 0;
  for (std::int64_t b = 0; b < a.N; ++b) {
    const double v = final_nll(a.nll[b]);
    s += a.mean ? v / static_cast<double>(a.tl[b] > 1 ? a.tl[b] : 1) : v;
  }
  if (a.mean) s /= static_cast<double>(a.N);
  store(out, out_dtype, 0, s);
}

__device__ void put_grad(const Args& a, std::int64_t t, std::int64_t b, std::int64_t k, double v) {
  store(a.grad, a.grad_dtype, offset_of(a.grad_desc, (t * a.N + b) * a.C + k), v);
}

__global__ void __launch_bounds__(kThreads) backward_kernel(const __grid_constant__ Args a) {
  for (std::int64_t b = blockIdx.x; b < a.N; b += gridDim.x) {
    const double nll = alpha_pass(a, b);
    const std::int64_t L = a.il[b], S = a.tl[b], W = 2 * S + 1;
    double gr = 1.0;
    if (a.g != nullptr) gr = load(a.g, a.g_dtype, a.reduce || a.unbatched ? 0 : offset_of(a.gd, b));
    if (a.mean) gr = gr / (static_cast<double>(a.N) * static_cast<double>(S > 1 ? S : 1));
    const bool zero = L == 0 || (a.zero_infinity && nll == HUGE_VAL);
    // Time steps past the input length (all of them for a zero gradient): 0.
    for (std::int64_t q = threadIdx.x; q < (a.T - (zero ? 0 : L)) * a.C; q += blockDim.x)
      put_grad(a, (zero ? 0 : L) + q / a.C, b, q % a.C, 0.0);
    if (zero) {
      __syncthreads();
      continue;
    }
    const std::int64_t* tg = a.targets + a.toff[b];
    const std::int64_t* prev = a.prev + a.soff[b];
    const std::int64_t* head = a.head + a.soff[b];
    const double* la = a.alpha + a.aoff[b];
    double* lb = a.beta + a.aoff[b];
    double* last = lb + (L - 1) * W;
    for (std::int64_t s = threadIdx.x; s < W; s += blockDim.x) last[s] = -HUGE_VAL;
    __syncthreads();
    if (threadIdx.x == 0) {
      last[2 * S] = lp_at(a, L - 1, b, a.blank);
      if (S > 0) last[2 * S - 1] = lp_at(a, L - 1, b, tg[S - 1]);
    }
    // t = L - 1: the two final states only (the CPU's initialisation of lcab).
    for (std::int64_t k = threadIdx.x; k < a.C; k += blockDim.x)
      put_grad(a, L - 1, b, k, F::grad(lp_at(a, L - 1, b, k), -HUGE_VAL, nll, gr));
    __syncthreads();
    if (threadIdx.x == 0) {
      const double* al = la + (L - 1) * W;
      put_grad(a, L - 1, b, a.blank,
               F::grad(lp_at(a, L - 1, b, a.blank), al[2 * S] + last[2 * S], nll, gr));
      if (S > 0) {
        const std::int64_t cur = tg[S - 1];
        put_grad(a, L - 1, b, cur,
                 F::grad(lp_at(a, L - 1, b, cur), al[2 * S - 1] + last[2 * S - 1], nll, gr));
      }
    }
    __syncthreads();
    for (std::int64_t t = L - 2; t >= 0; --t) {
      const double* next = lb + (t + 1) * W;
      double* row = lb + t * W;
      for (std::int64_t s = threadIdx.x; s < W; s += blockDim.x) {
        const std::int64_t cur = prime(a, tg, s);
        const double b1 = next[s];
        const double b2 = s < 2 * S ? next[s + 1] : -HUGE_VAL;
        const double b3 = s < 2 * S - 1 && prime(a, tg, s + 2) != cur ? next[s + 2] : -HUGE_VAL;
        row[s] = F::log_add3(b1, b2, b3) + lp_at(a, t, b, cur);
      }
      for (std::int64_t k = threadIdx.x; k < a.C; k += blockDim.x)
        put_grad(a, t, b, k, F::grad(lp_at(a, t, b, k), -HUGE_VAL, nll, gr));
      __syncthreads();
      // The highest state of each class folds its chain (states descending, the CPU's order).
      const double* al = la + t * W;
      for (std::int64_t s = threadIdx.x; s < W; s += blockDim.x) {
        if (head[s] == 0) continue;
        const std::int64_t cur = prime(a, tg, s);
        double lcab = al[s] + row[s];
        for (std::int64_t u = prev[s]; u >= 0; u = prev[u]) {
          const double lab = al[u] + row[u];
          lcab = lcab == -HUGE_VAL ? lab : F::log_add2(lcab, lab);
        }
        put_grad(a, t, b, cur, F::grad(lp_at(a, t, b, cur), lcab, nll, gr));
      }
      __syncthreads();
    }
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

Args make_args(const ctc::Call& c, const void* log_probs, dev::Buffers& buf) {
  Args a;
  a.T = c.T;
  a.N = c.N;
  a.C = c.C;
  a.st = c.st;
  a.sn = c.sn;
  a.sc = c.sc;
  a.blank = c.blank;
  a.zero_infinity = c.zero_infinity;
  a.reduce = c.reduce;
  a.mean = c.mean;
  a.unbatched = c.unbatched;
  a.lp = log_probs;
  a.lp_dtype = c.dtype;
  std::vector<std::int64_t> flat, toff, soff, prev, head, aoff;
  std::int64_t table = 0;
  std::vector<std::int64_t> last(static_cast<std::size_t>(c.C), -1);
  for (std::int64_t b = 0; b < c.N; ++b) {
    const auto& tg = c.targets[static_cast<std::size_t>(b)];
    const std::int64_t S = static_cast<std::int64_t>(tg.size()), W = 2 * S + 1;
    toff.push_back(static_cast<std::int64_t>(flat.size()));
    flat.insert(flat.end(), tg.begin(), tg.end());
    soff.push_back(static_cast<std::int64_t>(prev.size()));
    for (std::int64_t s = 0; s < W; ++s) {
      const std::int64_t cls = s % 2 == 0 ? c.blank : tg[static_cast<std::size_t>(s / 2)];
      prev.push_back(last[static_cast<std::size_t>(cls)]);
      last[static_cast<std::size_t>(cls)] = s;
    }
    for (std::int64_t s = 0; s < W; ++s) {
      const std::int64_t cls = s % 2 == 0 ? c.blank : tg[static_cast<std::size_t>(s / 2)];
      head.push_back(last[static_cast<std::size_t>(cls)] == s ? 1 : 0);
    }
    for (std::int64_t s = 0; s < W; ++s)
      last[static_cast<std::size_t>(s % 2 == 0 ? c.blank : tg[static_cast<std::size_t>(s / 2)])] =
          -1;
    aoff.push_back(table);
    table += c.il[static_cast<std::size_t>(b)] * W;
  }
  a.il = buf.upload(c.il.data(), c.il.size());
  a.tl = buf.upload(c.tl.data(), c.tl.size());
  a.targets = buf.upload(flat.data(), flat.size());
  a.toff = buf.upload(toff.data(), toff.size());
  a.soff = buf.upload(soff.data(), soff.size());
  a.prev = buf.upload(prev.data(), prev.size());
  a.head = buf.upload(head.data(), head.size());
  a.aoff = buf.upload(aoff.data(), aoff.size());
  a.alpha = buf.alloc<double>(static_cast<std::size_t>(table));
  a.nll = buf.alloc<double>(static_cast<std::size_t>(c.N));
  return a;
}

}  // namespace

std::string ctc_forward(const ctc::Call& c, const void* log_probs, const lb_tensor& output) {
  dev::Buffers buf;
  const Args a = make_args(c, log_probs, buf);
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (c.N > 0)
    forward_kernel<<<static_cast<int>(std::min<std::int64_t>(c.N, 65535)), kThreads>>>(a);
  reduce_kernel<<<1, 32>>>(a, output.data, output.dtype, desc_of(output));
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return dev::text(e);
}

std::string ctc_backward(const ctc::Call& c, const void* log_probs, const lb_tensor* grad_output,
                         const lb_tensor& grad) {
  dev::Buffers buf;
  Args a = make_args(c, log_probs, buf);
  std::int64_t table = 0;
  for (std::int64_t b = 0; b < c.N; ++b)
    table += c.il[static_cast<std::size_t>(b)] *
             (2 * static_cast<std::int64_t>(c.targets[static_cast<std::size_t>(b)].size()) + 1);
  a.beta = buf.alloc<double>(static_cast<std::size_t>(table));
  if (grad_output != nullptr) {
    a.g = grad_output->data;
    a.g_dtype = grad_output->dtype;
    a.gd = desc_of(*grad_output);
  }
  a.grad = grad.data;
  a.grad_dtype = grad.dtype;
  a.grad_desc = desc_of(grad);
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (c.N > 0)
    backward_kernel<<<static_cast<int>(std::min<std::int64_t>(c.N, 65535)), kThreads>>>(a);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return dev::text(e);
}

}  // namespace lossbench::opt::cuda
