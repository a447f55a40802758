#include <cmath>
#include <functional>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string kl(const std::string& reduction, const std::string& x, const std::string& y,
               bool log_target = false, const std::string& extra = "") {
  return R"({"loss": "kl_div", "reduction": ")" + reduction + R"(", "params": {"log_target": )" +
         (log_target ? "true" : "false") + R"(}, "inputs": {"input": )" + x + R"(, "target": )" +
         y + "}" + extra + "}";
}
std::string hp(const std::function<ref::Real()>& f) {
  const long saved = ref::working_bits();
  ref::set_working_bits(512);
  const std::string s = ref::decimal_string(f());
  ref::set_working_bits(saved);
  return s;
}
}  // namespace

TEST(kl_div, ClosedForms) {
  // y = 1, x = 0: exactly 0; y = 0.5, x = -1: 0.5 (log 0.5 + 1); y = 0: 0.
  const auto r =
      exact(kl("none", tensor("float64", {3}, {0, -1, -3}), tensor("float64", {3}, {1, 0.5, 0})));
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  EXPECT_TRUE(r.output.values[0].exact);
  EXPECT_EQ(ref::decimal_string(r.output.values[1].value),
            hp([] { return ref::Real(0.5) * (ref::log(ref::Real(0.5)) + 1); }));
  EXPECT_EQ(r.output.rounded_value(2), 0.0);
  // log_target: exp(y) (y - x): y = x gives 0; y = 0, x = -1 gives 1; y = 1, x = 0 gives e.
  const auto l = exact(kl("none", tensor("float32", {3}, {-0.5, -1, 0}),
                          tensor("float32", {3}, {-0.5, 0, 1}), true));
  EXPECT_EQ(l.output.rounded_value(0), 0.0);
  EXPECT_EQ(l.output.rounded_value(1), 1.0);
  EXPECT_EQ(ref::decimal_string(l.output.values[2].value),
            hp([] { return ref::exp(ref::Real(1)); }));
  // The same distribution in both forms: KL(p || p) = 0 exactly.
  EXPECT_EQ(
      rounded_scalar(kl("sum", tensor("float64", {2}, {0, 0}), tensor("float64", {2}, {1, 1}))),
      0.0);
}

TEST(kl_div, Reductions) {
  const auto x = tensor("float64", {2, 2}, {-1, -2, -0.5, -1});
  const auto y = tensor("float64", {2, 2}, {0.5, 0.25, 0.25, 0.5});
  EXPECT_EQ(exact(kl("none", x, y)).output.shape, (Shape{2, 2}));
  const double s = rounded_scalar(kl("sum", x, y));
  const auto sum_exact = exact(kl("sum", x, y)).output.values[0];
  EXPECT_EQ(rounded_scalar(kl("mean", x, y)), rounded64(sum_exact) / 4);  // exact /4
  EXPECT_EQ(rounded_scalar(kl("batchmean", x, y)), s / 2);                // input.size(0) = 2
  EXPECT_LE(ulp_error64(0.5 * (std::log(0.5) + 1) + 0.25 * (std::log(0.25) + 2) +
                            0.25 * (std::log(0.25) + 0.5) + 0.5 * (std::log(0.5) + 1),
                        sum_exact),
            4.0);
  // batchmean divides by input.size(0) even when target enlarges the shape (torch 2.2.2:
  // input (1, 3), target (2, 3) gives sum / 1).
  const auto xb = tensor("float64", {1, 3}, {0, 0, 0});
  const auto yb = tensor("float64", {2, 3}, {0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
  EXPECT_EQ(rounded_scalar(kl("batchmean", xb, yb)), rounded_scalar(kl("sum", xb, yb)));
  EXPECT_LE(ulp_error64(3 * std::log(0.5), exact(kl("batchmean", xb, yb)).output.values[0]), 2.0);
  // mean divides by the broadcast numel (6).
  EXPECT_LE(ulp_error64(0.5 * std::log(0.5), exact(kl("mean", xb, yb)).output.values[0]), 2.0);
  // A 0-d input: batchmean is the plain sum (torch 2.2.2: 0.6137 for x = -1, y = 0.5 x 4).
  const auto x0 = tensor("float32", {}, {-1});
  const auto y4 = tensor("float32", {4}, {0.5, 0.5, 0.5, 0.5});
  EXPECT_EQ(rounded_scalar(kl("batchmean", x0, y4)), rounded_scalar(kl("sum", x0, y4)));
  EXPECT_EQ(rounded_scalar(kl("batchmean", x0, y4)),
            static_cast<double>(static_cast<float>(2 * (std::log(0.5) + 1))));
  // Empty: batch 0 -> 0/0 = NaN; (3, 0) -> 0/3 = 0; mean NaN; sum 0.
  EXPECT_TRUE(std::isnan(rounded_scalar(
      kl("batchmean", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {})))));
  EXPECT_EQ(
      rounded_scalar(kl("batchmean", tensor("float32", {3, 0}, {}), tensor("float32", {3, 0}, {}))),
      0.0);
  EXPECT_TRUE(std::isnan(
      rounded_scalar(kl("mean", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {})))));
  EXPECT_EQ(rounded_scalar(kl("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}))),
            0.0);
  EXPECT_EQ(
      exact(kl("none", tensor("float32", {0, 3}, {}), tensor("float32", {3}, {0.5, 0.5, 0.5})))
          .output.shape,
      (Shape{0, 3}));
}

TEST(kl_div, SpecialValues) {
  // torch 2.2.2, float64, log_target = false:
  //   x = [-1, -2, -inf, -0.5, nan, -1], y = [0.5, 0, 0, -0.5, 0, nan] -> [0.1534, 0, nan, nan,
  //   nan, nan] x = inf, y = 0 -> nan; x = 1, y = inf -> nan.
  const auto r =
      exact(kl("none", tensor("float64", {8}, {-1, -2, -INFINITY, -0.5, NAN, -1, INFINITY, 1}),
               tensor("float64", {8}, {0.5, 0, 0, -0.5, 0, NAN, 0, INFINITY})));
  EXPECT_NEAR(r.output.rounded_value(0), 0.1534, 1e-4);
  EXPECT_EQ(r.output.rounded_value(1), 0.0);
  for (std::size_t i = 2; i < 8; ++i) EXPECT_TRUE(std::isnan(r.output.rounded_value(i))) << i;
  // x = -inf with y > 0: +inf.
  EXPECT_EQ(
      rounded_scalar(kl("sum", tensor("float64", {1}, {-INFINITY}), tensor("float64", {1}, {0.5}))),
      INFINITY);
  // log_target = true, same inputs: [2.4731, 2, inf, 0, nan, nan]; x = -inf, y = -inf -> nan;
  // x = 1, y = inf -> inf.
  const auto l =
      exact(kl("none", tensor("float64", {8}, {-1, -2, -INFINITY, -0.5, NAN, -1, -INFINITY, 1}),
               tensor("float64", {8}, {0.5, 0, 0, -0.5, 0, NAN, -INFINITY, INFINITY}), true));
  EXPECT_NEAR(l.output.rounded_value(0), 2.4731, 1e-4);
  EXPECT_EQ(l.output.rounded_value(1), 2.0);
  EXPECT_EQ(l.output.rounded_value(2), INFINITY);
  EXPECT_EQ(l.output.rounded_value(3), 0.0);
  EXPECT_TRUE(std::isnan(l.output.rounded_value(4)));
  EXPECT_TRUE(std::isnan(l.output.rounded_value(5)));
  EXPECT_TRUE(std::isnan(l.output.rounded_value(6)));
  EXPECT_EQ(l.output.rounded_value(7), INFINITY);
}

TEST(kl_div, Errors) {
  expect_error(kl("none", tensor("float32", {2, 3}, {0, 0, 0, 0, 0, 0}),
                  tensor("float32", {4}, {1, 1, 1, 1})),
               ErrorKind::ShapeMismatch,
               "The size of tensor a (3) must match the size of tensor b (4)");
  expect_error(kl("sum", tensor("float32", {2}, {0, 0}), tensor("float64", {2}, {1, 1})),
               ErrorKind::Type, "input is float32 and target is float64");
  expect_error(kl("bogus", tensor("float32", {2}, {0, 0}), tensor("float32", {2}, {1, 1})),
               ErrorKind::Value, "bogus is not a valid value for reduction");
}

TEST(kl_div, Float64CrossCheck) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.01, 1);
  std::normal_distribution<double> nd(-2, 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(12), y(12);
    double s = 0, sl = 0;
    for (int i = 0; i < 12; ++i) {
      x[i] = nd(rng);
      y[i] = u(rng);
      s += y[i] * (std::log(y[i]) - x[i]);
      sl += std::exp(y[i]) * (y[i] - x[i]);
    }
    const auto r =
        exact(kl("batchmean", tensor("float64", {3, 4}, x), tensor("float64", {3, 4}, y)));
    EXPECT_LE(ulp_error64(s / 3, r.output.values[0]), 16.0);
    const auto rl =
        exact(kl("mean", tensor("float64", {3, 4}, x), tensor("float64", {3, 4}, y), true));
    EXPECT_LE(ulp_error64(sl / 12, rl.output.values[0]), 16.0);
  }
}

TEST(kl_div, GradientsMatchFiniteDifferences) {
  const auto x = tensor("float64", {2, 3}, {-1, -2, -0.5, -1.5, -0.25, -3});
  const auto y = tensor("float64", {2, 3}, {0.5, 0.25, 0.25, 0.125, 0.75, 0.125});
  expect_gradients_match_finite_differences(kl("batchmean", x, y));
  expect_gradients_match_finite_differences(kl("mean", x, y, true));
  // target broadcast over the batch, none with grad_output.
  expect_gradients_match_finite_differences(
      kl("none", x, tensor("float64", {3}, {0.5, 0.25, 0.25}), false,
         R"(, "grad_output": )" + tensor("float64", {2, 3}, {1, -2, 0.5, 3, 0.25, -1})));
  // batchmean with a target that enlarges the shape: divisor input.size(0) = 1.
  expect_gradients_match_finite_differences(kl("batchmean", tensor("float32", {1, 2}, {-1, -0.5}),
                                               tensor("float32", {2, 2}, {0.5, 0.25, 0.75, 0.5}),
                                               true));
}

TEST(kl_div, GradientConventions) {
  // torch 2.2.2, sum, x = [-1, -2, -0.5], y = [0.5, 0, -0.5]:
  //   d/dx = [-0.5, -0, 0.5], d/dy = [log 0.5 + 2 = 1.3069, nan, nan] (NaN at y = 0: #89558).
  const auto r = exact(
      kl("sum", tensor("float64", {3}, {-1, -2, -0.5}), tensor("float64", {3}, {0.5, 0, -0.5})),
      true);
  EXPECT_EQ(r.grads.at("input").rounded_value(0), -0.5);
  EXPECT_EQ(r.grads.at("input").rounded_value(1), 0.0);
  EXPECT_TRUE(std::signbit(r.grads.at("input").rounded_value(1)));
  EXPECT_EQ(r.grads.at("input").rounded_value(2), 0.5);
  EXPECT_LE(ulp_error64(std::log(0.5) + 2, r.grads.at("target").values[0]), 2.0);
  EXPECT_TRUE(std::isnan(r.grads.at("target").rounded_value(1)));
  EXPECT_TRUE(std::isnan(r.grads.at("target").rounded_value(2)));
  // y = 1, x = 1: d/dy = log 1 + 1 - 1 = 0 exactly. x = -inf, y = 0.5: d/dy = +inf.
  const auto z = exact(
      kl("sum", tensor("float64", {2}, {1, -INFINITY}), tensor("float64", {2}, {1, 0.5})), true);
  EXPECT_EQ(z.grads.at("target").rounded_value(0), 0.0);
  EXPECT_TRUE(z.grads.at("target").values[0].exact);
  EXPECT_EQ(z.grads.at("target").rounded_value(1), INFINITY);
  // log_target: d/dx = -exp(y), d/dy = exp(y) (y - x + 1): torch 2.2.2 gives [4.1218, 3, 0.6065]
  // for x = [-1, -2, -0.5], y = [0.5, 0, -0.5]; x = y + 1 gives exactly 0.
  const auto l = exact(kl("sum", tensor("float64", {4}, {-1, -2, -0.5, 1.5}),
                          tensor("float64", {4}, {0.5, 0, -0.5, 0.5}), true),
                       true);
  EXPECT_EQ(l.grads.at("input").rounded_value(1), -1.0);
  EXPECT_EQ(l.grads.at("target").rounded_value(1), 3.0);
  EXPECT_LE(ulp_error64(std::exp(0.5) * 2.5, l.grads.at("target").values[0]), 2.0);
  EXPECT_LE(ulp_error64(-std::exp(-0.5), l.grads.at("input").values[2]), 2.0);
  EXPECT_EQ(l.grads.at("target").rounded_value(3), 0.0);
  // batchmean: g / input.size(0); torch 2.2.2 with x (1, 3) = [-1, -2, -0.5] and y (2, 3) rows
  // [0.5, 0.25, 0.25]: d/dx = [-1, -0.5, -0.5], d/dy = [1.3069, 1.6137, 0.1137] per row.
  const auto b = exact(kl("batchmean", tensor("float64", {1, 3}, {-1, -2, -0.5}),
                          tensor("float64", {2, 3}, {0.5, 0.25, 0.25, 0.5, 0.25, 0.25})),
                       true);
  EXPECT_EQ(b.grads.at("input").shape, (Shape{1, 3}));
  EXPECT_EQ(b.grads.at("input").rounded_value(0), -1.0);
  EXPECT_EQ(b.grads.at("input").rounded_value(1), -0.5);
  EXPECT_LE(ulp_error64(std::log(0.25) + 3, b.grads.at("target").values[4]), 2.0);
  // mean: 1/N over the broadcast numel.
  const auto m = exact(
      kl("mean", tensor("float64", {2}, {-1, -1}), tensor("float64", {2}, {0.5, 0.25})), true);
  EXPECT_EQ(m.grads.at("input").rounded_value(0), -0.25);
  EXPECT_EQ(m.grads.at("input").rounded_value(1), -0.125);
}
