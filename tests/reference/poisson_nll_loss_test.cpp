#include <cmath>
#include <numbers>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string pn(const std::string& reduction, const std::string& x, const std::string& y,
               const std::string& params = "", const std::string& extra = "") {
  const std::string p = params.empty() ? "" : R"(, "params": {)" + params + "}";
  return R"({"loss": "poisson_nll_loss", "reduction": ")" + reduction + "\"" + p +
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
using ref::Real;
// Stirling term y log y - y + 0.5 log(two_pi y).
Real stirling(double y, double two_pi) {
  const Real t(y);
  return t * ref::log(t) - t + ref::log(Real(two_pi) * t) / 2;
}
}  // namespace

TEST(poisson_nll_loss, ClosedFormsLogInput) {
  // exp(x) - y x: x = 0 gives 1 whatever y; x = 1, y = 2 gives e - 2.
  EXPECT_EQ(rounded_scalar(
                pn("sum", tensor("float32", {3}, {0, 0, 0}), tensor("float32", {3}, {0, 5, -2}))),
            3.0);
  const auto r =
      exact(pn("none", tensor("float64", {2}, {1, -0.5}), tensor("float64", {2}, {2, 3})));
  EXPECT_EQ(r.output.shape, (Shape{2}));
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
            exact_decimal([] { return Real(ref::exp(Real(1)) - 2); }));
  EXPECT_EQ(ref::decimal_string(r.output.values[1].value),
            exact_decimal([] { return Real(ref::exp(Real(-0.5)) + 1.5); }));
  EXPECT_EQ(
      exact_scalar(pn("mean", tensor("float64", {2}, {1, -0.5}), tensor("float64", {2}, {2, 3}))),
      exact_decimal([] { return Real((ref::exp(Real(1)) - 2 + ref::exp(Real(-0.5)) + 1.5) / 2); }));
}

TEST(poisson_nll_loss, ClosedFormsRateInput) {
  // x - y log(x + eps): eps = 0 gives 2 - log 2 at (2, 1), and 1 at (1, 3).
  const auto r = exact(pn("none", tensor("float64", {2}, {2, 1}), tensor("float64", {2}, {1, 3}),
                          R"("log_input": false, "eps": 0)"));
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
            exact_decimal([] { return Real(2 - ref::log(Real(2))); }));
  EXPECT_EQ(r.output.rounded_value(1), 1.0);
  // The default eps = 1e-8 is rounded to the dtype: float32 adds 1e-8f (torch 2.2.2).
  const auto e = exact(
      pn("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {1}), R"("log_input": false)"));
  EXPECT_EQ(ref::decimal_string(e.output.values[0].value),
            exact_decimal([] { return Real(-ref::log(Real(static_cast<double>(1e-8f)))); }));
  const auto e64 = exact(
      pn("sum", tensor("float64", {1}, {0}), tensor("float64", {1}, {1}), R"("log_input": false)"));
  EXPECT_EQ(ref::decimal_string(e64.output.values[0].value),
            exact_decimal([] { return Real(-ref::log(Real(1e-8))); }));
  // float16: 1e-8 rounds to 0, so log(0 + eps) = -inf and l = inf (torch 2.2.2 gives inf).
  EXPECT_EQ(rounded_scalar(pn("sum", tensor("float16", {1}, {0}), tensor("float16", {1}, {1}),
                              R"("log_input": false)")),
            INFINITY);
  // bfloat16 keeps a (bfloat16-rounded) nonzero eps.
  EXPECT_TRUE(
      std::isfinite(rounded_scalar(pn("sum", tensor("bfloat16", {1}, {0}),
                                      tensor("bfloat16", {1}, {1}), R"("log_input": false)"))));
  // eps = 2^-11 + 2^-23 is 2^-11 in float16: 1 - log(1 + 2^-11) (torch 2.2.2 rounds the scalar).
  const auto h = exact(pn("sum", tensor("float16", {1}, {1}), tensor("float16", {1}, {1}),
                          R"("log_input": false, "eps": "0x1.002p-11")"));
  EXPECT_EQ(ref::decimal_string(h.output.values[0].value),
            exact_decimal([] { return Real(1 - ref::log1p(Real(0x1p-11))); }));
}

TEST(poisson_nll_loss, FullAddsStirlingForTargetsAboveOne) {
  // y <= 1 is masked (y = 1, 0.5, 0, -1): l = exp(0) = 1 each.
  EXPECT_EQ(rounded_scalar(pn("sum", tensor("float64", {4}, {0, 0, 0, 0}),
                              tensor("float64", {4}, {1, 0.5, 0, -1}), R"("full": true)")),
            4.0);
  // y = 2: 1 + S(2), with 2 pi as the kernel uses it: double for float64, float for float32,
  // and float (opmath) for float16 and bfloat16 (torch 2.2.2).
  const double pi2_64 = 2 * std::numbers::pi, pi2_32 = static_cast<float>(2 * std::numbers::pi);
  const auto f64 =
      exact(pn("sum", tensor("float64", {1}, {0}), tensor("float64", {1}, {2}), R"("full": true)"));
  EXPECT_EQ(ref::decimal_string(f64.output.values[0].value),
            exact_decimal([&] { return Real(1 + stirling(2, pi2_64)); }));
  const auto f32 =
      exact(pn("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {2}), R"("full": true)"));
  EXPECT_EQ(ref::decimal_string(f32.output.values[0].value),
            exact_decimal([&] { return Real(1 + stirling(2, pi2_32)); }));
  EXPECT_NE(ref::decimal_string(f32.output.values[0].value),
            ref::decimal_string(f64.output.values[0].value));
  const auto f16 =
      exact(pn("sum", tensor("float16", {1}, {0}), tensor("float16", {1}, {2}), R"("full": true)"));
  EXPECT_EQ(ref::decimal_string(f16.output.values[0].value),
            exact_decimal([&] { return Real(1 + stirling(2, pi2_32)); }));
  // Just above 1 the term is used: y = 1 + 2^-23 (float32).
  const double y1 = 1 + 0x1p-23;
  const auto a = exact(
      pn("sum", tensor("float32", {1}, {0}), tensor("float32", {1}, {y1}), R"("full": true)"));
  EXPECT_EQ(ref::decimal_string(a.output.values[0].value),
            exact_decimal([&] { return Real(1 + stirling(y1, pi2_32)); }));
  // With log_input = false too: x - y log(x + eps) + S(y).
  const auto b = exact(pn("sum", tensor("float64", {1}, {3}), tensor("float64", {1}, {2}),
                          R"("full": true, "log_input": false, "eps": 1)"));
  EXPECT_EQ(ref::decimal_string(b.output.values[0].value),
            exact_decimal([&] { return Real(3 - 2 * ref::log(Real(4)) + stirling(2, pi2_64)); }));
}

TEST(poisson_nll_loss, BroadcastsSilently) {
  const auto r =
      exact(pn("none", tensor("float64", {2, 1}, {0, 0}), tensor("float64", {3}, {1, 2, 3})));
  EXPECT_EQ(r.output.shape, (Shape{2, 3}));
  EXPECT_EQ(rounded_scalar(
                pn("mean", tensor("float64", {2, 1}, {0, 0}), tensor("float64", {3}, {1, 2, 3}))),
            1.0);
  EXPECT_EQ(exact(pn("none", tensor("float64", {}, {0}), tensor("float64", {}, {1}))).output.shape,
            Shape{});
  // The first op is target * input, so target is tensor a (torch 2.2.2).
  expect_error(
      pn("mean", tensor("float32", {2}, {0, 0}), tensor("float32", {3}, {1, 1, 1})),
      ErrorKind::ShapeMismatch,
      "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 0");
  expect_error(pn("mean", tensor("float32", {2}, {0, 0}), tensor("float32", {3}, {1, 1, 1}),
                  R"("log_input": false)"),
               ErrorKind::ShapeMismatch, "tensor a (3)");
  expect_error(pn("mean", tensor("float32", {1}, {0}), tensor("float64", {1}, {1})),
               ErrorKind::Type, "input is float32 and target is float64");
}

TEST(poisson_nll_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(std::isnan(
      rounded_scalar(pn("mean", tensor("float32", {0}, {}), tensor("float32", {0}, {})))));
  EXPECT_EQ(rounded_scalar(pn("sum", tensor("float32", {0, 2}, {}), tensor("float32", {2}, {1, 1}),
                              R"("full": true)")),
            0.0);
  // torch 2.2.2 float64, full=True, x = 0.5:
  const std::vector<double> y = {0, 0.5, 1, 1.5, 2, -1, INFINITY, NAN};
  const std::vector<double> want = {1.6487212707001282,
                                    1.3987212707001282,
                                    1.1487212707001282,
                                    1.1285900201211296,
                                    1.3005277553046641,
                                    2.148721270700128,
                                    NAN,
                                    NAN};
  const std::vector<double> want_gx = {
      1.6487212707001282,  1.1487212707001282, 0.6487212707001282, 0.1487212707001282,
      -0.3512787292998718, 2.648721270700128,  -INFINITY,          NAN};
  const std::vector<double> want_gy = {NAN, -0.5, -0.5, 0.23879844144149764, 0.4431471805599453,
                                       NAN, NAN,  NAN};
  const auto r = exact(pn("none", tensor("float64", {8}, std::vector<double>(8, 0.5)),
                          tensor("float64", {8}, y), R"("full": true)"),
                       true);
  for (std::size_t i = 0; i < y.size(); ++i) {
    EXPECT_LE(ulp_error64(want[i], r.output.values[i]), 4.0) << i;
    EXPECT_LE(ulp_error64(want_gx[i], r.grads.at("input").values[i]), 4.0) << i;
    EXPECT_LE(ulp_error64(want_gy[i], r.grads.at("target").values[i]), 4.0) << i;
  }
  // torch 2.2.2 float64, log_input=False, full=True (gx[4] = 1 - 2 / (2 + 1e-8): torch gives
  // 4.999999969612645e-09 after cancellation; the exact value, 1e-8 / (2 + 1e-8), is used here):
  const std::vector<double> x2 = {0.5, 0, 0, -1, 2, 0.5, 1}, y2 = {0, 0.5, 1, 1.5, 2, -1, INFINITY};
  const std::vector<double> w2 = {0.5, 9.210340371976184,  18.420680743952367,
                                  NAN, 1.2655121134846454, -0.1931471605599454,
                                  NAN};
  const std::vector<double> gx2 = {1.0,
                                   -49999999.0,
                                   -99999999.0,
                                   2.5000000150000004,
                                   4.9999999750000005e-09,
                                   2.9999999600000007,
                                   -INFINITY};
  const std::vector<double> gy2 = {
      NAN, 18.420680743952367, 18.420680743952367, NAN, 0.24999999500000003, NAN, NAN};
  const auto s = exact(pn("none", tensor("float64", {7}, x2), tensor("float64", {7}, y2),
                          R"("full": true, "log_input": false)"),
                       true);
  for (std::size_t i = 0; i < x2.size(); ++i) {
    EXPECT_LE(ulp_error64(w2[i], s.output.values[i]), 4.0) << i;
    EXPECT_LE(ulp_error64(gx2[i], s.grads.at("input").values[i]), 4.0) << i;
    EXPECT_LE(ulp_error64(gy2[i], s.grads.at("target").values[i]), 4.0) << i;
  }
}

TEST(poisson_nll_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      pn("mean", tensor("float64", {2, 3}, {0.5, -1.25, 3, 2, -2, 0.125}),
         tensor("float64", {3}, {0.25, 1, 4})));
  expect_gradients_match_finite_differences(pn("sum", tensor("float32", {3}, {0.5, 1.25, 3}),
                                               tensor("float32", {3}, {1.5, 0.5, 7}),
                                               R"("log_input": false, "full": true, "eps": 0.25)"));
  expect_gradients_match_finite_differences(pn(
      "none", tensor("float64", {2, 1}, {0.5, -1}), tensor("float64", {2}, {2.5, 3}),
      R"("full": true)", R"(, "grad_output": )" + tensor("float64", {2, 2}, {1, -0.5, 2, 0.75})));
}

TEST(poisson_nll_loss, GradientValues) {
  // log_input: d/dx = exp(x) - y, d/dy = -x; rate input: d/dx = 1 - y / (x + eps), d/dy = -log(x +
  // eps).
  const auto r =
      exact(pn("sum", tensor("float64", {2}, {0, 2}), tensor("float64", {2}, {3, 0.5})), true);
  EXPECT_EQ(r.grads.at("input").rounded_value(0), -2.0);
  EXPECT_EQ(r.grads.at("target").rounded_value(0), -0.0);
  EXPECT_EQ(r.grads.at("target").rounded_value(1), -2.0);
  const auto s = exact(pn("mean", tensor("float64", {2}, {1, 3}), tensor("float64", {2}, {3, 2}),
                          R"("log_input": false, "eps": 1)"),
                       true);
  EXPECT_EQ(s.grads.at("input").rounded_value(0), -0.25);
  EXPECT_EQ(s.grads.at("input").rounded_value(1), 0.25);
  EXPECT_EQ(ref::decimal_string(s.grads.at("target").values[1].value),
            exact_decimal([] { return Real(-ref::log(Real(4)) / 2); }));
  // full, 0 < y <= 1: the masked Stirling term adds 0; y > 1 adds log y + 1 / (2 y).
  const auto f = exact(
      pn("sum", tensor("float64", {2}, {0, 0}), tensor("float64", {2}, {1, 2}), R"("full": true)"),
      true);
  EXPECT_EQ(f.grads.at("target").rounded_value(0), 0.0);
  EXPECT_EQ(ref::decimal_string(f.grads.at("target").values[1].value),
            exact_decimal([] { return Real(ref::log(Real(2)) + 0.25); }));
  // Broadcast target sums back: target (1) against input (3).
  const auto b =
      exact(pn("sum", tensor("float64", {3}, {1, 2, 3}), tensor("float64", {1}, {0})), true);
  EXPECT_EQ(b.grads.at("target").shape, (Shape{1}));
  EXPECT_EQ(b.grads.at("target").rounded_value(0), -6.0);
}

TEST(poisson_nll_loss, Float64CrossCheck) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-2, 2), t(0, 6);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(16), y(16);
    double s = 0;
    for (int i = 0; i < 16; ++i) {
      x[i] = u(rng);
      y[i] = t(rng);
      s += std::exp(x[i]) - y[i] * x[i];
    }
    const auto r = exact(pn("mean", tensor("float64", {16}, x), tensor("float64", {16}, y)));
    EXPECT_LE(ulp_error64(s / 16, r.output.values[0]), 16.0);
  }
}

TEST(poisson_nll_loss, TorchValues) {
  // torch 2.2.2 float64: F.poisson_nll_loss(x, 3 |y|, reduction='sum') = 8.569109344855194 and
  // F.poisson_nll_loss(|x|, 3 |y|, log_input=False, full=True, reduction='sum')
  // = 9.219204580775507.
  const auto x = std::vector<double>{0.3, -2.5, 1.9, 0.05};
  const auto y = std::vector<double>{0.1, 0.4, -0.6, 0.6};
  std::vector<double> ax(4), ty(4);
  for (int i = 0; i < 4; ++i) {
    ax[i] = std::fabs(x[i]);
    ty[i] = 3 * std::fabs(y[i]);
  }
  const auto a = exact(pn("sum", tensor("float64", {4}, x), tensor("float64", {4}, ty)));
  EXPECT_LE(ulp_error64(8.569109344855194, a.output.values[0]), 4.0);
  const auto b = exact(pn("sum", tensor("float64", {4}, ax), tensor("float64", {4}, ty),
                          R"("log_input": false, "full": true)"));
  EXPECT_LE(ulp_error64(9.219204580775507, b.output.values[0]), 4.0);
}
