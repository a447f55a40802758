// The certification loop (Ziv's strategy) around the per-loss reference code.
//
// Why the difference of two evaluations bounds the error: every reference is a fixed sequence
// of correctly rounded MPFR operations, so its error at working precision p is at most
// K * 2^-p * (a magnitude that does not depend on p), where K depends on the expression and on
// its conditioning but not on p. Evaluating at p and 2p gives |v_p - v_2p| ~ K 2^-p, and the error
// of v_2p is then about 2^-p times smaller than that difference. Accepting v_2p with a radius of
// twice the observed difference therefore leaves a margin of a factor of about 2^(p+1) before
// the estimate could be wrong. A value that is the same at both precisions is taken as exact
// (it is a rational result held exactly, such as a sum of floats, or an exact midpoint).
#include <mpfr.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "../src/mpfr_round.hpp"
#include "lossbench/error.hpp"
#include "reference.hpp"

namespace lossbench::ref {

namespace {

struct Mpfr {
  mpfr_t v;
  explicit Mpfr(mpfr_prec_t p) { mpfr_init2(v, p); }
  ~Mpfr() { mpfr_clear(v); }
  Mpfr(const Mpfr&) = delete;
  Mpfr& operator=(const Mpfr&) = delete;
};

bool same_bits(double a, double b) {
  if (a != a && b != b) return true;
  return std::signbit(a) == std::signbit(b) && (a == b);
}

// Is `fine` (computed at 2p, with `coarse` the same quantity at p) decided? Equal values are
// taken as exact only when `equal_is_exact` (see certify()); otherwise `unconfirmed` is set.
bool decide(const Real& coarse, const Real& fine, CertifiedValue& out, bool equal_is_exact,
            bool& unconfirmed) {
  mpfr_srcptr c = coarse.backend().data();
  mpfr_srcptr f = fine.backend().data();
  out.value = fine;
  const bool c_nan = mpfr_nan_p(c), f_nan = mpfr_nan_p(f);
  if (c_nan || f_nan) {
    if (!(c_nan && f_nan)) return false;
    out.exact = true;
  } else if (mpfr_equal_p(c, f) && mpfr_signbit(c) == mpfr_signbit(f)) {
    if (!equal_is_exact && !mpfr_inf_p(f)) {
      unconfirmed = true;
      return false;
    }
    out.exact = true;
  } else {
    if (!mpfr_number_p(c) || !mpfr_number_p(f)) return false;
    out.exact = false;
    const mpfr_prec_t prec = mpfr_get_prec(f) + 64;
    Mpfr radius(prec), lo(prec), hi(prec), rel(64);
    mpfr_sub(radius.v, f, c, MPFR_RNDU);
    mpfr_abs(radius.v, radius.v, MPFR_RNDU);
    mpfr_mul_2ui(radius.v, radius.v, 1, MPFR_RNDU);  // safety factor 2
    // 45 significant decimal digits need a relative error below 10^-46 ~ 2^-153.
    if (mpfr_zero_p(f)) return false;
    mpfr_div(rel.v, radius.v, f, MPFR_RNDU);
    mpfr_abs(rel.v, rel.v, MPFR_RNDU);
    if (mpfr_cmp_d(rel.v, 0x1p-155) > 0) return false;
    mpfr_sub(lo.v, f, radius.v, MPFR_RNDD);
    mpfr_add(hi.v, f, radius.v, MPFR_RNDU);
    for (std::size_t k = 0; k < kFloatDTypes.size(); ++k) {
      const double a = detail::round_to_dtype(lo.v, kFloatDTypes[k]);
      const double b = detail::round_to_dtype(hi.v, kFloatDTypes[k]);
      if (!same_bits(a, b)) return false;
    }
  }
  for (std::size_t k = 0; k < kFloatDTypes.size(); ++k)
    out.rounded[k] = detail::round_to_dtype(f, kFloatDTypes[k]);
  return true;
}

// Returns the index of the first undecided element, or -1 when all are decided.
long decide_tensor(const RealTensor& coarse, const RealTensor& fine, CertifiedTensor& out,
                   const std::string& what, bool equal_is_exact, bool& unconfirmed) {
  if (coarse.shape != fine.shape || coarse.data.size() != fine.data.size())
    throw std::logic_error("reference of " + what + " changed shape with the precision");
  out.dtype = fine.dtype;
  out.shape = fine.shape;
  out.values.resize(fine.data.size());
  for (std::size_t i = 0; i < fine.data.size(); ++i)
    if (!decide(coarse.data[i], fine.data[i], out.values[i], equal_is_exact, unconfirmed))
      return static_cast<long>(i);
  return -1;
}

}  // namespace

double CertifiedTensor::rounded_value(std::size_t i) const {
  for (std::size_t k = 0; k < kFloatDTypes.size(); ++k)
    if (kFloatDTypes[k] == dtype) return values[i].rounded[k];
  throw Error(ErrorKind::Type, "output dtype is not floating");
}

Evaluation evaluate_once(const Request& request) {
  switch (request.c.loss->id) {
#define LOSSBENCH_LOSS(id, module) \
  case LossId::id:                 \
    return evaluate_##id(request);
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS
  }
  throw std::logic_error("unknown loss id");
}

Certified certify(const Case& c, const CertifyOptions& options) {
  const long saved = working_bits();
  struct Restore {
    long bits;
    ~Restore() { set_working_bits(bits); }
  } restore{saved};

  const Request request{c, options.grad};
  long bits = options.start_bits;
  // Absorption guard: a term 2^-k times smaller than another vanishes at any precision below k
  // bits, and may then vanish at p and at 2p alike, which would look exact. The finer
  // evaluation therefore always carries at least the binary spread of the inputs' magnitudes
  // (largest over smallest nonzero finite element) on top of the coarse precision.
  long spread = 0;
  {
    int lo = 0, hi = 0;
    bool any = false;
    for (const auto& [name, t] : c.inputs)
      for (double v : t.values)
        if (v != 0 && std::isfinite(v)) {
          const int e = std::ilogb(v);
          lo = any ? std::min(lo, e) : e;
          hi = any ? std::max(hi, e) : e;
          any = true;
        }
    spread = any ? hi - lo : 0;
  }
  // Equality of the two values proves exactness when the finer evaluation made no rounding at
  // all (MPFR's inexact flag stays clear). Otherwise equal values are only accepted across a
  // precision jump of at least `confirm_gap` bits: an absorbed term survives a jump that size
  // unless it is below 2^-(2048 + 2 spread) of the value.
  const long confirm_gap = 2048 + 2 * spread;
  set_working_bits(bits);
  Evaluation coarse = evaluate_once(request);
  int evaluations = 1;
  bool confirm = false;  // an equal but unconfirmed value asks for a confirming jump
  while (true) {
    long next = std::max(bits * 2, bits + spread + 64);
    if (confirm) next = std::max(next, bits + confirm_gap);
    if (next > options.max_bits)
      throw Error(ErrorKind::Precision,
                  "could not certify the result of " + std::string(c.loss->name) + " within " +
                      std::to_string(options.max_bits) + " bits of working precision");
    set_working_bits(next);
    mpfr_clear_inexflag();
    Evaluation fine = evaluate_once(request);
    const bool fine_exact = mpfr_inexflag_p() == 0;
    ++evaluations;
    const bool equal_is_exact = fine_exact || next - bits >= confirm_gap;
    bool unconfirmed = false;
    Certified result;
    bool decided = decide_tensor(coarse.output, fine.output, result.output, "output",
                                 equal_is_exact, unconfirmed) < 0;
    for (const auto& [name, g] : fine.grads) {
      if (!decided) break;
      auto it = coarse.grads.find(name);
      if (it == coarse.grads.end()) throw std::logic_error("gradient set changed with precision");
      decided = decide_tensor(it->second, g, result.grads[name], "grad " + name, equal_is_exact,
                              unconfirmed) < 0;
    }
    if (decided) {
      result.precision_bits = static_cast<long>(mpfr_get_prec(Real(0).backend().data()));
      result.evaluations = evaluations;
      return result;
    }
    confirm = unconfirmed;
    bits = next;
    coarse = std::move(fine);
  }
}

std::string decimal_string(const Real& value, int digits) {
  mpfr_srcptr v = value.backend().data();
  if (mpfr_nan_p(v)) return "nan";
  if (mpfr_inf_p(v)) return mpfr_signbit(v) ? "-inf" : "inf";
  char* s = nullptr;
  mpfr_asprintf(&s, "%.*Re", digits - 1, v);
  std::string out(s);
  mpfr_free_str(s);
  return out;
}

}  // namespace lossbench::ref
