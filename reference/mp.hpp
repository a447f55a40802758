#pragma once
// Arbitrary-precision numbers for the reference: Boost.Multiprecision over MPFR.
//
// A loss's reference code computes with `Real` at whatever precision the certification loop
// (certify.cpp) has set; it never picks a precision itself and never keeps a Real in a static,
// so the same code runs at 128 bits, 256 bits, ... until every result is decided.
// Real follows IEEE-754 for special values (NaN, infinities, signed zeros), as MPFR does.
#include <mpfr.h>

#include <boost/multiprecision/mpfr.hpp>
#include <vector>

namespace lossbench::ref {

// Expression templates are off so that `auto` and lambdas are safe in reference code.
using Real = boost::multiprecision::number<boost::multiprecision::mpfr_float_backend<0>,
                                           boost::multiprecision::et_off>;

// Working precision of new Reals, in bits (set by the certification loop).
long working_bits();
void set_working_bits(long bits);

inline Real real(double v) { return Real(v); }  // exact
Real nan();
Real infinity(int sign = 1);

// Correctly rounded MPFR functions that Boost 1.74 does not forward.
Real log1p(const Real& x);
Real expm1(const Real& x);
Real sqrt(const Real& x);
Real exp(const Real& x);
Real log(const Real& x);
Real pow(const Real& x, const Real& y);
Real lngamma(const Real& x);
Real pi();

// sum of all terms, correctly rounded (mpfr_sum: no cancellation error, whatever the order).
Real sum(const std::vector<Real>& terms);

// PyTorch-style comparisons that propagate NaN (std::max/std::min do not).
Real maximum(const Real& a, const Real& b);  // at::maximum / clamp_min
Real minimum(const Real& a, const Real& b);  // at::minimum
Real clamp(const Real& x, const Real& lo, const Real& hi);

inline bool isnan(const Real& x) { return mpfr_nan_p(x.backend().data()) != 0; }
inline bool isinf(const Real& x) { return mpfr_inf_p(x.backend().data()) != 0; }
inline bool isfinite(const Real& x) { return mpfr_number_p(x.backend().data()) != 0; }
inline bool iszero(const Real& x) { return mpfr_zero_p(x.backend().data()) != 0; }
inline bool signbit(const Real& x) { return mpfr_signbit(x.backend().data()) != 0; }
// sign(x) as torch.sign / sgn: -1, 0 (for +-0) or 1; NaN for NaN.
Real sgn(const Real& x);

}  // namespace lossbench::ref
