#include "lossbench/dtype.hpp"

#include <mpfr.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "lossbench/error.hpp"
#include "mpfr_round.hpp"

namespace lossbench {

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::float64: return "float64";
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::int64: return "int64";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType d : {DType::float64, DType::float32, DType::float16, DType::bfloat16, DType::int64})
    if (to_string(d) == name) return d;
  return std::nullopt;
}

FloatFormat format_of(DType dtype) {
  switch (dtype) {
    case DType::float64: return {53, -1022, 1023};
    case DType::float32: return {24, -126, 127};
    case DType::float16: return {11, -14, 15};
    case DType::bfloat16: return {8, -126, 127};
    case DType::int64: break;
  }
  throw Error(ErrorKind::Type, "int64 has no floating-point format");
}

namespace detail {

double round_to_format(mpfr_srcptr x, const FloatFormat& f, mpfr_rnd_t rnd) {
  if (mpfr_nan_p(x)) return std::numeric_limits<double>::quiet_NaN();
  if (mpfr_inf_p(x))
    return mpfr_signbit(x) ? -std::numeric_limits<double>::infinity()
                           : std::numeric_limits<double>::infinity();
  const bool neg = mpfr_signbit(x) != 0;
  if (mpfr_zero_p(x)) return neg ? -0.0 : 0.0;

  // Work on |x| and map directed modes to |x|: round toward -inf of a negative number is
  // away from zero in magnitude.
  mpfr_rnd_t mag = rnd;
  if (neg && rnd == MPFR_RNDD)
    mag = MPFR_RNDU;
  else if (neg && rnd == MPFR_RNDU)
    mag = MPFR_RNDD;

  // MPFR writes x = m 2^e with m in [1/2, 1); the format's normal numbers have e in
  // [emin + 1, emax + 1]. Below emin + 1 the significand loses a bit per binade.
  const mpfr_exp_t e = mpfr_get_exp(x);
  long bits = f.precision;
  if (e < f.emin + 1) bits -= (f.emin + 1) - e;
  const double min_sub = std::ldexp(1.0, f.emin - f.precision + 1);
  double result;
  if (bits < 1) {
    // |x| < min_sub. bits == 0 means |x| in [min_sub / 2, min_sub), where to nearest gives
    // min_sub except on the tie min_sub / 2 (even: 0); bits < 0 means |x| < min_sub / 2.
    if (mag == MPFR_RNDN) {
      result = 0.0;
      if (bits == 0) {
        mpfr_t half;
        mpfr_init2(half, 64);
        mpfr_set_d(half, min_sub / 2, MPFR_RNDN);
        if (mpfr_cmpabs(x, half) > 0) result = min_sub;
        mpfr_clear(half);
      }
    } else {
      result = (mag == MPFR_RNDU || mag == MPFR_RNDA) ? min_sub : 0.0;
    }
  } else {
    mpfr_t y;
    mpfr_init2(y, mpfr_get_prec(x));
    mpfr_abs(y, x, MPFR_RNDN);  // exact: same precision
    mpfr_prec_round(y, bits, mag);
    result = mpfr_get_d(y, MPFR_RNDN);  // exact: y has at most 53 bits and a double exponent
    mpfr_clear(y);
  }
  const double max_finite = std::ldexp(2.0 - std::ldexp(1.0, 1 - f.precision), f.emax);
  if (result > max_finite) {
    // Overflow: to nearest and away go to infinity, toward zero stays at the largest finite.
    result = (mag == MPFR_RNDZ || mag == MPFR_RNDD) ? max_finite
                                                    : std::numeric_limits<double>::infinity();
  }
  return neg ? -result : result;
}

}  // namespace detail

namespace {
struct Mpfr {
  mpfr_t v;
  explicit Mpfr(mpfr_prec_t p) { mpfr_init2(v, p); }
  ~Mpfr() { mpfr_clear(v); }
  Mpfr(const Mpfr&) = delete;
  Mpfr& operator=(const Mpfr&) = delete;
};
}  // namespace

double round_to(double value, DType dtype) {
  if (dtype == DType::float64) return value;
  Mpfr m(53);
  mpfr_set_d(m.v, value, MPFR_RNDN);
  return detail::round_to_dtype(m.v, dtype);
}

bool representable(double value, DType dtype) {
  if (std::isnan(value)) return true;
  return round_to(value, dtype) == value;
}

std::string hex_string(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", value);
  return buf;
}

double parse_float_text(std::string_view text, DType dtype) {
  const std::string s(text);
  if (s == "nan" || s == "NaN" || s == "-nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf" || s == "+inf" || s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-inf" || s == "-Infinity") return -std::numeric_limits<double>::infinity();
  if (s.empty()) throw Error(ErrorKind::Format, "empty number");
  // Fast paths, exact: a hex float whose significand has at most 13 hex digits after the point
  // is held exactly by strtod; a decimal for float64 is correctly rounded by glibc's strtod.
  {
    const auto x = s.find_first_of("xX");
    const auto pt = s.find('.');
    const auto pe = s.find_first_of("pP");
    const bool short_hex = x != std::string::npos && pe != std::string::npos &&
                           (pt == std::string::npos || pe - pt - 1 <= 13) && x <= 2 &&
                           (pt == std::string::npos ? pe - x - 1 : pt - x - 1) == 1;
    const bool plain_decimal = x == std::string::npos && dtype == DType::float64 &&
                               s.find_first_not_of("0123456789+-.eE") == std::string::npos;
    if (short_hex || plain_decimal) {
      char* end = nullptr;
      errno = 0;
      const double d = std::strtod(s.c_str(), &end);
      if (end != s.c_str() && *end == '\0' && errno == 0 && std::isfinite(d)) {
        if (plain_decimal) return d;
        if (representable(d, dtype)) return d;
      }
    }
  }
  // Parse at 128 bits first: enough for a hex float of any supported format, and a decimal
  // rounded to 128 bits rounds correctly to the format unless the 128-bit value lands exactly on
  // a midpoint of the format while being inexact; then parse again with 16384 bits (a second
  // rounding can then only matter for a decimal within 2^-16384 of a midpoint).
  const bool is_hex = s.find("0x") != std::string::npos || s.find("0X") != std::string::npos;
  Mpfr m(128);
  char* end = nullptr;
  int inexact = mpfr_strtofr(m.v, s.c_str(), &end, 0, MPFR_RNDN);
  if (end == s.c_str() || *end != '\0')
    throw Error(ErrorKind::Format, "'" + s +
                                       "' is not a number (expected a C99 hex float such as "
                                       "\"0x1.8p+1\", a decimal, \"nan\", \"inf\" or \"-inf\")");
  double v = detail::round_to_dtype(m.v, dtype);
  if (is_hex) {
    Mpfr back(64);
    mpfr_set_d(back.v, v, MPFR_RNDN);
    if (inexact != 0 || mpfr_cmp(back.v, m.v) != 0 || std::isinf(v))
      throw Error(ErrorKind::Format, "hex float '" + s + "' is not exactly representable in " +
                                         std::string(to_string(dtype)) +
                                         " (write it as a decimal to have it rounded)");
    return v;
  }
  if (inexact != 0 && mpfr_number_p(m.v)) {
    const double down = detail::round_to_dtype(m.v, dtype, MPFR_RNDD);
    const double up = detail::round_to_dtype(m.v, dtype, MPFR_RNDU);
    Mpfr mid(128);
    mpfr_set_d(mid.v, down, MPFR_RNDN);
    mpfr_add_d(mid.v, mid.v, up, MPFR_RNDN);  // exact: both are doubles of one binade pair
    mpfr_div_2ui(mid.v, mid.v, 1, MPFR_RNDN);
    if (down != up && std::isfinite(up) && mpfr_equal_p(mid.v, m.v)) {
      Mpfr fine(16384);
      mpfr_strtofr(fine.v, s.c_str(), &end, 0, MPFR_RNDN);
      v = detail::round_to_dtype(fine.v, dtype);
    }
  }
  return v;
}

}  // namespace lossbench
