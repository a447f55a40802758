// The elementwise driver (see elementwise.hpp). Compiled for the baseline ISA; the per-ISA
// work is behind the KernelTable.
#include "elementwise.hpp"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "args.hpp"
#include "elements.hpp"

namespace lossbench::opt {

namespace {

using conformance::bfloat16_to_double;
using conformance::double_to_bfloat16;
using conformance::double_to_half;
using conformance::half_to_double;

std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> s(shape.size(), 1);
  for (std::size_t d = shape.size(); d > 1; --d) s[d - 2] = s[d - 1] * shape[d - 1];
  return s;
}

double load(const void* data, std::int32_t dtype, std::int64_t i) {
  switch (dtype) {
    case LB_FLOAT64: return static_cast<const double*>(data)[i];
    case LB_FLOAT32: return static_cast<const float*>(data)[i];
    case LB_FLOAT16: return half_to_double(static_cast<const std::uint16_t*>(data)[i]);
    case LB_BFLOAT16: return bfloat16_to_double(static_cast<const std::uint16_t*>(data)[i]);
    case LB_INT64: return static_cast<double>(static_cast<const std::int64_t*>(data)[i]);
    default: return __builtin_nan("");
  }
}

// Stores v[0..n) rounded once to the dtype, at data[offset..offset + n).
void store_run(void* data, std::int32_t dtype, std::int64_t offset, const double* v,
               std::int64_t n) {
  switch (dtype) {
    case LB_FLOAT64: std::memcpy(static_cast<double*>(data) + offset, v, n * sizeof(double)); break;
    case LB_FLOAT32: {
      float* p = static_cast<float*>(data) + offset;
      for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(v[i]);
      break;
    }
    case LB_FLOAT16: {
      auto* p = static_cast<std::uint16_t*>(data) + offset;
      for (std::int64_t i = 0; i < n; ++i) p[i] = double_to_half(v[i]);
      break;
    }
    case LB_BFLOAT16: {
      auto* p = static_cast<std::uint16_t*>(data) + offset;
      for (std::int64_t i = 0; i < n; ++i) p[i] = double_to_bfloat16(v[i]);
      break;
    }
    default: break;
  }
}

void store_one(void* data, std::int32_t dtype, std::int64_t offset, double v) {
  store_run(data, dtype, offset, &v, 1);
}

// Gathers elements [start, start + n) of the output index space of `op` into dst (as double),
// then pads dst up to a multiple of kPad with a harmless value.
void gather(const Operand& op, const std::vector<std::int64_t>& shape, std::int64_t start,
            std::int64_t n, double* dst) {
  const std::int64_t padded = (n + static_cast<std::int64_t>(kPad) - 1) /
                              static_cast<std::int64_t>(kPad) * static_cast<std::int64_t>(kPad);
  if (op.tensor == nullptr) {
    for (std::int64_t i = 0; i < padded; ++i) dst[i] = op.constant;
    return;
  }
  const lb_tensor& t = *op.tensor;
  if (op.dense) {
    switch (t.dtype) {
      case LB_FLOAT64: std::memcpy(dst, static_cast<const double*>(t.data) + start, n * 8); break;
      case LB_FLOAT32: {
        const float* p = static_cast<const float*>(t.data) + start;
        for (std::int64_t i = 0; i < n; ++i) dst[i] = p[i];
        break;
      }
      default:
        for (std::int64_t i = 0; i < n; ++i) dst[i] = load(t.data, t.dtype, start + i);
    }
  } else {
    // Odometer over the output's dimensions.
    const std::size_t nd = shape.size();
    std::int64_t idx[16] = {};
    std::int64_t rest = start, off = 0;
    for (std::size_t d = nd; d-- > 0;) {
      idx[d] = rest % shape[d];
      rest /= shape[d];
      off += idx[d] * op.strides[d];
    }
    for (std::int64_t i = 0; i < n; ++i) {
      dst[i] = load(t.data, t.dtype, off);
      for (std::size_t d = nd; d-- > 0;) {
        off += op.strides[d];
        if (++idx[d] < shape[d]) break;
        off -= idx[d] * op.strides[d];
        idx[d] = 0;
      }
    }
  }
  for (std::int64_t i = n; i < padded; ++i) dst[i] = 0.5;
}

struct Buffers {
  std::vector<double> in[kMaxInputs];
  std::vector<double> out[kMaxInputs];
  std::vector<double> g;
  explicit Buffers(int grads) {
    for (auto& b : in) b.resize(kBlock);
    for (int k = 0; k < grads; ++k) out[k].resize(kBlock);
    g.resize(kBlock);
  }
};

std::int64_t num_blocks(std::int64_t numel) { return (numel + kBlock - 1) / kBlock; }

// hi + lo += a_hi + a_lo, renormalized with Fast2Sum (args.hpp's dd_add uses TwoSum; the two
// differ in the last bit of lo when the sum cancels, and this driver's results keep this one).
void dd_add_fast(double& hi, double& lo, double a_hi, double a_lo) {
  if (!(std::fabs(hi) < HUGE_VAL) || !(std::fabs(a_hi) < HUGE_VAL)) {
    hi += a_hi;  // infinities and NaN: IEEE's sum, no compensation
    lo = 0.0;
    return;
  }
  const double s = hi + a_hi;
  const double bb = s - hi;
  const double e = (hi - (s - bb)) + (a_hi - bb);
  hi = s;
  lo = lo + a_lo + e;
  const double s2 = hi + lo;
  lo = lo - (s2 - hi);
  hi = s2;
}

// The dense fast path applies when every tensor operand is contiguous with the output's shape
// and of the loss dtype, float32 or float64 (index 0 or 1 of the dense kernel tables), and so are
// the other tensors the call writes or reads (`others`, nullptr entries ignored). -1 otherwise.
int dense_kind(const Plan& plan, std::initializer_list<const lb_tensor*> others) {
  if (plan.dtype != LB_FLOAT32 && plan.dtype != LB_FLOAT64) return -1;
  for (int j = 0; j < plan.num_inputs; ++j) {
    const Operand& op = plan.in[j];
    if (op.tensor == nullptr) continue;
    if (!op.dense || op.tensor->dtype != plan.dtype) return -1;
  }
  for (const lb_tensor* t : others)
    if (t != nullptr && t->dtype != plan.dtype) return -1;
  return plan.dtype == LB_FLOAT32 ? 0 : 1;
}

// Whether the dense kernels may write `written` (nullptr entries ignored) with non-temporal
// stores (DenseIO::stream; the memory-bound formulas' kernels honour it, block.hpp: streams):
// each written tensor 64-byte aligned, so every block of kBlock elements starts aligned, and at
// least one of them kStreamBytes (args.hpp) or more.
static_assert(kBlock % 16 == 0, "blocks must start 64-byte aligned in an aligned tensor");
bool streamable(const Plan& plan, std::initializer_list<const lb_tensor*> written) {
  const std::int64_t bytes = plan.numel * (plan.dtype == LB_FLOAT64 ? 8 : 4);
  bool any = false;
  for (const lb_tensor* t : written) {
    if (t == nullptr) continue;
    if (reinterpret_cast<std::uintptr_t>(t->data) % 64 != 0) return false;
    any = true;
  }
  return any && bytes >= kStreamBytes;
}

// The dense kernels' value checks (Plan::value_check): the flag they set, and the driver's call
// of the check when one was set.
struct ValueChecks {
  std::atomic<int> flagged{0};
  void arm(const Plan& plan, DenseIO& io) {
    if (plan.value_check) io.invalid = &flagged;
  }
  void finish(const Plan& plan) const {
    if (flagged.load(std::memory_order_relaxed) != 0) plan.value_check();
  }
};
// The gather path reads the values through its blocks: the check comes first.
void check_before_gathering(const Plan& plan) {
  if (plan.value_check) plan.value_check();
}

DenseIO dense_inputs(const Plan& plan) {
  DenseIO io;
  for (int j = 0; j < plan.num_inputs; ++j) {
    io.in[j] = plan.in[j].tensor != nullptr ? plan.in[j].tensor->data : nullptr;
    io.constant[j] = plan.in[j].constant;
  }
  return io;
}

double finish(const Plan& plan, const std::vector<double>& part_hi,
              const std::vector<double>& part_lo) {
  double hi = 0.0, lo = 0.0;
  for (std::size_t b = 0; b < part_hi.size(); ++b) dd_add_fast(hi, lo, part_hi[b], part_lo[b]);
  return plan.divisor == 1.0 ? hi + lo : dd_div(hi, lo, plan.divisor);
}

}  // namespace

Operand make_operand(const lb_tensor& t, const std::vector<std::int64_t>& view_shape,
                     const std::vector<std::int64_t>& shape) {
  Operand op;
  op.tensor = &t;
  const std::size_t nd = shape.size();
  const std::size_t vd = view_shape.size();
  std::vector<std::int64_t> vstrides;
  // The view is the tensor's shape, or that shape with a trailing 1 (gaussian_nll_loss's var).
  vstrides.assign(vd, 0);
  for (std::size_t k = 0; k < vd && k < static_cast<std::size_t>(t.ndim); ++k)
    vstrides[k] = t.strides[k];
  const auto gstrides = contiguous_strides(view_shape);
  op.strides.assign(nd, 0);
  op.grad_strides.assign(nd, 0);
  for (std::size_t k = 0; k < vd; ++k) {
    const std::size_t d = nd - vd + k;
    if (view_shape[k] != 1 || shape[d] == 1) {
      op.strides[d] = view_shape[k] == 1 ? 0 : vstrides[k];
      op.grad_strides[d] = view_shape[k] == 1 ? 0 : gstrides[k];
    }
  }
  const auto cs = contiguous_strides(shape);
  op.dense = true;
  for (std::size_t d = 0; d < nd; ++d)
    if (shape[d] != 1 && (op.strides[d] != cs[d] || op.grad_strides[d] != cs[d])) op.dense = false;
  return op;
}

Operand make_operand(const lb_tensor& t, const std::vector<std::int64_t>& shape) {
  return make_operand(t, std::vector<std::int64_t>(t.shape, t.shape + t.ndim), shape);
}

Operand constant_operand(double value, const std::vector<std::int64_t>& shape) {
  Operand op;
  op.constant = value;
  op.strides.assign(shape.size(), 0);
  op.grad_strides.assign(shape.size(), 0);
  return op;
}

int driver_threads() {
  if (const char* s = std::getenv("LOSSBENCH_CPU_THREADS")) {
    const int n = std::atoi(s);
    if (n > 0) return n;
  }
  return omp_get_max_threads();
}

void run_forward(const KernelTable& k, const Plan& plan, lb_tensor& output, int threads) {
  threads = threads_for(plan.numel, threads);
  const int li = static_cast<int>(plan.loss);
  const std::int64_t nb = num_blocks(plan.numel);
  std::vector<double> part_hi(static_cast<std::size_t>(nb)), part_lo(static_cast<std::size_t>(nb));
  const int kind = dense_kind(plan, {&output});
  if (kind >= 0 && k.dense_forward[li][kind] != nullptr) {
    DenseIO io = dense_inputs(plan);
    io.out[0] = plan.reduce ? nullptr : output.data;
    io.stream = !plan.reduce && streamable(plan, {&output});
    ValueChecks checks;
    checks.arm(plan, io);
    const auto kernel = k.dense_forward[li][kind];
#pragma omp parallel for num_threads(threads) schedule(static) if (nb > 1)
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t start = b * kBlock;
      kernel(io, start, std::min(kBlock, plan.numel - start), plan.params, &part_hi[b],
             &part_lo[b]);
    }
    checks.finish(plan);
    if (plan.reduce) store_one(output.data, output.dtype, 0, finish(plan, part_hi, part_lo));
    return;
  }
  check_before_gathering(plan);
  // Every table has the float64 dense kernel of every elementwise loss (drivers/block.hpp).
  const DenseForwardKernel reduce_gathered = k.dense_forward[li][1];
#pragma omp parallel num_threads(threads) if (nb > 1)
  {
    Buffers buf(1);
    const double* in[kMaxInputs];
    for (int j = 0; j < kMaxInputs; ++j) in[j] = buf.in[j].data();
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t start = b * kBlock;
      const std::int64_t n = std::min(kBlock, plan.numel - start);
      for (int j = 0; j < plan.num_inputs; ++j)
        gather(plan.in[j], plan.shape, start, n, buf.in[j].data());
      if (plan.reduce) {
        // The gathered block as a dense float64 block: the kernel adds each term to the sum as
        // it evaluates it, so the double-double tables (the float64 cancelling losses) keep the
        // terms' low parts, which forward's per-element store would round away.
        DenseIO gio;
        for (int j = 0; j < plan.num_inputs; ++j) gio.in[j] = in[j];
        reduce_gathered(gio, 0, n, plan.params, &part_hi[b], &part_lo[b]);
        continue;
      }
      const auto padded = static_cast<std::size_t>((n + 7) / 8 * 8);
      k.forward[li](in, buf.out[0].data(), padded, plan.params);
      store_run(output.data, output.dtype, start, buf.out[0].data(), n);
    }
  }
  if (!plan.reduce) return;
  store_one(output.data, output.dtype, 0, finish(plan, part_hi, part_lo));
}

bool run_fused(const KernelTable& k, const Plan& plan, lb_tensor& output,
               const lb_tensor& grad_output, lb_tensor* const* grads, int threads) {
  threads = threads_for(plan.numel, threads);
  const int li = static_cast<int>(plan.loss);
  if (!plan.reduce && !make_operand(grad_output, plan.shape).dense) return false;
  for (int j = 0; j < plan.num_inputs; ++j)
    if (grads[j] != nullptr && !plan.in[j].dense) return false;  // summed back: run_backward
  const int kind = dense_kind(plan, {&output, grads[0], grads[1], grads[2], grads[3],
                                     plan.reduce ? nullptr : &grad_output});
  if (kind < 0 || k.dense_fused[li][kind] == nullptr) return false;
  DenseIO io = dense_inputs(plan);
  io.out[0] = plan.reduce ? nullptr : output.data;
  io.g = plan.reduce ? nullptr : grad_output.data;
  io.g_constant = plan.reduce ? load(grad_output.data, grad_output.dtype, 0) / plan.divisor : 0.0;
  for (int j = 0; j < plan.num_inputs; ++j)
    io.grad[j] = grads[j] != nullptr ? grads[j]->data : nullptr;
  io.stream =
      streamable(plan, {plan.reduce ? nullptr : &output, grads[0], grads[1], grads[2], grads[3]});
  const std::int64_t nb = num_blocks(plan.numel);
  std::vector<double> part_hi(static_cast<std::size_t>(nb)), part_lo(static_cast<std::size_t>(nb));
  ValueChecks checks;
  checks.arm(plan, io);
  const auto kernel = k.dense_fused[li][kind];
#pragma omp parallel for num_threads(threads) schedule(static) if (nb > 1)
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int64_t start = b * kBlock;
    kernel(io, start, std::min(kBlock, plan.numel - start), plan.params, &part_hi[b], &part_lo[b]);
  }
  checks.finish(plan);
  if (plan.reduce) store_one(output.data, output.dtype, 0, finish(plan, part_hi, part_lo));
  return true;
}

void run_backward(const KernelTable& k, const Plan& plan, const lb_tensor& grad_output,
                  lb_tensor* const* grads, int threads) {
  threads = threads_for(plan.numel, threads);
  const int li = static_cast<int>(plan.loss);
  const std::int64_t nb = num_blocks(plan.numel);
  // Gradients of broadcast inputs are accumulated (double-double per element) in index order.
  bool sum_back = false;
  std::vector<double> acc_hi[kMaxInputs], acc_lo[kMaxInputs];
  bool one_to_one[kMaxInputs] = {};  // strided, not broadcast: one element per position
  for (int j = 0; j < plan.num_inputs; ++j) {
    if (grads[j] == nullptr || plan.in[j].dense) continue;
    std::int64_t n = 1;
    for (std::int32_t d = 0; d < grads[j]->ndim; ++d) n *= grads[j]->shape[d];
    acc_hi[j].assign(static_cast<std::size_t>(n), 0.0);
    acc_lo[j].assign(static_cast<std::size_t>(n), 0.0);
    one_to_one[j] = n == plan.numel;
    sum_back = true;
  }
  double g_reduced = 0.0;
  if (plan.reduce) g_reduced = load(grad_output.data, grad_output.dtype, 0) / plan.divisor;
  const Operand g_op =
      plan.reduce ? constant_operand(g_reduced, plan.shape) : make_operand(grad_output, plan.shape);
  const int kind = sum_back || !(plan.reduce || g_op.dense)
                       ? -1
                       : dense_kind(plan, {grads[0], grads[1], grads[2], grads[3],
                                           plan.reduce ? nullptr : &grad_output});
  if (kind >= 0 && k.dense_backward[li][kind] != nullptr) {
    DenseIO io = dense_inputs(plan);
    io.g = plan.reduce ? nullptr : grad_output.data;
    io.g_constant = g_reduced;
    for (int j = 0; j < plan.num_inputs; ++j)
      io.out[j] = grads[j] != nullptr ? grads[j]->data : nullptr;
    io.stream = streamable(plan, {grads[0], grads[1], grads[2], grads[3]});
    ValueChecks checks;
    checks.arm(plan, io);
    const auto kernel = k.dense_backward[li][kind];
#pragma omp parallel for num_threads(threads) schedule(static) if (nb > 1)
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t start = b * kBlock;
      kernel(io, start, std::min(kBlock, plan.numel - start), plan.params);
    }
    checks.finish(plan);
    return;
  }
  check_before_gathering(plan);
#pragma omp parallel num_threads(sum_back ? 1 : threads) if (nb > 1)
  {
    Buffers buf(plan.num_inputs);
    const double* in[kMaxInputs];
    double* out[kMaxInputs];
    for (int j = 0; j < kMaxInputs; ++j) {
      in[j] = buf.in[j].data();
      out[j] = j < plan.num_inputs ? buf.out[j].data() : nullptr;
    }
    // A double-double table sums a broadcast input's gradient from the terms' hi and lo parts.
    const BackwardSplitKernel split = sum_back ? k.backward_split[li] : nullptr;
    std::vector<double> lo_buf[kMaxInputs];
    double* lo[kMaxInputs] = {};
    if (split != nullptr)
      for (int j = 0; j < plan.num_inputs; ++j) {
        lo_buf[j].assign(kBlock, 0.0);
        lo[j] = lo_buf[j].data();
      }
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t start = b * kBlock;
      const std::int64_t n = std::min(kBlock, plan.numel - start);
      for (int j = 0; j < plan.num_inputs; ++j)
        gather(plan.in[j], plan.shape, start, n, buf.in[j].data());
      gather(g_op, plan.shape, start, n, buf.g.data());
      const auto padded = static_cast<std::size_t>((n + 7) / 8 * 8);
      if (split != nullptr)
        split(in, buf.g.data(), out, lo, padded, plan.params);
      else
        k.backward[li](in, buf.g.data(), out, padded, plan.params);
      for (int j = 0; j < plan.num_inputs; ++j) {
        if (grads[j] == nullptr) continue;
        if (split != nullptr && (plan.in[j].dense || one_to_one[j]))
          for (std::int64_t i = 0; i < n; ++i) out[j][i] += lo[j][i];  // rounded once
        if (plan.in[j].dense) {
          store_run(grads[j]->data, grads[j]->dtype, start, out[j], n);
          continue;
        }
        // Sum back (this loop runs on one thread, blocks in order).
        const Operand& op = plan.in[j];
        const std::size_t nd = plan.shape.size();
        for (std::int64_t i = 0; i < n; ++i) {
          std::int64_t rest = start + i, off = 0;
          for (std::size_t d = nd; d-- > 0;) {
            off += (rest % plan.shape[d]) * op.grad_strides[d];
            rest /= plan.shape[d];
          }
          if (one_to_one[j])
            acc_hi[j][off] = out[j][i];  // not broadcast: stored as is (-0 stays -0)
          else
            dd_add_fast(acc_hi[j][off], acc_lo[j][off], out[j][i], lo[j] ? lo[j][i] : 0.0);
        }
      }
    }
  }
  for (int j = 0; j < plan.num_inputs; ++j) {
    if (grads[j] == nullptr || plan.in[j].dense) continue;
    const std::size_t n = acc_hi[j].size();
    for (std::size_t i = 0; i < n; ++i)
      store_one(grads[j]->data, grads[j]->dtype, static_cast<std::int64_t>(i),
                acc_lo[j][i] == 0.0 ? acc_hi[j][i] : acc_hi[j][i] + acc_lo[j][i]);
  }
}

}  // namespace lossbench::opt
