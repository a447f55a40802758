#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string l1(const std::string& reduction, const std::string& x, const std::string& y,
               const std::string& extra = "") {
  return R"({"loss": "l1_loss", "reduction": ")" + reduction + R"(", "inputs": {"input": )" + x +
         R"(, "target": )" + y + "}" + extra + "}";
}
}  // namespace

TEST(l1_loss, ClosedForms) {
  const auto x = tensor("float32", {2, 2}, {1, -2, 3.5, 0.25});
  const auto y = tensor("float32", {2, 2}, {0, 1, 3.5, -0.25});
  EXPECT_EQ(rounded_scalar(l1("sum", x, y)), 4.5);
  EXPECT_EQ(rounded_scalar(l1("mean", x, y)), 1.125);
  const auto none = exact(l1("none", x, y));
  EXPECT_EQ(none.output.shape, (Shape{2, 2}));
  EXPECT_EQ(none.output.rounded_value(1), 3.0);
  EXPECT_EQ(none.output.rounded_value(2), 0.0);
}

TEST(l1_loss, BroadcastsAndCountsTheBroadcastShape) {
  // input (2, 1) against target (3): broadcast shape (2, 3), N = 6.
  const auto r =
      exact(l1("mean", tensor("float64", {2, 1}, {1, 2}), tensor("float64", {3}, {0, 1, 2})));
  EXPECT_EQ(r.output.rounded_value(0), (1 + 0 + 1 + 2 + 1 + 0) / 6.0);
  expect_error(l1("mean", tensor("float64", {2}, {1, 2}), tensor("float64", {3}, {0, 1, 2})),
               ErrorKind::ShapeMismatch,
               "must match the size of tensor b (3) at non-singleton dimension 0");
}

TEST(l1_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(std::isnan(
      rounded_scalar(l1("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {})))));
  EXPECT_EQ(rounded_scalar(l1("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}))),
            0.0);
  EXPECT_TRUE(std::isnan(rounded_scalar(
      l1("sum", tensor("float32", {2}, {INFINITY, 1}), tensor("float32", {2}, {INFINITY, 0})))));
  EXPECT_EQ(rounded_scalar(
                l1("sum", tensor("float16", {2}, {-INFINITY, 1}), tensor("float16", {2}, {0, 0}))),
            INFINITY);
  // 65504 + 65504 overflows float16 when rounded, though the exact sum is finite.
  EXPECT_EQ(rounded_scalar(
                l1("sum", tensor("float16", {2}, {65504, 65504}), tensor("float16", {2}, {0, 0}))),
            INFINITY);
  expect_error(l1("mean", tensor("float32", {1}, {1}), tensor("float64", {1}, {1})),
               ErrorKind::Type, "input is float32 and target is float64");
}

TEST(l1_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      l1("mean", tensor("float64", {2, 3}, {0.5, -1.25, 3, 7, -2, 0.125}),
         tensor("float64", {3}, {0.25, 1, -4})));
  expect_gradients_match_finite_differences(
      l1("none", tensor("float32", {3}, {0.5, -1.25, 3}), tensor("float32", {3}, {1, 1, 1}),
         R"(, "grad_output": )" + tensor("float32", {3}, {2, -0.5, 0.75})));
}

TEST(l1_loss, GradientAtTheKinkIsZero) {
  // sgn(0) = 0: at x == y both gradients are exactly 0 (autograd's abs).
  const auto r =
      exact(l1("sum", tensor("float32", {2}, {1.5, 2}), tensor("float32", {2}, {1.5, 1})), true);
  EXPECT_EQ(r.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(r.grads.at("target").rounded_value(0), 0.0);
  EXPECT_EQ(r.grads.at("input").rounded_value(1), 1.0);
  EXPECT_EQ(r.grads.at("target").rounded_value(1), -1.0);
  // mean: 1/N, and broadcast targets sum their gradient back.
  const auto m =
      exact(l1("mean", tensor("float64", {3}, {1, 2, 3}), tensor("float64", {1}, {0})), true);
  EXPECT_EQ(m.grads.at("target").shape, (Shape{1}));
  EXPECT_EQ(m.grads.at("target").rounded_value(0), -1.0);
  EXPECT_EQ(m.grads.at("input").rounded_value(0), 1.0 / 3);
}

TEST(l1_loss, GradientOfANaNDifferenceIsZeroAsTorchSgn) {
  const auto r =
      exact(l1("sum", tensor("float64", {2}, {NAN, 1}), tensor("float64", {2}, {0, NAN})), true);
  EXPECT_TRUE(std::isnan(r.output.rounded_value(0)));
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.grads.at("input").rounded_value(i), 0.0);
    EXPECT_FALSE(std::signbit(r.grads.at("input").rounded_value(i)));
    EXPECT_EQ(r.grads.at("target").rounded_value(i), 0.0);
    EXPECT_TRUE(std::signbit(r.grads.at("target").rounded_value(i)));
  }
}

TEST(l1_loss, Float64CrossCheck) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(-10, 10);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(16), y(16);
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      x[i] = u(rng);
      y[i] = u(rng);
      s += std::fabs(x[i] - y[i]);
    }
    const auto r = exact(l1("mean", tensor("float64", {16}, x), tensor("float64", {16}, y)));
    EXPECT_LE(ulp_error64(s / 16, r.output.values[0]), 8.0);
  }
}
