#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string huber(const std::string& reduction, const std::string& x, const std::string& y,
                  const std::string& delta = "", const std::string& extra = "") {
  const std::string params = delta.empty() ? "" : R"(, "params": {"delta": )" + delta + "}";
  return R"({"loss": "huber_loss", "reduction": ")" + reduction + "\"" + params +
         R"(, "inputs": {"input": )" + x + R"(, "target": )" + y + "}" + extra + "}";
}
// The 45-digit decimal of a value computed at a high working precision.
template <class F>
std::string exact_decimal(F f) {
  const long saved = ref::working_bits();
  ref::set_working_bits(1024);
  const std::string s = ref::decimal_string(f());
  ref::set_working_bits(saved);
  return s;
}
}  // namespace

TEST(huber_loss, ClosedFormsBothBranches) {
  // delta = 1: |u| = 0.5 -> 0.125; |u| = 3 -> 2.5; |u| = 1 (linear branch) -> 0.5; u = 0 -> 0.
  const auto x = tensor("float32", {2, 2}, {0.5, -3, 2, 4});
  const auto y = tensor("float32", {2, 2}, {0, 0, 1, 4});
  const auto none = exact(huber("none", x, y));
  EXPECT_EQ(none.output.shape, (Shape{2, 2}));
  EXPECT_EQ(none.output.rounded_value(0), 0.125);
  EXPECT_EQ(none.output.rounded_value(1), 2.5);
  EXPECT_EQ(none.output.rounded_value(2), 0.5);
  EXPECT_EQ(none.output.rounded_value(3), 0.0);
  EXPECT_EQ(rounded_scalar(huber("sum", x, y)), 3.125);
  EXPECT_EQ(rounded_scalar(huber("mean", x, y)), 3.125 / 4);
  // delta = 2: |u| = 3 -> 2 (3 - 1) = 4; |u| = 1.5 -> 1.125.
  EXPECT_EQ(rounded_scalar(huber("sum", tensor("float64", {2}, {3, 1.5}),
                                 tensor("float64", {2}, {0, 0}), "2")),
            5.125);
}

TEST(huber_loss, DeltaIsRoundedToTheDtype) {
  // delta = 0.1 in float32 is 0x1.99999ap-4; l = delta (z - delta / 2) with z = 1.
  const double d32 = static_cast<float>(0.1);
  const auto r32 =
      exact(huber("sum", tensor("float32", {1}, {1}), tensor("float32", {1}, {0}), "0.1"));
  EXPECT_EQ(ref::decimal_string(r32.output.values[0].value),
            exact_decimal([&] { return ref::Real(ref::Real(d32) * (1 - ref::Real(d32) / 2)); }));
  const auto r64 =
      exact(huber("sum", tensor("float64", {1}, {1}), tensor("float64", {1}, {0}), "0.1"));
  EXPECT_EQ(ref::decimal_string(r64.output.values[0].value),
            exact_decimal([&] { return ref::Real(ref::Real(0.1) * (1 - ref::Real(0.1) / 2)); }));
  // float16: delta = 1/3 rounds to 0x1.554p-2 (torch 2.2.2 uses the float16 delta).
  const double d16 = 0x1.554p-2;
  const auto r16 = exact(huber("none", tensor("float16", {1}, {4}), tensor("float16", {1}, {0}),
                               "0.3333333333333333"));
  EXPECT_EQ(ref::decimal_string(r16.output.values[0].value),
            exact_decimal([&] { return ref::Real(ref::Real(d16) * (4 - ref::Real(d16) / 2)); }));
  // bfloat16 rounds delta too (to 0x1.56p-2), checked in torch 2.2.2.
  const double dbf = 0x1.56p-2;
  const auto rbf = exact(huber("none", tensor("bfloat16", {1}, {4}), tensor("bfloat16", {1}, {0}),
                               "0.3333333333333333"));
  EXPECT_EQ(ref::decimal_string(rbf.output.values[0].value),
            exact_decimal([&] { return ref::Real(ref::Real(dbf) * (4 - ref::Real(dbf) / 2)); }));
  // A positive delta that rounds to 0 in float32 is accepted: l = 0 (z < 0 never holds).
  EXPECT_EQ(rounded_scalar(huber("sum", tensor("float32", {2}, {1, 0}),
                                 tensor("float32", {2}, {0, 0}), "1e-50")),
            0.0);
}

TEST(huber_loss, BroadcastsAndCountsTheBroadcastShape) {
  const auto r =
      exact(huber("none", tensor("float64", {2, 1}, {0, 1}), tensor("float64", {3}, {0, 1, 3})));
  EXPECT_EQ(r.output.shape, (Shape{2, 3}));
  const std::vector<double> want = {0, 0.5, 2.5, 0.5, 0, 1.5};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r.output.rounded_value(i), want[i]) << i;
  EXPECT_EQ(rounded_scalar(huber("mean", tensor("float64", {2, 1}, {0, 1}),
                                 tensor("float64", {3}, {0, 1, 3}))),
            5.0 / 6);
  // 0-d against 1-d, and K-d.
  EXPECT_EQ(
      rounded_scalar(huber("sum", tensor("float32", {}, {2}), tensor("float32", {2}, {0, 2}))),
      1.5);
  const auto k = exact(huber("none", tensor("float32", {1, 2, 1, 2}, {0, 1, 2, 3}),
                             tensor("float32", {2, 1}, {0, 0})));
  EXPECT_EQ(k.output.shape, (Shape{1, 2, 2, 2}));
  expect_error(
      huber("mean", tensor("float64", {2}, {1, 2}), tensor("float64", {3}, {0, 1, 2})),
      ErrorKind::ShapeMismatch,
      "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0");
}

TEST(huber_loss, Errors) {
  const auto x = tensor("float32", {2}, {1, 2});
  const auto y = tensor("float32", {2}, {0, 0});
  expect_error(huber("mean", x, y, "0"), ErrorKind::Value,
               "huber_loss does not support non-positive values for delta.");
  expect_error(huber("mean", x, y, "-1"), ErrorKind::Value,
               "does not support non-positive values for delta");
  expect_error(huber("mean", x, y, "\"nan\""), ErrorKind::Value,
               "does not support non-positive values for delta");
  expect_error(huber("mean", x, tensor("float64", {2}, {0, 0})), ErrorKind::Type,
               "input is float32 and target is float64");
  // The shape check (Python's broadcast_tensors) comes before ATen's delta check.
  expect_error(huber("mean", x, tensor("float32", {3}, {0, 0, 0}), "-1"), ErrorKind::ShapeMismatch,
               "must match");
}

TEST(huber_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(std::isnan(
      rounded_scalar(huber("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {})))));
  EXPECT_EQ(rounded_scalar(
                huber("sum", tensor("float32", {0, 3}, {}), tensor("float32", {3}, {0, 0, 0}))),
            0.0);
  EXPECT_EQ(
      exact(huber("none", tensor("float32", {2, 0}, {}), tensor("float32", {0}, {}))).output.shape,
      (Shape{2, 0}));
  // torch 2.2.2: inf, inf, nan (linear branch), inf - inf = nan.
  const auto r = exact(huber("none", tensor("float64", {4}, {INFINITY, -INFINITY, NAN, INFINITY}),
                             tensor("float64", {4}, {0, 0, 0, INFINITY}), "1.5"));
  EXPECT_EQ(r.output.rounded_value(0), INFINITY);
  EXPECT_EQ(r.output.rounded_value(1), INFINITY);
  EXPECT_TRUE(std::isnan(r.output.rounded_value(2)));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(3)));
  // delta = 1e300 is +inf in float32: every element is on the quadratic branch.
  EXPECT_EQ(rounded_scalar(huber("sum", tensor("float32", {2}, {1, 2}),
                                 tensor("float32", {2}, {0, 0}), "1e300")),
            2.5);
  // The exact sum 2 * 65504^2 / 2 overflows float16 only when rounded.
  EXPECT_EQ(rounded_scalar(huber("sum", tensor("float16", {1}, {65504}),
                                 tensor("float16", {1}, {0}), "65504")),
            INFINITY);
}

TEST(huber_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      huber("mean", tensor("float64", {2, 3}, {0.5, -1.25, 3, 7, -2, 0.125}),
            tensor("float64", {3}, {0.25, 1, -4}), "1.5"));
  expect_gradients_match_finite_differences(
      huber("none", tensor("float32", {3}, {0.5, -1.25, 3}), tensor("float32", {1}, {1}), "",
            R"(, "grad_output": )" + tensor("float32", {3}, {2, -0.5, 0.75})));
  expect_gradients_match_finite_differences(huber("sum", tensor("float32", {2, 1}, {0.5, -4}),
                                                  tensor("float32", {2}, {1, 0.25}), "0.75"));
}

TEST(huber_loss, GradientConventions) {
  // u = x - y: 0 -> 0; |u| == delta -> +-delta (CPU's clamped branch, = u); beyond -> +-delta;
  // +-inf -> +-delta (finite); NaN -> NaN. Gradients of target are the negation. torch 2.2.2.
  const auto r =
      exact(huber("sum", tensor("float64", {7}, {1, 1.5, -1.5, 5, INFINITY, -INFINITY, NAN}),
                  tensor("float64", {7}, {1, 0, 0, 0, 0, 0, 0}), "1.5"),
            true);
  const std::vector<double> want = {0, 1.5, -1.5, 1.5, 1.5, -1.5, NAN};
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double gx = r.grads.at("input").rounded_value(i),
                 gy = r.grads.at("target").rounded_value(i);
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(gx) && std::isnan(gy)) << i;
    } else {
      EXPECT_EQ(gx, want[i]) << i;
      EXPECT_EQ(gy, -want[i]) << i;
    }
  }
  // mean: 1/N; a broadcast target sums its gradient back: u = (0.5, 2, -3) against delta = 1
  // gives (0.5, 1, -1) / 3 for input and -(0.5 + 1 - 1) / 3 for the target.
  const auto m =
      exact(huber("mean", tensor("float64", {3}, {0.5, 2, -3}), tensor("float64", {1}, {0})), true);
  EXPECT_EQ(m.grads.at("target").shape, (Shape{1}));
  EXPECT_EQ(m.grads.at("target").rounded_value(0), -0.5 / 3);
  EXPECT_EQ(m.grads.at("input").rounded_value(0), 0.5 / 3);
  EXPECT_EQ(m.grads.at("input").rounded_value(1), 1.0 / 3);
  // inf - inf: NaN loss and gradient (torch 2.2.2).
  const auto n = exact(
      huber("sum", tensor("float64", {1}, {INFINITY}), tensor("float64", {1}, {INFINITY})), true);
  EXPECT_TRUE(std::isnan(n.grads.at("input").rounded_value(0)));
}

TEST(huber_loss, Float64CrossCheck) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-3, 3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(16), y(16);
    const double delta = 1.25;
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      x[i] = u(rng);
      y[i] = u(rng);
      const double z = std::fabs(x[i] - y[i]);
      s += z < delta ? 0.5 * z * z : delta * (z - 0.5 * delta);
    }
    const auto r =
        exact(huber("sum", tensor("float64", {16}, x), tensor("float64", {16}, y), "1.25"));
    EXPECT_LE(ulp_error64(s, r.output.values[0]), 16.0);
  }
}

TEST(huber_loss, TorchValues) {
  // torch 2.2.2 float64: F.huber_loss(x, y, delta=0.7, reduction='sum') on these values gives
  // 3.4612499999999997 (within a few ULPs of the exact value).
  const auto r = exact(huber("sum", tensor("float64", {4}, {0.3, -2.5, 1.9, 0.05}),
                             tensor("float64", {4}, {0.1, 0.4, -0.6, 0.6}), "0.7"));
  EXPECT_LE(ulp_error64(3.4612499999999997, r.output.values[0]), 4.0);
}
