#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string nll(const std::string& reduction, const std::string& x, const std::string& t,
                const std::string& weight = "", const std::string& params = "",
                const std::string& extra = "") {
  return R"({"loss": "nll_loss", "reduction": ")" + reduction + R"(", "inputs": {"input": )" + x +
         R"(, "target": )" + t + (weight.empty() ? "" : R"(, "weight": )" + weight) + "}" +
         (params.empty() ? "" : R"(, "params": )" + params) + extra + "}";
}
const std::string kX = tensor("float64", {3, 2}, {-0.5, -1.25, -3, -0.125, -2, -0.75});
}  // namespace

TEST(nll_loss, ClosedForms) {
  const auto t = itensor({3}, {0, 1, 1});
  EXPECT_EQ(rounded_scalar(nll("sum", kX, t)), 0.5 + 0.125 + 0.75);
  EXPECT_EQ(rounded_scalar(nll("mean", kX, t)), (0.5 + 0.125 + 0.75) / 3);
  const auto none = exact(nll("none", kX, t));
  EXPECT_EQ(none.output.shape, (Shape{3}));
  EXPECT_EQ(none.output.rounded_value(0), 0.5);
  EXPECT_EQ(none.output.rounded_value(2), 0.75);
  // Weighted mean: divided by the weights of the targets, 2 + 1 + 1 = 4.
  const auto w = tensor("float64", {2}, {2, 1});
  EXPECT_EQ(rounded_scalar(nll("sum", kX, t, w)), 2 * 0.5 + 0.125 + 0.75);
  const auto m = exact(nll("mean", kX, t, w));
  EXPECT_EQ(ref::decimal_string(m.output.values[0].value),
            "4.68750000000000000000000000000000000000000000e-01");  // 1.875 / 4
  EXPECT_TRUE(m.output.values[0].exact);
  const auto nw = exact(nll("none", kX, t, w));
  EXPECT_EQ(nw.output.rounded_value(0), 1.0);
}

TEST(nll_loss, UnbatchedAndKDim) {
  const auto x1 = tensor("float32", {3}, {-1, -2, -4});
  EXPECT_EQ(rounded_scalar(nll("mean", x1, itensor({}, {2}))), 4.0);
  EXPECT_EQ(rounded_scalar(nll("sum", x1, itensor({}, {1}), tensor("float32", {3}, {1, 0.5, 1}))),
            1.0);
  const auto none = exact(nll("none", x1, itensor({}, {1})));
  EXPECT_EQ(none.output.shape, Shape{});
  EXPECT_EQ(none.output.rounded_value(0), 2.0);
  // Unbatched weighted mean: (-w x) / w = -x.
  EXPECT_EQ(rounded_scalar(nll("mean", x1, itensor({}, {1}), tensor("float32", {3}, {1, 0.5, 1}))),
            2.0);
  // PyTorch 2.2 quirk (checked against torch 2.2.2): a 1-D input accepts a 1-D target with C
  // elements and reads only its first one.
  const auto q = exact(nll("none", x1, itensor({3}, {2, 0, 1})));
  EXPECT_EQ(q.output.shape, Shape{});
  EXPECT_EQ(q.output.rounded_value(0), 4.0);

  // (N, C, d1, d2) = (2, 2, 1, 2): position (n, h, w) takes input[n, t, h, w].
  const std::vector<double> x4 = {-1, -2, -3, -4, -5, -6, -7, -8};
  const auto t4 = itensor({2, 1, 2}, {0, 1, 1, -100});
  const auto r = exact(nll("none", tensor("float64", {2, 2, 1, 2}, x4), t4));
  EXPECT_EQ(r.output.shape, (Shape{2, 1, 2}));
  EXPECT_EQ(r.output.rounded_value(0), 1.0);
  EXPECT_EQ(r.output.rounded_value(1), 4.0);
  EXPECT_EQ(r.output.rounded_value(2), 7.0);
  EXPECT_EQ(r.output.rounded_value(3), 0.0);
  EXPECT_EQ(rounded_scalar(nll("mean", tensor("float64", {2, 2, 1, 2}, x4), t4)), 4.0);
  // 3-D and 5-D inputs go through the (N, C, 1, -1) view: same values.
  const auto r3 =
      exact(nll("none", tensor("float64", {2, 2, 2}, x4), itensor({2, 2}, {0, 1, 1, -100})));
  EXPECT_EQ(r3.output.shape, (Shape{2, 2}));
  EXPECT_EQ(r3.output.rounded_value(2), 7.0);
  const auto r5 = exact(
      nll("sum", tensor("float64", {2, 2, 1, 1, 2}, x4), itensor({2, 1, 1, 2}, {0, 1, 1, -100})));
  EXPECT_EQ(r5.output.rounded_value(0), 12.0);
}

TEST(nll_loss, IgnoreIndex) {
  const auto t = itensor({3}, {0, -100, 1});
  EXPECT_EQ(rounded_scalar(nll("mean", kX, t)), (0.5 + 0.75) / 2);
  const auto w = tensor("float64", {2}, {2, 4});
  EXPECT_EQ(rounded_scalar(nll("mean", kX, t, w)), (2 * 0.5 + 4 * 0.75) / 6);
  // An ignore_index outside [0, C) is allowed; an in-range one ignores that class.
  EXPECT_EQ(rounded_scalar(nll("mean", kX, itensor({3}, {7, 7, 1}), "", R"({"ignore_index": 7})")),
            0.75);
  EXPECT_EQ(rounded_scalar(nll("sum", kX, itensor({3}, {0, 1, 1}), "", R"({"ignore_index": 1})")),
            0.5);
  // The default -100 is then an ordinary (out-of-range) target.
  expect_error(nll("sum", kX, itensor({3}, {0, -100, 1}), "", R"({"ignore_index": 1})"),
               ErrorKind::Index, "Target -100 is out of bounds.");
  // Ignored targets are not range-checked.
  const auto none = exact(nll("none", kX, itensor({3}, {5, 5, 0}), "", R"({"ignore_index": 5})"));
  EXPECT_EQ(none.output.rounded_value(0), 0.0);
  EXPECT_EQ(none.output.rounded_value(2), 2.0);
}

TEST(nll_loss, AllIgnoredEmptyAndSpecialValues) {
  const auto all = itensor({3}, {-100, -100, -100});
  EXPECT_TRUE(std::isnan(rounded_scalar(nll("mean", kX, all))));
  EXPECT_TRUE(std::isnan(rounded_scalar(nll("mean", kX, all, tensor("float64", {2}, {1, 2})))));
  EXPECT_EQ(rounded_scalar(nll("sum", kX, all)), 0.0);
  // A single ignored sample: NaN on CPU (canonical; CUDA gives 0).
  const auto x1 = tensor("float64", {3}, {1, 2, 3});
  EXPECT_TRUE(std::isnan(rounded_scalar(nll("mean", x1, itensor({}, {-100})))));
  EXPECT_EQ(rounded_scalar(nll("sum", x1, itensor({}, {-100}))), 0.0);
  EXPECT_EQ(rounded_scalar(nll("none", x1, itensor({}, {-100}))), 0.0);
  // Zero weight on every target: 0 / 0.
  EXPECT_TRUE(std::isnan(
      rounded_scalar(nll("mean", kX, itensor({3}, {0, 0, 0}), tensor("float64", {2}, {0, 1})))));
  // Empty batches.
  EXPECT_TRUE(
      std::isnan(rounded_scalar(nll("mean", tensor("float32", {0, 3}, {}), itensor({0}, {})))));
  EXPECT_EQ(rounded_scalar(nll("sum", tensor("float32", {0, 3}, {}), itensor({0}, {}))), 0.0);
  EXPECT_TRUE(std::isnan(
      rounded_scalar(nll("mean", tensor("float32", {2, 3, 0}, {}), itensor({2, 0}, {})))));
  EXPECT_EQ(exact(nll("none", tensor("float32", {2, 3, 0}, {}), itensor({2, 0}, {}))).output.shape,
            (Shape{2, 0}));
  // NaN and inf in the input: only the picked elements matter.
  const auto xs = tensor("float32", {2, 2}, {NAN, -1, INFINITY, -2});
  EXPECT_EQ(rounded_scalar(nll("sum", xs, itensor({2}, {1, 1}))), 3.0);
  EXPECT_TRUE(std::isnan(rounded_scalar(nll("sum", xs, itensor({2}, {0, 1})))));
  EXPECT_EQ(rounded_scalar(nll("sum", xs, itensor({2}, {-100, 0}))), -INFINITY);
  // inf * 0 weight is NaN.
  EXPECT_TRUE(std::isnan(
      rounded_scalar(nll("sum", xs, itensor({2}, {1, 0}), tensor("float32", {2}, {0, 1})))));
}

TEST(nll_loss, Errors) {
  expect_error(nll("mean", kX, itensor({3}, {0, 2, 1})), ErrorKind::Index,
               "Target 2 is out of bounds.");
  expect_error(nll("none", kX, itensor({3}, {0, -1, 1})), ErrorKind::Index,
               "Target -1 is out of bounds.");
  expect_error(nll("mean", tensor("float64", {3}, {1, 2, 3}), itensor({}, {3})), ErrorKind::Index,
               "Target 3 is out of bounds.");
  expect_error(nll("mean", tensor("float64", {}, {1}), itensor({}, {0})), ErrorKind::ShapeMismatch,
               "Expected 1 or more dimensions (got 0)");
  expect_error(nll("mean", kX, itensor({2}, {0, 1})), ErrorKind::ShapeMismatch,
               "Expected input batch_size (3) to match target batch_size (2).");
  expect_error(nll("mean", kX, itensor({3, 1}, {0, 1, 1})), ErrorKind::ShapeMismatch,
               "0D or 1D target tensor expected, multi-target not supported");
  expect_error(nll("mean", tensor("float64", {3}, {1, 2, 3}), itensor({1}, {0})),
               ErrorKind::ShapeMismatch, "size mismatch (got input: [3], target: [1])");
  expect_error(
      nll("mean", kX, itensor({3}, {0, 1, 1}), tensor("float64", {3}, {1, 1, 1})),
      ErrorKind::ShapeMismatch,
      "weight tensor should be defined either for all 2 classes or no classes but got weight "
      "tensor of shape: [3]");
  expect_error(nll("mean", kX, itensor({3}, {0, 1, 1}), tensor("float64", {1, 2}, {1, 1})),
               ErrorKind::ShapeMismatch, "got weight tensor of shape: [1, 2]");
  const auto x3 = tensor("float64", {2, 2, 3}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  expect_error(nll("mean", x3, itensor({2, 2}, {0, 0, 0, 0})), ErrorKind::ShapeMismatch,
               "Expected target size [2, 3], got [2, 2]");
  const auto x4 = tensor("float64", {1, 2, 1, 2}, {0, 0, 0, 0});
  expect_error(
      nll("mean", x4, itensor({1, 2}, {0, 0})), ErrorKind::ShapeMismatch,
      "only batches of spatial targets supported (3D tensors) but got targets of dimension: 2");
  expect_error(nll("mean", x4, itensor({1, 2, 1}, {0, 0})), ErrorKind::ShapeMismatch,
               "size mismatch (got input: [1, 2, 1, 2] , target: [1, 2, 1]");
  expect_error(nll("mean", x4, itensor({1, 1, 2}, {0, 0}), tensor("float64", {3}, {1, 1, 1})),
               ErrorKind::ShapeMismatch,
               "weight tensor should be defined either for all or no classes");
  expect_error(nll("mean", kX, itensor({3}, {0, 1, 1}), tensor("float32", {2}, {1, 1})),
               ErrorKind::Type, "input is float64 and weight is float32");
}

TEST(nll_loss, Float64CrossCheck) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> n(0, 4);
  std::uniform_int_distribution<int> cls(0, 4);
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<double> x(40), w(5);
    std::vector<std::int64_t> t(8);
    for (auto& v : x) v = n(rng);
    for (auto& v : w) v = 0.5 + std::fabs(n(rng));
    double s = 0, ws = 0;
    for (int i = 0; i < 8; ++i) {
      t[i] = cls(rng);
      s += -x[i * 5 + t[i]] * w[t[i]];
      ws += w[t[i]];
    }
    const auto r = exact(
        nll("mean", tensor("float64", {8, 5}, x), itensor({8}, t), tensor("float64", {5}, w)));
    EXPECT_LE(ulp_error64(s / ws, r.output.values[0]), 64.0);
  }
}

TEST(nll_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      nll("mean", kX, itensor({3}, {0, -100, 1}), tensor("float64", {2}, {2, 0.5})));
  expect_gradients_match_finite_differences(nll(
      "none", tensor("float32", {2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}), itensor({2, 2}, {0, 1, 1, 0}),
      "", "", R"(, "grad_output": )" + tensor("float32", {2, 2}, {1, -2, 0.5, 3})));
  expect_gradients_match_finite_differences(
      nll("sum", tensor("float64", {3}, {1, 2, 3}), itensor({}, {2})));
}

TEST(nll_loss, GradientValues) {
  // mean with weights: d/dx[i, t_i] = -w_t / sum(w_t); ignored rows and other classes 0.
  const auto r =
      exact(nll("mean", kX, itensor({3}, {0, -100, 1}), tensor("float64", {2}, {2, 6})), true);
  ASSERT_EQ(r.grads.size(), 1u);  // weight is not differentiable in PyTorch 2.2
  const auto& g = r.grads.at("input");
  EXPECT_EQ(g.shape, (Shape{3, 2}));
  const std::vector<double> want = {-0.25, 0, 0, 0, 0, -0.75};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(g.rounded_value(i), want[i]) << i;
  // All ignored: the value is NaN but the gradient is exactly 0.
  const auto a = exact(nll("mean", kX, itensor({3}, {-100, -100, -100})), true);
  EXPECT_TRUE(std::isnan(a.output.rounded_value(0)));
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(a.grads.at("input").rounded_value(i), 0.0);
  // Zero total weight with a non-ignored target: w * (-g / 0) = 0 * -inf = NaN (torch 2.2.2).
  const auto z =
      exact(nll("mean", kX, itensor({3}, {0, 0, 0}), tensor("float64", {2}, {0, 1})), true);
  EXPECT_TRUE(std::isnan(z.grads.at("input").rounded_value(0)));
  EXPECT_EQ(z.grads.at("input").rounded_value(1), 0.0);
  // Unbatched "none" takes the scalar upstream gradient.
  const auto u = exact(nll("none", tensor("float64", {3}, {1, 2, 3}), itensor({}, {1}), "", "",
                           R"(, "grad_output": )" + tensor("float64", {}, {2.5})),
                       true);
  EXPECT_EQ(u.grads.at("input").rounded_value(1), -2.5);
  EXPECT_EQ(u.grads.at("input").rounded_value(0), 0.0);
}
