#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string mlsm(const std::string& reduction, const std::string& x, const std::string& y,
                 const std::string& w = "", const std::string& extra = "") {
  return R"({"loss": "multilabel_soft_margin_loss", "reduction": ")" + reduction +
         R"(", "inputs": {"input": )" + x + R"(, "target": )" + y +
         (w.empty() ? "" : R"(, "weight": )" + w) + "}" + extra + "}";
}
// -(y log sigmoid(x) + (1 - y) log sigmoid(-x)) in double.
double elem(double x, double y) {
  const double t = std::log1p(std::exp(-std::fabs(x)));
  return -(y * (std::fmin(x, 0) - t) + (1 - y) * (std::fmin(-x, 0) - t));
}
}  // namespace

TEST(multilabel_soft_margin_loss, ClosedForms) {
  // x = 0: every element is log 2, whatever y; the per-sample loss is log 2 (divided by C).
  const auto z = tensor("float64", {2, 3}, {0, 0, 0, 0, 0, 0});
  const auto y = tensor("float64", {2, 3}, {1, 0, 1, 0, 0.5, 1});
  {
    const long saved = ref::working_bits();
    ref::set_working_bits(400);
    const std::string ln2 = ref::decimal_string(ref::log(ref::Real(2)));
    ref::set_working_bits(saved);
    EXPECT_EQ(exact_scalar(mlsm("mean", z, y)), ln2);
  }
  EXPECT_EQ(rounded_scalar(mlsm("sum", z, y)), 2 * M_LN2);
  // Weighted: sum_c w_c log 2 / C, the divisor is C = 3 and not sum(w).
  const auto w = tensor("float64", {3}, {1, 2, 0.5});
  EXPECT_LE(ulp_error64(3.5 * M_LN2 / 3, exact(mlsm("mean", z, y, w)).output.values[0]), 2.0);
  // torch 2.2.2 float64 (mean, weight): 0.9652750263775582.
  const auto x = tensor("float64", {2, 3}, {0.5, -1.0, 2.0, 1.5, 0.25, -3.0});
  const auto r = exact(mlsm("mean", x, y, w));
  EXPECT_LE(ulp_error64(0.9652750263775582, r.output.values[0]), 2.0);
  // 'none': one value per sample; a plain double formula agrees.
  const auto n = exact(mlsm("none", x, y));
  EXPECT_EQ(n.output.shape, (Shape{2}));
  const double s0 = (elem(0.5, 1) + elem(-1, 0) + elem(2, 1)) / 3;
  EXPECT_LE(ulp_error64(s0, n.output.values[0]), 4.0);
}

TEST(multilabel_soft_margin_loss, Shapes) {
  // Unbatched (C): a 0-d output.
  const auto u =
      exact(mlsm("none", tensor("float32", {2}, {0, 0}), tensor("float32", {2}, {1, 0})));
  EXPECT_EQ(u.output.shape, (Shape{}));
  EXPECT_EQ(u.output.rounded_value(0), static_cast<double>(static_cast<float>(M_LN2)));
  // K-dim: classes on the last dim: (2, 2, 3) -> (2, 2).
  const auto k = exact(mlsm("none", tensor("float32", {2, 2, 3}, std::vector<double>(12, 0)),
                            tensor("float32", {2, 2, 3}, std::vector<double>(12, 1))));
  EXPECT_EQ(k.output.shape, (Shape{2, 2}));
  // The target broadcasts; when it has more dims than the input, PyTorch sums over dim
  // input.dim() - 1 = 0 of the broadcast shape (torch 2.2.2 float64 gives
  // [0.46209812037329684, 0.8755077916788152, 0.7512853406953152]).
  const auto odd = exact(mlsm("none", tensor("float64", {3}, {0, 1, 2}),
                              tensor("float64", {2, 3}, {1, 0, 1, 0, 0, 0})));
  EXPECT_EQ(odd.output.shape, (Shape{3}));
  const std::vector<double> want = {0.46209812037329684, 0.8755077916788152, 0.7512853406953152};
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_LE(ulp_error64(want[i], odd.output.values[i]), 2.0) << i;
  expect_error(mlsm("mean", tensor("float32", {2, 3}, std::vector<double>(6, 0)),
                    tensor("float32", {2, 4}, std::vector<double>(8, 0))),
               ErrorKind::ShapeMismatch,
               "tensor a (4) must match the size of tensor b (3) at non-singleton dimension 1");
  expect_error(mlsm("mean", tensor("float32", {2, 3}, std::vector<double>(6, 0)),
                    tensor("float32", {2, 3}, std::vector<double>(6, 0)),
                    tensor("float32", {4}, {1, 1, 1, 1})),
               ErrorKind::ShapeMismatch,
               "tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1");
  expect_error(mlsm("mean", tensor("float32", {}, {1}), tensor("float32", {}, {1})),
               ErrorKind::Index, "Dimension specified as -1 but tensor has no dimensions");
  expect_error(mlsm("mean", tensor("float32", {1}, {1}), tensor("float32", {1}, {1}),
                    tensor("float64", {1}, {1})),
               ErrorKind::Type, "input is float32 and weight is float64");
}

TEST(multilabel_soft_margin_loss, EmptyAndSpecialValues) {
  // C = 0: 0 / 0 per sample.
  const auto c0 = exact(mlsm("none", tensor("float32", {2, 0}, {}), tensor("float32", {2, 0}, {})));
  EXPECT_EQ(c0.output.shape, (Shape{2}));
  EXPECT_TRUE(std::isnan(c0.output.rounded_value(0)));
  EXPECT_TRUE(std::isnan(
      rounded_scalar(mlsm("sum", tensor("float32", {2, 0}, {}), tensor("float32", {2, 0}, {})))));
  // N = 0.
  EXPECT_TRUE(std::isnan(
      rounded_scalar(mlsm("mean", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {})))));
  EXPECT_EQ(
      rounded_scalar(mlsm("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}))),
      0.0);
  // x = inf with y = 1: 0 * logsigmoid(-inf) = 0 * -inf = NaN (torch 2.2.2: NaN); y = 0: inf.
  EXPECT_TRUE(std::isnan(rounded_scalar(
      mlsm("sum", tensor("float64", {1}, {INFINITY}), tensor("float64", {1}, {1})))));
  EXPECT_EQ(
      rounded_scalar(mlsm("sum", tensor("float64", {1}, {INFINITY}), tensor("float64", {1}, {0}))),
      INFINITY);
  // Large |x| stays accurate: x = -40, y = 0: loss = log1p(e^-40) ~ e^-40.
  const auto t = exact(mlsm("sum", tensor("float64", {1}, {-40}), tensor("float64", {1}, {0})));
  EXPECT_LE(ulp_error64(std::log1p(std::exp(-40.0)), t.output.values[0]), 1.0);
}

TEST(multilabel_soft_margin_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      mlsm("mean", tensor("float64", {2, 3}, {0.5, -1, 2, 1.5, 0.25, -3}),
           tensor("float64", {2, 3}, {1, 0, 1, 0, 0.5, 1}), tensor("float64", {3}, {1, 2, 0.5})));
  expect_gradients_match_finite_differences(
      mlsm("none", tensor("float32", {2, 2}, {0.5, -1, 2, 1.5}), tensor("float32", {2}, {1, 0.25}),
           "", R"(, "grad_output": )" + tensor("float32", {2}, {2, -0.5})));
  expect_gradients_match_finite_differences(mlsm("sum", tensor("float16", {3}, {0.5, -1, 2}),
                                                 tensor("float16", {3}, {1, 0, 1}),
                                                 tensor("float16", {1, 3}, {1, 2, 3})));
}

TEST(multilabel_soft_margin_loss, GradientValues) {
  // torch 2.2.2 float64 for the mean case with weight [1, 2, 0.5].
  const auto r = exact(
      mlsm("mean", tensor("float64", {2, 3}, {0.5, -1, 2, 1.5, 0.25, -3}),
           tensor("float64", {2, 3}, {1, 0, 1, 0, 0.5, 1}), tensor("float64", {3}, {1, 2, 0.5})),
      true);
  const std::vector<double> gx = {-0.0629234447996909, 0.08964714045666503,  -0.009933576835176462,
                                  0.1362624126989406,  0.020725500295266056, -0.07938117723520277};
  const std::vector<double> gy = {-0.08333333333333334, 0.3333333333333333,
                                  -0.16666666666666669, -0.25,
                                  -0.08333333333333331, 0.24999999999999997};
  const std::vector<double> gw = {0.3625817103604765, 0.16903351789951107, 0.529252560436119};
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_LE(ulp_error64(gx[i], r.grads.at("input").values[i]), 8.0) << i;
    EXPECT_LE(ulp_error64(gy[i], r.grads.at("target").values[i]), 8.0) << i;
  }
  EXPECT_EQ(r.grads.at("weight").shape, (Shape{3}));
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_LE(ulp_error64(gw[i], r.grads.at("weight").values[i]), 8.0) << i;
  // d/dy = -x w / C g exactly: -0.5 * 1 / 3 / 2 for element 0.
  EXPECT_EQ(r.grads.at("target").rounded_value(0), -0.5 / 6);
  // Infinite inputs: x = [inf, inf, -inf], y = [1, 0, 0], 'none': the loss is NaN but the input
  // gradient is [0, 1/3, 0] (torch 2.2.2: autograd does not carry the NaN back).
  const auto s = exact(mlsm("none", tensor("float64", {1, 3}, {INFINITY, INFINITY, -INFINITY}),
                            tensor("float64", {1, 3}, {1, 0, 0})),
                       true);
  EXPECT_TRUE(std::isnan(s.output.rounded_value(0)));
  EXPECT_EQ(s.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(s.grads.at("input").rounded_value(1), 1.0 / 3);
  EXPECT_EQ(s.grads.at("input").rounded_value(2), 0.0);
  // No weight: no weight gradient.
  EXPECT_EQ(s.grads.count("weight"), 0u);
}

TEST(multilabel_soft_margin_loss, Float64CrossCheck) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> n(0, 3);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> x(12), y(12);
    double s = 0;
    for (int i = 0; i < 12; ++i) {
      x[i] = n(rng);
      y[i] = u(rng) < 0.5 ? 0 : 1;
      s += elem(x[i], y[i]);
    }
    const auto r = exact(mlsm("mean", tensor("float64", {3, 4}, x), tensor("float64", {3, 4}, y)));
    EXPECT_LE(ulp_error64(s / 12, r.output.values[0]), 16.0);
  }
}
