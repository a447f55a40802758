#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string sm(const std::string& reduction, const std::string& x, const std::string& y,
               const std::string& extra = "") {
  return R"({"loss": "soft_margin_loss", "reduction": ")" + reduction +
         R"(", "inputs": {"input": )" + x + R"(, "target": )" + y + "}" + extra + "}";
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

TEST(soft_margin_loss, ClosedForms) {
  // x y = 0 gives log 2 for every element.
  const std::string log2 = exact_decimal([] { return ref::log(ref::Real(2)); });
  EXPECT_EQ(exact_scalar(
                sm("mean", tensor("float32", {3}, {0, 0, 5}), tensor("float32", {3}, {1, -1, 0}))),
            log2);
  EXPECT_EQ(exact_scalar(sm("sum", tensor("float64", {2}, {0, 1}), tensor("float64", {2}, {1, 0}))),
            exact_decimal([] { return ref::Real(2 * ref::log(ref::Real(2))); }));
  // x y = 1: log1p(exp(-1)); x y = -2: log1p(exp(2)).
  const auto r = exact(sm("none", tensor("float64", {2, 2}, {1, -1, 2, -0.5}),
                          tensor("float64", {2, 2}, {1, -1, -1, 4})));
  EXPECT_EQ(r.output.shape, (Shape{2, 2}));
  const std::string l1 = exact_decimal([] { return ref::log1p(ref::exp(ref::Real(-1))); });
  const std::string l2 = exact_decimal([] { return ref::log1p(ref::exp(ref::Real(2))); });
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value), l1);
  EXPECT_EQ(ref::decimal_string(r.output.values[1].value), l1);
  EXPECT_EQ(ref::decimal_string(r.output.values[2].value), l2);
  EXPECT_EQ(ref::decimal_string(r.output.values[3].value), l2);
  // mean divides by input's numel.
  EXPECT_EQ(
      exact_scalar(sm("mean", tensor("float64", {2}, {1, -1}), tensor("float64", {2}, {1, -1}))),
      l1);
}

TEST(soft_margin_loss, TargetBroadcastsIntoInputOnly) {
  // (2, 3) input with a (3) target: fine, shape (2, 3), N = 6.
  const auto r = exact(sm("none", tensor("float32", {2, 3}, {0, 0, 0, 0, 0, 0}),
                          tensor("float32", {3}, {1, -1, 1})));
  EXPECT_EQ(r.output.shape, (Shape{2, 3}));
  EXPECT_EQ(r.output.rounded_value(5), static_cast<double>(std::log(2.0f)));
  EXPECT_EQ(exact(sm("none", tensor("float32", {}, {0}), tensor("float32", {}, {1}))).output.shape,
            Shape{});
  // A target larger than input is an error (the output is allocated like input); torch 2.2.2.
  expect_error(
      sm("none", tensor("float32", {3}, {0, 0, 0}), tensor("float32", {2, 3}, {1, 1, 1, 1, 1, 1})),
      ErrorKind::ShapeMismatch, "output with shape [3] doesn't match the broadcast shape [2, 3]");
  expect_error(sm("mean", tensor("float32", {3, 1}, {0, 0, 0}),
                  tensor("float32", {3, 4}, std::vector<double>(12, 1))),
               ErrorKind::ShapeMismatch,
               "output with shape [3, 1] doesn't match the broadcast shape [3, 4]");
  expect_error(sm("mean", tensor("float32", {3}, {0, 0, 0}), tensor("float32", {1, 3}, {1, 1, 1})),
               ErrorKind::ShapeMismatch, "doesn't match the broadcast shape [1, 3]");
  expect_error(sm("mean", tensor("float32", {3}, {0, 0, 0}), tensor("float32", {4}, {1, 1, 1, 1})),
               ErrorKind::ShapeMismatch,
               "The size of tensor a (3) must match the size of tensor b (4)");
  expect_error(sm("mean", tensor("float32", {1}, {0}), tensor("bfloat16", {1}, {1})),
               ErrorKind::Type, "input is float32 and target is bfloat16");
}

TEST(soft_margin_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(std::isnan(
      rounded_scalar(sm("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {})))));
  EXPECT_EQ(
      rounded_scalar(sm("sum", tensor("float32", {0, 2}, {}), tensor("float32", {2}, {1, 1}))),
      0.0);
  // torch 2.2.2 float64: (x, y) = (inf, 1) -> 0, (-inf, 1) -> inf, (nan, 1) -> nan, (0, inf) ->
  // nan, (1, inf) -> 0, (-1, inf) -> inf, (100, 1) -> 3.720075976020836e-44.
  const auto r = exact(sm("none", tensor("float64", {7}, {INFINITY, -INFINITY, NAN, 0, 1, -1, 100}),
                          tensor("float64", {7}, {1, 1, 1, INFINITY, INFINITY, INFINITY, 1})));
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  EXPECT_EQ(r.output.rounded_value(1), INFINITY);
  EXPECT_TRUE(std::isnan(r.output.rounded_value(2)));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(3)));
  EXPECT_EQ(r.output.rounded_value(4), 0.0);
  EXPECT_EQ(r.output.rounded_value(5), INFINITY);
  EXPECT_EQ(r.output.rounded_value(6), 3.720075976020836e-44);
}

TEST(soft_margin_loss, NoIntermediateOverflow) {
  // Policy: the exact log1p(exp(-x y)). PyTorch float32 overflows exp(100) and returns inf
  // (torch 2.2.2); the exact value is 100 + log1p(exp(-100)), which rounds to 100 in float32.
  EXPECT_EQ(rounded_scalar(sm("sum", tensor("float32", {1}, {-100}), tensor("float32", {1}, {1}))),
            100.0);
  // Far beyond MPFR's exp range too: x y = -2^100, so l = 2^100 (+ a negligible term).
  EXPECT_EQ(rounded_scalar(
                sm("sum", tensor("float32", {1}, {-0x1p50}), tensor("float32", {1}, {0x1p50}))),
            0x1p100);
  EXPECT_EQ(
      rounded_scalar(sm("sum", tensor("float32", {1}, {0x1p50}), tensor("float32", {1}, {0x1p50}))),
      0.0);
}

TEST(soft_margin_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      sm("mean", tensor("float64", {2, 3}, {0.5, -1.25, 3, 7, -2, 0.125}),
         tensor("float64", {3}, {1, -1, 1})));
  expect_gradients_match_finite_differences(
      sm("none", tensor("float32", {3}, {0.5, -1.25, 3}), tensor("float32", {3}, {1, 0.5, -2}),
         R"(, "grad_output": )" + tensor("float32", {3}, {2, -0.5, 0.75})));
  expect_gradients_match_finite_differences(
      sm("sum", tensor("float16", {2}, {0.5, -4}), tensor("float16", {2}, {-1, 1})));
}

TEST(soft_margin_loss, GradientValuesAndSpecialValues) {
  // d/dx = -y sigmoid(-x y) g; target gets no gradient (not differentiable in PyTorch 2.2).
  const auto r =
      exact(sm("sum", tensor("float64", {3}, {0, 0, 1}), tensor("float64", {3}, {1, -2, 0})), true);
  EXPECT_EQ(r.grads.count("target"), 0u);
  EXPECT_EQ(r.grads.at("input").rounded_value(0), -0.5);
  EXPECT_EQ(r.grads.at("input").rounded_value(1), 1.0);
  EXPECT_EQ(r.grads.at("input").rounded_value(2), 0.0);
  // mean over a broadcast target: 1/N with N = input's numel.
  const auto m = exact(
      sm("mean", tensor("float64", {2, 2}, {0, 0, 0, 0}), tensor("float64", {2}, {1, -1})), true);
  EXPECT_EQ(m.grads.at("input").shape, (Shape{2, 2}));
  EXPECT_EQ(m.grads.at("input").rounded_value(0), -0.125);
  EXPECT_EQ(m.grads.at("input").rounded_value(3), 0.125);
  // torch 2.2.2 float64: (inf, 1) -> -0, (-inf, 1) -> nan (inf/inf), (nan, 1) -> nan,
  // (0, inf) -> nan, (1, inf) -> nan (inf * 0), (-1, inf) -> nan, (100, 1) ->
  // -3.720075976020836e-44.
  const auto s = exact(sm("sum", tensor("float64", {7}, {INFINITY, -INFINITY, NAN, 0, 1, -1, 100}),
                          tensor("float64", {7}, {1, 1, 1, INFINITY, INFINITY, INFINITY, 1})),
                       true);
  const auto& g = s.grads.at("input");
  EXPECT_EQ(g.rounded_value(0), 0.0);
  for (std::size_t i = 1; i < 6; ++i) EXPECT_TRUE(std::isnan(g.rounded_value(i))) << i;
  EXPECT_EQ(g.rounded_value(6), -3.720075976020836e-44);
  // Where exp(-x y) overflows float32, PyTorch returns NaN (torch 2.2.2); the exact value is
  // -y sigmoid(100) -> -1 in float32.
  const auto o =
      exact(sm("sum", tensor("float32", {1}, {-100}), tensor("float32", {1}, {1})), true);
  EXPECT_EQ(o.grads.at("input").rounded_value(0), -1.0);
}

TEST(soft_margin_loss, Float64CrossCheck) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-6, 6);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(16), y(16);
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      x[i] = u(rng);
      y[i] = (i % 3 == 0) ? -1 : 1;
      s += std::log1p(std::exp(-x[i] * y[i]));
    }
    const auto r = exact(sm("sum", tensor("float64", {16}, x), tensor("float64", {16}, y)));
    EXPECT_LE(ulp_error64(s, r.output.values[0]), 16.0);
  }
}

TEST(soft_margin_loss, TorchValues) {
  // torch 2.2.2 float64: F.soft_margin_loss(x, y, reduction='sum') = 1.4910913850573237.
  const auto r = exact(sm("sum", tensor("float64", {4}, {0.3, -2.5, 1.9, 0.05}),
                          tensor("float64", {4}, {1, -1, 1, -1})));
  EXPECT_LE(ulp_error64(1.4910913850573237, r.output.values[0]), 4.0);
}
