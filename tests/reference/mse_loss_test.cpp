#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string mse(const std::string& reduction, const std::string& x, const std::string& y,
                const std::string& extra = "") {
  return R"({"loss": "mse_loss", "reduction": ")" + reduction + R"(", "inputs": {"input": )" + x +
         R"(, "target": )" + y + "}" + extra + "}";
}
}  // namespace

TEST(mse_loss, ClosedForms) {
  const auto x = tensor("float32", {4}, {1, -2, 3.5, 0.25});
  const auto y = tensor("float32", {4}, {0, 1, 3.5, -0.25});
  EXPECT_EQ(rounded_scalar(mse("sum", x, y)), 1 + 9 + 0 + 0.25);
  EXPECT_EQ(rounded_scalar(mse("mean", x, y)), 10.25 / 4);
  // mean of (0.1f)^2 over one element: the exact square of the float32 value 0.1, rounded once.
  const double f = static_cast<double>(0.1f);
  const auto r = exact(mse("mean", tensor("float32", {1}, {f}), tensor("float32", {1}, {0})));
  EXPECT_EQ(r.output.rounded_value(0), static_cast<double>(static_cast<float>(f * f)));
  EXPECT_EQ(rounded64(r.output.values[0]), f * f);  // exact in double: 48 significant bits
}

TEST(mse_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(std::isnan(
      rounded_scalar(mse("mean", tensor("float64", {0}, {}), tensor("float64", {0}, {})))));
  EXPECT_EQ(rounded_scalar(mse("sum", tensor("float64", {0}, {}), tensor("float64", {0}, {}))),
            0.0);
  EXPECT_EQ(
      rounded_scalar(mse("sum", tensor("float32", {1}, {-INFINITY}), tensor("float32", {1}, {0}))),
      INFINITY);
  // 2^64 squared overflows float32 but not the exact value: rounding gives inf in float32.
  EXPECT_EQ(
      rounded_scalar(mse("sum", tensor("float32", {1}, {0x1p64}), tensor("float32", {1}, {0}))),
      INFINITY);
  expect_error(
      mse("none", tensor("float32", {2, 2}, {1, 2, 3, 4}), tensor("float32", {3}, {1, 2, 3})),
      ErrorKind::ShapeMismatch, "must match");
}

TEST(mse_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(mse("mean",
                                                tensor("float64", {2, 2}, {0.5, -1.25, 3, 7}),
                                                tensor("float64", {2, 2}, {0.25, 1, -4, 0})));
  expect_gradients_match_finite_differences(
      mse("none", tensor("float16", {2}, {0.5, -1.25}), tensor("float16", {2}, {1, 1}),
          R"(, "grad_output": )" + tensor("float16", {2}, {3, -0.5})));
  const auto r = exact(mse("sum", tensor("float32", {1}, {3}), tensor("float32", {1}, {1})), true);
  EXPECT_EQ(r.grads.at("input").rounded_value(0), 4.0);
  EXPECT_EQ(r.grads.at("target").rounded_value(0), -4.0);
}

TEST(mse_loss, Float64CrossCheck) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> n(0, 3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(32), y(32);
    double s = 0;
    for (int i = 0; i < 32; ++i) {
      x[i] = n(rng);
      y[i] = n(rng);
      s += (x[i] - y[i]) * (x[i] - y[i]);
    }
    const auto r = exact(mse("mean", tensor("float64", {32}, x), tensor("float64", {32}, y)));
    EXPECT_LE(ulp_error64(s / 32, r.output.values[0]), 16.0);
  }
}
