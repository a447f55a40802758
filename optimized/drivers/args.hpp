#pragma once
// Argument plumbing shared by the CPU drivers: shapes of ABI tensors, PyTorch's broadcasting
// rule with its message, and the two ways a driver refuses a call (bad arguments, unsupported).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "elements.hpp"
#include "lossbench/abi.h"

namespace lossbench::opt {

using Shape = std::vector<std::int64_t>;

// Thrown by argument checks; the ABI entry points turn it into a status and an error string.
struct Failure {
  std::int32_t status;
  std::string message;
};

[[noreturn]] inline void bad(const std::string& m) { throw Failure{LB_BAD_ARGUMENTS, m}; }
[[noreturn]] inline void unsupported(const std::string& m) { throw Failure{LB_UNSUPPORTED, m}; }

inline Shape shape_of(const lb_tensor& t) { return Shape(t.shape, t.shape + t.ndim); }
// The element `offset` elements into t's storage (conformance/elements.hpp: element_size).
inline void* element_at(const lb_tensor& t, std::int64_t offset) {
  return static_cast<char*>(t.data) +
         offset * static_cast<std::int64_t>(conformance::element_size(t.dtype));
}
inline Shape strides_of(const lb_tensor& t) { return Shape(t.strides, t.strides + t.ndim); }

inline std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline std::string shape_string(const Shape& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// PyTorch's broadcasting of two shapes; bad() with PyTorch's message when they do not.
inline Shape broadcast(const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      bad("The size of tensor a (" + std::to_string(da) + ") must match the size of tensor b (" +
          std::to_string(db) + ") at non-singleton dimension " + std::to_string(i));
    r[i] = da == 1 ? db : da;
  }
  return r;
}

// The parameters of a call by name, with the loss's defaults when absent. check_known() refuses
// a parameter the loss does not know (unsupported, so that a newer caller fails cleanly).
struct ParamReader {
  const lb_call& call;
  std::vector<std::string_view> known;
  const lb_param* find(std::string_view name) {
    for (std::int32_t k = 0; k < call.num_params; ++k)
      if (call.params[k].name != nullptr && name == call.params[k].name) return &call.params[k];
    return nullptr;
  }
  double real(std::string_view name, double def) {
    const lb_param* p = find(name);
    if (p == nullptr) return def;
    if (p->type == LB_PARAM_FLOAT) return p->f;
    if (p->type == LB_PARAM_INT) return static_cast<double>(p->i);
    bad(std::string(name) + ": a number is expected");
  }
  bool flag(std::string_view name, bool def) {
    const lb_param* p = find(name);
    if (p == nullptr) return def;
    if (p->type == LB_PARAM_BOOL) return p->b != 0;
    bad(std::string(name) + ": a boolean is expected");
  }
  void check_known() {
    for (std::int32_t k = 0; k < call.num_params; ++k) {
      const char* n = call.params[k].name;
      bool ok = false;
      for (auto s : known) ok = ok || (n != nullptr && s == n);
      if (!ok) unsupported(std::string("unknown parameter '") + (n ? n : "") + "'");
    }
  }
};

inline void set_error(char* error, std::size_t size, const std::string& m) {
  if (error != nullptr && size > 0) std::snprintf(error, size, "%s", m.c_str());
}

// Runs f and turns a Failure or another exception into the ABI's status and error string.
template <class F>
std::int32_t guarded(char* error, std::size_t size, F&& f) {
  try {
    f();
    return LB_OK;
  } catch (const Failure& e) {
    set_error(error, size, e.message);
    return e.status;
  } catch (const std::exception& e) {
    set_error(error, size, e.what());
    return LB_INTERNAL_ERROR;
  }
}

// ---- non-temporal stores

// A tensor the drivers write is streamed (non-temporal stores, no read-for-ownership of its
// lines) once it is this large: well beyond the caches (2 MiB of L2 per core here), where the
// caller will read it back from memory anyway. Below it a plain store is the cheaper one.
inline constexpr std::int64_t kStreamBytes = std::int64_t{16} << 20;

// ---- threads

// Below this many elements of work a call runs on one thread: waking a team costs more than it
// saves (PyTorch's grain size is the same). Results do not depend on it: the drivers' block
// partitions and reduction orders are fixed.
inline constexpr std::int64_t kParallelGrain = 32768;
inline int threads_for(std::int64_t work, int threads) {
  return work < kParallelGrain ? 1 : threads;
}

// ---- double-double arithmetic on the host (the drivers' reductions)

// Error-free transformation: s + e == a + b exactly.
inline void two_sum(double a, double b, double& s, double& e) {
  s = a + b;
  const double bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

// Where a double-double sum overflows: hi is the infinity (or NaN) IEEE's sum gives and lo 0 (a
// TwoSum's error term is NaN there, and hi + lo would be NaN).
inline void dd_settle(double& hi, double& lo, double s, double rest) {
  if (!(std::fabs(s) < HUGE_VAL)) {
    hi = s;  // (rest holds the overflowed TwoSum's NaN error)
    lo = 0.0;
    return;
  }
  two_sum(s, rest, hi, lo);
  if (std::fabs(hi) < HUGE_VAL) return;
  hi = s + rest;
  lo = 0.0;
}

// hi + lo += a_hi + a_lo (IEEE's sum, no compensation, once anything is not finite).
inline void dd_add(double& hi, double& lo, double a_hi, double a_lo) {
  if (!(std::fabs(hi) < HUGE_VAL) || !(std::fabs(a_hi) < HUGE_VAL)) {
    hi += a_hi;
    lo = 0.0;
    return;
  }
  double s, e;
  two_sum(hi, a_hi, s, e);
  dd_settle(hi, lo, s, lo + a_lo + e);
}

// hi + lo += a, a single double (lo += e, not lo + 0 + e: the sign of a zero is kept).
inline void dd_add(double& hi, double& lo, double a) {
  if (!(std::fabs(hi) < HUGE_VAL) || !(std::fabs(a) < HUGE_VAL)) {
    hi += a;
    lo = 0.0;
    return;
  }
  double s, e;
  two_sum(hi, a, s, e);
  dd_settle(hi, lo, s, lo + e);
}

// (hi + lo) / d, nearly correctly rounded.
inline double dd_div(double hi, double lo, double d) {
  const double q = hi / d;
  if (!std::isfinite(q) || d == 0) return (hi + lo) / d;
  const double r = std::fma(-q, d, hi) + lo;
  return q + r / d;
}

}  // namespace lossbench::opt
