// The CUDA classification driver (families.hpp): cross_entropy, nll_loss, multi_margin_loss on
// the CPU driver's checked plan (drivers/classification.hpp), with the formulas of
// formulas/cross_entropy.hpp, nll_loss.hpp and multi_margin_loss.hpp.
//
// A row (the classes of one position) is handled by a team: one thread (small or strided rows:
// adjacent threads read adjacent positions) or one block of kThreads (contiguous rows of at
// least kTeamMin classes: adjacent threads read adjacent classes). cross_entropy's first pass is
// an online softmax in double: running max m (first index of the max kept as the argmax) and
// the double-double sum S of exp(x - m) over the other classes, rescaled by exp(m_old - m_new)
// when the max grows; team members combine their (m, argmax, S) in a fixed tree. Then
// lse = log1p(S), z = 1 + S as on the CPU. The forward of class-index targets without label
// smoothing reads each logit once; smoothing, probability targets and the backward make more
// passes over the same row (served by the L1/L2 caches; the row is not copied), and write the
// gradient row once. Sums are double-double in a fixed order (per thread, then the team's tree,
// then per-block partials combined in order by one block): no atomics, bitwise reproducible.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "device.cuh"
#include "families.hpp"
#include "formulas/cross_entropy.hpp"
#include "formulas/multi_margin_loss.hpp"
#include "formulas/nll_loss.hpp"

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
using formulas::CrossEntropy;
using formulas::MultiMarginLoss;
using formulas::NllLoss;

constexpr std::int64_t kTeamMin = 64;  // classes from which a contiguous row gets a block

enum Kind : int { kCe = 0, kNll = 1, kMm = 2 };
enum Red : int { kNone = 0, kSum = 1, kMean = 2 };

struct Args {
  int kind = kCe;
  int reduction = kMean;
  bool unbatched = false, prob = false, smoothing = false, p2 = false;
  bool each = false;  // one output (or upstream) per position
  std::int64_t n = 1, c = 0, s = 1;
  std::int64_t count = 0;    // positions visited
  std::int64_t targets = 0;  // entries of t
  std::int64_t ignore_index = -100;
  double keep = 1.0, spread = 0.0, margin = 1.0, W = 1.0, positions = 0.0;
  std::int64_t numel_x = 0;
  const void* x = nullptr;
  std::int32_t x_dtype = LB_FLOAT32;
  Desc xd;
  const void* tp = nullptr;  // probability targets
  std::int32_t tp_dtype = LB_FLOAT32;
  Desc td;
  const std::int64_t* t = nullptr;  // class targets (validated on the host)
  const double* w = nullptr;        // C weights (1 without weight)
  void* out = nullptr;
  std::int32_t out_dtype = LB_FLOAT32;
  DD* partials = nullptr;  // two per block
  // backward
  const void* g = nullptr;  // nullptr: ones
  std::int32_t g_dtype = LB_FLOAT64;
  Desc gd;
  bool g_each = false;
  void* gx = nullptr;
  std::int32_t gx_dtype = LB_FLOAT32;
  void* gt = nullptr;
  std::int32_t gt_dtype = LB_FLOAT32;
  double* stats = nullptr;  // per position: m, lse, -s (the weight gradient's pass)
};

// Offset of element [i, 0] of a (C), (N, C) or (N, C, d1..dk) tensor (the CPU's RowIndex).
__device__ std::int64_t row_base(const Args& a, const Desc& t, std::int64_t i) {
  if (a.unbatched) return 0;
  const std::int64_t n = i / a.s;
  std::int64_t rest = i % a.s, off = n * t.strides[0];
  for (int d = t.ndim - 1; d >= 2; --d) {
    off += (rest % t.shape[d]) * t.strides[d];
    rest /= t.shape[d];
  }
  return off;
}
__device__ std::int64_t class_stride(const Args& a, const Desc& t) {
  return a.unbatched ? t.strides[0] : t.strides[1];
}
// multi_margin_loss: input[n, k] of a 0-d, (C) or (N, C) input.
__device__ std::int64_t mm_offset(const Args& a, std::int64_t n, std::int64_t k) {
  if (a.xd.ndim == 0) return 0;
  if (a.xd.ndim == 1) return k * a.xd.strides[0];
  return n * a.xd.strides[0] + k * a.xd.strides[1];
}
// Contiguous gradient: [i, k] at grad_base(i) + k * grad_stride.
__device__ std::int64_t grad_base(const Args& a, std::int64_t i) {
  return a.unbatched ? 0 : (i / a.s) * a.c * a.s + i % a.s;
}
__device__ std::int64_t grad_stride(const Args& a) { return a.unbatched ? 1 : a.s; }

__device__ std::int64_t target_of(const Args& a, std::int64_t i) {
  if (i >= a.targets) return -1;
  const std::int64_t t = a.t[i];
  return t == a.ignore_index ? -1 : t;
}

// The softmax state of a team member, then of the row.
struct Soft {
  double m;
  std::int64_t arg;
  DD S;
  bool nan;
};

// exp(x - m) as the CPU computes it (exact difference, one refinement).
__device__ double shifted_exp(double x, double m) {
  double d_hi, d_lo;
  CrossEntropy::diff(x, m, d_hi, d_lo);
  return CrossEntropy::refine_exp(exp(d_hi), d_lo);
}

__device__ void soft_step(Soft& st, double v, std::int64_t k) {
  if (v != v) {
    st.nan = true;
    return;
  }
  if (v > st.m) {
    if (st.m == -HUGE_VAL) {
      st.S = {0.0, 0.0};
    } else {  // the old max joins S; S is rescaled to the new max
      const double f = shifted_exp(st.m, v);
      dd_add(st.S, 1.0, 0.0);
      st.S.hi *= f;
      st.S.lo *= f;
    }
    st.m = v;
    st.arg = k;
  } else if (st.m != -HUGE_VAL) {
    dd_add(st.S, shifted_exp(v, st.m), 0.0);
  }
}

__device__ Soft soft_combine(const Soft& a, const Soft& b) {
  const bool b_wins = b.m > a.m || (b.m == a.m && b.arg < a.arg);
  const Soft& w = b_wins ? b : a;
  const Soft& l = b_wins ? a : b;
  Soft r = w;
  r.nan = a.nan || b.nan;
  if (l.m != -HUGE_VAL && w.m != -HUGE_VAL) {
    const double f = shifted_exp(l.m, w.m);
    DD t = l.S;
    dd_add(t, 1.0, 0.0);
    dd_add(r.S, t.hi * f, t.lo * f);
  }
  return r;
}

// The team's sum, returned to every member.
template <int TS>
__device__ DD team_sum(DD v) {
  if constexpr (TS == 1) {
    return v;
  } else {
    __shared__ DD total;
    const DD r = block_sum(v);
    if (threadIdx.x == 0) total = r;
    __syncthreads();
    const DD out = total;
    __syncthreads();
    return out;
  }
}

template <int TS>
__device__ Soft team_soft(Soft v) {
  if constexpr (TS == 1) {
    return v;
  } else {
    __shared__ Soft s[kThreads];
    const int t = static_cast<int>(threadIdx.x);
    s[t] = v;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
      if (t < half) s[t] = soft_combine(s[t], s[t + half]);
      __syncthreads();
    }
    const Soft r = s[0];
    __syncthreads();
    return r;
  }
}

// The row's softmax pieces: m, argmax, S (NaN for a NaN row), lse, z.
struct RowSoft {
  Soft st;
  double lse, z;
  bool nan;
  __device__ double e(double x) const { return nan ? __builtin_nan("") : shifted_exp(x, st.m); }
  __device__ double log_prob(double x) const {
    double d_hi, d_lo;
    CrossEntropy::diff(x, st.m, d_hi, d_lo);
    return CrossEntropy::log_prob(d_hi, d_lo, lse);
  }
};

template <int TS>
__device__ RowSoft row_soft(const Args& a, std::int64_t base, std::int64_t cs, int lane) {
  Soft st{-HUGE_VAL, a.c, {0.0, 0.0}, false};
  for (std::int64_t k = lane; k < a.c; k += TS)
    soft_step(st, load(a.x, a.x_dtype, base + k * cs), k);
  RowSoft r;
  r.st = team_soft<TS>(st);
  r.nan = r.st.nan || !(fabs(r.st.m) < HUGE_VAL);
  if (r.nan) {
    r.st.S = {__builtin_nan(""), 0.0};
    r.lse = r.z = __builtin_nan("");
  } else {
    const double S = r.st.S.hi + r.st.S.lo;
    r.lse = log1p(S);
    r.z = 1.0 + S;
  }
  return r;
}

__device__ double upstream(const Args& a, std::int64_t i) {
  if (a.g == nullptr) return 1.0;
  return load(a.g, a.g_dtype, a.g_each ? offset_of(a.gd, i) : 0);
}

template <int TS>
__global__ void __launch_bounds__(kThreads) forward_kernel(const __grid_constant__ Args a) {
  const int lane = TS == 1 ? 0 : static_cast<int>(threadIdx.x);
  const std::int64_t team = TS == 1
                                ? static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x
                                : static_cast<std::int64_t>(blockIdx.x);
  const std::int64_t teams = TS == 1 ? static_cast<std::int64_t>(gridDim.x) * blockDim.x
                                     : static_cast<std::int64_t>(gridDim.x);
  const bool reduce = !a.each;
  DD acc_a{0.0, 0.0}, acc_b{0.0, 0.0};
  formulas::Params fp;
  fp.f0 = a.kind == kMm ? a.p2 : a.smoothing;
  fp.s0 = a.keep;
  fp.s1 = a.spread;
  // Every member of a team runs the same iterations (team_* synchronize the block).
  const std::int64_t rounds = TS == 1 ? 1 : (a.count + teams - 1) / teams;
  for (std::int64_t r = 0, i = team; TS == 1 ? i < a.count : r < rounds; ++r, i += teams) {
    const bool live = i < a.count;
    double nll = 0.0, smooth = 0.0;
    if (a.kind == kMm) {
      const std::int64_t y = live ? a.t[i] : 0;
      const double wy = a.w[y];
      const double xy = live ? load(a.x, a.x_dtype, mm_offset(a, i, y)) : 0.0;
      DD h{0.0, 0.0};
      for (std::int64_t k = lane; live && k < a.c; k += TS) {
        if (k == y) continue;
        const double z = MultiMarginLoss::z(a.margin, xy, load(a.x, a.x_dtype, mm_offset(a, i, k)));
        if (!(z > 0)) continue;
        dd_add(h, MultiMarginLoss::term(z, wy, fp), 0.0);
      }
      h = team_sum<TS>(h);
      nll = dd_div(h.hi, h.lo, static_cast<double>(a.c));
    } else if (a.kind == kNll) {
      const std::int64_t t = live ? target_of(a, i) : -1;
      if (t >= 0)
        nll = NllLoss::term(load(a.x, a.x_dtype, row_base(a, a.xd, i) + t * class_stride(a, a.xd)),
                            a.w[t]);
    } else if (a.prob) {
      const std::int64_t base = live ? row_base(a, a.xd, i) : 0, cs = class_stride(a, a.xd);
      const std::int64_t tb = live ? row_base(a, a.td, i) : 0, ts = class_stride(a, a.td);
      const RowSoft rs = a.c > 0 && live ? row_soft<TS>(a, base, cs, lane) : RowSoft{};
      DD h{0.0, 0.0};
      for (std::int64_t k = lane; live && k < a.c; k += TS) {
        const double tc = CrossEntropy::smoothed_target(load(a.tp, a.tp_dtype, tb + k * ts), fp);
        dd_add(h, (rs.log_prob(load(a.x, a.x_dtype, base + k * cs)) * tc) * a.w[k], 0.0);
      }
      h = team_sum<TS>(h);
      nll = -(h.hi + h.lo);
    } else {
      // Class-index targets: the whole team takes the same branch (t is per position).
      const std::int64_t t = live ? target_of(a, i) : -1;
      if (t >= 0) {
        const std::int64_t base = row_base(a, a.xd, i), cs = class_stride(a, a.xd);
        const RowSoft rs = row_soft<TS>(a, base, cs, lane);
        nll = NllLoss::term(rs.log_prob(load(a.x, a.x_dtype, base + t * cs)), a.w[t]);
        if (a.smoothing) {
          DD h{0.0, 0.0};
          for (std::int64_t k = lane; k < a.c; k += TS)
            dd_add(h, rs.log_prob(load(a.x, a.x_dtype, base + k * cs)) * a.w[k], 0.0);
          h = team_sum<TS>(h);
          smooth = -(h.hi + h.lo);
        }
      }
    }
    if (!live || lane != 0) continue;
    if (!reduce) {
      const bool mixed = a.kind == kCe && a.smoothing && !a.prob;
      store(a.out, a.out_dtype, i, mixed ? a.keep * nll + smooth * a.spread : nll);
    } else {
      dd_add(acc_a, nll, 0.0);
      dd_add(acc_b, smooth, 0.0);
    }
  }
  if (!reduce) return;
  // Per block: the members' sums (only lane 0 of a team holds any) in the fixed tree.
  const DD pa = block_sum(acc_a);
  const DD pb = block_sum(acc_b);
  if (threadIdx.x == 0) {
    a.partials[2 * blockIdx.x] = pa;
    a.partials[2 * blockIdx.x + 1] = pb;
  }
}

// One block: the partials in block order, then the CPU driver's final division.
__global__ void __launch_bounds__(kThreads)
    final_kernel(const __grid_constant__ Args a, int blocks) {
  DD sa{0.0, 0.0}, sb{0.0, 0.0};
  for (int k = static_cast<int>(threadIdx.x); k < blocks; k += kThreads) {
    dd_add(sa, a.partials[2 * k].hi, a.partials[2 * k].lo);
    dd_add(sb, a.partials[2 * k + 1].hi, a.partials[2 * k + 1].lo);
  }
  sa = block_sum(sa);
  sb = block_sum(sb);
  if (threadIdx.x != 0) return;
  double v;
  if (a.kind == kMm) {
    v = a.reduction == kMean ? dd_div(sa.hi, sa.lo, static_cast<double>(a.n)) : sa.hi + sa.lo;
  } else if (a.prob) {
    if (a.reduction == kMean)
      v = a.numel_x == 0 ? __builtin_nan("") : dd_div(sa.hi, sa.lo, a.positions);
    else
      v = sa.hi + sa.lo;
  } else {
    double nll = sa.hi + sa.lo, smooth = sb.hi + sb.lo;
    if (a.reduction == kMean) {
      nll = dd_div(sa.hi, sa.lo, a.W);
      smooth = dd_div(sb.hi, sb.lo, a.W);
    }
    v = a.smoothing ? a.keep * nll + smooth * a.spread : nll;
  }
  store(a.out, a.out_dtype, 0, v);
}

template <int TS>
__global__ void __launch_bounds__(kThreads) backward_kernel(const __grid_constant__ Args a) {
  const int lane = TS == 1 ? 0 : static_cast<int>(threadIdx.x);
  const std::int64_t team = TS == 1
                                ? static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x
                                : static_cast<std::int64_t>(blockIdx.x);
  const std::int64_t teams = TS == 1 ? static_cast<std::int64_t>(gridDim.x) * blockDim.x
                                     : static_cast<std::int64_t>(gridDim.x);
  formulas::Params fp;
  fp.f0 = a.kind == kMm ? a.p2 : a.smoothing;
  fp.s0 = a.keep;
  fp.s1 = a.spread;
  const double C = static_cast<double>(a.c);
  const std::int64_t rounds = TS == 1 ? 1 : (a.count + teams - 1) / teams;
  for (std::int64_t r = 0, i = team; TS == 1 ? i < a.count : r < rounds; ++r, i += teams) {
    const bool live = i < a.count;
    if (a.kind == kMm) {
      const std::int64_t y = live ? a.t[i] : 0;
      const double wy = a.w[y];
      const double xy = live ? load(a.x, a.x_dtype, mm_offset(a, i, y)) : 0.0;
      double g = live ? upstream(a, i) : 0.0;
      if (a.reduction == kMean) g = g / static_cast<double>(a.n);
      DD gs{0.0, 0.0};
      for (std::int64_t k = lane; live && k < a.c; k += TS) {
        if (k == y) continue;
        const double z = MultiMarginLoss::z(a.margin, xy, load(a.x, a.x_dtype, mm_offset(a, i, k)));
        if (z > 0) dd_add(gs, -MultiMarginLoss::grad(z, wy, fp), 0.0);
      }
      gs = team_sum<TS>(gs);
      for (std::int64_t k = lane; live && k < a.c; k += TS) {
        double local = gs.hi + gs.lo;
        if (k != y) {
          const double z =
              MultiMarginLoss::z(a.margin, xy, load(a.x, a.x_dtype, mm_offset(a, i, k)));
          local = z > 0 ? MultiMarginLoss::grad(z, wy, fp) : 0.0;
        }
        store(a.gx, a.gx_dtype, i * a.c + k, local * g / C);
      }
      continue;
    }
    const std::int64_t gb = live ? grad_base(a, i) : 0, gs = grad_stride(a);
    if (a.kind == kNll) {
      if (!live) continue;
      const std::int64_t t = target_of(a, i);
      const double s = a.reduction == kMean ? upstream(a, i) / a.W : upstream(a, i);
      for (std::int64_t k = lane; k < a.c; k += TS)
        store(a.gx, a.gx_dtype, gb + k * gs, k == t ? NllLoss::grad(a.w[t], s) : 0.0);
      continue;
    }
    if (a.c == 0) continue;
    const std::int64_t base = live ? row_base(a, a.xd, i) : 0, cs = class_stride(a, a.xd);
    const RowSoft rs = row_soft<TS>(a, live ? base : 0, cs, live ? lane : static_cast<int>(a.c));
    double s = live ? upstream(a, i) : 0.0;
    std::int64_t t = -1;
    if (a.prob) {
      if (a.reduction == kMean) s = s / a.positions;
      if (a.stats != nullptr && live && lane == 0) {
        a.stats[3 * i] = rs.st.m;
        a.stats[3 * i + 1] = rs.lse;
        a.stats[3 * i + 2] = -s;
      }
    } else {
      t = live ? target_of(a, i) : -1;
      if (t < 0) {  // ignored: 0, NaN for a NaN row (the whole team agrees)
        for (std::int64_t k = lane; live && a.gx != nullptr && k < a.c; k += TS)
          store(a.gx, a.gx_dtype, gb + k * gs, rs.nan ? __builtin_nan("") : 0.0);
        continue;
      }
    }
    // dl_c = d loss / d log p_c; D = sum_c dl_c.
    const std::int64_t tb = a.prob && live ? row_base(a, a.td, i) : 0;
    const std::int64_t ts = a.prob ? class_stride(a, a.td) : 0;
    double s_nll = a.smoothing ? a.keep * s : s, s_sm = s * a.spread;
    if (!a.prob && a.reduction == kMean) {
      s_nll = s_nll / a.W;
      s_sm = s_sm / a.W;
    }
    auto dl = [&](std::int64_t k) {
      if (a.prob) {
        const double tc = CrossEntropy::smoothed_target(load(a.tp, a.tp_dtype, tb + k * ts), fp);
        return (-s * a.w[k]) * tc;
      }
      const double v = k == t ? NllLoss::grad(a.w[t], s_nll) : 0.0;
      return a.smoothing ? v + -s_sm * a.w[k] : v;
    };
    DD D{0.0, 0.0};
    for (std::int64_t k = lane; live && k < a.c; k += TS) {
      dd_add(D, dl(k), 0.0);
      if (a.prob && a.gt != nullptr) {
        const double d = (-s * a.w[k]) * rs.log_prob(load(a.x, a.x_dtype, base + k * cs));
        store(a.gt, a.gt_dtype, gb + k * gs, a.smoothing ? d * a.keep : d);
      }
    }
    D = team_sum<TS>(D);
    for (std::int64_t k = lane; live && a.gx != nullptr && k < a.c; k += TS) {
      const double ec = rs.e(load(a.x, a.x_dtype, base + k * cs));
      const double zmc =
          k == rs.st.arg ? rs.st.S.hi + rs.st.S.lo : 1.0 + ((rs.st.S.hi - ec) + rs.st.S.lo);
      const double d = dl(k);
      const double rest = (D.hi - d) + D.lo;
      store(a.gx, a.gx_dtype, gb + k * gs, CrossEntropy::grad(d, ec, zmc, rest, rs.z));
    }
  }
}

// Probability targets with a weight: dw_c = sum over positions (fixed order) of
// -s_i log p_{i,c} t'_{i,c}; one block per class.
__global__ void __launch_bounds__(kThreads)
    weight_grad_kernel(const __grid_constant__ Args a, void* gw, std::int32_t gw_dtype) {
  formulas::Params fp;
  fp.f0 = a.smoothing;
  fp.s0 = a.keep;
  fp.s1 = a.spread;
  const std::int64_t cs = class_stride(a, a.xd), ts = class_stride(a, a.td);
  for (std::int64_t k = blockIdx.x; k < a.c; k += gridDim.x) {
    DD acc{0.0, 0.0};
    for (std::int64_t i = threadIdx.x; i < a.count; i += kThreads) {
      const double m = a.stats[3 * i], lse = a.stats[3 * i + 1], ms = a.stats[3 * i + 2];
      double d_hi, d_lo;
      CrossEntropy::diff(load(a.x, a.x_dtype, row_base(a, a.xd, i) + k * cs), m, d_hi, d_lo);
      const double lp = CrossEntropy::log_prob(d_hi, d_lo, lse);
      const double tc =
          CrossEntropy::smoothed_target(load(a.tp, a.tp_dtype, row_base(a, a.td, i) + k * ts), fp);
      dd_add(acc, ms * (lp * tc), 0.0);
    }
    const DD tot = block_sum(acc);
    if (threadIdx.x == 0) store(gw, gw_dtype, k, tot.hi + tot.lo);
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

// The plan's fields and its host vectors uploaded (targets, weights).
Args make_args(const ClassificationPlan& p, const ClassificationData& d, double W,
               dev::Buffers& buf) {
  Args a;
  a.kind = p.loss == Loss::cross_entropy ? kCe : (p.loss == Loss::nll_loss ? kNll : kMm);
  a.reduction = p.reduction == ClassificationPlan::Reduction::none
                    ? kNone
                    : (p.reduction == ClassificationPlan::Reduction::sum ? kSum : kMean);
  a.unbatched = p.unbatched;
  a.prob = p.prob;
  a.smoothing = p.smoothing;
  a.p2 = p.p2;
  a.n = p.n;
  a.c = p.c;
  a.s = p.s;
  a.ignore_index = p.ignore_index;
  a.keep = p.keep;
  a.spread = p.spread;
  a.margin = p.margin;
  a.W = W;
  a.positions = static_cast<double>(p.positions);
  a.numel_x = p.c * (p.unbatched ? 1 : p.n * p.s);
  a.x = d.input;
  a.x_dtype = p.input->dtype;
  a.xd = desc_of(*p.input);
  if (p.prob) {
    a.tp = d.target;
    a.tp_dtype = p.target->dtype;
    a.td = desc_of(*p.target);
  }
  a.targets = static_cast<std::int64_t>(p.t.size());
  a.t = buf.upload(p.t.data(), p.t.size());
  a.w = buf.upload(p.w.data(), p.w.size());
  return a;
}

bool block_rows(const ClassificationPlan& p) {
  return p.c >= kTeamMin && (p.unbatched || p.s == 1);
}

}  // namespace

std::string classification_forward(const ClassificationPlan& p, const ClassificationData& d,
                                   double W, const lb_tensor& output) {
  dev::Buffers buf;
  Args a = make_args(p, d, W, buf);
  a.each = p.loss == Loss::multi_margin_loss
               ? p.reduction == ClassificationPlan::Reduction::none
               : p.reduction == ClassificationPlan::Reduction::none && !p.unbatched;
  a.count = p.loss == Loss::multi_margin_loss ? p.n : p.positions;
  a.out = output.data;
  a.out_dtype = output.dtype;
  const bool blocks = block_rows(p) && p.loss != Loss::nll_loss;
  const int grid = blocks ? static_cast<int>(std::clamp<std::int64_t>(a.count, 1, dev::kMaxBlocks))
                          : dev::grid_for(a.count);
  if (!a.each) a.partials = buf.alloc<DD>(2 * static_cast<std::size_t>(grid));
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if (a.each && a.count == 0) return {};
  if (blocks)
    forward_kernel<kThreads><<<grid, kThreads>>>(a);
  else
    forward_kernel<1><<<grid, kThreads>>>(a);
  if (!a.each) final_kernel<<<1, kThreads>>>(a, grid);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return dev::text(e);
}

std::string classification_backward(const ClassificationPlan& p, const ClassificationData& d,
                                    double W, const lb_tensor* grad_output, const lb_tensor* gx,
                                    const lb_tensor* gt, const lb_tensor* gw) {
  dev::Buffers buf;
  Args a = make_args(p, d, W, buf);
  const bool mm = p.loss == Loss::multi_margin_loss;
  const bool none = p.reduction == ClassificationPlan::Reduction::none;
  if (grad_output != nullptr) {
    a.g = grad_output->data;
    a.g_dtype = grad_output->dtype;
    a.gd = desc_of(*grad_output);
    a.g_each = (mm ? none : none && !p.unbatched) && grad_output->ndim > 0;
  }
  a.count = mm ? p.n : (p.unbatched ? 1 : p.n * p.s);
  if (gx != nullptr) {
    a.gx = gx->data;
    a.gx_dtype = gx->dtype;
  }
  if (gt != nullptr) {
    a.gt = gt->data;
    a.gt_dtype = gt->dtype;
  }
  if (gw != nullptr) a.stats = buf.alloc<double>(3 * static_cast<std::size_t>(a.count));
  if (buf.error != cudaSuccess) return dev::text(buf.error);
  if ((mm || p.loss == Loss::nll_loss) && gx == nullptr) return {};
  if (a.count > 0 && (gx != nullptr || gt != nullptr || gw != nullptr)) {
    if (block_rows(p)) {
      const int grid = static_cast<int>(std::min<std::int64_t>(a.count, dev::kMaxBlocks));
      backward_kernel<kThreads><<<grid, kThreads>>>(a);
    } else {
      backward_kernel<1><<<dev::grid_for(a.count), kThreads>>>(a);
    }
  }
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && gw != nullptr && p.c > 0) {
    const int grid = static_cast<int>(std::min<std::int64_t>(p.c, 65535));
    weight_grad_kernel<<<grid, kThreads>>>(a, gw->data, gw->dtype);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return dev::text(e);
}

}  // namespace lossbench::opt::cuda
