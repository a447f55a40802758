#pragma once
// The exact reference: every loss of the catalog evaluated in arbitrary precision, certified
// to round correctly to float64, float32, float16 and bfloat16.
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lossbench/case.hpp"
#include "mp.hpp"

namespace lossbench::ref {

struct RealTensor {
  DType dtype = DType::float32;
  Shape shape;
  std::vector<Real> data;
};

// One evaluation of a loss at the current working precision.
struct Evaluation {
  RealTensor output;
  // Gradients of the differentiable inputs given, by input name (only when asked for).
  std::map<std::string, RealTensor, std::less<>> grads;
};

// Moves one input element by `delta` (at working precision): used by the finite-difference
// checks of the gradients, which need steps far below the input dtype's resolution.
struct Perturbation {
  std::string input;
  std::size_t index = 0;
  Real delta;
};

struct Request {
  const Case& c;
  bool grad = false;                      // also compute gradients
  const Perturbation* perturb = nullptr;  // see Perturbation
};

// Each loss's reference, defined in reference/losses/<id>.cpp. A loss of the catalog without
// one does not link.
#define LOSSBENCH_LOSS(id, module) Evaluation evaluate_##id(const Request& request);
#include "lossbench/losses.def"
#undef LOSSBENCH_LOSS

// Evaluates a case once at the current working precision (no certification).
Evaluation evaluate_once(const Request& request);

// ---- certified evaluation ----

struct CertifiedValue {
  Real value;  // the value at the final working precision
  bool exact;  // the value did not change between the last two precisions
  // Correctly rounded to float64, float32, float16 and bfloat16 (in kFloatDTypes order).
  std::array<double, 4> rounded;
};

struct CertifiedTensor {
  DType dtype;
  Shape shape;
  std::vector<CertifiedValue> values;
  double rounded_value(std::size_t i) const;  // rounded to this tensor's own dtype
};

struct Certified {
  CertifiedTensor output;
  std::map<std::string, CertifiedTensor, std::less<>> grads;
  long precision_bits = 0;  // working precision of the accepted evaluation
  int evaluations = 0;      // how many evaluations the loop made
};

struct CertifyOptions {
  bool grad = false;
  long start_bits = 192;
  long max_bits = 1L << 15;
};

// Ziv's strategy: evaluate at a working precision p and at 2p, take the difference as the error
// of the value at p (and so a bound on the error at 2p), and accept when the value at 2p
// +- twice that difference rounds to the same number in every format and when 45 significant
// decimal digits are settled; otherwise double the precision and try again. Throws
// Error(Precision) past max_bits.
Certified certify(const Case& c, const CertifyOptions& options = {});

// The exact value as a decimal string with `digits` significant digits ("nan", "inf", "-inf").
std::string decimal_string(const Real& value, int digits = 45);

}  // namespace lossbench::ref
