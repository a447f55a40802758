#include <gtest/gtest.h>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

TEST(Certify, RaisesThePrecisionWhenTheFirstIsNotEnough) {
  // 1 + 2^-53 + 2^-200 lies just above the midpoint of 1 and 1 + 2^-52. At 128 bits the
  // 2^-200 is lost and the sum sits exactly on the midpoint; at 256 bits it is held exactly
  // but the two precisions disagree; only the third evaluation (512 bits) settles it.
  const std::string json = R"({"loss": "l1_loss", "reduction": "sum", "inputs": {"input": )" +
                           tensor("float64", {3}, {1.0, 0x1p-53, 0x1p-200}) + R"(, "target": )" +
                           tensor("float64", {3}, {0, 0, 0}) + "}}";
  const auto r = exact(json);
  EXPECT_GE(r.evaluations, 3);
  EXPECT_GE(r.precision_bits, 512);
  EXPECT_EQ(r.output.rounded_value(0), 1.0 + 0x1p-52);
  EXPECT_TRUE(r.output.values[0].exact);
  // Starting high enough, two evaluations suffice.
  ref::CertifyOptions o;
  o.start_bits = 256;
  EXPECT_EQ(ref::certify(parse(json), o).evaluations, 2);
}

TEST(Certify, AbsorbedTermsAreNotTakenForExactness) {
  // sum of squares of 2^50 and 2^-500: 2^100 + 2^-1000. At 192 and at 384 bits (and at the
  // inputs' spread above that) the 2^-1000 is absorbed and the two evaluations agree; the
  // inexact flag makes the loop confirm with a jump of 2048 + 2 * 550 bits, which keeps it.
  const auto r = exact(R"({"loss": "mse_loss", "reduction": "sum", "inputs": {"input": )" +
                       tensor("float64", {2}, {0x1p50, 0x1p-500}) + R"(, "target": )" +
                       tensor("float64", {2}, {0, 0}) + "}}");
  EXPECT_GE(r.evaluations, 3);
  const ref::Real tail = r.output.values[0].value - ldexp(ref::Real(1), 100);
  EXPECT_EQ(static_cast<double>(tail), 0x1p-1000);
  EXPECT_EQ(r.output.rounded_value(0), 0x1p100);
}

TEST(Certify, ExactMidpointsRoundToEven) {
  // mean(|[1, 1 + 2^-23]|) = 1 + 2^-24: a float32 midpoint, exactly. Ties to even give 1.
  const std::string json = R"({"loss": "l1_loss", "inputs": {"input": )" +
                           tensor("float32", {2}, {1.0, 1.0 + 0x1p-23}) + R"(, "target": )" +
                           tensor("float32", {2}, {0, 0}) + "}}";
  const auto r = exact(json);
  EXPECT_EQ(r.output.rounded_value(0), 1.0);
  EXPECT_EQ(rounded64(r.output.values[0]), 1.0 + 0x1p-24);
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value, 10), "1.000000060e+00");
}

TEST(Certify, GivesEveryFormat) {
  // mean(|[0.1]|) in float64: the float64 value of 0.1, rounded to the narrower formats.
  const auto r =
      exact(R"({"loss": "l1_loss", "inputs": {"input": )" + tensor("float64", {1}, {0.1}) +
            R"(, "target": )" + tensor("float64", {1}, {0}) + "}}");
  const auto& v = r.output.values[0];
  EXPECT_EQ(v.rounded[0], 0.1);
  EXPECT_EQ(v.rounded[1], static_cast<double>(0.1f));
  EXPECT_EQ(v.rounded[2], 0x1.998p-4);  // float16
  EXPECT_EQ(v.rounded[3], 0x1.9ap-4);   // bfloat16
  EXPECT_EQ(ref::decimal_string(v.value, 45), "1.00000000000000005551115123125782702118158340e-01");
}

TEST(Certify, PropagatesSpecialValues) {
  const auto r = exact(R"({"loss": "mse_loss", "reduction": "none", "inputs": {"input": )" +
                       tensor("float32", {3}, {NAN, INFINITY, -0.0}) + R"(, "target": )" +
                       tensor("float32", {3}, {0, 1, 0}) + "}}");
  EXPECT_TRUE(std::isnan(r.output.rounded_value(0)));
  EXPECT_EQ(r.output.rounded_value(1), INFINITY);
  EXPECT_EQ(r.output.rounded_value(2), 0.0);
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value), "nan");
}

TEST(Certify, RestoresTheWorkingPrecision) {
  ref::set_working_bits(200);
  (void)exact(R"({"loss": "l1_loss", "inputs": {"input": )" + tensor("float64", {1}, {0.1}) +
              R"(, "target": )" + tensor("float64", {1}, {0}) + "}}");
  EXPECT_EQ(ref::working_bits(), 200);
}
