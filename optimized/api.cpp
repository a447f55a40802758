// The ABI of the optimized CPU backend: argument checks (the errors PyTorch 2.2 raises are
// LB_BAD_ARGUMENTS), parameters rounded as PyTorch rounds them, the plan for the elementwise
// driver, and the ISA: CPUID, capped by LOSSBENCH_CPU_ISA.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cpu.hpp"
#include "drivers/args.hpp"
#include "drivers/classification.hpp"
#include "drivers/ctc.hpp"
#include "drivers/elementwise.hpp"
#include "drivers/multilabel.hpp"
#include "drivers/pairwise.hpp"
#include "elements.hpp"
#include "plan.hpp"

namespace lossbench::opt {

namespace {

// ---------------------------------------------------------------- ISA

bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
}
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw");
}

// float64 and a loss with exp/log: on AVX-512 the float64 table (isa/avx512_f64.cpp: its exp,
// log, log1p and softplus's tail to about half an ULP of double), elsewhere the scalar kernels
// (glibc's exp/log/log1p, under 1 ULP), because Highway's double Log is documented at 4 ULP and
// float64 has no wider type to hide it in.
bool transcendental(Loss l) {
  switch (l) {
    case Loss::soft_margin_loss:
    case Loss::binary_cross_entropy:
    case Loss::binary_cross_entropy_with_logits:
    case Loss::poisson_nll_loss:
    case Loss::gaussian_nll_loss:
    case Loss::kl_div: return true;
    default: return false;
  }
}

// float64 losses whose formula cancels inside whatever the inputs' condition
// (LOSSBENCH_OPT_CANCELLING_LOSSES) run the double-double kernels (isa/exact64*.cpp), where the
// cancellation costs no bits; on AVX-512 all but gaussian_nll_loss run the float64 table's own
// double-double formulas instead (isa/f64_dd.hpp, kernels_for below). (The other losses with
// exp/log add terms of one sign, softplus and the like: double serves, and is up to 1.8 times
// faster.)
bool cancels_inside(Loss l) {
#define LOSSBENCH_OPT_CASE(id, F) \
  if (l == Loss::id) return true;
  LOSSBENCH_OPT_CANCELLING_LOSSES(LOSSBENCH_OPT_CASE)
#undef LOSSBENCH_OPT_CASE
  return false;
}

// AVX-512 underneath (the cpu-fast table differs from the AVX-512 one only in its float32 dense
// kernels, and takes the same float64 tables).
bool wide(Isa isa) { return isa == Isa::avx512 || isa == Isa::avx512_fast; }

const KernelTable& table_of(Isa isa) {
  switch (isa) {
    case Isa::avx512_fast: return avx512_fast_kernels();
    case Isa::avx512: return avx512_kernels();
    case Isa::avx2: return avx2_kernels();
    default: return scalar_kernels();
  }
}

// ---------------------------------------------------------------- the losses

struct LossInfo {
  std::string_view id;
  Loss loss;
  std::vector<std::string_view> inputs;  // the formula's inputs, in order (ABI names)
  std::vector<std::string_view> optional;
};

const std::vector<LossInfo>& losses() {
  static const std::vector<LossInfo> list = {
      {"l1_loss", Loss::l1_loss, {"input", "target"}, {}},
      {"mse_loss", Loss::mse_loss, {"input", "target"}, {}},
      {"huber_loss", Loss::huber_loss, {"input", "target"}, {}},
      {"smooth_l1_loss", Loss::smooth_l1_loss, {"input", "target"}, {}},
      {"soft_margin_loss", Loss::soft_margin_loss, {"input", "target"}, {}},
      {"binary_cross_entropy",
       Loss::binary_cross_entropy,
       {"input", "target", "weight"},
       {"weight"}},
      {"binary_cross_entropy_with_logits",
       Loss::binary_cross_entropy_with_logits,
       {"input", "target", "weight", "pos_weight"},
       {"weight", "pos_weight"}},
      {"margin_ranking_loss", Loss::margin_ranking_loss, {"input1", "input2", "target"}, {}},
      {"hinge_embedding_loss", Loss::hinge_embedding_loss, {"input", "target"}, {}},
      {"poisson_nll_loss", Loss::poisson_nll_loss, {"input", "target"}, {}},
      {"gaussian_nll_loss", Loss::gaussian_nll_loss, {"input", "target", "var"}, {}},
      {"kl_div", Loss::kl_div, {"input", "target"}, {}},
  };
  return list;
}

const LossInfo* find_loss(const char* id) {
  if (id == nullptr) return nullptr;
  for (const auto& l : losses())
    if (l.id == id) return &l;
  return nullptr;
}

// ---------------------------------------------------------------- helpers

// The value PyTorch uses for a double parameter in a kernel of this dtype.
double round_to(double v, std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT32: return static_cast<float>(v);
    case LB_FLOAT16: return conformance::half_to_double(conformance::double_to_half(v));
    case LB_BFLOAT16: return conformance::bfloat16_to_double(conformance::double_to_bfloat16(v));
    default: return v;
  }
}

double element(const lb_tensor& t, std::int64_t flat) {
  std::int64_t off = 0, rest = flat;
  for (std::int32_t d = t.ndim; d-- > 0;) {
    off += (rest % t.shape[d]) * t.strides[d];
    rest /= t.shape[d];
  }
  return conformance::load_float(t.data, t.dtype, off);
}

// ---------------------------------------------------------------- the plan of a call

struct Call {
  const LossInfo* info = nullptr;
  const lb_tensor* t[kMaxInputs] = {};  // by formula input
  Plan plan;
};

// Whether any of v[0..n) is outside [l, h] (NaN included), compiled for AVX-512, AVX2 and the
// baseline, chosen at load time. Both compares are evaluated and OR-ed in 32-bit lanes (bitwise
// |, not ||): a short-circuit or a 64-bit count keeps the loop scalar or slower than the read.
__attribute__((target_clones("avx512f", "avx2", "default"))) std::int32_t outside_f32(
    const float* v, std::int64_t n, float l, float h) {
  std::int32_t outside = 0;
  for (std::int64_t i = 0; i < n; ++i)
    outside |= static_cast<std::int32_t>(!(v[i] >= l)) | static_cast<std::int32_t>(!(v[i] <= h));
  return outside;
}
__attribute__((target_clones("avx512f", "avx2", "default"))) std::int32_t outside_f64(
    const double* v, std::int64_t n, double l, double h) {
  std::int32_t outside = 0;
  for (std::int64_t i = 0; i < n; ++i)
    outside |= static_cast<std::int32_t>(!(v[i] >= l)) | static_cast<std::int32_t>(!(v[i] <= h));
  return outside;
}

// Is any element of t outside [lo, hi] (NaN included)? A contiguous float32/float64 tensor is
// scanned in parallel chunks, without early exit, so that the loop vectorizes: PyTorch's value
// checks (binary_cross_entropy's input and target, gaussian_nll_loss's var) cost one read.
bool any_outside(const lb_tensor& t, double lo, double hi) {
  std::int64_t n = 1, expect = 1;
  bool dense = true;
  for (std::int32_t d = t.ndim; d-- > 0;) {
    if (t.shape[d] != 1 && t.strides[d] != expect) dense = false;
    expect *= t.shape[d];
    n *= t.shape[d];
  }
  if (dense && (t.dtype == LB_FLOAT32 || t.dtype == LB_FLOAT64)) {
    constexpr std::int64_t kChunk = 1 << 16;
    const std::int64_t chunks = (n + kChunk - 1) / kChunk;
    const int threads = n >= (1 << 20) ? driver_threads() : 1;
    std::int32_t outside = 0;
#pragma omp parallel for num_threads(threads) reduction(| : outside) schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t from = c * kChunk, len = std::min(kChunk, n - from);
      outside |= t.dtype == LB_FLOAT32
                     ? outside_f32(static_cast<const float*>(t.data) + from, len,
                                   static_cast<float>(lo), static_cast<float>(hi))
                     : outside_f64(static_cast<const double*>(t.data) + from, len, lo, hi);
    }
    return outside != 0;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const double a = element(t, i);
    if (!(a >= lo && a <= hi)) return true;
  }
  return false;
}

// defer_value_checks: PyTorch's checks of binary_cross_entropy's input and target values and
// gaussian_nll_loss's var go into plan.value_check for the driver (the CPU ABI functions: the
// dense kernels check the values as they read them), instead of a scan here (plan_forward and
// plan_backward, whose callers run no such driver).
void build(const lb_call& call, Call& c, bool defer_value_checks = false) {
  if (call.device.type != LB_DEVICE_CPU) unsupported("the cpu backend runs on the CPU only");
  c.info = find_loss(call.loss);
  if (c.info == nullptr) unsupported(std::string("loss '") + (call.loss ? call.loss : "") + "'");
  const LossInfo& info = *c.info;
  Plan& plan = c.plan;
  plan.loss = info.loss;
  plan.num_inputs = static_cast<int>(info.inputs.size());

  // Inputs by name.
  for (std::int32_t k = 0; k < call.num_inputs; ++k) {
    const lb_tensor& t = call.inputs[k];
    bool found = false;
    for (std::size_t j = 0; j < info.inputs.size(); ++j)
      if (t.name != nullptr && info.inputs[j] == t.name) {
        c.t[j] = &t;
        found = true;
      }
    if (!found) unsupported(std::string("unknown input '") + (t.name ? t.name : "") + "'");
    if (t.device.type != LB_DEVICE_CPU) unsupported("tensors must be on the CPU");
    if (t.ndim > 16) unsupported("more than 16 dimensions");
  }
  for (std::size_t j = 0; j < info.inputs.size(); ++j) {
    bool optional = false;
    for (auto o : info.optional) optional = optional || o == info.inputs[j];
    if (c.t[j] == nullptr && !optional) bad("missing input '" + std::string(info.inputs[j]) + "'");
  }
  // One floating dtype; an int64 target where PyTorch accepts one.
  const bool int_target =
      info.loss == Loss::margin_ranking_loss || info.loss == Loss::hinge_embedding_loss;
  std::int32_t dtype = -1;
  for (std::size_t j = 0; j < info.inputs.size(); ++j) {
    const lb_tensor* t = c.t[j];
    if (t == nullptr) continue;
    if (t->dtype == LB_INT64) {
      if (int_target && info.inputs[j] == "target") continue;
      bad(std::string(info.inputs[j]) + ": a floating dtype is expected");
    }
    if (t->dtype < LB_FLOAT64 || t->dtype > LB_BFLOAT16) bad("unknown dtype");
    if (dtype < 0) dtype = t->dtype;
    if (t->dtype != dtype) bad("expected all floating inputs to have one dtype");
  }
  if (dtype < 0) bad("no floating input");
  plan.dtype = dtype;

  // Reduction.
  const std::string_view red = call.reduction ? call.reduction : "mean";
  const bool batchmean_ok = info.loss == Loss::kl_div;
  if (red != "none" && red != "mean" && red != "sum" && !(red == "batchmean" && batchmean_ok))
    bad(std::string(red) + " is not a valid value for reduction");
  plan.reduce = red != "none";

  // Parameters.
  ParamReader params{call, {}};
  formulas::Params& p = plan.params;
  const Shape x = shape_of(*c.t[0]);
  const Shape y = shape_of(*c.t[1]);
  Shape shape;
  Shape var_view;
  switch (info.loss) {
    case Loss::l1_loss:
    case Loss::mse_loss: shape = broadcast(x, y); break;
    case Loss::huber_loss: {
      params.known = {"delta"};
      shape = broadcast(x, y);
      const double delta = params.real("delta", 1.0);
      if (!(delta > 0)) bad("huber_loss does not support non-positive values for delta.");
      p.s0 = round_to(delta, dtype);
      break;
    }
    case Loss::smooth_l1_loss: {
      params.known = {"beta"};
      shape = broadcast(x, y);
      const double beta = params.real("beta", 1.0);
      p.f0 = beta == 0.0;
      if (!p.f0 && !(beta >= 0)) bad("smooth_l1_loss does not support negative values for beta.");
      p.s0 = round_to(beta, dtype == LB_BFLOAT16 ? LB_FLOAT32 : dtype);
      // A power-of-two beta (the default, 1) with a representable reciprocal: dividing by it is
      // multiplying by 1 / beta, bitwise (one rounding of the same exact value), and cheaper.
      if (int e = 0; p.s0 > 0 && std::isfinite(p.s0) && std::frexp(p.s0, &e) == 0.5) {
        p.s1 = 1.0 / p.s0;
        p.f1 = std::isfinite(p.s1) && std::frexp(p.s1, &e) == 0.5;
      }
      break;
    }
    case Loss::soft_margin_loss:
      shape = broadcast(x, y);
      if (shape != x)
        bad("output with shape " + shape_string(x) + " doesn't match the broadcast shape " +
            shape_string(shape));
      break;
    case Loss::binary_cross_entropy: {
      if (y != x)
        bad("Using a target size (" + shape_string(y) + ") that is different to the input size (" +
            shape_string(x) + ") is deprecated. Please ensure they have the same size.");
      Shape wshape;
      if (c.t[2]) wshape = broadcast(y, shape_of(*c.t[2]));
      // PyTorch reports the first offending element, input before target at the same index.
      const auto check = [input = c.t[0], target = c.t[1], n = numel(x)] {
        if (!any_outside(*input, 0.0, 1.0) && !any_outside(*target, 0.0, 1.0)) return;
        for (std::int64_t i = 0; i < n; ++i) {
          const double a = element(*input, i), b = element(*target, i);
          if (!(a >= 0 && a <= 1)) bad("all elements of input should be between 0 and 1");
          if (!(b >= 0 && b <= 1)) bad("all elements of target should be between 0 and 1");
        }
      };
      if (defer_value_checks)
        plan.value_check = check;
      else
        check();
      if (c.t[2] && wshape != x) bad("output with shape doesn't match the broadcast shape");
      shape = x;
      const double eps32 = static_cast<float>(1e-12);
      p.s0 = dtype == LB_FLOAT64 ? eps32 : round_to(eps32, dtype);
      break;
    }
    case Loss::binary_cross_entropy_with_logits:
      if (y != x)
        bad("Target size (" + shape_string(y) + ") must be the same as input size (" +
            shape_string(x) + ")");
      if (c.t[3] && broadcast(shape_of(*c.t[3]), y) != x)
        bad("output with shape doesn't match the broadcast shape");
      if (c.t[2] && broadcast(x, shape_of(*c.t[2])) != x)
        bad("output with shape doesn't match the broadcast shape");
      shape = x;
      p.f0 = c.t[3] != nullptr;
      break;
    case Loss::margin_ranking_loss: {
      params.known = {"margin"};
      const Shape t = shape_of(*c.t[2]);
      if (x.size() != y.size() || x.size() != t.size())
        bad("margin_ranking_loss : All input tensors should have same dimension");
      shape = broadcast(t, broadcast(x, y));
      p.s0 = round_to(params.real("margin", 0.0), dtype);
      p.f0 = dtype == LB_FLOAT64;  // the hinge's exact sum (formulas/margin_ranking_loss.hpp)
      break;
    }
    case Loss::hinge_embedding_loss:
      params.known = {"margin"};
      shape = broadcast(y, x);
      p.s0 = round_to(params.real("margin", 1.0), dtype);
      break;
    case Loss::poisson_nll_loss: {
      params.known = {"log_input", "full", "eps"};
      shape = broadcast(y, x);
      p.f0 = params.flag("log_input", true);
      p.f1 = params.flag("full", false);
      p.s0 = round_to(params.real("eps", 1e-8), dtype);
      const bool half = dtype == LB_FLOAT16 || dtype == LB_BFLOAT16;
      p.s1 = round_to(2 * M_PI, half ? LB_FLOAT32 : dtype);
      break;
    }
    case Loss::gaussian_nll_loss: {
      params.known = {"full", "eps"};
      const Shape v = shape_of(*c.t[2]);
      var_view = v;
      if (v != x) {
        const Shape x_head(x.begin(), x.end() - (x.empty() ? 0 : 1));
        if (x_head == v) {
          var_view.push_back(1);
        } else if (!(!v.empty() && Shape(v.begin(), v.end() - 1) == x_head && v.back() == 1)) {
          bad("var is of incorrect size");
        }
      }
      // var < 0 is an error; NaN is not (it propagates), so the scan's range is [0, inf] and
      // the slow loop below decides.
      const auto check = [var = c.t[2], nv = numel(v)] {
        if (!any_outside(*var, 0.0, HUGE_VAL)) return;
        for (std::int64_t i = 0; i < nv; ++i)
          if (element(*var, i) < 0) bad("var has negative entry/entries");
      };
      if (defer_value_checks)
        plan.value_check = check;
      else
        check();
      shape = broadcast(broadcast(x, y), var_view);
      p.f0 = params.flag("full", false);
      p.s0 = round_to(params.real("eps", 1e-6), dtype);
      const double half_log_2pi = 0.9189385332046727;
      p.s1 = dtype == LB_FLOAT64 ? half_log_2pi : static_cast<float>(half_log_2pi);
      break;
    }
    case Loss::kl_div:
      params.known = {"log_target"};
      shape = broadcast(x, y);
      p.f0 = params.flag("log_target", false);
      break;
    default: unsupported("loss");
  }
  params.check_known();

  plan.shape = shape;
  plan.numel = numel(shape);
  if (plan.shape.size() > 16) unsupported("more than 16 dimensions");
  for (int j = 0; j < plan.num_inputs; ++j) {
    if (c.t[j] == nullptr)
      plan.in[j] = constant_operand(1.0, shape);
    else if (info.loss == Loss::gaussian_nll_loss && j == 2)
      plan.in[j] = make_operand(*c.t[j], var_view, shape);
    else
      plan.in[j] = make_operand(*c.t[j], shape);
  }
  if (red == "mean")
    plan.divisor = static_cast<double>(plan.numel);
  else if (red == "batchmean")
    plan.divisor = x.empty() ? 1.0 : static_cast<double>(x[0]);
  else
    plan.divisor = 1.0;
}

void check_output(const Plan& plan, const lb_tensor& out, const char* what) {
  if (out.dtype < LB_FLOAT64 || out.dtype > LB_BFLOAT16)
    bad(std::string(what) + ": a floating dtype is expected");
  const Shape s = shape_of(out);
  if (plan.reduce ? numel(s) != 1 : s != plan.shape)
    bad(std::string(what) + ": shape " + shape_string(s) + " does not match the result");
}

const KernelTable& kernels_for(Isa isa, const Plan& plan) {
  // float64 binary_cross_entropy(_with_logits), kl_div, poisson_nll_loss and gaussian_nll_loss on
  // AVX-512: the float64 table's double-double formulas (isa/f64_dd.hpp), as exact as the
  // exact64 kernels.
  if (plan.dtype == LB_FLOAT64 && wide(isa) &&
      (plan.loss == Loss::binary_cross_entropy ||
       plan.loss == Loss::binary_cross_entropy_with_logits || plan.loss == Loss::kl_div ||
       plan.loss == Loss::poisson_nll_loss || plan.loss == Loss::gaussian_nll_loss))
    return avx512_f64_kernels();
  if (plan.dtype == LB_FLOAT64 && cancels_inside(plan.loss))
    return wide(isa) ? exact64_avx512_kernels()
                     : (isa == Isa::avx2 ? exact64_fma_kernels() : exact64_kernels());
  if (plan.dtype == LB_FLOAT64 && transcendental(plan.loss))
    return wide(isa) ? avx512_f64_kernels() : scalar_kernels();
  return table_of(isa);
}

// The CTC and multilabel drivers' kernels: float64 log_probs (input) on AVX-512 take the float64
// table, which has the vector double-double recursion (isa/ctc_dd.hpp) and
// multilabel_soft_margin_loss's float64 rows; everything else the ISA's.
const KernelTable& driver_kernels(Isa isa, const lb_call& call, std::string_view first_input) {
  for (std::int32_t k = 0; k < call.num_inputs; ++k) {
    const lb_tensor& t = call.inputs[k];
    if (wide(isa) && t.name != nullptr && std::string_view(t.name) == first_input &&
        t.dtype == LB_FLOAT64)
      return avx512_f64_kernels();
  }
  return table_of(isa);
}
const KernelTable& ctc_kernels(Isa isa, const lb_call& call) {
  return driver_kernels(isa, call, "log_probs");
}
const KernelTable& multilabel_kernels(Isa isa, const lb_call& call) {
  return driver_kernels(isa, call, "input");
}

// The classification driver's kernels: float64 cross_entropy uses the float64 table on AVX-512
// and the scalar one elsewhere (its exp to half an ULP of double, as transcendental() above);
// everything else the ISA's (float64 multi_margin_loss: its double-double row kernel).
const KernelTable& classification_kernels(Isa isa, const ClassificationPlan& p) {
  if (p.dtype == LB_FLOAT64 && p.loss == Loss::cross_entropy)
    return wide(isa) ? avx512_f64_kernels() : scalar_kernels();
  return table_of(isa);
}

// ---------------------------------------------------------------- the ABI functions

std::int32_t supports_isa(Isa isa, const char* loss, std::int32_t dtype, lb_device device) {
  if (!machine_has(isa) || device.type != LB_DEVICE_CPU) return 0;
  if (find_loss(loss) == nullptr && !is_classification(loss) && !pairwise::handles(loss) &&
      !ctc::handles(loss) && !multilabel::handles(loss))
    return 0;
  return dtype >= LB_FLOAT64 && dtype <= LB_BFLOAT16 ? 1 : 0;
}

std::int32_t forward_isa(Isa isa, const lb_call* call, lb_tensor* output, char* error,
                         std::size_t size) {
  return guarded(error, size, [&] {
    if (!machine_has(isa)) unsupported(std::string(isa_name(isa)) + " is not available here");
    if (is_classification(call->loss)) {
      ClassificationPlan& p = reused_plan();
      build_classification(*call, p);
      run_classification_forward(classification_kernels(isa, p), p, *output, driver_threads());
      return;
    }
    if (pairwise::handles(call->loss)) {
      const std::int32_t s =
          pairwise::forward(*call, *output, driver_threads(), error, size, &table_of(isa));
      if (s != LB_OK) throw Failure{s, error != nullptr && size > 0 ? error : ""};
      return;
    }
    if (ctc::handles(call->loss)) {
      const std::int32_t s =
          ctc::forward(*call, *output, driver_threads(), error, size, &ctc_kernels(isa, *call));
      if (s != LB_OK) throw Failure{s, error != nullptr && size > 0 ? error : ""};
      return;
    }
    if (multilabel::handles(call->loss)) {
      const std::int32_t s = multilabel::forward(*call, *output, driver_threads(), error, size,
                                                 &multilabel_kernels(isa, *call));
      if (s != LB_OK) throw Failure{s, error != nullptr && size > 0 ? error : ""};
      return;
    }
    Call c;
    build(*call, c, true);
    check_output(c.plan, *output, "output");
    run_forward(kernels_for(isa, c.plan), c.plan, *output, driver_threads());
  });
}

// Backward's checks of the gradient tensors and of grad_output; by_input[j] receives the
// gradient tensor of formula input j.
void match_grads(const Call& c, const lb_tensor* grad_output, lb_tensor* grads,
                 std::int32_t num_grads, lb_tensor** by_input) {
  for (std::int32_t k = 0; k < num_grads; ++k) {
    const char* name = grads[k].name ? grads[k].name : "";
    bool found = false;
    for (int j = 0; j < c.plan.num_inputs; ++j) {
      if (c.info->inputs[static_cast<std::size_t>(j)] != name) continue;
      found = true;
      if (c.t[j] == nullptr || c.t[j]->dtype == LB_INT64)
        bad(std::string("no gradient for input '") + name + "'");
      if (grads[k].dtype < LB_FLOAT64 || grads[k].dtype > LB_BFLOAT16 ||
          shape_of(grads[k]) != shape_of(*c.t[j]))
        bad(std::string("gradient '") + name + "': wrong dtype or shape");
      by_input[j] = &grads[k];
    }
    if (!found) bad(std::string("no gradient for input '") + name + "'");
  }
  if (grad_output != nullptr) {
    const Shape gs = shape_of(*grad_output);
    if (c.plan.reduce ? numel(gs) != 1 : gs != c.plan.shape) bad("grad_output has the wrong shape");
  }
}

std::int32_t backward_isa(Isa isa, const lb_call* call, const lb_tensor* grad_output,
                          lb_tensor* grads, std::int32_t num_grads, char* error, std::size_t size) {
  return guarded(error, size, [&] {
    if (!machine_has(isa)) unsupported(std::string(isa_name(isa)) + " is not available here");
    if (is_classification(call->loss)) {
      ClassificationPlan& p = reused_plan();
      build_classification(*call, p);
      double one = 1.0;
      const std::int64_t zero_strides[1] = {};
      lb_tensor ones{"grad_output", &one, LB_FLOAT64, 0, nullptr, zero_strides, {LB_DEVICE_CPU, 0}};
      run_classification_backward(classification_kernels(isa, p), p,
                                  grad_output != nullptr ? *grad_output : ones, grads, num_grads,
                                  driver_threads());
      return;
    }
    if (pairwise::handles(call->loss)) {
      const std::int32_t s = pairwise::backward(*call, grad_output, grads, num_grads,
                                                driver_threads(), error, size, &table_of(isa));
      if (s != LB_OK) throw Failure{s, error != nullptr && size > 0 ? error : ""};
      return;
    }
    if (ctc::handles(call->loss)) {
      const std::int32_t s = ctc::backward(*call, grad_output, grads, num_grads, driver_threads(),
                                           error, size, &ctc_kernels(isa, *call));
      if (s != LB_OK) throw Failure{s, error != nullptr && size > 0 ? error : ""};
      return;
    }
    if (multilabel::handles(call->loss)) {
      const std::int32_t s =
          multilabel::backward(*call, grad_output, grads, num_grads, driver_threads(), error, size,
                               &multilabel_kernels(isa, *call));
      if (s != LB_OK) throw Failure{s, error != nullptr && size > 0 ? error : ""};
      return;
    }
    Call c;
    build(*call, c, true);
    lb_tensor* by_input[kMaxInputs] = {};
    match_grads(c, grad_output, grads, num_grads, by_input);
    double one = 1.0;
    const std::int64_t zero_strides[16] = {};
    lb_tensor ones{"grad_output", &one, LB_FLOAT64, 0, nullptr, zero_strides, {LB_DEVICE_CPU, 0}};
    const lb_tensor& g = grad_output != nullptr ? *grad_output : ones;
    run_backward(kernels_for(isa, c.plan), c.plan, g, by_input, driver_threads());
  });
}

// forward_backward: one pass for the elementwise losses on the dense fast path, for
// cross_entropy's float32 fast path and one read of the rows for the pairwise fast paths;
// otherwise forward then backward (the same results either
// way).
std::int32_t forward_backward_isa(Isa isa, const lb_call* call, lb_tensor* output,
                                  const lb_tensor* grad_output, lb_tensor* grads,
                                  std::int32_t num_grads, char* error, std::size_t size) {
  bool fused = false;
  if (is_classification(call->loss) && grad_output != nullptr) {
    const std::int32_t s = guarded(error, size, [&] {
      if (!machine_has(isa)) unsupported(std::string(isa_name(isa)) + " is not available here");
      ClassificationPlan& p = reused_plan();
      build_classification(*call, p);
      fused = run_classification_fused(classification_kernels(isa, p), p, *output, *grad_output,
                                       grads, num_grads, driver_threads());
    });
    if (s != LB_OK || fused) return s;
  }
  if (pairwise::handles(call->loss)) {
    if (!machine_has(isa)) return forward_isa(isa, call, output, error, size);  // its error
    const std::int32_t s =
        pairwise::forward_backward(*call, *output, grad_output, grads, num_grads, driver_threads(),
                                   error, size, &table_of(isa), fused);
    if (s != LB_OK || fused) return s;
  }
  if (multilabel::handles(call->loss)) {
    if (!machine_has(isa)) return forward_isa(isa, call, output, error, size);  // its error
    const std::int32_t s = multilabel::forward_backward(*call, *output, grad_output, grads,
                                                        num_grads, driver_threads(), error, size,
                                                        &multilabel_kernels(isa, *call), fused);
    if (s != LB_OK || fused) return s;
  }
  if (find_loss(call->loss) != nullptr && !is_classification(call->loss) &&
      !pairwise::handles(call->loss) && !ctc::handles(call->loss) &&
      !multilabel::handles(call->loss)) {
    const std::int32_t s = guarded(error, size, [&] {
      if (!machine_has(isa)) unsupported(std::string(isa_name(isa)) + " is not available here");
      Call c;
      build(*call, c, true);
      check_output(c.plan, *output, "output");
      lb_tensor* by_input[kMaxInputs] = {};
      match_grads(c, grad_output, grads, num_grads, by_input);
      if (grad_output == nullptr) return;  // ones of the output's shape: the two calls
      fused = run_fused(kernels_for(isa, c.plan), c.plan, *output, *grad_output, by_input,
                        driver_threads());
    });
    if (s != LB_OK || fused) return s;
  }
  const std::int32_t s = forward_isa(isa, call, output, error, size);
  if (s != LB_OK) return s;
  return backward_isa(isa, call, grad_output, grads, num_grads, error, size);
}

#define LOSSBENCH_OPT_IMPL(fn, ISA_EXPR, NAME)                                                   \
  std::int32_t fn##_supports(const char* loss, std::int32_t dtype, lb_device device,             \
                             const char*) {                                                      \
    return supports_isa(ISA_EXPR, loss, dtype, device);                                          \
  }                                                                                              \
  std::int32_t fn##_forward(const lb_call* call, lb_tensor* output, char* error,                 \
                            std::size_t size) {                                                  \
    return forward_isa(ISA_EXPR, call, output, error, size);                                     \
  }                                                                                              \
  std::int32_t fn##_backward(const lb_call* call, const lb_tensor* g, lb_tensor* grads,          \
                             std::int32_t n, char* error, std::size_t size) {                    \
    return backward_isa(ISA_EXPR, call, g, grads, n, error, size);                               \
  }                                                                                              \
  std::int32_t fn##_forward_backward(const lb_call* call, lb_tensor* output, const lb_tensor* g, \
                                     lb_tensor* grads, std::int32_t n, char* error,              \
                                     std::size_t size) {                                         \
    return forward_backward_isa(ISA_EXPR, call, output, g, grads, n, error, size);               \
  }                                                                                              \
  const lb_impl fn##_table = {LB_ABI_VERSION,                                                    \
                              sizeof(lb_impl),                                                   \
                              NAME,                                                              \
                              "lossbench optimized CPU 0.1 (Highway 1.0, OpenMP)",               \
                              fn##_supports,                                                     \
                              fn##_forward,                                                      \
                              fn##_backward,                                                     \
                              nullptr,                                                           \
                              {LB_DEVICE_CPU, 0},                                                \
                              nullptr,                                                           \
                              nullptr,                                                           \
                              nullptr,                                                           \
                              fn##_forward_backward};

LOSSBENCH_OPT_IMPL(cpu, detected_isa(), "cpu")
LOSSBENCH_OPT_IMPL(cpu_scalar, Isa::scalar, "cpu-scalar")
LOSSBENCH_OPT_IMPL(cpu_avx2, Isa::avx2, "cpu-avx2")
LOSSBENCH_OPT_IMPL(cpu_avx512, Isa::avx512, "cpu-avx512")
LOSSBENCH_OPT_IMPL(cpu_fast, Isa::avx512_fast, "cpu-fast")

}  // namespace

bool machine_has(Isa isa) {
  switch (isa) {
    case Isa::avx512:
    case Isa::avx512_fast: return cpu_has_avx512();
    case Isa::avx2: return cpu_has_avx2();
    default: return true;
  }
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx512_fast: return "avx512-fast";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

Isa detected_isa() {
  Isa best = cpu_has_avx512() ? Isa::avx512 : (cpu_has_avx2() ? Isa::avx2 : Isa::scalar);
  if (const char* cap = std::getenv("LOSSBENCH_CPU_ISA")) {
    const std::string_view c(cap);
    const Isa limit = c == "scalar" ? Isa::scalar : (c == "avx2" ? Isa::avx2 : Isa::avx512);
    if (static_cast<int>(limit) < static_cast<int>(best)) best = limit;
  }
  return best;
}

const lb_impl* cpu_impl() { return &cpu_table; }
const lb_impl* cpu_scalar_impl() { return &cpu_scalar_table; }
const lb_impl* cpu_avx2_impl() { return &cpu_avx2_table; }
const lb_impl* cpu_avx512_impl() { return &cpu_avx512_table; }
const lb_impl* cpu_fast_impl() { return &cpu_fast_table; }

bool plans_loss(const char* loss) { return find_loss(loss) != nullptr; }

bool checks_values(const char* loss, const char* input) {
  if (loss == nullptr || input == nullptr) return false;
  const std::string_view l(loss), i(input);
  return (l == "binary_cross_entropy" && (i == "input" || i == "target")) ||
         (l == "gaussian_nll_loss" && i == "var");
}

std::int32_t plan_forward(const lb_call& call, const lb_tensor& output, PlannedCall& pc,
                          std::string& error) {
  char message[512] = {};
  const std::int32_t status = guarded(message, sizeof message, [&] {
    Call c;
    build(call, c);
    check_output(c.plan, output, "output");
    pc.plan = std::move(c.plan);
    for (int j = 0; j < kMaxInputs; ++j) pc.inputs[j] = c.t[j];
  });
  error = message;
  return status;
}

std::int32_t plan_backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                           std::int32_t num_grads, PlannedCall& pc, std::string& error) {
  char message[512] = {};
  const std::int32_t status = guarded(message, sizeof message, [&] {
    Call c;
    build(call, c);
    match_grads(c, grad_output, grads, num_grads, pc.grads);
    pc.plan = std::move(c.plan);
    for (int j = 0; j < kMaxInputs; ++j) pc.inputs[j] = c.t[j];
  });
  error = message;
  return status;
}

}  // namespace lossbench::opt
