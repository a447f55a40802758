#include <cmath>
#include <functional>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string gnll(const std::string& reduction, const std::string& x, const std::string& y,
                 const std::string& v, const std::string& params = "{}",
                 const std::string& extra = "") {
  return R"({"loss": "gaussian_nll_loss", "reduction": ")" + reduction + R"(", "params": )" +
         params + R"(, "inputs": {"input": )" + x + R"(, "target": )" + y + R"(, "var": )" + v +
         "}" + extra + "}";
}
// An independent high-precision value, as a 45-digit decimal.
std::string hp(const std::function<ref::Real()>& f) {
  const long saved = ref::working_bits();
  ref::set_working_bits(512);
  const std::string s = ref::decimal_string(f());
  ref::set_working_bits(saved);
  return s;
}
const double kHalfLog2Pi = 0.9189385332046727;  // 0.5 * math.log(2 * math.pi) in Python
}  // namespace

TEST(gaussian_nll_loss, ClosedForms) {
  // d = 0, v = 1: exactly 0; d = 2, v = 4: 0.5 (log 4 + 1).
  const auto r = exact(gnll("none", tensor("float64", {2}, {1.5, 2}),
                            tensor("float64", {2}, {1.5, 0}), tensor("float64", {2}, {1, 4})));
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  EXPECT_TRUE(r.output.values[0].exact);
  EXPECT_EQ(ref::decimal_string(r.output.values[1].value),
            hp([] { return ref::Real(0.5) * (ref::log(ref::Real(4)) + 1); }));
  EXPECT_EQ(rounded_scalar(gnll("sum", tensor("float32", {2}, {1.5, 2}),
                                tensor("float32", {2}, {1.5, 0}), tensor("float32", {2}, {1, 4}))),
            static_cast<double>(static_cast<float>(0.5 * (std::log(4.0) + 1))));
  // mean over the two elements.
  EXPECT_EQ(exact_scalar(gnll("mean", tensor("float64", {2}, {1.5, 2}),
                              tensor("float64", {2}, {1.5, 0}), tensor("float64", {2}, {1, 4}))),
            hp([] { return ref::Real(0.25) * (ref::log(ref::Real(4)) + 1); }));
}

TEST(gaussian_nll_loss, FullAddsTheConstantRoundedToTheOpmathType) {
  const std::string full = R"({"full": true})";
  // float64: the Python double 0.5 * log(2 pi).
  const auto r64 = exact(gnll("sum", tensor("float64", {1}, {0}), tensor("float64", {1}, {0}),
                              tensor("float64", {1}, {1}), full));
  EXPECT_EQ(r64.output.rounded_value(0), kHalfLog2Pi);
  EXPECT_TRUE(r64.output.values[0].exact);
  // float32: the scalar add runs in float32, so the constant is float(0.9189385332046727)
  // (checked against torch 2.2.2).
  const auto r32 = exact(gnll("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {0}),
                              tensor("float32", {1}, {1}), full));
  EXPECT_EQ(rounded64(r32.output.values[0]), static_cast<double>(static_cast<float>(kHalfLog2Pi)));
  // bfloat16 too: float32 opmath.
  const auto rbf = exact(gnll("none", tensor("bfloat16", {1}, {0}), tensor("bfloat16", {1}, {0}),
                              tensor("bfloat16", {1}, {1}), full));
  EXPECT_EQ(rounded64(rbf.output.values[0]), static_cast<double>(static_cast<float>(kHalfLog2Pi)));
  // With a non-trivial term: 0.5 (log 4 + 1) + c.
  const auto r = exact(gnll("sum", tensor("float64", {1}, {2}), tensor("float64", {1}, {0}),
                            tensor("float64", {1}, {4}), full));
  EXPECT_LE(ulp_error64(0.5 * (std::log(4.0) + 1) + kHalfLog2Pi, r.output.values[0]), 2.0);
}

TEST(gaussian_nll_loss, EpsClampsTheVariance) {
  // var = 0 and var = -0 pass the check and are clamped to eps = 1e-6 (float64).
  const auto r =
      exact(gnll("none", tensor("float64", {3}, {1, 0, 0}), tensor("float64", {3}, {0, 0, 0}),
                 tensor("float64", {3}, {0, -0.0, 1e-8})));
  const double v = 1e-6;
  EXPECT_LE(ulp_error64(0.5 * (std::log(v) + 1 / v), r.output.values[0]),
            2.0);  // torch: 499993.0922
  EXPECT_LE(ulp_error64(0.5 * std::log(v), r.output.values[1]), 2.0);
  EXPECT_EQ(r.output.rounded_value(2), r.output.rounded_value(1));
  // eps given: 0.25 clamps var 0.125 but not var 0.5.
  const auto e = exact(gnll("none", tensor("float32", {2}, {0, 0}), tensor("float32", {2}, {0, 0}),
                            tensor("float32", {2}, {0.125, 0.5}), R"({"eps": 0.25})"));
  EXPECT_EQ(e.output.rounded_value(0),
            static_cast<double>(static_cast<float>(0.5 * std::log(0.25))));
  EXPECT_EQ(e.output.rounded_value(1),
            static_cast<double>(static_cast<float>(0.5 * std::log(0.5))));
  // float16: eps = 1e-6 rounds to the subnormal 17 * 2^-24 (torch 2.2.2 gives -6.9023 for var = 0).
  const auto h = exact(gnll("none", tensor("float16", {1}, {0}), tensor("float16", {1}, {0}),
                            tensor("float16", {1}, {0})));
  EXPECT_LE(ulp_error64(0.5 * std::log(17 * 0x1p-24), h.output.values[0]), 2.0);
  EXPECT_EQ(h.output.rounded_value(0), -6.90234375);  // the fp16 value torch 2.2.2 prints
  // float32: eps rounds to float(1e-6).
  const auto f = exact(gnll("none", tensor("float32", {1}, {0}), tensor("float32", {1}, {0}),
                            tensor("float32", {1}, {0})));
  EXPECT_LE(ulp_error64(0.5 * std::log(static_cast<double>(1e-6f)), f.output.values[0]), 2.0);
  // eps = 0 and var = 0: log 0 + 1/0 = -inf + inf = NaN; d = 0: 0/0 = NaN (as torch).
  const auto z = exact(gnll("none", tensor("float64", {2}, {1, 0}), tensor("float64", {2}, {0, 0}),
                            tensor("float64", {2}, {0, 0}), R"({"eps": 0})"));
  EXPECT_TRUE(std::isnan(z.output.rounded_value(0)));
  EXPECT_TRUE(std::isnan(z.output.rounded_value(1)));
}

TEST(gaussian_nll_loss, VarShapes) {
  const auto x = tensor("float64", {2, 3}, {1, 2, 3, 4, 5, 6});
  const auto y = tensor("float64", {2, 3}, {0, 0, 0, 0, 0, 0});
  // var (2): unsqueezed to (2, 1); var (2, 1) the same; var (2, 3) elementwise.
  const auto a = exact(gnll("none", x, y, tensor("float64", {2}, {1, 2})));
  const auto b = exact(gnll("none", x, y, tensor("float64", {2, 1}, {1, 2})));
  const auto full = exact(gnll("none", x, y, tensor("float64", {2, 3}, {1, 1, 1, 2, 2, 2})));
  EXPECT_EQ(a.output.shape, (Shape{2, 3}));
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(a.output.rounded_value(i), full.output.rounded_value(i));
    EXPECT_EQ(b.output.rounded_value(i), full.output.rounded_value(i));
  }
  EXPECT_EQ(full.output.rounded_value(0), 0.5);
  // 1-D input: a 0-d var and a (1) var are accepted.
  const auto c0 = exact(gnll("sum", tensor("float64", {3}, {1, 2, 3}),
                             tensor("float64", {3}, {0, 0, 0}), tensor("float64", {}, {1})));
  EXPECT_EQ(c0.output.rounded_value(0), 7.0);
  const auto c1 = exact(gnll("sum", tensor("float64", {3}, {1, 2, 3}),
                             tensor("float64", {3}, {0, 0, 0}), tensor("float64", {1}, {1})));
  EXPECT_EQ(c1.output.rounded_value(0), 7.0);
  // 0-d input with var (1): accepted (last dim 1), output (1).
  const auto d0 = exact(gnll("none", tensor("float64", {}, {2}), tensor("float64", {}, {0}),
                             tensor("float64", {1}, {1})));
  EXPECT_EQ(d0.output.shape, (Shape{1}));
  EXPECT_EQ(d0.output.rounded_value(0), 2.0);
  // target broadcasts freely and may enlarge the shape; mean divides by the broadcast numel.
  const auto t =
      exact(gnll("none", tensor("float64", {3}, {0, 0, 0}),
                 tensor("float64", {2, 3}, {1, 1, 1, 2, 2, 2}), tensor("float64", {3}, {1, 1, 1})));
  EXPECT_EQ(t.output.shape, (Shape{2, 3}));
  EXPECT_EQ(t.output.rounded_value(5), 2.0);
  EXPECT_EQ(rounded_scalar(gnll("mean", tensor("float64", {3}, {0, 0, 0}),
                                tensor("float64", {2, 3}, {1, 1, 1, 1, 1, 1}),
                                tensor("float64", {3}, {1, 1, 1}))),
            0.5);
  // The 2.2 check: only the last dim may be 1 or missing (#147521).
  const auto x3 = tensor("float64", {2, 3, 4}, std::vector<double>(24, 1));
  const auto y3 = tensor("float64", {2, 3, 4}, std::vector<double>(24, 0));
  EXPECT_EQ(exact(gnll("none", x3, y3, tensor("float64", {2, 3}, std::vector<double>(6, 1))))
                .output.shape,
            (Shape{2, 3, 4}));
  for (const Shape& bad :
       {Shape{2, 1, 4}, Shape{1, 3, 4}, Shape{4}, Shape{}, Shape{1}, Shape{2, 1, 1}, Shape{3, 4}})
    expect_error(
        gnll("none", x3, y3,
             tensor("float64", bad, std::vector<double>(static_cast<std::size_t>(numel(bad)), 1))),
        ErrorKind::ShapeMismatch, "var is of incorrect size");
  // var larger than input is rejected even if target would broadcast to it.
  expect_error(
      gnll("none", tensor("float64", {3}, {0, 0, 0}), tensor("float64", {2, 3}, {1, 1, 1, 1, 1, 1}),
           tensor("float64", {2, 3}, {1, 1, 1, 1, 1, 1})),
      ErrorKind::ShapeMismatch, "var is of incorrect size");
  expect_error(gnll("none", tensor("float64", {3}, {1, 2, 3}), tensor("float64", {3}, {0, 0, 0}),
                    tensor("float64", {2}, {1, 1})),
               ErrorKind::ShapeMismatch, "var is of incorrect size");
  // target not broadcastable.
  expect_error(gnll("none", x, tensor("float64", {4}, {0, 0, 0, 0}),
                    tensor("float64", {2, 3}, {1, 1, 1, 1, 1, 1})),
               ErrorKind::ShapeMismatch,
               "The size of tensor a (3) must match the size of tensor b (4)");
}

TEST(gaussian_nll_loss, ErrorsAndSpecialValues) {
  expect_error(gnll("mean", tensor("float32", {2}, {0, 0}), tensor("float32", {2}, {0, 0}),
                    tensor("float32", {2}, {1, -1})),
               ErrorKind::Value, "var has negative entry/entries");
  // The negative check comes before the input/target broadcast (as in torch 2.2.2).
  expect_error(gnll("mean", tensor("float32", {2}, {0, 0}), tensor("float32", {3}, {0, 0, 0}),
                    tensor("float32", {2}, {-1, 2})),
               ErrorKind::Value, "var has negative entry/entries");
  expect_error(gnll("bad", tensor("float32", {2}, {0, 0}), tensor("float32", {2}, {0, 0}),
                    tensor("float32", {2}, {1, 1})),
               ErrorKind::Value, "bad is not a valid value for reduction");
  expect_error(gnll("mean", tensor("float32", {2}, {0, 0}), tensor("float64", {2}, {0, 0}),
                    tensor("float32", {2}, {1, 1})),
               ErrorKind::Type, "float64");
  // NaN var passes the check and gives NaN; var = inf gives inf; x = y = inf gives NaN.
  const auto r = exact(gnll("none", tensor("float64", {4}, {1, 1, INFINITY, NAN}),
                            tensor("float64", {4}, {0, 1, INFINITY, 0}),
                            tensor("float64", {4}, {NAN, INFINITY, 1, 1})));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(0)));
  EXPECT_EQ(r.output.rounded_value(1), INFINITY);
  EXPECT_TRUE(std::isnan(r.output.rounded_value(2)));
  EXPECT_TRUE(std::isnan(r.output.rounded_value(3)));
  // Empty: mean NaN, sum 0.
  EXPECT_TRUE(
      std::isnan(rounded_scalar(gnll("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {}),
                                     tensor("float32", {0}, {})))));
  EXPECT_EQ(rounded_scalar(gnll("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}),
                                tensor("float32", {0}, {}))),
            0.0);
}

TEST(gaussian_nll_loss, Float64CrossCheck) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> nd(0, 2);
  std::uniform_real_distribution<double> uv(0.1, 5);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(8), y(8), v(8);
    double s = 0;
    for (int i = 0; i < 8; ++i) {
      x[i] = nd(rng);
      y[i] = nd(rng);
      v[i] = uv(rng);
      const double d = x[i] - y[i];
      s += 0.5 * (std::log(v[i]) + d * d / v[i]) + kHalfLog2Pi;
    }
    const auto r = exact(gnll("mean", tensor("float64", {8}, x), tensor("float64", {8}, y),
                              tensor("float64", {8}, v), R"({"full": true})"));
    EXPECT_LE(ulp_error64(s / 8, r.output.values[0]), 16.0);
  }
}

TEST(gaussian_nll_loss, GradientsMatchFiniteDifferences) {
  // Heteroscedastic, mean.
  expect_gradients_match_finite_differences(gnll(
      "mean", tensor("float64", {2, 2}, {0.5, -1.25, 3, 7}),
      tensor("float64", {2, 2}, {0.25, 1, -4, 0}), tensor("float64", {2, 2}, {0.5, 2, 3, 0.75})));
  // var unsqueezed (2) against input (2, 2), target broadcast, full, sum.
  expect_gradients_match_finite_differences(
      gnll("sum", tensor("float32", {2, 2}, {0.5, -1.25, 3, 7}), tensor("float32", {2}, {0.25, 1}),
           tensor("float32", {2}, {0.5, 2}), R"({"full": true})"));
  // var (2, 1), none with grad_output.
  expect_gradients_match_finite_differences(
      gnll("none", tensor("float64", {2, 2}, {0.5, -1.25, 3, 7}),
           tensor("float64", {2, 2}, {0.25, 1, -4, 0}), tensor("float64", {2, 1}, {1.5, 4}), "{}",
           R"(, "grad_output": )" + tensor("float64", {2, 2}, {1, -2, 0.5, 3})));
}

TEST(gaussian_nll_loss, VarGradientIgnoresTheClamp) {
  // var = 1e-8 < eps: v = 1e-6 and PyTorch's var gradient is 0.5 (1/v - d^2/v^2), not 0
  // (torch 2.2.2: -5.0000e+11 for d = 1); the input gradient is d / v = 1e6.
  const auto r = exact(gnll("sum", tensor("float64", {2}, {1, 2}), tensor("float64", {2}, {0, 0}),
                            tensor("float64", {2}, {1e-8, 4})),
                       true);
  const double v = 1e-6;
  EXPECT_LE(ulp_error64(0.5 * (1 / v - 1 / (v * v)), r.grads.at("var").values[0]), 4.0);
  EXPECT_LE(ulp_error64(1 / v, r.grads.at("input").values[0]), 2.0);
  EXPECT_LE(ulp_error64(-1 / v, r.grads.at("target").values[0]), 2.0);
  // d^2 = v = 4: the var gradient is exactly 0; d/dx = d / v = 0.5.
  EXPECT_EQ(r.grads.at("var").rounded_value(1), 0.0);
  EXPECT_TRUE(r.grads.at("var").values[1].exact);
  EXPECT_EQ(r.grads.at("input").rounded_value(1), 0.5);
  // Broadcast var sums its gradient: var (2) for input (2, 2), sum: torch 2.2.2 gives
  // [-1.5, -2.625] for x = [[1, 2], [3, 4]], y = 0, var = [1, 2].
  const auto b =
      exact(gnll("sum", tensor("float64", {2, 2}, {1, 2, 3, 4}),
                 tensor("float64", {2, 2}, {0, 0, 0, 0}), tensor("float64", {2}, {1, 2})),
            true);
  EXPECT_EQ(b.grads.at("var").shape, (Shape{2}));
  EXPECT_EQ(b.grads.at("var").rounded_value(0), -1.5);
  EXPECT_EQ(b.grads.at("var").rounded_value(1), -2.625);
  // var = inf: both gradients 0 (torch 2.2.2); var = 0 with eps = 0 and d = 0: NaN.
  const auto s = exact(gnll("sum", tensor("float64", {2}, {1, 1}), tensor("float64", {2}, {0, 1}),
                            tensor("float64", {2}, {INFINITY, 0}), R"({"eps": 0})"),
                       true);
  EXPECT_EQ(s.grads.at("var").rounded_value(0), 0.0);
  EXPECT_EQ(s.grads.at("input").rounded_value(0), 0.0);
  EXPECT_TRUE(std::isnan(s.grads.at("var").rounded_value(1)));
  EXPECT_TRUE(std::isnan(s.grads.at("input").rounded_value(1)));
  // mean: 1/N.
  const auto m = exact(gnll("mean", tensor("float64", {2}, {2, 2}), tensor("float64", {2}, {0, 0}),
                            tensor("float64", {2}, {1, 1})),
                       true);
  EXPECT_EQ(m.grads.at("input").rounded_value(0), 1.0);
  EXPECT_EQ(m.grads.at("var").rounded_value(0), 0.25 * (1 - 4));
}
