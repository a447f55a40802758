#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string sl1(const std::string& reduction, const std::string& x, const std::string& y,
                const std::string& beta = "", const std::string& extra = "") {
  const std::string params = beta.empty() ? "" : R"(, "params": {"beta": )" + beta + "}";
  return R"({"loss": "smooth_l1_loss", "reduction": ")" + reduction + "\"" + params +
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

TEST(smooth_l1_loss, ClosedFormsBothBranches) {
  // beta = 1: |u| = 0.5 -> 0.125; |u| = 3 -> 2.5; |u| = 1 (linear branch) -> 0.5; u = 0 -> 0.
  const auto x = tensor("float32", {2, 2}, {0.5, -3, 2, 4});
  const auto y = tensor("float32", {2, 2}, {0, 0, 1, 4});
  const auto none = exact(sl1("none", x, y));
  EXPECT_EQ(none.output.shape, (Shape{2, 2}));
  EXPECT_EQ(none.output.rounded_value(0), 0.125);
  EXPECT_EQ(none.output.rounded_value(1), 2.5);
  EXPECT_EQ(none.output.rounded_value(2), 0.5);
  EXPECT_EQ(none.output.rounded_value(3), 0.0);
  EXPECT_EQ(rounded_scalar(sl1("sum", x, y)), 3.125);
  EXPECT_EQ(rounded_scalar(sl1("mean", x, y)), 3.125 / 4);
  // beta = 2: |u| = 3 -> 3 - 1 = 2; |u| = 1.5 -> 1.125 / 2.
  EXPECT_EQ(rounded_scalar(
                sl1("sum", tensor("float64", {2}, {3, 1.5}), tensor("float64", {2}, {0, 0}), "2")),
            2.5625);
  // beta = 3 (not a power of 2): 0.5 * 1 / 3 exactly, correctly rounded.
  const auto third =
      exact(sl1("sum", tensor("float64", {1}, {1}), tensor("float64", {1}, {0}), "3"));
  EXPECT_EQ(ref::decimal_string(third.output.values[0].value),
            exact_decimal([&] { return ref::Real(ref::Real(1) / 6); }));
}

TEST(smooth_l1_loss, BetaZeroIsL1) {
  // beta == 0 (and -0.0) routes to l1_loss: l = |u|.
  const auto x = tensor("float32", {3}, {0.25, -3, 1});
  const auto y = tensor("float32", {3}, {0, 0, 1});
  EXPECT_EQ(rounded_scalar(sl1("sum", x, y, "0")), 3.25);
  EXPECT_EQ(rounded_scalar(sl1("mean", tensor("float64", {3}, {0.25, -3, 1}),
                               tensor("float64", {3}, {0, 0, 1}), "\"-0x0p+0\"")),
            3.25 / 3);
}

TEST(smooth_l1_loss, BetaIsRoundedAsTheKernelUsesIt) {
  // beta = 1/3: float32 rounds it to float; float16 to half; bfloat16 computes with a float32
  // beta (torch 2.2.2). Linear branch l = z - beta / 2 with z = 4 shows the rounded beta.
  auto check = [](const std::string& dtype, double beta) {
    const auto r =
        exact(sl1("none", tensor(dtype, {1}, {4}), tensor(dtype, {1}, {0}), "0.3333333333333333"));
    EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
              exact_decimal([&] { return ref::Real(4 - ref::Real(beta) / 2); }))
        << dtype;
  };
  check("float64", 1.0 / 3);
  check("float32", static_cast<double>(1.0f / 3));
  check("float16", 0x1.554p-2);
  check("bfloat16", static_cast<double>(1.0f / 3));
  // Quadratic branch: 0.5 z^2 / beta with z = 0.25 and the float32 beta.
  const auto q = exact(sl1("none", tensor("float32", {1}, {0.25}), tensor("float32", {1}, {0}),
                           "0.3333333333333333"));
  EXPECT_EQ(ref::decimal_string(q.output.values[0].value), exact_decimal([&] {
              return ref::Real(ref::Real(0.03125) / ref::Real(static_cast<double>(1.0f / 3)));
            }));
}

TEST(smooth_l1_loss, BroadcastsAndCountsTheBroadcastShape) {
  const auto r =
      exact(sl1("none", tensor("float64", {2, 1}, {0, 1}), tensor("float64", {3}, {0, 1, 3})));
  EXPECT_EQ(r.output.shape, (Shape{2, 3}));
  const std::vector<double> want = {0, 0.5, 2.5, 0.5, 0, 1.5};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r.output.rounded_value(i), want[i]) << i;
  EXPECT_EQ(rounded_scalar(
                sl1("mean", tensor("float64", {2, 1}, {0, 1}), tensor("float64", {3}, {0, 1, 3}))),
            5.0 / 6);
  EXPECT_EQ(rounded_scalar(sl1("sum", tensor("float32", {}, {2}), tensor("float32", {2}, {0, 2}))),
            1.5);
  // beta = 0 broadcasts too.
  EXPECT_EQ(rounded_scalar(
                sl1("sum", tensor("float32", {2, 1}, {0, 1}), tensor("float32", {2}, {0, 3}), "0")),
            6.0);
  expect_error(
      sl1("mean", tensor("float64", {2}, {1, 2}), tensor("float64", {3}, {0, 1, 2})),
      ErrorKind::ShapeMismatch,
      "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0");
}

TEST(smooth_l1_loss, Errors) {
  const auto x = tensor("float32", {2}, {1, 2});
  const auto y = tensor("float32", {2}, {0, 0});
  expect_error(sl1("mean", x, y, "-1"), ErrorKind::Value,
               "smooth_l1_loss does not support negative values for beta.");
  expect_error(sl1("mean", x, y, "-1e-300"), ErrorKind::Value,
               "does not support negative values for beta");
  expect_error(sl1("mean", x, y, "\"nan\""), ErrorKind::Value,
               "does not support negative values for beta");
  expect_error(sl1("mean", x, tensor("float16", {2}, {0, 0})), ErrorKind::Type,
               "input is float32 and target is float16");
  expect_error(sl1("mean", x, tensor("float32", {3}, {0, 0, 0}), "-1"), ErrorKind::ShapeMismatch,
               "must match");
}

TEST(smooth_l1_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(std::isnan(
      rounded_scalar(sl1("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {})))));
  EXPECT_TRUE(std::isnan(
      rounded_scalar(sl1("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {}), "0"))));
  EXPECT_EQ(
      rounded_scalar(sl1("sum", tensor("float32", {0, 3}, {}), tensor("float32", {3}, {0, 0, 0}))),
      0.0);
  // torch 2.2.2 (beta 1.5): inf, inf, nan, and inf - inf = nan.
  for (const std::string beta : {"1.5", "0"}) {
    const auto r = exact(sl1("none", tensor("float64", {4}, {INFINITY, -INFINITY, NAN, INFINITY}),
                             tensor("float64", {4}, {0, 0, 0, INFINITY}), beta));
    EXPECT_EQ(r.output.rounded_value(0), INFINITY);
    EXPECT_EQ(r.output.rounded_value(1), INFINITY);
    EXPECT_TRUE(std::isnan(r.output.rounded_value(2)));
    EXPECT_TRUE(std::isnan(r.output.rounded_value(3)));
  }
  // beta = inf: every element is quadratic, 0.5 z^2 / inf = 0 (torch 2.2.2).
  EXPECT_EQ(rounded_scalar(sl1("sum", tensor("float32", {2}, {1, 2}),
                               tensor("float32", {2}, {0, 0}), "\"inf\"")),
            0.0);
  // A positive beta that rounds to 0 in float32: l = |u| (torch 2.2.2 gives 1.4e-45 for z =
  // 2^-149).
  const auto t = exact(
      sl1("none", tensor("float32", {2}, {0, 0x1p-149}), tensor("float32", {2}, {0, 0}), "1e-50"));
  EXPECT_EQ(t.output.rounded_value(1), 0x1p-149);
}

TEST(smooth_l1_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      sl1("mean", tensor("float64", {2, 3}, {0.5, -1.25, 3, 7, -2, 0.125}),
          tensor("float64", {3}, {0.25, 1, -4}), "1.5"));
  expect_gradients_match_finite_differences(
      sl1("none", tensor("float32", {3}, {0.5, -1.25, 3}), tensor("float32", {1}, {1}), "",
          R"(, "grad_output": )" + tensor("float32", {3}, {2, -0.5, 0.75})));
  expect_gradients_match_finite_differences(
      sl1("sum", tensor("float32", {2, 1}, {0.5, -4}), tensor("float32", {2}, {1, 0.25}), "0.75"));
  expect_gradients_match_finite_differences(
      sl1("mean", tensor("float64", {3}, {0.5, -4, 2}), tensor("float64", {3}, {1, 0.25, 0}), "0"));
}

TEST(smooth_l1_loss, GradientConventions) {
  // beta = 1.5, u = x - y: 0 -> 0; |u| == beta -> +-1; beyond -> +-1; +-inf -> +-1; NaN -> NaN;
  // inside: u / beta. torch 2.2.2.
  const auto r =
      exact(sl1("sum", tensor("float64", {8}, {1, 1.5, -1.5, 5, INFINITY, -INFINITY, NAN, 0.5}),
                tensor("float64", {8}, {1, 0, 0, 0, 0, 0, 0, 0}), "1.5"),
            true);
  const std::vector<double> want = {0, 1, -1, 1, 1, -1, NAN, 1.0 / 3};
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
  // beta = 0 is l1_loss: sgn(u) with sgn(0) = 0, and torch 2.2.2's sgn(NaN) = 0 on CPU.
  const auto l = exact(sl1("sum", tensor("float64", {6}, {1, 1.5, -1.5, INFINITY, NAN, 0.5}),
                           tensor("float64", {6}, {1, 0, 0, 0, 0, 0}), "0"),
                       true);
  const std::vector<double> want0 = {0, 1, -1, 1, 0, 1};
  for (std::size_t i = 0; i < want0.size(); ++i) {
    EXPECT_EQ(l.grads.at("input").rounded_value(i), want0[i]) << i;
    EXPECT_EQ(l.grads.at("target").rounded_value(i), -want0[i]) << i;
  }
  // A positive beta that rounds to 0 in float32: sgn(u), 0 at u == 0 (CPU scalar path).
  const auto t = exact(
      sl1("sum", tensor("float32", {3}, {0, 2, -2}), tensor("float32", {3}, {0, 0, 0}), "1e-50"),
      true);
  EXPECT_EQ(t.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(t.grads.at("input").rounded_value(1), 1.0);
  EXPECT_EQ(t.grads.at("input").rounded_value(2), -1.0);
  // mean and a broadcast target: u = (0.5, 2, -3), beta = 1 -> (0.5, 1, -1) / 3.
  const auto m =
      exact(sl1("mean", tensor("float64", {3}, {0.5, 2, -3}), tensor("float64", {1}, {0})), true);
  EXPECT_EQ(m.grads.at("target").shape, (Shape{1}));
  EXPECT_EQ(m.grads.at("target").rounded_value(0), -0.5 / 3);
  EXPECT_EQ(m.grads.at("input").rounded_value(1), 1.0 / 3);
}

TEST(smooth_l1_loss, Float64CrossCheck) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-3, 3);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(16), y(16);
    const double beta = 1.25;
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      x[i] = u(rng);
      y[i] = u(rng);
      const double z = std::fabs(x[i] - y[i]);
      s += z < beta ? 0.5 * z * z / beta : z - 0.5 * beta;
    }
    const auto r =
        exact(sl1("sum", tensor("float64", {16}, x), tensor("float64", {16}, y), "1.25"));
    EXPECT_LE(ulp_error64(s, r.output.values[0]), 16.0);
  }
}

TEST(smooth_l1_loss, TorchValues) {
  // torch 2.2.2 float64: F.smooth_l1_loss(x, y, beta=0.7, reduction='sum') = 4.944642857142856.
  const auto r = exact(sl1("sum", tensor("float64", {4}, {0.3, -2.5, 1.9, 0.05}),
                           tensor("float64", {4}, {0.1, 0.4, -0.6, 0.6}), "0.7"));
  EXPECT_LE(ulp_error64(4.944642857142856, r.output.values[0]), 4.0);
}
