#include <cmath>
#include <functional>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string bce(const std::string& reduction, const std::string& x, const std::string& y,
                const std::string& w = "", const std::string& extra = "") {
  return R"({"loss": "binary_cross_entropy", "reduction": ")" + reduction +
         R"(", "inputs": {"input": )" + x + R"(, "target": )" + y +
         (w.empty() ? "" : R"(, "weight": )" + w) + "}" + extra + "}";
}
std::string hp(const std::function<ref::Real()>& f) {
  const long saved = ref::working_bits();
  ref::set_working_bits(512);
  const std::string s = ref::decimal_string(f());
  ref::set_working_bits(saved);
  return s;
}
const double kEps = static_cast<double>(1e-12f);  // the backward's EPSILON, a float constant
}  // namespace

TEST(binary_cross_entropy, ClosedForms) {
  // torch 2.2.2 float64: x = [0, 1, 0, 1, 0.5], y = [1, 0, 0, 1, 0.5] -> [100, 100, 0, -0, log 2].
  const auto r = exact(bce("none", tensor("float64", {5}, {0, 1, 0, 1, 0.5}),
                           tensor("float64", {5}, {1, 0, 0, 1, 0.5})));
  EXPECT_EQ(r.output.rounded_value(0), 100.0);
  EXPECT_EQ(r.output.rounded_value(1), 100.0);
  EXPECT_EQ(r.output.rounded_value(2), 0.0);
  EXPECT_EQ(r.output.rounded_value(3), 0.0);
  EXPECT_EQ(ref::decimal_string(r.output.values[4].value),
            hp([] { return ref::log(ref::Real(2)); }));
  // x = 0.25, y = 1: -log 0.25 = log 4; y = 0.75: -(0.75 log 0.25 + 0.25 log 0.75).
  EXPECT_EQ(
      exact_scalar(bce("sum", tensor("float32", {1}, {0.25}), tensor("float32", {1}, {0.75}))),
      hp([] {
        return -(ref::Real(0.75) * ref::log(ref::Real(0.25)) +
                 ref::Real(0.25) * ref::log(ref::Real(0.75)));
      }));
}

TEST(binary_cross_entropy, LogsClampAtMinus100) {
  // log(2^-144) = -99.81 is kept; log(2^-145) = -100.5 is clamped to -100; y = 1.
  const auto r = exact(bce("none", tensor("float64", {3}, {0x1p-144, 0x1p-145, 1e-50}),
                           tensor("float64", {3}, {1, 1, 1})));
  EXPECT_LE(ulp_error64(144 * std::log(2.0), r.output.values[0]), 2.0);
  EXPECT_EQ(r.output.rounded_value(1), 100.0);
  EXPECT_EQ(r.output.rounded_value(2), 100.0);
  // The other side: x = 1 - 2^-53 with y = 0 is log1p(-x) = -36.7, kept; a soft target mixes
  // the clamped log with the unclamped one: y = 0.5, x = 0 -> 0.5 * 100 + 0.5 * 0 = 50.
  const auto s = exact(
      bce("none", tensor("float64", {2}, {1 - 0x1p-53, 0}), tensor("float64", {2}, {0, 0.5})));
  EXPECT_LE(ulp_error64(53 * std::log(2.0), s.output.values[0]), 2.0);
  EXPECT_EQ(s.output.rounded_value(1), 50.0);
  // float32 near 1: log1p(-x), not log(1 - x) computed in float (torch 2.2.2 float32: 16.635532).
  const auto f =
      exact(bce("sum", tensor("float32", {1}, {1 - 0x1p-24}), tensor("float32", {1}, {0})));
  EXPECT_EQ(f.output.rounded_value(0), static_cast<double>(static_cast<float>(24 * std::log(2.0))));
}

TEST(binary_cross_entropy, WeightAndReductions) {
  const auto x = tensor("float64", {2, 3}, {0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
  const auto y = tensor("float64", {2, 3}, {0, 0, 0, 1, 1, 1});
  // A (3) weight aligns with the last dim (torch 2.2.2: rows [0.6931, 1.3863, 2.0794]).
  const auto r = exact(bce("none", x, y, tensor("float64", {3}, {1, 2, 3})));
  EXPECT_EQ(r.output.shape, (Shape{2, 3}));
  EXPECT_LE(ulp_error64(3 * std::log(2.0), r.output.values[5]), 2.0);
  EXPECT_LE(ulp_error64(2 * std::log(2.0), r.output.values[1]), 2.0);
  // A (2, 1) weight aligns with rows; a 0-d weight scales everything.
  const auto c = exact(bce("none", x, y, tensor("float64", {2, 1}, {1, 4})));
  EXPECT_LE(ulp_error64(4 * std::log(2.0), c.output.values[3]), 2.0);
  EXPECT_LE(ulp_error64(12 * std::log(2.0),
                        exact(bce("sum", x, y, tensor("float64", {}, {2}))).output.values[0]),
            2.0);
  // mean divides by N = 6, not by the sum of the weights.
  EXPECT_LE(
      ulp_error64(2 * std::log(2.0),
                  exact(bce("mean", x, y, tensor("float64", {3}, {1, 2, 3}))).output.values[0]),
      2.0);
  // NaN weight -> NaN; negative weight -> negative loss.
  const auto n = exact(bce("none", x, y, tensor("float64", {3}, {NAN, -1, 1})));
  EXPECT_TRUE(std::isnan(n.output.rounded_value(0)));
  EXPECT_LE(ulp_error64(-std::log(2.0), n.output.values[1]), 2.0);
  // Empty: mean NaN, sum 0; a 0-d input.
  EXPECT_TRUE(std::isnan(
      rounded_scalar(bce("mean", tensor("float64", {0}, {}), tensor("float64", {0}, {})))));
  EXPECT_EQ(rounded_scalar(bce("sum", tensor("float64", {0}, {}), tensor("float64", {0}, {}))),
            0.0);
  EXPECT_LE(ulp_error64(std::log(4.0), exact(bce("mean", tensor("float64", {}, {0.25}),
                                                 tensor("float64", {}, {1})))
                                           .output.values[0]),
            2.0);
}

TEST(binary_cross_entropy, Errors) {
  const auto y1 = tensor("float64", {1}, {1});
  expect_error(bce("none", tensor("float64", {1}, {1.5}), y1), ErrorKind::Value,
               "all elements of input should be between 0 and 1");
  expect_error(bce("none", tensor("float64", {1}, {-0.5}), y1), ErrorKind::Value,
               "all elements of input should be between 0 and 1");
  expect_error(bce("none", tensor("float64", {1}, {NAN}), y1), ErrorKind::Value,
               "all elements of input should be between 0 and 1");
  expect_error(bce("none", tensor("float64", {1}, {0.5}), tensor("float64", {1}, {1.5})),
               ErrorKind::Value, "all elements of target should be between 0 and 1");
  expect_error(bce("none", tensor("float64", {1}, {0.5}), tensor("float64", {1}, {NAN})),
               ErrorKind::Value, "all elements of target should be between 0 and 1");
  // Per element, input then target (torch 2.2.2: x = [0.5, 1.5], y = [2, 0] reports the target).
  expect_error(bce("none", tensor("float64", {2}, {0.5, 1.5}), tensor("float64", {2}, {2, 0})),
               ErrorKind::Value, "all elements of target should be between 0 and 1");
  expect_error(bce("none", tensor("float64", {1}, {1.5}), tensor("float64", {1}, {2})),
               ErrorKind::Value, "all elements of input");
  // -0 is in range.
  EXPECT_LE(ulp_error64(std::log(2.0), exact(bce("sum", tensor("float64", {1}, {0.5}),
                                                 tensor("float64", {1}, {-0.0})))
                                           .output.values[0]),
            2.0);
  expect_error(bce("none", tensor("float64", {2}, {0.5, 0.5}), y1), ErrorKind::ShapeMismatch,
               "Using a target size ([1]) that is different to the input size ([2]) is deprecated");
  expect_error(bce("none", tensor("float64", {2, 3}, std::vector<double>(6, 0.5)),
                   tensor("float64", {3}, {0, 0, 0})),
               ErrorKind::ShapeMismatch, "that is different to the input size");
  const auto x = tensor("float64", {2, 3}, std::vector<double>(6, 0.5));
  const auto y = tensor("float64", {2, 3}, std::vector<double>(6, 0));
  expect_error(
      bce("none", x, y, tensor("float64", {2}, {1, 1})), ErrorKind::ShapeMismatch,
      "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1");
  expect_error(bce("sum", x, y, tensor("float64", {1, 2, 3}, std::vector<double>(6, 1))),
               ErrorKind::ShapeMismatch,
               "output with shape [2, 3] doesn't match the broadcast shape [1, 2, 3]");
  // The range check runs before the enlarging weight fails.
  expect_error(bce("sum", tensor("float64", {2, 3}, std::vector<double>(6, 1.5)), y,
                   tensor("float64", {4, 2, 3}, std::vector<double>(24, 1))),
               ErrorKind::Value, "all elements of input");
  expect_error(bce("sum", tensor("float32", {1}, {0.5}), tensor("float32", {1}, {1}),
                   tensor("float64", {1}, {1})),
               ErrorKind::Type, "weight is float64");
}

TEST(binary_cross_entropy, Float64CrossCheck) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0.001, 0.999);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(10), y(10), w(10);
    double s = 0;
    for (int i = 0; i < 10; ++i) {
      x[i] = u(rng);
      y[i] = u(rng);
      w[i] = u(rng) * 3;
      s += -w[i] * (y[i] * std::log(x[i]) + (1 - y[i]) * std::log1p(-x[i]));
    }
    const auto r = exact(bce("mean", tensor("float64", {10}, x), tensor("float64", {10}, y),
                             tensor("float64", {10}, w)));
    EXPECT_LE(ulp_error64(s / 10, r.output.values[0]), 16.0);
  }
}

TEST(binary_cross_entropy, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(bce("mean",
                                                tensor("float64", {2, 2}, {0.25, 0.5, 0.75, 0.125}),
                                                tensor("float64", {2, 2}, {0, 1, 0.5, 0.25})));
  expect_gradients_match_finite_differences(
      bce("sum", tensor("float32", {2, 2}, {0.25, 0.5, 0.75, 0.125}),
          tensor("float32", {2, 2}, {0, 1, 0.5, 0.25}), tensor("float32", {2}, {2, 0.5})));
  expect_gradients_match_finite_differences(
      bce("none", tensor("float64", {3}, {0.25, 0.625, 0.9}), tensor("float64", {3}, {0.5, 0, 1}),
          tensor("float64", {3}, {1, 3, 0.5}),
          R"(, "grad_output": )" + tensor("float64", {3}, {1, -2, 0.5})));
}

TEST(binary_cross_entropy, BackwardUsesTheUnclampedFormulaWithItsEpsilonFloor) {
  // torch 2.2.2 float64, sum, x = [0, 1, 0, 1, 0.25, 0.5, 1e-13], y = [1, 0, 0, 1, 0.5, 0.5, 0.75],
  // w = [1, 1, 1, 1, 2, 1, 1]:
  //   d/dx = [-1/eps, 1/eps, 0, 0, -2.6667, 0, (1e-13 - 0.75)/eps] with eps = float(1e-12)
  //          (-1000000003995.8029 at x = 0, y = 1: the float EPSILON, not the double 1e-12);
  //   d/dy = [inf, -inf, inf, -inf, 2.1972, -0, 29.9336] (-logit(x) w, no eps).
  // At x = 0, y = 1 the clamped forward is flat (100), so d/dx is not its derivative.
  const auto r = exact(bce("sum", tensor("float64", {7}, {0, 1, 0, 1, 0.25, 0.5, 1e-13}),
                           tensor("float64", {7}, {1, 0, 0, 1, 0.5, 0.5, 0.75}),
                           tensor("float64", {7}, {1, 1, 1, 1, 2, 1, 1})),
                       true);
  const auto& gx = r.grads.at("input");
  const auto& gy = r.grads.at("target");
  EXPECT_EQ(gx.rounded_value(0), -1000000003995.8029);
  EXPECT_EQ(gx.rounded_value(0), -1 / kEps);
  EXPECT_EQ(gx.rounded_value(1), 1 / kEps);
  EXPECT_EQ(gx.rounded_value(2), 0.0);
  EXPECT_EQ(gx.rounded_value(3), 0.0);
  EXPECT_LE(ulp_error64(2 * (0.25 - 0.5) / (0.75 * 0.25), gx.values[4]), 2.0);
  EXPECT_EQ(gx.rounded_value(5), 0.0);
  EXPECT_LE(ulp_error64((1e-13 - 0.75) / kEps, gx.values[6]), 2.0);
  EXPECT_EQ(gy.rounded_value(0), INFINITY);
  EXPECT_EQ(gy.rounded_value(1), -INFINITY);
  EXPECT_EQ(gy.rounded_value(2), INFINITY);
  EXPECT_EQ(gy.rounded_value(3), -INFINITY);
  EXPECT_LE(ulp_error64(2 * std::log(3.0), gy.values[4]), 2.0);
  EXPECT_EQ(gy.rounded_value(5), 0.0);
  EXPECT_TRUE(gy.values[5].exact);
  EXPECT_LE(ulp_error64(-std::log(1e-13 / (1 - 1e-13)), gy.values[6]), 2.0);
  // 1e-13 alone, y = 0: (x - y)/eps = 0.10000000039958029 (torch 2.2.2).
  const auto t =
      exact(bce("sum", tensor("float64", {1}, {1e-13}), tensor("float64", {1}, {0})), true);
  EXPECT_LE(ulp_error64(0.10000000039958029, t.grads.at("input").values[0]), 1.0);
  // float32: the same float EPSILON.
  const auto f =
      exact(bce("mean", tensor("float32", {2}, {0, 0.5}), tensor("float32", {2}, {1, 0})), true);
  EXPECT_EQ(f.grads.at("input").rounded_value(0),
            static_cast<double>(static_cast<float>(-0.5 / kEps)));
  EXPECT_EQ(f.grads.at("input").rounded_value(1), 1.0);  // 0.5 / 0.25 / 2
  // float16 (CUDA's scalar_t kernel; no CPU kernel in 2.2): EPSILON rounds to 0 in half, so
  // x = 0, y = 0 gives 0/0 = NaN and x = 0, y = 1 gives -inf; the forward is unaffected.
  const auto h =
      exact(bce("none", tensor("float16", {2}, {0, 0}), tensor("float16", {2}, {0, 1})), true);
  EXPECT_EQ(h.output.rounded_value(1), 100.0);
  EXPECT_TRUE(std::isnan(h.grads.at("input").rounded_value(0)));
  EXPECT_EQ(h.grads.at("input").rounded_value(1), -INFINITY);
  // bfloat16 keeps a nonzero EPSILON: bfloat16(float(1e-12)).
  const auto b =
      exact(bce("sum", tensor("bfloat16", {1}, {0}), tensor("bfloat16", {1}, {1})), true);
  EXPECT_EQ(b.grads.at("input").rounded_value(0),
            round_to(-1 / round_to(kEps, DType::bfloat16), DType::bfloat16));
  // weight is not differentiable: no gradient for it.
  EXPECT_EQ(r.grads.count("weight"), 0u);
}
