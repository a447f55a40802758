// A small implementation of mse_loss and l1_loss (long double arithmetic, rounded once), built
// in several deliberately broken variants to test the scorer:
//   TOY_MODE 0: correct; 1: l1_loss output times (1 + 1e-3); 2: SIGSEGV on l1_loss;
//   3: sleeps forever on mse_loss with reduction "sum".
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "elements.hpp"
#include "lossbench/abi.h"

#ifndef TOY_MODE
#define TOY_MODE 0
#endif

namespace {

using namespace lossbench::conformance;

int32_t fail(char* error, size_t size, int32_t status, const std::string& msg) {
  if (error && size) std::snprintf(error, size, "%s", msg.c_str());
  return status;
}

bool is_floating(int32_t dt) { return dt >= LB_FLOAT64 && dt <= LB_BFLOAT16; }

int32_t supports(const char* loss, int32_t dtype, lb_device device, const char* reduction) {
  const std::string l = loss, r = reduction;
  return device.type == LB_DEVICE_CPU && is_floating(dtype) &&
         (l == "mse_loss" || l == "l1_loss") && (r == "none" || r == "mean" || r == "sum");
}

struct Args {
  const lb_tensor* x = nullptr;
  const lb_tensor* y = nullptr;
  std::string loss, reduction;
};

int32_t parse(const lb_call* call, Args& a, char* error, size_t size) {
  a.loss = call->loss;
  a.reduction = call->reduction ? call->reduction : "mean";
  if (a.reduction != "none" && a.reduction != "mean" && a.reduction != "sum")
    return fail(error, size, LB_BAD_ARGUMENTS, a.reduction + " is not a valid value for reduction");
  if (call->num_params > 0)
    return fail(error, size, LB_UNSUPPORTED,
                std::string("unknown parameter ") + call->params[0].name);
  for (int32_t k = 0; k < call->num_inputs; ++k) {
    const std::string n = call->inputs[k].name;
    if (n == "input")
      a.x = &call->inputs[k];
    else if (n == "target")
      a.y = &call->inputs[k];
    else
      return fail(error, size, LB_BAD_ARGUMENTS, "unexpected input " + n);
  }
  if (!a.x || !a.y) return fail(error, size, LB_BAD_ARGUMENTS, "input and target are required");
  if (!is_floating(a.x->dtype) || a.x->dtype != a.y->dtype)
    return fail(error, size, LB_BAD_ARGUMENTS, "dtypes");
  if (a.x->ndim != a.y->ndim) return fail(error, size, LB_BAD_ARGUMENTS, "shapes differ");
  for (int32_t d = 0; d < a.x->ndim; ++d)
    if (a.x->shape[d] != a.y->shape[d]) return fail(error, size, LB_BAD_ARGUMENTS, "shapes differ");
  return LB_OK;
}

long double term(const std::string& loss, long double d) {
  return loss == "mse_loss" ? d * d : std::fabs(d);
}

int32_t forward(const lb_call* call, lb_tensor* out, char* error, size_t size) {
  Args a;
  if (int32_t s = parse(call, a, error, size)) return s;
#if TOY_MODE == 2
  if (a.loss == "l1_loss") {
    volatile int* p = nullptr;
    *p = 1;  // deliberate crash
  }
#endif
#if TOY_MODE == 3
  if (a.loss == "mse_loss" && a.reduction == "sum")
    for (;;) ::sleep(1000);  // deliberate hang
#endif
  const int64_t n = tensor_numel(*a.x);
  std::vector<long double> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const long double d =
        static_cast<long double>(load_float(a.x->data, a.x->dtype, strided_offset(*a.x, i))) -
        static_cast<long double>(load_float(a.y->data, a.y->dtype, strided_offset(*a.y, i)));
    t[static_cast<size_t>(i)] = term(a.loss, d);
  }
  double scale = 1.0;
#if TOY_MODE == 1
  if (a.loss == "l1_loss") scale = 1.0 + 1e-3;  // deliberately wrong
#endif
  if (a.reduction == "none") {
    for (int64_t i = 0; i < n; ++i)
      store_float(out->data, out->dtype, strided_offset(*out, i),
                  static_cast<double>(t[static_cast<size_t>(i)]) * scale);
    return LB_OK;
  }
  long double s = 0;
  for (auto v : t) s += v;
  if (a.reduction == "mean") s = n ? s / static_cast<long double>(n) : NAN;
  store_float(out->data, out->dtype, 0, static_cast<double>(s) * scale);
  return LB_OK;
}

int32_t backward(const lb_call* call, const lb_tensor* go, lb_tensor* grads, int32_t num_grads,
                 char* error, size_t size) {
  Args a;
  if (int32_t s = parse(call, a, error, size)) return s;
  const int64_t n = tensor_numel(*a.x);
  for (int32_t k = 0; k < num_grads; ++k) {
    const std::string name = grads[k].name;
    const long double sign = name == "input" ? 1 : -1;
    if (name != "input" && name != "target")
      return fail(error, size, LB_BAD_ARGUMENTS, "no gradient for " + name);
    for (int64_t i = 0; i < n; ++i) {
      const long double d =
          static_cast<long double>(load_float(a.x->data, a.x->dtype, strided_offset(*a.x, i))) -
          static_cast<long double>(load_float(a.y->data, a.y->dtype, strided_offset(*a.y, i)));
      const long double g = static_cast<long double>(
          load_float(go->data, go->dtype, a.reduction == "none" ? strided_offset(*go, i) : 0));
      long double v = a.loss == "mse_loss" ? 2 * d
                                           : (d > 0   ? 1
                                              : d < 0 ? -1
                                                      : (std::isnan(d) ? d : 0));
      v *= g * sign;
      if (a.reduction == "mean") v /= static_cast<long double>(n);
      store_float(grads[k].data, grads[k].dtype, strided_offset(grads[k], i),
                  static_cast<double>(v));
    }
  }
  return LB_OK;
}

// struct_size stops before forward_backward: a table written before that field was appended,
// which the scorer must read no further than its size.
const lb_impl kToy = {LB_ABI_VERSION,
                      offsetof(lb_impl, forward_backward),
                      "toy" TOY_SUFFIX,
                      "test plugin",
                      supports,
                      forward,
                      backward,
                      nullptr,
                      {LB_DEVICE_CPU, 0},
                      nullptr,
                      nullptr,
                      nullptr,
                      nullptr};

}  // namespace

extern "C" LB_EXPORT const lb_impl* lossbench_impl_v1(void) { return &kToy; }
