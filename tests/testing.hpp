#pragma once
// Helpers shared by the reference tests.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lossbench/case.hpp"
#include "lossbench/error.hpp"
#include "reference.hpp"

namespace lossbench::testing {

// A tensor fragment for a case document: {"dtype": ..., "shape": ..., "data": [hex floats]}.
std::string tensor(const std::string& dtype, const Shape& shape, const std::vector<double>& values);
std::string itensor(const Shape& shape, const std::vector<std::int64_t>& values);

Case parse(const std::string& json);
ref::Certified exact(const std::string& json, bool grad = false);
// The certified output of a case with one output element, rounded to the output dtype.
double rounded_scalar(const std::string& json);
// The same, rounded to float64 (for closed forms checked against double arithmetic).
double rounded64(const ref::CertifiedValue& v);
// The exact decimal (45 digits) of a one-element output.
std::string exact_scalar(const std::string& json);

// Expects the case to be rejected with `kind` and a message containing `contains`.
void expect_error(const std::string& json, ErrorKind kind, const std::string& contains);

// Checks every gradient the reference returns for the case against central finite differences
// of the forward reference: working precision `bits`, step 2^-step_exp, agreement to `digits`
// significant digits relative to the largest gradient element of that input. Also checks that
// only catalog-differentiable inputs get a gradient. Use at smooth points only.
void expect_gradients_match_finite_differences(const std::string& json, double digits = 20,
                                               long bits = 640, long step_exp = 100);

// Distance in ULPs of the float64 `got` from the exact value.
double ulp_error64(double got, const ref::CertifiedValue& exact);

}  // namespace lossbench::testing
