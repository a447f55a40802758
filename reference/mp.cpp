#include "mp.hpp"

#include <cmath>

namespace lossbench::ref {

namespace {
long g_bits = 128;

template <class F>
Real unary(const Real& x, F f) {
  Real r;
  f(r.backend().data(), x.backend().data(), MPFR_RNDN);
  return r;
}
}  // namespace

long working_bits() { return g_bits; }

void set_working_bits(long bits) {
  g_bits = bits;
  // Boost sizes new numbers in decimal digits; choose enough digits for `bits`.
  const auto digits10 = static_cast<unsigned>(std::ceil(static_cast<double>(bits) * 0.30103)) + 1;
  Real::default_precision(digits10);
}

Real nan() {
  Real r;
  mpfr_set_nan(r.backend().data());
  return r;
}

Real infinity(int sign) {
  Real r;
  mpfr_set_inf(r.backend().data(), sign);
  return r;
}

Real log1p(const Real& x) { return unary(x, mpfr_log1p); }
Real expm1(const Real& x) { return unary(x, mpfr_expm1); }
Real sqrt(const Real& x) { return unary(x, mpfr_sqrt); }
Real exp(const Real& x) { return unary(x, mpfr_exp); }
Real log(const Real& x) { return unary(x, mpfr_log); }
Real lngamma(const Real& x) { return unary(x, mpfr_lngamma); }

Real pow(const Real& x, const Real& y) {
  Real r;
  mpfr_pow(r.backend().data(), x.backend().data(), y.backend().data(), MPFR_RNDN);
  return r;
}

Real pi() {
  Real r;
  mpfr_const_pi(r.backend().data(), MPFR_RNDN);
  return r;
}

Real sum(const std::vector<Real>& terms) {
  Real r;
  if (terms.empty()) return r;  // +0
  std::vector<mpfr_ptr> ptrs;
  ptrs.reserve(terms.size());
  for (const auto& t : terms) ptrs.push_back(const_cast<mpfr_ptr>(t.backend().data()));
  mpfr_sum(r.backend().data(), ptrs.data(), ptrs.size(), MPFR_RNDN);
  return r;
}

Real maximum(const Real& a, const Real& b) {
  if (isnan(a)) return a;
  if (isnan(b)) return b;
  return a < b ? b : a;
}

Real minimum(const Real& a, const Real& b) {
  if (isnan(a)) return a;
  if (isnan(b)) return b;
  return b < a ? b : a;
}

Real clamp(const Real& x, const Real& lo, const Real& hi) { return minimum(maximum(x, lo), hi); }

Real sgn(const Real& x) {
  if (isnan(x)) return x;
  if (iszero(x)) return Real(0);
  return Real(signbit(x) ? -1 : 1);
}

}  // namespace lossbench::ref
