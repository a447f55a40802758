#include <cmath>
#include <functional>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string bcel(const std::string& reduction, const std::string& x, const std::string& y,
                 const std::string& w = "", const std::string& pw = "",
                 const std::string& extra = "") {
  return R"({"loss": "binary_cross_entropy_with_logits", "reduction": ")" + reduction +
         R"(", "inputs": {"input": )" + x + R"(, "target": )" + y +
         (w.empty() ? "" : R"(, "weight": )" + w) + (pw.empty() ? "" : R"(, "pos_weight": )" + pw) +
         "}" + extra + "}";
}
std::string hp(const std::function<ref::Real()>& f) {
  const long saved = ref::working_bits();
  ref::set_working_bits(512);
  const std::string s = ref::decimal_string(f());
  ref::set_working_bits(saved);
  return s;
}
double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }
double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }
}  // namespace

TEST(binary_cross_entropy_with_logits, ClosedForms) {
  // x = 0: log 2 whatever y; y = 1, x = 1: log(1 + e^-1); y = 0, x = 800: 800 (+ e^-800).
  const auto r = exact(
      bcel("none", tensor("float64", {4}, {0, 0, 1, 800}), tensor("float64", {4}, {0.5, 1, 1, 0})));
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
            hp([] { return ref::log(ref::Real(2)); }));
  EXPECT_EQ(r.output.rounded_value(1), r.output.rounded_value(0));
  EXPECT_EQ(ref::decimal_string(r.output.values[2].value),
            hp([] { return ref::log1p(ref::exp(ref::Real(-1))); }));
  EXPECT_EQ(r.output.rounded_value(3), 800.0);
  // x = -800, y = 0: log1p(e^-800), far below float64's subnormals but not 0 exactly.
  const auto t = exact(bcel("sum", tensor("float64", {1}, {-800}), tensor("float64", {1}, {0})));
  EXPECT_EQ(t.output.rounded_value(0), 0.0);
  EXPECT_EQ(ref::decimal_string(t.output.values[0].value),
            hp([] { return ref::log1p(ref::exp(ref::Real(-800))); }));
  // (1 - y) + p y = 0 at x = 0: exactly 0 (y = 2, p = 0.5; the loss is not bounded below
  // for y outside [0, 1]).
  const auto z = exact(bcel("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {2}), "",
                            tensor("float32", {1}, {0.5})));
  EXPECT_EQ(z.output.rounded_value(0), 0.0);
  EXPECT_TRUE(z.output.values[0].exact);
  // Targets outside [0, 1] are accepted (torch 2.2.2: x = 3, y = -1 -> 6.0486; with p = -1 and
  // y = 2 -> -3.1458).
  EXPECT_LE(ulp_error64(2 * 3 + softplus(-3.0), exact(bcel("sum", tensor("float64", {1}, {3}),
                                                           tensor("float64", {1}, {-1})))
                                                    .output.values[0]),
            4.0);
  EXPECT_NEAR(rounded_scalar(bcel("sum", tensor("float64", {1}, {3}), tensor("float64", {1}, {2}),
                                  "", tensor("float64", {1}, {-1}))),
              -3.1458, 1e-4);
}

TEST(binary_cross_entropy_with_logits, WeightsAndReductions) {
  const auto x = tensor("float64", {2, 3}, {0, 0, 0, 0, 0, 0});
  const auto y1 = tensor("float64", {2, 3}, {1, 1, 1, 1, 1, 1});
  // pos_weight (3) along the last dim: torch 2.2.2 rows [0.6931, 1.3863, 2.0794]; with y = 0 it
  // has no effect.
  const auto r = exact(bcel("none", x, y1, "", tensor("float64", {3}, {1, 2, 3})));
  EXPECT_EQ(r.output.shape, (Shape{2, 3}));
  EXPECT_LE(ulp_error64(3 * std::log(2.0), r.output.values[5]), 2.0);
  EXPECT_LE(ulp_error64(2 * std::log(2.0), r.output.values[4]), 2.0);
  const auto r0 = exact(bcel("none", x, tensor("float64", {2, 3}, {0, 0, 0, 0, 0, 0}), "",
                             tensor("float64", {3}, {1, 2, 3})));
  EXPECT_EQ(r0.output.rounded_value(5), r0.output.rounded_value(0));
  // pos_weight (2, 1) aligns with rows; weight (3) with the last dim; both at once.
  const auto c = exact(
      bcel("none", x, y1, tensor("float64", {3}, {1, 0.5, 2}), tensor("float64", {2, 1}, {2, 4})));
  EXPECT_LE(ulp_error64(2 * std::log(2.0), c.output.values[0]), 2.0);
  EXPECT_LE(ulp_error64(1 * std::log(2.0), c.output.values[1]), 2.0);
  EXPECT_LE(ulp_error64(8 * std::log(2.0), c.output.values[5]), 2.0);
  // mean divides by N = 6.
  EXPECT_LE(ulp_error64((2 + 1 + 4 + 4 + 2 + 8) * std::log(2.0) / 6,
                        exact(bcel("mean", x, y1, tensor("float64", {3}, {1, 0.5, 2}),
                                   tensor("float64", {2, 1}, {2, 4})))
                            .output.values[0]),
            2.0);
  // Empty: mean NaN, sum 0.
  EXPECT_TRUE(std::isnan(
      rounded_scalar(bcel("mean", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {})))));
  EXPECT_EQ(
      rounded_scalar(bcel("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}),
                          tensor("float32", {3}, {1, 2, 3}), tensor("float32", {3}, {1, 2, 3}))),
      0.0);
  // float16: the value of the function rounded once (torch 2.2.2 rounds per op: 0.6934).
  EXPECT_EQ(rounded_scalar(
                bcel("mean", tensor("float16", {3}, {0, 0, 0}), tensor("float16", {3}, {1, 1, 1}))),
            round_to(std::log(2.0), DType::float16));
}

TEST(binary_cross_entropy_with_logits, SpecialValues) {
  // torch 2.2.2: x = [inf, inf, -inf, -inf, nan], y = [1, 0, 0, 1, 0] -> [nan, inf, nan, nan, nan].
  const auto r =
      exact(bcel("none", tensor("float64", {5}, {INFINITY, INFINITY, -INFINITY, -INFINITY, NAN}),
                 tensor("float64", {5}, {1, 0, 0, 1, 0})));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(0)));
  EXPECT_EQ(r.output.rounded_value(1), INFINITY);
  EXPECT_TRUE(std::isnan(r.output.rounded_value(2)));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(3)));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(4)));
  // The same with a pos_weight.
  const auto p =
      exact(bcel("none", tensor("float64", {3}, {INFINITY, INFINITY, -INFINITY}),
                 tensor("float64", {3}, {1, 0, 0}), "", tensor("float64", {3}, {2, 2, 2})));
  EXPECT_TRUE(std::isnan(p.output.rounded_value(0)));
  EXPECT_EQ(p.output.rounded_value(1), INFINITY);
  EXPECT_TRUE(std::isnan(p.output.rounded_value(2)));
  // Large finite logits stay finite: x = -800, y = 1 -> 800; x = 800, y = 0 -> 800.
  const auto b =
      exact(bcel("none", tensor("float64", {2}, {-800, 800}), tensor("float64", {2}, {1, 0})));
  EXPECT_EQ(b.output.rounded_value(0), 800.0);
  EXPECT_EQ(b.output.rounded_value(1), 800.0);
}

TEST(binary_cross_entropy_with_logits, Errors) {
  expect_error(bcel("none", tensor("float64", {2}, {1, 2}), tensor("float64", {1}, {1})),
               ErrorKind::ShapeMismatch, "Target size ([1]) must be the same as input size ([2])");
  const auto x = tensor("float64", {2, 3}, std::vector<double>(6, 0));
  const auto y = tensor("float64", {2, 3}, std::vector<double>(6, 1));
  expect_error(
      bcel("none", x, y, "", tensor("float64", {2}, {1, 2})), ErrorKind::ShapeMismatch,
      "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 1");
  expect_error(
      bcel("none", x, y, tensor("float64", {2}, {1, 2})), ErrorKind::ShapeMismatch,
      "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1");
  // Neither may enlarge the shape (torch 2.2.2 fails in its in-place ops, for every reduction).
  expect_error(bcel("none", x, y, "", tensor("float64", {4, 2, 3}, std::vector<double>(24, 2))),
               ErrorKind::ShapeMismatch,
               "output with shape [2, 3] doesn't match the broadcast shape [4, 2, 3]");
  expect_error(bcel("mean", x, y, tensor("float64", {4, 1, 1}, {1, 1, 1, 1})),
               ErrorKind::ShapeMismatch,
               "output with shape [2, 3] doesn't match the broadcast shape [4, 2, 3]");
  expect_error(bcel("mean", tensor("float32", {1}, {0}), tensor("float32", {1}, {1}), "",
                    tensor("float64", {1}, {1})),
               ErrorKind::Type, "pos_weight is float64");
}

TEST(binary_cross_entropy_with_logits, Float64CrossCheck) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd(0, 4);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(12), y(12), w(12), p(3);
    for (auto& v : p) v = 0.5 + 2 * u(rng);
    double s = 0, sp = 0;
    for (int i = 0; i < 12; ++i) {
      x[i] = nd(rng);
      y[i] = u(rng);
      w[i] = 0.25 + u(rng);
      s += w[i] * ((1 - y[i]) * softplus(x[i]) + y[i] * softplus(-x[i]));
      sp += w[i] * ((1 - y[i]) * softplus(x[i]) +
                    p[static_cast<std::size_t>(i % 3)] * y[i] * softplus(-x[i]));
    }
    const auto xs = tensor("float64", {4, 3}, x), ys = tensor("float64", {4, 3}, y),
               ws = tensor("float64", {4, 3}, w);
    EXPECT_LE(ulp_error64(s, exact(bcel("sum", xs, ys, ws)).output.values[0]), 16.0);
    EXPECT_LE(
        ulp_error64(sp / 12,
                    exact(bcel("mean", xs, ys, ws, tensor("float64", {3}, p))).output.values[0]),
        16.0);
  }
}

TEST(binary_cross_entropy_with_logits, GradientsMatchFiniteDifferences) {
  const auto x = tensor("float64", {2, 2}, {0.5, -2, 3, 0.25});
  const auto y = tensor("float64", {2, 2}, {0.25, 1, 0, 0.5});
  expect_gradients_match_finite_differences(bcel("mean", x, y));
  expect_gradients_match_finite_differences(
      bcel("sum", x, y, tensor("float64", {2}, {2, 0.5}), tensor("float64", {2, 1}, {3, 0.75})));
  expect_gradients_match_finite_differences(
      bcel("none", tensor("float32", {3}, {0.5, -2, 3}), tensor("float32", {3}, {0.25, 1, -0.5}),
           "", tensor("float32", {3}, {2, 0.5, 1}),
           R"(, "grad_output": )" + tensor("float32", {3}, {1, -2, 0.5})));
}

TEST(binary_cross_entropy_with_logits, GradientConventions) {
  // torch 2.2.2, sum, w = p = 2 (the pos_weight is 2 where given):
  //   x = [0.5, -2, 3, 0], y = [0.25, 1, 0, 0.5], w = [1, 2, 0.5, 1], p = [2, 0.5, 1, 3]:
  //   d/dx = [0.2781, -0.8808, 0.4763, -0.5000], d/dy = [-0.0259, 1.8731, -1.5000, 1.3863].
  const auto r =
      exact(bcel("sum", tensor("float64", {4}, {0.5, -2, 3, 0}),
                 tensor("float64", {4}, {0.25, 1, 0, 0.5}), tensor("float64", {4}, {1, 2, 0.5, 1}),
                 tensor("float64", {4}, {2, 0.5, 1, 3})),
            true);
  const double xs[] = {0.5, -2, 3, 0}, ys[] = {0.25, 1, 0, 0.5}, ws[] = {1, 2, 0.5, 1},
               ps[] = {2, 0.5, 1, 3};
  for (std::size_t i = 0; i < 4; ++i) {
    const double t = ps[i] * ys[i];
    EXPECT_LE(
        ulp_error64(((t + 1 - ys[i]) * sigmoid(xs[i]) - t) * ws[i], r.grads.at("input").values[i]),
        8.0)
        << i;
    EXPECT_LE(ulp_error64((-softplus(xs[i]) + ps[i] * softplus(-xs[i])) * ws[i],
                          r.grads.at("target").values[i]),
              8.0)
        << i;
  }
  EXPECT_NEAR(r.grads.at("input").rounded_value(0), 0.2781, 1e-4);
  EXPECT_NEAR(r.grads.at("target").rounded_value(1), 1.8731, 1e-4);
  EXPECT_EQ(r.grads.at("input").rounded_value(3),
            -0.5);  // x = 0: (t + 1 - y) / 2 - t = 2 / 2 - 1.5
  // Without pos_weight: d/dx = sigmoid(x) - y, exactly 0 at x = 0, y = 0.5; d/dy = -x.
  const auto n =
      exact(bcel("mean", tensor("float64", {2}, {0, 3}), tensor("float64", {2}, {0.5, 1})), true);
  EXPECT_EQ(n.grads.at("input").rounded_value(0), 0.0);
  EXPECT_TRUE(n.grads.at("input").values[0].exact);
  EXPECT_LE(ulp_error64(-0.5 * sigmoid(-3), n.grads.at("input").values[1]), 4.0);
  EXPECT_EQ(n.grads.at("target").rounded_value(1), -1.5);
  EXPECT_EQ(n.grads.at("target").rounded_value(0), 0.0);
  // torch 2.2.2 at infinities, x = [inf, -inf, 800, inf, -inf], y = [1, 0, 1, 0, 1]:
  //   d/dx = [0, 0, 0, 1, -1] (with p = 2: [0, 0, 0, 1, -2]); d/dy = [-inf, inf, -800, -inf, inf].
  // The explicit backward stays finite where the forward is NaN.
  const auto xi = tensor("float64", {5}, {INFINITY, -INFINITY, 800, INFINITY, -INFINITY});
  const auto yi = tensor("float64", {5}, {1, 0, 1, 0, 1});
  for (int with_p = 0; with_p < 2; ++with_p) {
    const auto s =
        exact(bcel("sum", xi, yi, "", with_p ? tensor("float64", {5}, {2, 2, 2, 2, 2}) : ""), true);
    const double ex[] = {0, 0, 0, 1, with_p ? -2.0 : -1.0},
                 ey[] = {-INFINITY, INFINITY, -800, -INFINITY, INFINITY};
    for (std::size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(s.grads.at("input").rounded_value(i), ex[i]) << with_p << " " << i;
      EXPECT_EQ(s.grads.at("target").rounded_value(i), ey[i]) << with_p << " " << i;
    }
  }
  // Very large logits need no huge precision: sigmoid(-1e30) - 0 and -sigmoid(-1e4).
  const auto big = exact(
      bcel("sum", tensor("float64", {2}, {-1e30, 1e4}), tensor("float64", {2}, {0, 1})), true);
  EXPECT_EQ(big.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(big.grads.at("input").rounded_value(1), 0.0);
  EXPECT_EQ(big.output.rounded_value(0), 0.0);
  // weight and pos_weight get no gradient.
  EXPECT_EQ(r.grads.count("weight") + r.grads.count("pos_weight"), 0u);
}
