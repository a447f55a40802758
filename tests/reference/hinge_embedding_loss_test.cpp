#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string hinge(const std::string& reduction, const std::string& x, const std::string& y,
                  double margin = 1, const std::string& extra = "") {
  return R"({"loss": "hinge_embedding_loss", "reduction": ")" + reduction +
         R"(", "params": {"margin": ")" + hex_string(margin) + R"("}, "inputs": {"input": )" + x +
         R"(, "target": )" + y + "}" + extra + "}";
}
}  // namespace

TEST(hinge_embedding_loss, ClosedForms) {
  // Values from torch 2.2.2 float64: x = [1, 0.5, 2, 1, 3], y = [-1, -1, -1, 1, 0.5], margin 1
  // give [0, 0.5, 0, 1, 3] (a target other than +-1 gives x + max(0, margin - x)).
  const auto x = tensor("float64", {5}, {1, 0.5, 2, 1, 3});
  const auto y = tensor("float64", {5}, {-1, -1, -1, 1, 0.5});
  const auto none = exact(hinge("none", x, y));
  const std::vector<double> want = {0, 0.5, 0, 1, 3};
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(none.output.rounded_value(i), want[i]) << i;
  EXPECT_EQ(rounded_scalar(hinge("sum", x, y)), 4.5);
  EXPECT_EQ(rounded_scalar(hinge("mean", x, y)), 0.9);
  // margin 2.5: [1.5, 2, 0.5, 1, 3]; int64 targets.
  EXPECT_EQ(rounded_scalar(hinge("sum", tensor("float32", {4}, {1, 0.5, 2, 1}),
                                 itensor({4}, {-1, -1, -1, 1}), 2.5)),
            5.0);
  // Other target values, NaN included: x + max(0, margin - x) (torch: y = NaN, x = 0.25 gives 1).
  EXPECT_EQ(
      rounded_scalar(hinge("sum", tensor("float32", {1}, {0.25}), tensor("float32", {1}, {NAN}))),
      1.0);
  EXPECT_EQ(rounded_scalar(hinge("sum", tensor("float32", {1}, {0.25}), itensor({1}, {0}))), 1.0);
  // y = 1 and x = -0: 0 + -0 = +0 (torch: signbit false).
  const auto z = exact(hinge("none", tensor("float64", {1}, {-0.0}), tensor("float64", {1}, {1})));
  EXPECT_FALSE(std::signbit(z.output.rounded_value(0)));
}

TEST(hinge_embedding_loss, MarginIsRoundedToTheTensorDtype) {
  // margin - x with x = -1: float16 margin 2^-11 + 2^-30 rounds to 2^-11 (torch 2.2.2 CPU gives
  // exactly 1 in float16, which needs the rounded margin).
  auto r = exact(
      hinge("sum", tensor("float16", {1}, {-1}), tensor("float16", {1}, {-1}), 0x1p-11 + 0x1p-30));
  EXPECT_EQ(rounded64(r.output.values[0]), 1 + 0x1p-11);
  r = exact(hinge("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {-1}), 0.1));
  EXPECT_EQ(rounded64(r.output.values[0]), static_cast<double>(0.1f));
  r = exact(hinge("sum", tensor("float64", {1}, {0}), tensor("float64", {1}, {-1}), 0.1));
  EXPECT_EQ(rounded64(r.output.values[0]), 0.1);
}

TEST(hinge_embedding_loss, ShapesAndErrors) {
  // Any shape; the target broadcasts with the input: (2, 1) with (3) -> (2, 3).
  const auto b =
      exact(hinge("none", tensor("float64", {2, 1}, {0.5, 3}), tensor("float64", {3}, {1, -1, 2})));
  EXPECT_EQ(b.output.shape, (Shape{2, 3}));
  const std::vector<double> want = {0.5, 0.5, 1, 3, 0, 3};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(b.output.rounded_value(i), want[i]) << i;
  EXPECT_EQ(
      rounded_scalar(hinge("none", tensor("float32", {}, {0.25}), tensor("float32", {}, {-1}))),
      0.75);
  // where(target != 1, ...) puts the target first: torch says "tensor a (3) ... tensor b (2)".
  expect_error(hinge("mean", tensor("float32", {2}, {1, 1}), tensor("float32", {3}, {1, 1, 1})),
               ErrorKind::ShapeMismatch, "tensor a (3) must match the size of tensor b (2)");
  expect_error(hinge("mean", tensor("float64", {1}, {1}), tensor("float32", {1}, {1})),
               ErrorKind::Type, "input is float64 and target is float32");
}

TEST(hinge_embedding_loss, EmptyAndSpecialValues) {
  const auto e = tensor("float32", {0, 2}, {});
  EXPECT_TRUE(std::isnan(rounded_scalar(hinge("mean", e, tensor("float32", {0, 2}, {})))));
  EXPECT_EQ(rounded_scalar(hinge("sum", e, tensor("float32", {2}, {1, -1}))), 0.0);
  const auto r = exact(hinge("none", tensor("float32", {4}, {NAN, INFINITY, -INFINITY, INFINITY}),
                             tensor("float32", {4}, {-1, -1, -1, 1})));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(0)));
  EXPECT_EQ(r.output.rounded_value(1), 0.0);
  EXPECT_EQ(r.output.rounded_value(2), INFINITY);
  EXPECT_EQ(r.output.rounded_value(3), INFINITY);
}

TEST(hinge_embedding_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      hinge("mean", tensor("float64", {5}, {0.5, -1.25, 3, 0.75, 0.25}),
            tensor("float64", {5}, {1, -1, -1, 0.5, -1}), 1.5));
  expect_gradients_match_finite_differences(
      hinge("none", tensor("float32", {2, 1}, {0.5, 3}), itensor({3}, {1, -1, 2}), 1,
            R"(, "grad_output": )" + tensor("float32", {2, 3}, {2, -0.5, 0.75, 1, 1, 3})));
}

TEST(hinge_embedding_loss, GradientAtTheHingePasses) {
  // torch 2.2.2 float64: x = [1, 0.5, 2, 1, 3], y = [-1, -1, -1, 1, 0.5], margin 1, sum:
  // x.grad = [-1, -1, 0, 1, 1] (x == margin passes the gradient: clamp_min is inclusive).
  const auto r = exact(hinge("sum", tensor("float64", {5}, {1, 0.5, 2, 1, 3}),
                             tensor("float64", {5}, {-1, -1, -1, 1, 0.5})),
                       true);
  const std::vector<double> want = {-1, -1, 0, 1, 1};
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(r.grads.at("input").rounded_value(i), want[i]) << i;
  EXPECT_EQ(r.grads.count("target"), 0u);
  // A target other than +-1 on the active side gets both terms: 1 - 1 = 0.
  const auto o = exact(
      hinge("mean", tensor("float32", {2}, {0.25, 0.25}), tensor("float32", {2}, {3, 1})), true);
  EXPECT_EQ(o.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(o.grads.at("input").rounded_value(1), 0.5);
  // Broadcast input: the gradient sums back: x (1) against y (3) = [-1, -1, 1], x = margin.
  const auto b =
      exact(hinge("sum", tensor("float64", {1}, {1}), tensor("float64", {3}, {-1, -1, 1})), true);
  EXPECT_EQ(b.grads.at("input").rounded_value(0), -1.0);
}

TEST(hinge_embedding_loss, Float64CrossCheck) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0, 2);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(16), y(16);
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      x[i] = n(rng);
      y[i] = (rng() & 1) ? 1 : -1;
      s += y[i] == 1 ? x[i] : std::fmax(0.75 - x[i], 0);
    }
    const auto r =
        exact(hinge("mean", tensor("float64", {16}, x), tensor("float64", {16}, y), 0.75));
    EXPECT_LE(ulp_error64(s / 16, r.output.values[0]), 64.0);
  }
}
