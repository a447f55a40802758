#pragma once
// Argument plumbing shared by the CPU drivers: shapes of ABI tensors, PyTorch's broadcasting
// rule with its message, and the two ways a driver refuses a call (bad arguments, unsupported).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace lossbench::opt
