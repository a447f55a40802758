#pragma once
// Element types of case tensors and the binary floating-point formats lossbench rounds to.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lossbench {

enum class DType { float64, float32, float16, bfloat16, int64 };

inline constexpr std::array<DType, 4> kFloatDTypes = {DType::float64, DType::float32,
                                                      DType::float16, DType::bfloat16};

std::string_view to_string(DType dtype);
std::optional<DType> parse_dtype(std::string_view name);
inline bool is_floating(DType dtype) { return dtype != DType::int64; }

// An IEEE-754 binary format: `precision` significand bits (with the hidden bit), normal
// exponents in [emin, emax] (value 2^e), subnormals below 2^emin.
struct FloatFormat {
  int precision;
  int emin;
  int emax;
};
FloatFormat format_of(DType dtype);  // dtype must be floating

// Rounds a double to the nearest value of `dtype` (ties to even, overflow to infinity).
// The result is returned as a double, which holds every value of every supported format.
double round_to(double value, DType dtype);
bool representable(double value, DType dtype);

// "0x1.8p+1", "-0x0p+0", "nan", "inf", "-inf": exact for every supported format.
std::string hex_string(double value);

// Parses one element: C99 hex float (must be exactly representable in dtype), a decimal
// (correctly rounded to dtype), "nan", "inf", "-inf". Throws Error(Format) naming the text.
double parse_float_text(std::string_view text, DType dtype);

}  // namespace lossbench
