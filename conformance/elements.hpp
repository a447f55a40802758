#pragma once
// Reading and writing tensor elements in the ABI's storage formats (include/lossbench/abi.h).
// Header-only and free of lossbench dependencies, so test plugins can use it too.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "lossbench/abi.h"

// The four 16-bit conversions are also compiled for CUDA devices (optimized/cuda/), so that
// the device rounds exactly as the host does (nvcc: --expt-relaxed-constexpr for numeric_limits).
#if defined(__CUDACC__)
#define LOSSBENCH_ELEMENTS_HD __host__ __device__
#else
#define LOSSBENCH_ELEMENTS_HD
#endif

namespace lossbench::conformance {

inline std::size_t element_size(std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT64: return 8;
    case LB_FLOAT32: return 4;
    case LB_FLOAT16: return 2;
    case LB_BFLOAT16: return 2;
    case LB_INT64: return 8;
    default: return 0;
  }
}

// binary16 bits -> value.
LOSSBENCH_ELEMENTS_HD inline double half_to_double(std::uint16_t h) {
  const bool neg = (h & 0x8000u) != 0;
  const int exp = (h >> 10) & 0x1f;
  const int frac = h & 0x3ff;
  double v;
  if (exp == 0x1f)
    v = frac ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exp == 0)
    v = std::ldexp(static_cast<double>(frac), -24);
  else
    v = std::ldexp(static_cast<double>(frac | 0x400), exp - 25);
  return neg ? -v : v;
}

// Value (rounded to nearest even binary16 if it is not representable) -> binary16 bits.
LOSSBENCH_ELEMENTS_HD inline std::uint16_t double_to_half(double v) {
  std::uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  if (std::isnan(v)) return static_cast<std::uint16_t>(sign | 0x7e00u);
  double a = std::fabs(v);
  if (a >= 65520.0) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to infinity
  if (a < std::ldexp(1.0, -14)) {                                       // subnormal or zero
    const double m = std::nearbyint(a * std::ldexp(1.0, 24));           // ties to even
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(m));
  }
  int e;
  const double fr = std::frexp(a, &e);     // a = fr * 2^e, fr in [0.5, 1)
  double m = std::nearbyint(fr * 2048.0);  // 11 significant bits
  if (m == 2048.0) {
    m = 1024.0;
    ++e;
  }
  const int biased = e - 1 + 15;
  if (biased >= 0x1f) return static_cast<std::uint16_t>(sign | 0x7c00u);
  return static_cast<std::uint16_t>(sign | (biased << 10) | (static_cast<int>(m) - 1024));
}

LOSSBENCH_ELEMENTS_HD inline double bfloat16_to_double(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Value (rounded to nearest even bfloat16) -> bfloat16 bits.
LOSSBENCH_ELEMENTS_HD inline std::uint16_t double_to_bfloat16(double v) {
  if (std::isnan(v)) return std::signbit(v) ? 0xffc0u : 0x7fc0u;
  // Round the double to 8 significant bits directly (not through float: no double rounding).
  double r;
  const double a = std::fabs(v);
  if (a == 0 || std::isinf(a)) {
    r = v;
  } else {
    int e;
    (void)std::frexp(a, &e);
    int q = e - 8;           // quantum exponent for 8 significant bits
    if (q < -133) q = -133;  // bfloat16 subnormal quantum 2^-133
    r = std::nearbyint(v * std::ldexp(1.0, -q)) * std::ldexp(1.0, q);
    if (std::fabs(r) >= 0x1p128) r = std::copysign(HUGE_VAL, v);  // overflow
  }
  const float f = static_cast<float>(r);  // exact now
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<std::uint16_t>(bits >> 16);
}

// Element `index` (in elements, already multiplied out with strides) of a floating tensor.
inline double load_float(const void* data, std::int32_t dtype, std::int64_t index) {
  const auto* p = static_cast<const unsigned char*>(data);
  switch (dtype) {
    case LB_FLOAT64: {
      double v;
      std::memcpy(&v, p + index * 8, 8);
      return v;
    }
    case LB_FLOAT32: {
      float v;
      std::memcpy(&v, p + index * 4, 4);
      return v;
    }
    case LB_FLOAT16: {
      std::uint16_t v;
      std::memcpy(&v, p + index * 2, 2);
      return half_to_double(v);
    }
    case LB_BFLOAT16: {
      std::uint16_t v;
      std::memcpy(&v, p + index * 2, 2);
      return bfloat16_to_double(v);
    }
    case LB_INT64: {
      std::int64_t v;
      std::memcpy(&v, p + index * 8, 8);
      return static_cast<double>(v);
    }
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

// Stores `v` rounded to the dtype (to nearest even; float32 through the C++ conversion).
inline void store_float(void* data, std::int32_t dtype, std::int64_t index, double v) {
  auto* p = static_cast<unsigned char*>(data);
  switch (dtype) {
    case LB_FLOAT64: std::memcpy(p + index * 8, &v, 8); break;
    case LB_FLOAT32: {
      const float f = static_cast<float>(v);
      std::memcpy(p + index * 4, &f, 4);
      break;
    }
    case LB_FLOAT16: {
      const std::uint16_t h = double_to_half(v);
      std::memcpy(p + index * 2, &h, 2);
      break;
    }
    case LB_BFLOAT16: {
      const std::uint16_t b = double_to_bfloat16(v);
      std::memcpy(p + index * 2, &b, 2);
      break;
    }
    case LB_INT64: {
      const auto i = static_cast<std::int64_t>(v);
      std::memcpy(p + index * 8, &i, 8);
      break;
    }
    default: break;
  }
}

inline std::int64_t load_int(const void* data, std::int64_t index) {
  std::int64_t v;
  std::memcpy(&v, static_cast<const unsigned char*>(data) + index * 8, 8);
  return v;
}

// Offset (in elements) of the row-major linear index `linear` in a strided tensor.
inline std::int64_t strided_offset(const lb_tensor& t, std::int64_t linear) {
  std::int64_t off = 0;
  for (std::int32_t d = t.ndim - 1; d >= 0; --d) {
    const std::int64_t size = t.shape[d];
    if (size == 0) return 0;
    off += (linear % size) * t.strides[d];
    linear /= size;
  }
  return off;
}

inline std::int64_t tensor_numel(const lb_tensor& t) {
  std::int64_t n = 1;
  for (std::int32_t d = 0; d < t.ndim; ++d) n *= t.shape[d];
  return n;
}

}  // namespace lossbench::conformance
