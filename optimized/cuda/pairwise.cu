// The CUDA pairwise driver (families.hpp): cosine_embedding_loss, triplet_margin_loss and
// triplet_margin_with_distance_loss (distance None, "pairwise_distance", "cosine") on the CPU
// driver's checked call (drivers/pairwise.hpp) with formulas/cosine_embedding_loss.hpp,
// triplet_margin_loss.hpp and triplet_margin_with_distance_loss.hpp.
//
// One thread per row (the feature dimension of one pair of rows): its sums (dot product,
// squared norms, the p-norm) run in index order in double exactly as the CPU's, so the row
// values are the CPU's bit for bit. Then one thread per loss element; reductions are
// double-double per-block partials combined in order by one block. Backward: d loss / d row
// value per loss element, summed back to the rows over broadcast dimensions (dev::sum_back:
// one block per row, fixed tree); then one thread per row writes its elements' contributions
// into a double buffer of the pair's broadcast shape, summed back to each input's shape and
// added pair by pair (the CPU's order of pairs) before the one rounding to the gradient's
// dtype. Those buffers are the size of the broadcast inputs (temporaries the other families
// avoid).
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device.cuh"
#include "families.hpp"
#include "formulas/cosine_embedding_loss.hpp"
#include "formulas/triplet_margin_loss.hpp"
#include "formulas/triplet_margin_with_distance_loss.hpp"

namespace lossbench::opt::cuda {

namespace {

using dev::block_sum;
using dev::DD;
using dev::dd_add;
using dev::Desc;
using dev::kThreads;
using dev::load;
using dev::store;
namespace F = formulas;

constexpr std::int64_t kLagrangeMax = 64;  // as the CPU driver

// Offset of a flat index over `d`'s shape with its strides (0 for an empty shape: the CPU's).
__device__ std::int64_t off(const Desc& d, std::int64_t flat) {
  std::int64_t o = 0;
  for (int k = d.ndim - 1; k >= 0; --k) {
    if (d.shape[k] == 0) return 0;
    o += (flat % d.shape[k]) * d.strides[k];
    flat /= d.shape[k];
  }
  return o;
}

struct RowsDev {
  const void* x = nullptr;
  const void* y = nullptr;
  std::int32_t x_dtype = LB_FLOAT32, y_dtype = LB_FLOAT32;
  Desc xs, ys;  // row shape with data strides
  std::int64_t xsd = 0, ysd = 0, D = 1, n = 1;
  // x and y's own last dimension (cosine_embedding_loss's norms)
  std::int64_t dx = 1, sx = 0, dy = 1, sy = 0;
};

enum Mode : int { kCosEmb = 0, kTriplet = 1, kTripletCos = 2 };

struct RowOut {
  double* d = nullptr;
  double* p = nullptr;
  double* m1 = nullptr;
  double* m2 = nullptr;
  double* ties = nullptr;
  double* fin = nullptr;
};

struct Scalars {
  int mode = kTriplet;
  bool swap = false, reduce = false, mean = false;
  double margin = 0, eps = 0, eps_ce = 0, p_branch = 2, p_value = 2;
  F::Params params;
  int num_rows = 2;
};

__device__ F::PNorm pnorm_of(const Scalars& c) {
  F::PNorm n(c.mode == kTriplet ? c.p_branch : 2.0);
  n.p = c.mode == kTriplet ? c.p_value : 2.0;
  return n;
}

// The CPU's cosine_rows / norm_rows / distances for one row per thread.
__global__ void __launch_bounds__(kThreads)
    rows_kernel(const __grid_constant__ RowsDev w, const __grid_constant__ Scalars c, RowOut o) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < w.n;
       r += stride) {
    const std::int64_t xo = off(w.xs, r), yo = off(w.ys, r);
    if (c.mode == kTriplet) {
      const F::PNorm norm = pnorm_of(c);
      double acc = norm.start();
      for (std::int64_t j = 0; j < w.D; ++j) {
        const double t = norm.term(load(w.x, w.x_dtype, xo + j * w.xsd) -
                                   load(w.y, w.y_dtype, yo + j * w.ysd) + c.eps);
        acc = norm.summed() ? acc + t : norm.combine(acc, t);
      }
      const double n = w.D == 1 && norm.kind == F::PNorm::general && !isnan(norm.p)
                           ? fabs(load(w.x, w.x_dtype, xo) - load(w.y, w.y_dtype, yo) + c.eps)
                           : norm.finish(acc);
      double ties = 0;
      if (!norm.summed())
        for (std::int64_t j = 0; j < w.D; ++j) {
          const double v =
              load(w.x, w.x_dtype, xo + j * w.xsd) - load(w.y, w.y_dtype, yo + j * w.ysd) + c.eps;
          ties += fabs(v) == n || isnan(v) ? 1.0 : 0.0;
        }
      o.d[r] = n;
      o.ties[r] = ties;
      continue;
    }
    const bool own = c.mode == kCosEmb;
    double p = 0, a1 = 0, a2 = 0;
    bool fin = true;
    for (std::int64_t j = 0; j < w.D; ++j) {
      const double a = load(w.x, w.x_dtype, xo + j * w.xsd),
                   b = load(w.y, w.y_dtype, yo + j * w.ysd);
      p += a * b;
      fin = fin && fabs(a) < HUGE_VAL && fabs(b) < HUGE_VAL;
      if (!own) {
        a1 += a * a;
        a2 += b * b;
      }
    }
    if (own) {
      for (std::int64_t j = 0; j < w.dx; ++j) {
        const double a = load(w.x, w.x_dtype, xo + j * w.sx);
        a1 += a * a;
      }
      for (std::int64_t j = 0; j < w.dy; ++j) {
        const double b = load(w.y, w.y_dtype, yo + j * w.sy);
        a2 += b * b;
      }
    }
    const double eps_add = own ? c.eps_ce : 0.0;
    o.p[r] = p;
    o.m1[r] = a1 + eps_add;
    o.m2[r] = a2 + eps_add;
    o.fin[r] = fin ? 1.0 : 0.0;
    if (c.mode == kTripletCos)
      o.d[r] = F::CosineDistance::forward(p, a1 + eps_add, a2 + eps_add, c.eps * c.eps, fin);
  }
}

struct LossArgs {
  Scalars c;
  std::int64_t n = 0;  // loss elements
  Desc rowmap[3];      // out_shape with the rows' (contiguous) strides of pair k
  Desc target;         // cosine_embedding_loss: out_shape with the target's strides
  const void* y = nullptr;
  std::int32_t y_dtype = LB_FLOAT32;
  RowOut rows[3];
  void* out = nullptr;
  std::int32_t out_dtype = LB_FLOAT32;
  Desc out_desc;  // out_shape with the output's strides
  DD* partials = nullptr;
  // backward
  const void* g = nullptr;
  std::int32_t g_dtype = LB_FLOAT64;
  Desc g_desc;
  double divisor = 1.0;
  double* gv[3] = {};  // per loss element: d loss / d row value of pair k
};

__global__ void __launch_bounds__(kThreads) loss_kernel(const __grid_constant__ LossArgs a) {
  DD acc{0.0, 0.0};
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t l = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < a.n;
       l += stride) {
    double v;
    if (a.c.mode == kCosEmb) {
      const std::int64_t r = off(a.rowmap[0], l);
      const double y = load(a.y, a.y_dtype, off(a.target, l));
      v = F::CosineEmbeddingLoss::forward(a.rows[0].p[r], a.rows[0].m1[r], a.rows[0].m2[r], y,
                                          a.c.params);
    } else {
      double d[3] = {0, 0, 0};
      for (int k = 0; k < a.c.num_rows; ++k) d[k] = a.rows[k].d[off(a.rowmap[k], l)];
      v = F::TripletMarginLoss::forward(d[0], d[1], d[2], a.c.swap, a.c.margin);
    }
    if (a.c.reduce)
      dd_add(acc, v, 0.0);
    else
      store(a.out, a.out_dtype, off(a.out_desc, l), v);
  }
  if (!a.c.reduce) return;
  const DD b = block_sum(acc);
  if (threadIdx.x == 0) a.partials[blockIdx.x] = b;
}

__global__ void __launch_bounds__(kThreads)
    final_kernel(const __grid_constant__ LossArgs a, int blocks) {
  DD s{0.0, 0.0};
  for (int k = static_cast<int>(threadIdx.x); k < blocks; k += kThreads)
    dd_add(s, a.partials[k].hi, a.partials[k].lo);
  s = block_sum(s);
  if (threadIdx.x != 0) return;
  double v = s.hi + s.lo;
  if (a.c.mean) v /= static_cast<double>(a.n);
  store(a.out, a.out_dtype, 0, v);
}

__global__ void __launch_bounds__(kThreads) dloss_kernel(const __grid_constant__ LossArgs a) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t l = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; l < a.n;
       l += stride) {
    double up;
    if (a.g == nullptr)
      up = 1.0 / a.divisor;
    else if (a.c.reduce)
      up = load(a.g, a.g_dtype, 0) / a.divisor;
    else
      up = load(a.g, a.g_dtype, off(a.g_desc, l));
    if (a.c.mode == kCosEmb) {
      const std::int64_t r = off(a.rowmap[0], l);
      const double y = load(a.y, a.y_dtype, off(a.target, l));
      a.gv[0][l] = F::CosineEmbeddingLoss::dcos(a.rows[0].p[r], a.rows[0].m1[r], a.rows[0].m2[r], y,
                                                up, a.c.params);
      continue;
    }
    double d[3] = {0, 0, 0}, gv[3] = {0, 0, 0};
    for (int k = 0; k < a.c.num_rows; ++k) d[k] = a.rows[k].d[off(a.rowmap[k], l)];
    F::TripletMarginLoss::backward(d[0], d[1], d[2], a.c.swap, a.c.margin, up, gv[0], gv[1], gv[2]);
    for (int k = 0; k < a.c.num_rows; ++k) a.gv[k][l] = gv[k];
  }
}

// Contributions of pair k's rows to its x (side 0) and y (side 1) elements, into doubles over
// (rows, D): element (r, j) at r * D + j.
struct ContribArgs {
  RowsDev w;
  Scalars c;
  RowOut rd;
  const double* G = nullptr;  // per row: d loss / d row value (summed back)
  double* fx = nullptr;
  double* fy = nullptr;
  bool x_collapsed = false, y_collapsed = false;  // cosine_embedding_loss: own last dim 1
};

__global__ void __launch_bounds__(kThreads) contrib_kernel(const __grid_constant__ ContribArgs a) {
  const RowsDev& w = a.w;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < w.n;
       r += stride) {
    const std::int64_t xo = off(w.xs, r), yo = off(w.ys, r);
    const double G = a.G[r];
    double* fx = a.fx != nullptr ? a.fx + r * w.D : nullptr;
    double* fy = a.fy != nullptr ? a.fy + r * w.D : nullptr;
    auto xv = [&](std::int64_t j) { return load(w.x, w.x_dtype, xo + j * w.xsd); };
    auto yv = [&](std::int64_t j) { return load(w.y, w.y_dtype, yo + j * w.ysd); };
    const bool lagrange = a.c.mode != kTriplet && w.D <= kLagrangeMax;
    double xs[kLagrangeMax], ys[kLagrangeMax];
    for (std::int64_t j = 0; lagrange && j < w.D; ++j) {
      xs[j] = xv(j);
      ys[j] = yv(j);
    }
    if (a.c.mode == kCosEmb) {
      const double p = a.rd.p[r], m1 = a.rd.m1[r], m2 = a.rd.m2[r];
      for (int side = 0; side < 2; ++side) {
        double* f = side == 0 ? fx : fy;
        if (f == nullptr) continue;
        const bool first = side == 0;
        const double ms = first ? m1 : m2, mo = first ? m2 : m1;
        const bool collapsed = (first ? a.x_collapsed : a.y_collapsed) && w.D != 1;
        if (collapsed) {
          // s2 m1 - p x1 = s2 (x1^2 + EPS) - x1^2 s2 = s2 EPS exactly.
          double s = 0;
          for (std::int64_t j = 0; j < w.D; ++j) s += first ? yv(j) : xv(j);
          f[0] = G * F::CosineEmbeddingLoss::dx_from(s * a.c.eps_ce, ms, mo);
          for (std::int64_t j = 1; j < w.D; ++j) f[j] = 0.0;
        } else if (lagrange) {
          const double* self = first ? xs : ys;
          const double* other = first ? ys : xs;
          for (std::int64_t j = 0; j < w.D; ++j) {
            const double num =
                fma(other[j], a.c.eps_ce, F::lagrange_numerator(self, other, w.D, j));
            f[j] = G * F::CosineEmbeddingLoss::dx_from(num, ms, mo);
          }
        } else {
          for (std::int64_t j = 0; j < w.D; ++j)
            f[j] = G * F::CosineEmbeddingLoss::dx(p, ms, mo, first ? xv(j) : yv(j),
                                                  first ? yv(j) : xv(j));
        }
      }
      continue;
    }
    const F::PNorm norm = pnorm_of(a.c);
    for (std::int64_t j = 0; j < w.D; ++j) {
      const double x = xv(j), y = yv(j);
      if (a.c.mode == kTripletCos) {
        const bool fin = a.rd.fin[r] != 0.0;
        const double lx = lagrange ? F::lagrange_numerator(xs, ys, w.D, j) : F::kNaN;
        const double ly = lagrange ? F::lagrange_numerator(ys, xs, w.D, j) : F::kNaN;
        if (fx)
          fx[j] =
              F::CosineDistance::dx(x, y, a.rd.p[r], a.rd.m1[r], a.rd.m2[r], a.c.eps, G, fin, lx);
        if (fy)
          fy[j] =
              F::CosineDistance::dx(y, x, a.rd.p[r], a.rd.m2[r], a.rd.m1[r], a.c.eps, G, fin, ly);
      } else {
        const double v = norm.backward(x - y + a.c.eps, a.rd.d[r], G, a.rd.ties[r]);
        if (fx) fx[j] = v;
        if (fy) fy[j] = -v;
      }
    }
  }
}

__global__ void add_kernel(double* acc, const double* v, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    acc[i] = acc[i] + v[i];
}

__global__ void store_kernel(const double* acc, std::int64_t n, void* dst, std::int32_t dtype,
                             const __grid_constant__ Desc d) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    store(dst, dtype, off(d, i), acc[i]);
}

Desc make_desc(const Shape& shape, const Shape& strides) {
  Desc d;
  d.ndim = static_cast<std::int32_t>(shape.size());
  for (std::size_t k = 0; k < shape.size() && k < dev::kMaxDims; ++k) {
    d.shape[k] = shape[k];
    d.strides[k] = strides[k];
  }
  return d;
}

RowsDev rows_dev(const pairwise::Rows& w, const void* x, const void* y) {
  RowsDev r;
  r.x = x;
  r.y = y;
  r.x_dtype = w.x->dtype;
  r.y_dtype = w.y->dtype;
  r.xs = make_desc(w.shape, w.xs);
  r.ys = make_desc(w.shape, w.ys);
  r.xsd = w.xsd;
  r.ysd = w.ysd;
  r.D = w.D;
  r.n = w.n;
  r.dx = w.x->ndim ? w.x->shape[w.x->ndim - 1] : 1;
  r.sx = w.x->ndim ? w.x->strides[w.x->ndim - 1] : 0;
  r.dy = w.y->ndim ? w.y->shape[w.y->ndim - 1] : 1;
  r.sy = w.y->ndim ? w.y->strides[w.y->ndim - 1] : 0;
  return r;
}

Scalars scalars(const pairwise::Call& c) {
  Scalars s;
  s.mode = c.kind == pairwise::Call::cosine_embedding
               ? kCosEmb
               : (c.kind == pairwise::Call::triplet ? kTriplet : kTripletCos);
  s.swap = c.swap;
  s.reduce = c.reduce;
  s.mean = c.mean;
  s.margin = c.margin;
  s.eps = c.eps;
  s.eps_ce = c.eps_ce;
  s.p_branch = c.p_branch;
  s.p_value = c.p_value;
  s.params = c.params;
  s.num_rows = c.kind == pairwise::Call::cosine_embedding ? 1 : c.num_rows;
  return s;
}

// The device pointer of the tensor `t` (one of the call's inputs).
const void* data_of(const PairwiseData& d, const lb_tensor* t) {
  for (int k = 0; k < PairwiseData::kMax; ++k)
    if (t != nullptr && d.host[k] == t) return d.device[k];
  return nullptr;
}

// Row values of every pair, and the loss arguments that read them.
cudaError_t prepare(const pairwise::Call& c, const PairwiseData& d, dev::Buffers& buf, LossArgs& a,
                    RowsDev* rows) {
  a.c = scalars(c);
  a.n = numel(c.out_shape);
  for (int k = 0; k < a.c.num_rows; ++k) {
    const pairwise::Rows& w = c.rows[k];
    rows[k] = rows_dev(w, data_of(d, w.x), data_of(d, w.y));
    const std::size_t n = static_cast<std::size_t>(w.n);
    RowOut& o = a.rows[k];
    o.d = buf.alloc<double>(n);
    o.p = buf.alloc<double>(n);
    o.m1 = buf.alloc<double>(n);
    o.m2 = buf.alloc<double>(n);
    o.ties = buf.alloc<double>(n);
    o.fin = buf.alloc<double>(n);
    if (buf.error != cudaSuccess) return buf.error;
    const Shape& st = c.kind == pairwise::Call::cosine_embedding ? c.row_st : c.dist_st[k];
    a.rowmap[k] = make_desc(c.out_shape, st);
    if (w.n > 0) rows_kernel<<<dev::grid_for(w.n), kThreads>>>(rows[k], a.c, o);
  }
  if (c.kind == pairwise::Call::cosine_embedding) {
    a.y = data_of(d, c.target);
    a.y_dtype = c.target->dtype;
    a.target = make_desc(c.out_shape, c.target_st);
  }
  return cudaGetLastError();
}

std::string finish(cudaError_t e) {
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return dev::text(e);
}

}  // namespace

std::string pairwise_forward(const pairwise::Call& c, const PairwiseData& d,
                             const lb_tensor& output) {
  dev::Buffers buf;
  LossArgs a;
  RowsDev rows[3];
  cudaError_t e = prepare(c, d, buf, a, rows);
  const int grid = dev::grid_for(a.n);
  if (a.c.reduce) a.partials = buf.alloc<DD>(static_cast<std::size_t>(grid));
  if (e == cudaSuccess) e = buf.error;
  a.out = output.data;
  a.out_dtype = output.dtype;
  a.out_desc = make_desc(c.out_shape, c.reduce ? Shape(c.out_shape.size(), 0) : strides_of(output));
  if (e == cudaSuccess && (a.n > 0 || a.c.reduce)) {
    loss_kernel<<<grid, kThreads>>>(a);
    if (a.c.reduce) final_kernel<<<1, kThreads>>>(a, grid);
  }
  return finish(e);
}

std::string pairwise_backward(const pairwise::Call& c, const PairwiseData& d,
                              const lb_tensor* grad_output, lb_tensor* const* grads) {
  dev::Buffers buf;
  LossArgs a;
  RowsDev rows[3];
  cudaError_t e = prepare(c, d, buf, a, rows);
  a.divisor = c.mean ? static_cast<double>(a.n) : 1.0;
  if (grad_output != nullptr) {
    a.g = grad_output->data;
    a.g_dtype = grad_output->dtype;
    if (!c.reduce) a.g_desc = make_desc(c.out_shape, strides_of(*grad_output));
  }
  double* G[3] = {};
  for (int k = 0; k < a.c.num_rows; ++k) {
    a.gv[k] = buf.alloc<double>(static_cast<std::size_t>(a.n));
    G[k] = buf.alloc<double>(static_cast<std::size_t>(c.rows[k].n));
  }
  if (e == cudaSuccess) e = buf.error;
  if (e == cudaSuccess && a.n > 0) dloss_kernel<<<dev::grid_for(a.n), kThreads>>>(a);
  if (e == cudaSuccess) e = cudaGetLastError();
  // Per pair: d loss / d row value summed back from the loss elements to the rows.
  for (int k = 0; k < a.c.num_rows && e == cudaSuccess; ++k) {
    const Shape& st = c.kind == pairwise::Call::cosine_embedding ? c.row_st : c.dist_st[k];
    e = dev::sum_back(a.gv[k], static_cast<int>(c.out_shape.size()), c.out_shape.data(), st.data(),
                      c.rows[k].n, G[k], LB_FLOAT64);
  }
  // Inputs: (x, y) of pair k are inputs ix[k], iy[k]; each gradient accumulates in doubles.
  const int ix[3] = {0, 0, 1}, iy[3] = {1, 2, 2};
  double* acc[3] = {};
  std::int64_t acc_n[3] = {};
  for (int j = 0; j < 3; ++j) {
    if (grads[j] == nullptr) continue;
    acc_n[j] = numel(shape_of(*grads[j]));
    acc[j] = buf.alloc<double>(static_cast<std::size_t>(acc_n[j]));
    if (acc[j] != nullptr && e == cudaSuccess)
      e = cudaMemset(acc[j], 0, static_cast<std::size_t>(acc_n[j]) * sizeof(double));
  }
  if (e == cudaSuccess) e = buf.error;
  for (int k = 0; k < a.c.num_rows && e == cudaSuccess; ++k) {
    const pairwise::Rows& w = c.rows[k];
    const int in_x = c.kind == pairwise::Call::cosine_embedding ? 0 : ix[k];
    const int in_y = c.kind == pairwise::Call::cosine_embedding ? 1 : iy[k];
    if (acc[in_x] == nullptr && acc[in_y] == nullptr) continue;
    dev::Buffers pair;
    ContribArgs ca;
    ca.w = rows[k];
    ca.c = a.c;
    ca.rd = a.rows[k];
    ca.G = G[k];
    const std::size_t full = static_cast<std::size_t>(w.n * w.D);
    if (acc[in_x] != nullptr) ca.fx = pair.alloc<double>(full);
    if (acc[in_y] != nullptr) ca.fy = pair.alloc<double>(full);
    ca.x_collapsed = rows[k].dx == 1;
    ca.y_collapsed = rows[k].dy == 1;
    double* tmp[2] = {pair.alloc<double>(static_cast<std::size_t>(acc_n[in_x])),
                      pair.alloc<double>(static_cast<std::size_t>(acc_n[in_y]))};
    if ((e = pair.error) != cudaSuccess) break;
    if (w.n * w.D > 0) contrib_kernel<<<dev::grid_for(w.n), kThreads>>>(ca);
    if ((e = cudaGetLastError()) != cudaSuccess) break;
    // The buffer's shape (rows..., D) and each input's contiguous strides seen in it.
    Shape shape = w.shape;
    shape.push_back(w.D);
    for (int side = 0; side < 2 && e == cudaSuccess; ++side) {
      const int in = side == 0 ? in_x : in_y;
      const double* f = side == 0 ? ca.fx : ca.fy;
      if (f == nullptr) continue;
      Shape gst = side == 0 ? w.xg : w.yg;
      gst.push_back(side == 0 ? w.xgd : w.ygd);
      e = dev::sum_back(f, static_cast<int>(shape.size()), shape.data(), gst.data(), acc_n[in],
                        tmp[side], LB_FLOAT64);
      if (e == cudaSuccess && acc_n[in] > 0)
        add_kernel<<<dev::grid_for(acc_n[in]), kThreads>>>(acc[in], tmp[side], acc_n[in]);
      if (e == cudaSuccess) e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaDeviceSynchronize();  // before `pair` frees its buffers
  }
  for (int j = 0; j < 3 && e == cudaSuccess; ++j) {
    if (acc[j] == nullptr || acc_n[j] == 0) continue;
    const Desc gd = make_desc(shape_of(*grads[j]), strides_of(*grads[j]));
    store_kernel<<<dev::grid_for(acc_n[j]), kThreads>>>(acc[j], acc_n[j], grads[j]->data,
                                                        grads[j]->dtype, gd);
    e = cudaGetLastError();
  }
  return finish(e);
}

}  // namespace lossbench::opt::cuda
