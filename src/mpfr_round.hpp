#pragma once
// Correct rounding of an MPFR number to a binary format of lossbench (internal).
#include <mpfr.h>

#include "lossbench/dtype.hpp"

namespace lossbench::detail {

// Rounds x to the nearest value of `format` (ties to even, subnormals and overflow as IEEE-754
// binary formats do) and returns it as a double, which holds it exactly. `rnd` may be MPFR_RNDN
// (the normal case) or a directed mode.
double round_to_format(mpfr_srcptr x, const FloatFormat& format, mpfr_rnd_t rnd = MPFR_RNDN);
inline double round_to_dtype(mpfr_srcptr x, DType dtype, mpfr_rnd_t rnd = MPFR_RNDN) {
  return round_to_format(x, format_of(dtype), rnd);
}

}  // namespace lossbench::detail
