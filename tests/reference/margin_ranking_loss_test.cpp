#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string mrl(const std::string& reduction, const std::string& x1, const std::string& x2,
                const std::string& y, double margin = 0, const std::string& extra = "") {
  return R"({"loss": "margin_ranking_loss", "reduction": ")" + reduction +
         R"(", "params": {"margin": ")" + hex_string(margin) + R"("}, "inputs": {"input1": )" + x1 +
         R"(, "input2": )" + x2 + R"(, "target": )" + y + "}" + extra + "}";
}
}  // namespace

TEST(margin_ranking_loss, ClosedForms) {
  const auto x1 = tensor("float32", {4}, {1, 2, 3, 0.5});
  const auto x2 = tensor("float32", {4}, {2, 0, 3, 0.25});
  const auto y = tensor("float32", {4}, {1, -1, 1, -1});
  // u = -y (x1 - x2) + 0.5 = [1.5, 2.5, 0.5, 0.75]
  EXPECT_EQ(rounded_scalar(mrl("sum", x1, x2, y, 0.5)), 5.25);
  EXPECT_EQ(rounded_scalar(mrl("mean", x1, x2, y, 0.5)), 5.25 / 4);
  const auto none = exact(mrl("none", x1, x2, y, 0.5));
  EXPECT_EQ(none.output.shape, (Shape{4}));
  EXPECT_EQ(none.output.rounded_value(2), 0.5);
  // Default margin 0: the hinge clamps negative u to 0: u = [1, 2, 0, 0.25].
  EXPECT_EQ(rounded_scalar(mrl("sum", x1, x2, y)), 3.25);
  const auto neg = exact(mrl("none", x1, x2, y, -1.5));  // u = [-0.5, 0.5, -1.5, -1.25]
  EXPECT_EQ(neg.output.rounded_value(0), 0.0);
  EXPECT_EQ(neg.output.rounded_value(1), 0.5);
  // int64 targets are accepted (-target * float promotes).
  EXPECT_EQ(rounded_scalar(mrl("sum", x1, x2, itensor({4}, {1, -1, 1, -1}), 0.5)), 5.25);
}

TEST(margin_ranking_loss, MarginIsRoundedToTheTensorDtype) {
  // float32: margin 0.1 is float(0.1).
  const double m = 0.1;
  auto r = exact(mrl("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {0}),
                     tensor("float32", {1}, {-1}), m));
  EXPECT_EQ(rounded64(r.output.values[0]), static_cast<double>(static_cast<float>(m)));
  // float64 keeps the double.
  r = exact(mrl("sum", tensor("float64", {1}, {0}), tensor("float64", {1}, {0}),
                tensor("float64", {1}, {-1}), m));
  EXPECT_EQ(rounded64(r.output.values[0]), m);
  // float16: 2^-11 + 2^-30 rounds to 2^-11 (torch 2.2.2 CPU: the loss of x1 - x2 = -1, y = 1 is
  // exactly 1 in float16, which needs the rounded margin: 1 + 2^-11 ties to 1).
  r = exact(mrl("sum", tensor("float16", {1}, {0}), tensor("float16", {1}, {1}),
                tensor("float16", {1}, {1}), 0x1p-11 + 0x1p-30));
  EXPECT_EQ(rounded64(r.output.values[0]), 1 + 0x1p-11);
  EXPECT_EQ(r.output.rounded_value(0), 1.0);
  r = exact(mrl("sum", tensor("bfloat16", {1}, {0}), tensor("bfloat16", {1}, {1}),
                tensor("bfloat16", {1}, {1}), 0x1p-8 + 0x1p-30));
  EXPECT_EQ(rounded64(r.output.values[0]), 1 + 0x1p-8);
}

TEST(margin_ranking_loss, ShapesAndErrors) {
  // Same ndim, broadcasting allowed: (2, 1), (1, 3), (2, 3) -> (2, 3).
  const auto b =
      exact(mrl("none", tensor("float64", {2, 1}, {1, 2}), tensor("float64", {1, 3}, {0, 1, 2}),
                tensor("float64", {2, 3}, {1, 1, 1, -1, -1, -1})));
  EXPECT_EQ(b.output.shape, (Shape{2, 3}));
  // row 0: -(1 - [0, 1, 2]) = [-1, 0, 1] -> [0, 0, 1]; row 1: (2 - [0, 1, 2]) = [2, 1, 0]
  const std::vector<double> want = {0, 0, 1, 2, 1, 0};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(b.output.rounded_value(i), want[i]);
  // 0-d inputs.
  EXPECT_EQ(rounded_scalar(mrl("none", tensor("float32", {}, {1}), tensor("float32", {}, {2}),
                               tensor("float32", {}, {1}))),
            1.0);
  expect_error(
      mrl("mean", tensor("float32", {2, 3}, {1, 1, 1, 1, 1, 1}), tensor("float32", {3}, {1, 1, 1}),
          tensor("float32", {3}, {1, 1, 1})),
      ErrorKind::ShapeMismatch,
      "All input tensors should have same dimension but got sizes: input1: [2, 3], input2: [3], "
      "target: [3]");
  expect_error(mrl("mean", tensor("float32", {2}, {1, 1}), tensor("float32", {3}, {1, 1, 1}),
                   tensor("float32", {3}, {1, 1, 1})),
               ErrorKind::ShapeMismatch, "tensor a (2) must match the size of tensor b (3)");
  expect_error(mrl("mean", tensor("float32", {3}, {1, 1, 1}), tensor("float32", {3}, {1, 1, 1}),
                   tensor("float32", {2}, {1, 1})),
               ErrorKind::ShapeMismatch, "tensor a (2) must match the size of tensor b (3)");
  expect_error(mrl("mean", tensor("float32", {1}, {1}), tensor("float64", {1}, {1}),
                   tensor("float32", {1}, {1})),
               ErrorKind::Type, "input1 is float32 and input2 is float64");
}

TEST(margin_ranking_loss, EmptyAndSpecialValues) {
  const auto e = tensor("float32", {0}, {});
  EXPECT_TRUE(std::isnan(rounded_scalar(mrl("mean", e, e, e))));
  EXPECT_EQ(rounded_scalar(mrl("sum", e, e, e)), 0.0);
  EXPECT_EQ(exact(mrl("none", e, e, e)).output.shape, (Shape{0}));
  const auto r = exact(mrl("none", tensor("float64", {4}, {NAN, INFINITY, INFINITY, 1}),
                           tensor("float64", {4}, {0, 0, INFINITY, 0}),
                           tensor("float64", {4}, {1, 1, 1, INFINITY})));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(0)));
  EXPECT_EQ(r.output.rounded_value(1), 0.0);           // -inf clamped
  EXPECT_TRUE(std::isnan(r.output.rounded_value(2)));  // inf - inf
  EXPECT_EQ(r.output.rounded_value(3), 0.0);           // -inf * 1 clamped
}

TEST(margin_ranking_loss, HingeIsDecidedExactly) {
  // u = (2^100 - 2^-200) - 2^100 = -2^-200 < 0: the loss and gradients are 0, although a 192-bit
  // x1 - x2 would round to 2^100 and put u exactly on the hinge.
  auto r = exact(mrl("sum", tensor("float64", {1}, {0x1p100}), tensor("float64", {1}, {0x1p-200}),
                     tensor("float64", {1}, {-1}), -0x1p100),
                 true);
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  EXPECT_EQ(r.grads.at("input1").rounded_value(0), 0.0);
  // ... and with x2 = -2^-200 it is just above: the loss is 2^-200 and the gradient passes.
  r = exact(mrl("sum", tensor("float64", {1}, {0x1p100}), tensor("float64", {1}, {-0x1p-200}),
                tensor("float64", {1}, {-1}), -0x1p100),
            true);
  EXPECT_EQ(r.output.rounded_value(0), 0x1p-200);
  EXPECT_EQ(r.grads.at("input1").rounded_value(0), 1.0);
}

TEST(margin_ranking_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(mrl("mean", tensor("float64", {3}, {0.5, -1.25, 3}),
                                                tensor("float64", {3}, {0.25, 1, -4}),
                                                tensor("float64", {3}, {1, -1, 0.5}), 0.75));
  // Broadcast target and a grad_output.
  expect_gradients_match_finite_differences(
      mrl("none", tensor("float32", {2, 2}, {0.5, -1.25, 3, 2}),
          tensor("float32", {2, 2}, {1, 1, 1, 1}), tensor("float32", {1, 2}, {-1, 1}), 0.25,
          R"(, "grad_output": )" + tensor("float32", {2, 2}, {2, -0.5, 0.75, 1})));
  expect_gradients_match_finite_differences(mrl("sum", tensor("float16", {2}, {0.5, 2}),
                                                tensor("float16", {2}, {1, 1}),
                                                itensor({2}, {1, -1}), 1));
}

TEST(margin_ranking_loss, GradientAtTheHingePasses) {
  // Values from torch 2.2.2 float64: x1 = [1, 1, 1, 2], x2 = [1, 2, 0, 0], y = [1, 1, 1, -1],
  // margin 0, sum: u = [0, 1, -1, 2]; x1.grad = [-1, -1, -0, 1], x2.grad = [1, 1, 0, -1],
  // y.grad = [-0, 1, -0, -2].
  const auto r =
      exact(mrl("sum", tensor("float64", {4}, {1, 1, 1, 2}), tensor("float64", {4}, {1, 2, 0, 0}),
                tensor("float64", {4}, {1, 1, 1, -1})),
            true);
  const std::vector<double> g1 = {-1, -1, 0, 1}, g2 = {1, 1, 0, -1}, gy = {0, 1, 0, -2};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r.grads.at("input1").rounded_value(i), g1[i]) << i;
    EXPECT_EQ(r.grads.at("input2").rounded_value(i), g2[i]) << i;
    EXPECT_EQ(r.grads.at("target").rounded_value(i), gy[i]) << i;
  }
  // mean divides by N; broadcast inputs sum back; int64 targets get no gradient.
  const auto m = exact(mrl("mean", tensor("float32", {1}, {2}), tensor("float32", {3}, {1, 2, 3}),
                           itensor({3}, {-1, -1, -1})),
                       true);
  EXPECT_EQ(m.grads.count("target"), 0u);
  EXPECT_EQ(m.grads.at("input1").shape, (Shape{1}));
  EXPECT_EQ(m.grads.at("input1").rounded_value(0),
            static_cast<double>(2.0f / 3));  // u = [1, 0, -1]: two active
  EXPECT_EQ(m.grads.at("input2").rounded_value(2), 0.0);
  EXPECT_EQ(m.grads.at("input2").rounded_value(1), static_cast<double>(-1.0f / 3));
}

TEST(margin_ranking_loss, Float64CrossCheck) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> n(0, 2);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> a(16), b(16), y(16);
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      a[i] = n(rng);
      b[i] = n(rng);
      y[i] = (rng() & 1) ? 1 : -1;
      s += std::fmax(-y[i] * (a[i] - b[i]) + 0.5, 0);
    }
    const auto r = exact(mrl("mean", tensor("float64", {16}, a), tensor("float64", {16}, b),
                             tensor("float64", {16}, y), 0.5));
    EXPECT_LE(ulp_error64(s / 16, r.output.values[0]), 16.0);
  }
}
