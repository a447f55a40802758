#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string mm(const std::string& reduction, const std::string& x, const std::string& t,
               const std::string& params = "", const std::string& weight = "",
               const std::string& extra = "") {
  return R"({"loss": "multi_margin_loss", "reduction": ")" + reduction + R"(", )" +
         (params.empty() ? "" : R"("params": {)" + params + "}, ") + R"("inputs": {"input": )" + x +
         R"(, "target": )" + t + (weight.empty() ? "" : R"(, "weight": )" + weight) + "}" + extra +
         "}";
}
std::string grad_output(const std::string& g) { return R"(, "grad_output": )" + g; }

// Plain double arithmetic for the random cross-check.
double naive(const std::vector<double>& x, std::size_t y, int p, double margin, double w) {
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (i == y) continue;
    const double z = margin - x[y] + x[i];
    if (z > 0) s += w * (p == 1 ? z : z * z);
  }
  return s / static_cast<double>(x.size());
}
}  // namespace

TEST(multi_margin_loss, ClosedFormsAndReductions) {
  // Row 0 (y = 0): z = 0 (on the hinge, inactive), 0.5, -1. Row 1 (y = 3): z = 1, 1, 1.
  const auto x = tensor("float32", {2, 4}, {1, 0, 0.5, -1, 0, 0, 0, 0});
  const auto t = itensor({2}, {0, 3});
  const auto none = exact(mm("none", x, t));
  EXPECT_EQ(none.output.shape, (Shape{2}));
  EXPECT_EQ(none.output.rounded_value(0), 0.125);
  EXPECT_EQ(none.output.rounded_value(1), 0.75);
  EXPECT_EQ(rounded_scalar(mm("sum", x, t)), 0.875);
  EXPECT_EQ(rounded_scalar(mm("mean", x, t)), 0.4375);
  // p = 2 squares the active terms.
  EXPECT_EQ(rounded_scalar(mm("sum", x, t, R"("p": 2)")), 0.0625 + 0.75);
  // margin 0.5, p = 2: row 0 has no active term (its z = 0 sits on the hinge), row 1 3 * 0.25 / 4
  // (torch 2.2.2 gives [0, 0.1875]).
  const auto m = exact(mm("none", x, t, R"("p": 2, "margin": 0.5)"));
  EXPECT_EQ(m.output.rounded_value(0), 0.0);
  EXPECT_EQ(m.output.rounded_value(1), 0.1875);
  // Division by C = 3: x = (0, 0, 1), y = 1, margin 0.25: z = 0.25, 1.25 -> 1.5 / 3; and
  // x = (0, 0, 0.5), y = 1: z = 1, 1.5 -> 2.5 / 3 (correctly rounded like the IEEE division).
  EXPECT_EQ(rounded64(exact(mm("sum", tensor("float64", {3}, {0, 0, 1}), itensor({}, {1}),
                               R"("margin": 0.25)"))
                          .output.values[0]),
            0.5);
  EXPECT_EQ(
      rounded64(
          exact(mm("sum", tensor("float64", {3}, {0, 0, 0.5}), itensor({}, {1}))).output.values[0]),
      2.5 / 3);
}

TEST(multi_margin_loss, WeightMultipliesAfterThePower) {
  // torch 2.2.2: x = (0, 0.5, -3), y = 0, w_y = 3: z = 1.5, -2. p = 1: 3 * 1.5 / 3 = 1.5;
  // p = 2: 3 * 1.5^2 / 3 = 2.25 (not (3 * 1.5)^2 / 3 = 6.75).
  const auto x = tensor("float64", {3}, {0, 0.5, -3});
  const auto w = tensor("float64", {3}, {3, 5, 7});
  EXPECT_EQ(rounded_scalar(mm("mean", x, itensor({}, {0}), R"("p": 1)", w)), 1.5);
  EXPECT_EQ(rounded_scalar(mm("mean", x, itensor({}, {0}), R"("p": 2)", w)), 2.25);
  // A negative weight gives a negative loss (torch 2.2.2: -1.5, -2.25).
  const auto wn = tensor("float64", {3}, {-3, 5, 7});
  EXPECT_EQ(rounded_scalar(mm("mean", x, itensor({}, {0}), R"("p": 1)", wn)), -1.5);
  EXPECT_EQ(rounded_scalar(mm("mean", x, itensor({}, {0}), R"("p": 2)", wn)), -2.25);
  // The weight is indexed by the target class of each sample.
  const auto r = exact(mm("none", tensor("float32", {2, 2}, {0, 0, 0, 0}), itensor({2}, {0, 1}), "",
                          tensor("float32", {2}, {2, 0.5})));
  EXPECT_EQ(r.output.rounded_value(0), 1.0);
  EXPECT_EQ(r.output.rounded_value(1), 0.25);
}

TEST(multi_margin_loss, MarginIsRoundedToTheLossDtype) {
  // margin.to<scalar_t>(): with x_y = (0.1 rounded to the dtype) and x_i = 0, z is exactly 0 and
  // the loss is 0; an unrounded 0.1 would give a small positive loss.
  for (const auto& [dtype, d] :
       std::vector<std::pair<std::string, DType>>{{"float64", DType::float64},
                                                  {"float32", DType::float32},
                                                  {"float16", DType::float16},
                                                  {"bfloat16", DType::bfloat16}}) {
    const double m = round_to(0.1, d);
    EXPECT_EQ(
        rounded_scalar(mm("sum", tensor(dtype, {2}, {m, 0}), itensor({}, {0}), R"("margin": 0.1)")),
        0.0)
        << dtype;
    // x = (0, 0): the loss is margin / 2, the rounded margin exactly.
    const auto r =
        exact(mm("sum", tensor(dtype, {2}, {0, 0}), itensor({}, {0}), R"("margin": 0.1)"));
    EXPECT_EQ(rounded64(r.output.values[0]), m / 2) << dtype;
  }
}

TEST(multi_margin_loss, Shapes) {
  // (C) input with a 0-d target: 0-d output even for 'none'; with a (1) target: (1).
  const auto x = tensor("float64", {4}, {1, 0, 0.5, -1});
  const auto a = exact(mm("none", x, itensor({}, {0})));
  EXPECT_EQ(a.output.shape, (Shape{}));
  EXPECT_EQ(a.output.rounded_value(0), 0.125);
  const auto b = exact(mm("none", x, itensor({1}, {0})));
  EXPECT_EQ(b.output.shape, (Shape{1}));
  EXPECT_EQ(b.output.rounded_value(0), 0.125);
  // (1, C) input with a 0-d target: 0-d output.
  const auto c = exact(mm("none", tensor("float64", {1, 4}, {1, 0, 0.5, -1}), itensor({}, {0})));
  EXPECT_EQ(c.output.shape, (Shape{}));
  // 0-d input: C = 1, no i != y, loss 0.
  EXPECT_EQ(rounded_scalar(mm("mean", tensor("float64", {}, {0.5}), itensor({}, {0}))), 0.0);
  const auto d = exact(mm("none", tensor("float64", {}, {0.5}), itensor({1}, {0})));
  EXPECT_EQ(d.output.shape, (Shape{1}));
}

TEST(multi_margin_loss, HingeTestIsExact) {
  // (0.5 - (0.5 + 2^-23)) + 2^-23 = 0: inactive; with 2^-22: 2^-23 over C = 2.
  const double y = 0.5 + 0x1p-23;
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float32", {2}, {y, 0x1p-23}), itensor({}, {0}),
                              R"("margin": 0.5)")),
            0.0);
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float32", {2}, {y, 0x1p-22}), itensor({}, {0}),
                              R"("margin": 0.5)")),
            0x1p-24);
}

TEST(multi_margin_loss, SpecialValues) {
  const auto t = itensor({}, {0});
  // As torch 2.2.2: a NaN z fails `z > 0` and is dropped.
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float64", {3}, {NAN, 1, 2}), t)), 0.0);
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float64", {3}, {0, NAN, 2}), t)), 1.0);
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float64", {3}, {0, INFINITY, 2}), t)), INFINITY);
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float64", {3}, {INFINITY, INFINITY, 2}), t)), 0.0);
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float64", {3}, {0, 1, 2}), t, R"("margin": "nan")")),
            0.0);
  // The weight counts only on active terms: NaN/inf weight gives NaN/inf, or 0 when all are
  // inactive.
  const auto x = tensor("float64", {3}, {0, 1, 2});
  const auto xi = tensor("float64", {3}, {0, -5, -7});
  const auto wnan = tensor("float64", {3}, {NAN, 1, 1});
  const auto winf = tensor("float64", {3}, {INFINITY, 1, 1});
  EXPECT_TRUE(std::isnan(rounded_scalar(mm("sum", x, t, "", wnan))));
  EXPECT_EQ(rounded_scalar(mm("sum", x, t, "", winf)), INFINITY);
  EXPECT_EQ(rounded_scalar(mm("sum", xi, t, "", wnan)), 0.0);
  EXPECT_EQ(rounded_scalar(mm("sum", xi, t, "", winf)), 0.0);
  // float16 (CUDA only in PyTorch 2.2): p = 2 overflows when rounded, the exact value is finite.
  EXPECT_EQ(rounded_scalar(mm("sum", tensor("float16", {2}, {0, 400}), t, R"("p": 2)")), INFINITY);
}

TEST(multi_margin_loss, EmptyBatch) {
  const auto r = exact(mm("none", tensor("float32", {0, 3}, {}), itensor({0}, {})));
  EXPECT_EQ(r.output.shape, (Shape{0}));
  // Policy 5: mean/sum of an empty batch read uninitialised memory in PyTorch 2.2.
  expect_error(mm("mean", tensor("float32", {0, 3}, {}), itensor({0}, {})), ErrorKind::Value,
               "empty batch");
  expect_error(mm("sum", tensor("float32", {0, 3}, {}), itensor({0}, {})), ErrorKind::Value,
               "uninitialised");
}

TEST(multi_margin_loss, Errors) {
  const auto x = tensor("float32", {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  const auto t = itensor({2}, {0, 3});
  expect_error(mm("mean", x, t, R"("p": 3)"), ErrorKind::Value, "only p == 1 and p == 2 supported");
  expect_error(mm("mean", x, t, R"("p": 0)"), ErrorKind::Value, "only p == 1 and p == 2 supported");
  expect_error(mm("mean", x, t, "", tensor("float32", {1, 4}, {1, 1, 1, 1})), ErrorKind::Value,
               "weight must be one-dimensional");
  expect_error(mm("mean", x, t, "", tensor("float32", {}, {2})), ErrorKind::Value,
               "weight must be one-dimensional");
  expect_error(mm("mean", x, t, "", tensor("float32", {3}, {1, 1, 1})), ErrorKind::ShapeMismatch,
               "inconsistent weight size, expected 4 but got [3]");
  expect_error(mm("mean", x, t, "", tensor("float64", {4}, {1, 1, 1, 1})), ErrorKind::Type,
               "float64");
  const std::string msg =
      "Expected non-empty vector or matrix with optional 0-dim batch size, but got: ";
  expect_error(mm("mean", tensor("float32", {2, 0}, {}), t), ErrorKind::ShapeMismatch,
               msg + "[2, 0]");
  expect_error(mm("mean", tensor("float32", {0}, {}), itensor({}, {0})), ErrorKind::ShapeMismatch,
               msg + "[0]");
  expect_error(mm("mean", tensor("float32", {1, 1, 2}, {1, 2}), itensor({1}, {0})),
               ErrorKind::ShapeMismatch, msg + "[1, 1, 2]");
  expect_error(mm("mean", x, itensor({3}, {0, 1, 2})), ErrorKind::ShapeMismatch,
               "inconsistent target size, expected 2 but got [3]");
  expect_error(mm("mean", x, itensor({1, 2}, {0, 1})), ErrorKind::ShapeMismatch,
               "inconsistent target size, expected 2 but got [1, 2]");
  expect_error(mm("mean", x, itensor({}, {0})), ErrorKind::ShapeMismatch,
               "inconsistent target size, expected 2 but got []");
  expect_error(mm("mean", x, itensor({2}, {4, 0})), ErrorKind::Index, "target out of range: 4");
  expect_error(mm("mean", x, itensor({2}, {0, -1})), ErrorKind::Index, "target out of range: -1");
  expect_error(mm("none", x, itensor({2}, {0, -1})), ErrorKind::Index, "target out of range");
}

TEST(multi_margin_loss, Float64CrossCheck) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    const std::size_t N = 3, C = 5;
    const int p = 1 + trial % 2;
    std::vector<double> x(N * C), w(C);
    std::vector<std::int64_t> t(N);
    for (auto& v : x) v = n(rng);
    for (auto& v : w) v = std::abs(n(rng)) + 0.5;
    double s = 0;
    for (std::size_t i = 0; i < N; ++i) {
      t[i] = static_cast<std::int64_t>(rng() % C);
      const std::vector<double> row(x.begin() + static_cast<long>(i * C),
                                    x.begin() + static_cast<long>(i * C + C));
      s += naive(row, static_cast<std::size_t>(t[i]), p, 0.75, w[static_cast<std::size_t>(t[i])]);
    }
    const auto r = exact(mm("sum", tensor("float64", {3, 5}, x), itensor({3}, t),
                            R"("p": )" + std::to_string(p) + R"(, "margin": 0.75)",
                            tensor("float64", {5}, w)));
    EXPECT_LE(ulp_error64(s, r.output.values[0]), 16.0);
  }
  // From torch 2.2.2 (float64): x = ((0.1, 0.2, 0.4, 0.8), (1, -1, 0.5, 2)), y = (3, 0), 'none'
  // gives [0.325, 0.625].
  const auto r = exact(mm("none", tensor("float64", {2, 4}, {0.1, 0.2, 0.4, 0.8, 1, -1, 0.5, 2}),
                          itensor({2}, {3, 0})));
  EXPECT_LE(ulp_error64(0.325, r.output.values[0]), 2.0);
  EXPECT_EQ(r.output.rounded_value(1), 0.625);
}

TEST(multi_margin_loss, GradientsMatchFiniteDifferences) {
  const auto x = tensor("float64", {2, 4}, {0.1, 0.2, 0.4, 0.8, 1, -1, 0.5, 2});
  expect_gradients_match_finite_differences(mm("mean", x, itensor({2}, {3, 0})));
  expect_gradients_match_finite_differences(mm("sum", x, itensor({2}, {1, 2}),
                                               R"("p": 2, "margin": 1.25)",
                                               tensor("float64", {4}, {0.5, 2, 3, 1})));
  expect_gradients_match_finite_differences(
      mm("none", tensor("float32", {2, 3}, {0.5, -0.25, 0.75, 1.5, 0.125, 2}), itensor({2}, {1, 2}),
         R"("p": 2)", tensor("float32", {3}, {1, 2, 4}),
         grad_output(tensor("float32", {2}, {2, -0.5}))));
  expect_gradients_match_finite_differences(mm("none", tensor("float16", {3}, {0.5, -0.375, 0.75}),
                                               itensor({}, {2}), R"("margin": 0.625)", "",
                                               grad_output(tensor("float16", {}, {3}))));
}

TEST(multi_margin_loss, GradientConventions) {
  // From torch 2.2.2: w = (2, 3, 4, 5), y = 0, x = (1, 0, 0.5, -1): z = 0 (hinge: no gradient),
  // 0.5 (active), -1. p = 1: grad_i = w_y / C = 0.5; p = 2: 2 z w_y / C = 0.5.
  const auto x = tensor("float64", {1, 4}, {1, 0, 0.5, -1});
  const auto w = tensor("float64", {4}, {2, 3, 4, 5});
  for (const char* p : {R"("p": 1)", R"("p": 2)"}) {
    const auto r = exact(mm("sum", x, itensor({1}, {0}), p, w), true);
    const auto& g = r.grads.at("input");
    EXPECT_EQ(g.shape, (Shape{1, 4}));
    EXPECT_EQ(g.rounded_value(0), -0.5) << p;
    EXPECT_EQ(g.rounded_value(1), 0.0) << p;
    EXPECT_EQ(g.rounded_value(2), 0.5) << p;
    EXPECT_EQ(g.rounded_value(3), 0.0) << p;
    EXPECT_EQ(r.grads.count("weight"), 0u);  // PyTorch 2.2 does not differentiate the weight
  }
  // From torch 2.2.2: margin 0.5, p = 2, 'none' with grad_output (2, -1). Row 0: every z <= 0
  // (z = 0 for i = 2). Row 1 (y = 3): z = 0.5 thrice, 2 * 0.5 / 4 * -1 = -0.25.
  const auto b =
      exact(mm("none", tensor("float64", {2, 4}, {1, 0, 0.5, -1, 0, 0, 0, 0}), itensor({2}, {0, 3}),
               R"("p": 2, "margin": 0.5)", "", grad_output(tensor("float64", {2}, {2, -1}))),
            true);
  const std::vector<double> expected = {0, 0, 0, 0, -0.25, -0.25, -0.25, 0.75};
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(b.grads.at("input").rounded_value(i), expected[i]);
  // 'mean' divides by N C.
  const auto m =
      exact(mm("mean", tensor("float32", {2, 2}, {0, 0, 0, 0}), itensor({2}, {0, 1})), true);
  EXPECT_EQ(m.grads.at("input").rounded_value(0), -0.25);
  EXPECT_EQ(m.grads.at("input").rounded_value(1), 0.25);
  EXPECT_EQ(m.grads.at("input").rounded_value(2), 0.25);
  EXPECT_EQ(m.grads.at("input").rounded_value(3), -0.25);
  // From torch 2.2.2: an infinite grad_output multiplies the zero entries too (0 * inf = NaN).
  const auto i = exact(mm("none", tensor("float64", {4}, {1, 0, 0.5, -1}), itensor({}, {0}), "", "",
                          grad_output(tensor("float64", {}, {INFINITY}))),
                       true);
  EXPECT_EQ(i.grads.at("input").rounded_value(0), -INFINITY);
  EXPECT_TRUE(std::isnan(i.grads.at("input").rounded_value(1)));
  EXPECT_EQ(i.grads.at("input").rounded_value(2), INFINITY);
  EXPECT_TRUE(std::isnan(i.grads.at("input").rounded_value(3)));
  // NaN inputs: inactive hinge, zero gradient; an infinite x_i with p = 1 gives a finite gradient.
  const auto n =
      exact(mm("sum", tensor("float64", {3}, {NAN, 1, INFINITY}), itensor({}, {1})), true);
  EXPECT_EQ(n.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(n.grads.at("input").rounded_value(1), -1.0 / 3);
  EXPECT_EQ(n.grads.at("input").rounded_value(2), 1.0 / 3);
  // Empty batch with 'none': an empty gradient of the input's shape.
  const auto e = exact(mm("none", tensor("float32", {0, 3}, {}), itensor({0}, {})), true);
  EXPECT_EQ(e.grads.at("input").shape, (Shape{0, 3}));
}
