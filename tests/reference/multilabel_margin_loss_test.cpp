#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string mlm(const std::string& reduction, const std::string& x, const std::string& t,
                const std::string& extra = "") {
  return R"({"loss": "multilabel_margin_loss", "reduction": ")" + reduction +
         R"(", "inputs": {"input": )" + x + R"(, "target": )" + t + "}" + extra + "}";
}
std::string grad_output(const std::string& g) { return R"(, "grad_output": )" + g; }

// The per-sample loss in plain double arithmetic (for well-conditioned random cases).
double naive(const std::vector<double>& x, const std::vector<std::int64_t>& t) {
  const std::size_t C = x.size();
  std::vector<bool> is_target(C, false);
  for (auto v : t) {
    if (v < 0) break;
    is_target[static_cast<std::size_t>(v)] = true;
  }
  double s = 0;
  for (auto v : t) {
    if (v < 0) break;
    for (std::size_t d = 0; d < C; ++d)
      if (!is_target[d]) s += std::max(0.0, 1 - x[static_cast<std::size_t>(v)] + x[d]);
  }
  return s / static_cast<double>(C);
}
}  // namespace

TEST(multilabel_margin_loss, ClosedFormsAndReductions) {
  // Row 0 lists {3, 0}: j = 3 gives z = -0.5, -2 (inactive); j = 0 gives z = 1.25, -0.25.
  // Row 1 lists {0} (2 and 3 come after the -1 and are ignored): z = -1, 0.5, 2.
  const auto x = tensor("float32", {2, 4}, {0.25, 0.5, -1, 2, 1, -1, 0.5, 2});
  const auto t = itensor({2, 4}, {3, 0, -1, 1, 0, -1, 2, 3});
  const auto none = exact(mlm("none", x, t));
  EXPECT_EQ(none.output.shape, (Shape{2}));
  EXPECT_EQ(none.output.rounded_value(0), 1.25 / 4);
  EXPECT_EQ(none.output.rounded_value(1), 2.5 / 4);
  EXPECT_EQ(rounded_scalar(mlm("sum", x, t)), 3.75 / 4);
  EXPECT_EQ(rounded_scalar(mlm("mean", x, t)), 3.75 / 8);
}

TEST(multilabel_margin_loss, UnbatchedAndScalarInputs) {
  // (C) input: the output is 0-d even with 'none'.
  const auto r =
      exact(mlm("none", tensor("float64", {4}, {1, -1, 0.5, 2}), itensor({4}, {0, -1, 2, 3})));
  EXPECT_EQ(r.output.shape, (Shape{}));
  EXPECT_EQ(r.output.rounded_value(0), 0.625);
  // (C) input with a 0-d target when C = 1, and a 0-d input (C = 1): no non-target class.
  EXPECT_EQ(rounded_scalar(mlm("none", tensor("float64", {1}, {0.5}), itensor({}, {0}))), 0.0);
  EXPECT_EQ(rounded_scalar(mlm("mean", tensor("float64", {}, {0.5}), itensor({}, {-1}))), 0.0);
  EXPECT_EQ(rounded_scalar(mlm("sum", tensor("float64", {}, {0.5}), itensor({1}, {0}))), 0.0);
}

TEST(multilabel_margin_loss, TargetListEndsAtFirstMinusOne) {
  const auto x = tensor("float64", {3}, {0, 1, 2});
  // Only class 0 is listed: (1 + 1) + (1 + 2) over C = 3.
  EXPECT_EQ(rounded64(exact(mlm("sum", x, itensor({3}, {0, -1, 2}))).output.values[0]), 5.0 / 3);
  // Nothing listed: 0.
  EXPECT_EQ(rounded_scalar(mlm("sum", x, itensor({3}, {-1, 0, 1}))), 0.0);
  // Every class listed: no non-target class, 0.
  EXPECT_EQ(rounded_scalar(mlm("sum", x, itensor({3}, {2, 0, 1}))), 0.0);
}

TEST(multilabel_margin_loss, DuplicateTargetsCountTwice) {
  // torch 2.2.2 gives 3.3333 for this: class 0 listed twice, 2 * (2 + 3) / 3.
  const auto r = exact(mlm("mean", tensor("float64", {3}, {0, 1, 2}), itensor({3}, {0, 0, -1})));
  EXPECT_EQ(rounded64(r.output.values[0]), 10.0 / 3);  // IEEE division is correctly rounded
  EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
            "3.33333333333333333333333333333333333333333333e+00");
  EXPECT_FALSE(r.output.values[0].exact);
}

TEST(multilabel_margin_loss, HingeTestIsExact) {
  // x_j = 1 + 2^-23, x_d = 2^-23: z = 0 exactly (not active); x_d = 2^-22: z = 2^-23.
  const double j = 1 + 0x1p-23;
  EXPECT_EQ(rounded_scalar(mlm("sum", tensor("float32", {2}, {j, 0x1p-23}), itensor({2}, {0, -1}))),
            0.0);
  EXPECT_EQ(rounded_scalar(mlm("sum", tensor("float32", {2}, {j, 0x1p-22}), itensor({2}, {0, -1}))),
            0x1p-24);
  // Large operands: 1 - 2^60 + (2^60 - 2^8) is exactly -255, inactive; + 2^60 gives 1.
  EXPECT_EQ(rounded_scalar(
                mlm("sum", tensor("float64", {2}, {0x1p60, 0x1p60 - 256}), itensor({2}, {0, -1}))),
            0.0);
  EXPECT_EQ(
      rounded_scalar(mlm("sum", tensor("float64", {2}, {0x1p60, 0x1p60}), itensor({2}, {0, -1}))),
      0.5);
}

TEST(multilabel_margin_loss, SpecialValues) {
  // As torch 2.2.2: a NaN z fails `z > 0` and is dropped.
  EXPECT_EQ(
      rounded_scalar(mlm("sum", tensor("float64", {3}, {NAN, 1, 2}), itensor({3}, {0, -1, -1}))),
      0.0);
  EXPECT_EQ(
      rounded_scalar(mlm("sum", tensor("float64", {3}, {0, NAN, 2}), itensor({3}, {0, -1, -1}))),
      1.0);
  EXPECT_EQ(rounded_scalar(
                mlm("sum", tensor("float64", {3}, {0, INFINITY, 2}), itensor({3}, {0, -1, -1}))),
            INFINITY);
  // 1 - inf + inf is NaN (dropped); 1 - inf + 2 is -inf (inactive).
  EXPECT_EQ(rounded_scalar(mlm("sum", tensor("float64", {3}, {INFINITY, INFINITY, 2}),
                               itensor({3}, {0, -1, -1}))),
            0.0);
  EXPECT_EQ(rounded_scalar(mlm("sum", tensor("float64", {3}, {-INFINITY, -INFINITY, 2}),
                               itensor({3}, {0, -1, -1}))),
            INFINITY);
  // float16 (CUDA only in PyTorch 2.2): the exact value overflows when rounded.
  EXPECT_EQ(rounded_scalar(mlm("sum", tensor("float16", {3}, {-65504, 65504, 65504}),
                               itensor({3}, {0, -1, -1}))),
            INFINITY);
}

TEST(multilabel_margin_loss, EmptyBatch) {
  const auto r = exact(mlm("none", tensor("float32", {0, 3}, {}), itensor({0, 3}, {})));
  EXPECT_EQ(r.output.shape, (Shape{0}));
  // Policy 5: mean/sum of an empty batch read uninitialised memory in PyTorch 2.2.
  expect_error(mlm("mean", tensor("float32", {0, 3}, {}), itensor({0, 3}, {})), ErrorKind::Value,
               "empty batch");
  expect_error(mlm("sum", tensor("float32", {0, 3}, {}), itensor({0, 3}, {})), ErrorKind::Value,
               "uninitialised");
}

TEST(multilabel_margin_loss, Errors) {
  const std::string msg =
      "Expected non-empty vector or matrix with optional 0-dim batch size, but got: ";
  expect_error(mlm("mean", tensor("float32", {2, 0}, {}), itensor({2, 0}, {})),
               ErrorKind::ShapeMismatch, msg + "[2, 0]");
  expect_error(mlm("mean", tensor("float32", {0}, {}), itensor({0}, {})), ErrorKind::ShapeMismatch,
               msg + "[0]");
  expect_error(mlm("mean", tensor("float32", {1, 1, 2}, {1, 2}), itensor({1, 1, 2}, {0, 1})),
               ErrorKind::ShapeMismatch, msg + "[1, 1, 2]");
  const auto x = tensor("float32", {2, 2}, {1, 2, 3, 4});
  expect_error(mlm("mean", x, itensor({2, 1}, {0, 1})), ErrorKind::ShapeMismatch,
               "inconsistent target size: [2, 1] for input of size: [2, 2]");
  expect_error(mlm("mean", x, itensor({4}, {0, 1, 0, 1})), ErrorKind::ShapeMismatch,
               "inconsistent target size");
  expect_error(mlm("mean", tensor("float32", {2}, {1, 2}), itensor({1, 2}, {0, 1})),
               ErrorKind::ShapeMismatch, "inconsistent target size: [1, 2] for input of size: [2]");
  expect_error(mlm("mean", x, itensor({2, 2}, {0, 2, 0, 1})), ErrorKind::Index,
               "argument #2 'target' is out of range: 2");
  expect_error(mlm("mean", x, itensor({2, 2}, {0, -2, 0, 1})), ErrorKind::Index,
               "out of range: -2");
  // The range check covers the entries after the first -1 too (a global min/max in PyTorch).
  expect_error(mlm("mean", x, itensor({2, 2}, {-1, 7, 0, 1})), ErrorKind::Index, "out of range: 7");
  expect_error(mlm("mean", tensor("float32", {}, {1}), itensor({}, {1})), ErrorKind::Index,
               "out of range");
}

TEST(multilabel_margin_loss, Float64CrossCheck) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> n(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    const std::size_t N = 3, C = 5;
    std::vector<double> x(N * C);
    std::vector<std::int64_t> t(N * C, -1);
    for (auto& v : x) v = n(rng);
    double s = 0;
    for (std::size_t i = 0; i < N; ++i) {
      // A random list of distinct-or-not classes of random length, then -1 and junk.
      const std::size_t len = static_cast<std::size_t>(rng() % C);
      for (std::size_t k = 0; k < len; ++k) t[i * C + k] = static_cast<std::int64_t>(rng() % C);
      s += naive(std::vector<double>(x.begin() + static_cast<long>(i * C),
                                     x.begin() + static_cast<long>(i * C + C)),
                 std::vector<std::int64_t>(t.begin() + static_cast<long>(i * C),
                                           t.begin() + static_cast<long>(i * C + C)));
    }
    const auto r = exact(mlm("sum", tensor("float64", {3, 5}, x), itensor({3, 5}, t)));
    EXPECT_LE(ulp_error64(s, r.output.values[0]), 16.0);
  }
  // From torch 2.2.2 (float64): the (N, C) example of the spec, 'none' gives [0.85, 0.625].
  const auto r = exact(mlm("none", tensor("float64", {2, 4}, {0.1, 0.2, 0.4, 0.8, 1, -1, 0.5, 2}),
                           itensor({2, 4}, {3, 0, -1, 1, 0, -1, 2, 3})));
  EXPECT_LE(ulp_error64(0.85, r.output.values[0]), 2.0);
  EXPECT_EQ(r.output.rounded_value(1), 0.625);
}

TEST(multilabel_margin_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      mlm("mean", tensor("float64", {2, 4}, {0.1, 0.2, 0.4, 0.8, 1, -1, 0.5, 2}),
          itensor({2, 4}, {3, 0, -1, 1, 0, 0, -1, 3})));
  expect_gradients_match_finite_differences(
      mlm("none", tensor("float32", {2, 3}, {0.5, -0.25, 0.75, 1.5, 0.125, 2}),
          itensor({2, 3}, {1, -1, 0, 2, 0, -1}), grad_output(tensor("float32", {2}, {2, -0.5}))));
  expect_gradients_match_finite_differences(
      mlm("sum", tensor("float16", {3}, {0.5, -0.375, 0.75}), itensor({3}, {2, -1, 0})));
}

TEST(multilabel_margin_loss, GradientConventions) {
  // From torch 2.2.2: j = 0 listed twice; d = 1 sits on the hinge (z = 0: no gradient), d = 2
  // and d = 3 (z = 0.5, 2) are active; 2 listed after the -1 is not a target.
  const auto x = tensor("float64", {1, 4}, {1, 0, 0.5, 2});
  const auto m = exact(mlm("mean", x, itensor({1, 4}, {0, 0, -1, 2})), true);
  EXPECT_EQ(m.output.rounded_value(0), 1.25);
  const auto& g = m.grads.at("input");
  EXPECT_EQ(g.shape, (Shape{1, 4}));
  EXPECT_EQ(g.rounded_value(0), -1.0);
  EXPECT_EQ(g.rounded_value(1), 0.0);
  EXPECT_EQ(g.rounded_value(2), 0.5);
  EXPECT_EQ(g.rounded_value(3), 0.5);
  // Unbatched 'none' (0-d output) with a 0-d grad_output of 3.
  const auto u = exact(mlm("none", tensor("float64", {4}, {1, 0, 0.5, 2}),
                           itensor({4}, {0, 0, -1, 2}), grad_output(tensor("float64", {}, {3}))),
                       true);
  EXPECT_EQ(u.grads.at("input").shape, (Shape{4}));
  EXPECT_EQ(u.grads.at("input").rounded_value(0), -3.0);
  EXPECT_EQ(u.grads.at("input").rounded_value(1), 0.0);
  EXPECT_EQ(u.grads.at("input").rounded_value(2), 1.5);
  // From torch 2.2.2: an infinite grad_output multiplies the zero entries too (0 * inf = NaN).
  const auto i =
      exact(mlm("none", tensor("float64", {4}, {1, 0, 0.5, -1}), itensor({4}, {0, -1, 0, 0}),
                grad_output(tensor("float64", {}, {INFINITY}))),
            true);
  EXPECT_EQ(i.grads.at("input").rounded_value(0), -INFINITY);
  EXPECT_TRUE(std::isnan(i.grads.at("input").rounded_value(1)));
  EXPECT_EQ(i.grads.at("input").rounded_value(2), INFINITY);
  EXPECT_TRUE(std::isnan(i.grads.at("input").rounded_value(3)));
  // Per-sample grad_output with 'none', and 1/(N C) for 'mean' over a batch of 2.
  const auto b =
      exact(mlm("none", tensor("float32", {2, 2}, {0, 0, 0, 0}), itensor({2, 2}, {0, -1, 1, -1}),
                grad_output(tensor("float32", {2}, {2, -4}))),
            true);
  const auto& gb = b.grads.at("input");
  EXPECT_EQ(gb.rounded_value(0), -1.0);
  EXPECT_EQ(gb.rounded_value(1), 1.0);
  EXPECT_EQ(gb.rounded_value(2), -2.0);
  EXPECT_EQ(gb.rounded_value(3), 2.0);
  const auto mb = exact(
      mlm("mean", tensor("float32", {2, 2}, {0, 0, 0, 0}), itensor({2, 2}, {0, -1, 1, -1})), true);
  EXPECT_EQ(mb.grads.at("input").rounded_value(0), -0.25);
  EXPECT_EQ(mb.grads.at("input").rounded_value(2), 0.25);
  EXPECT_EQ(mb.grads.at("input").rounded_value(3), -0.25);
  // NaN inputs: the hinge is inactive, so the gradient is 0 (not NaN), as the kernel gives.
  const auto n = exact(mlm("sum", tensor("float64", {2}, {NAN, 1}), itensor({2}, {0, -1})), true);
  EXPECT_EQ(n.grads.at("input").rounded_value(0), 0.0);
  EXPECT_EQ(n.grads.at("input").rounded_value(1), 0.0);
  // Empty batch with 'none': an empty gradient of the input's shape.
  const auto e = exact(mlm("none", tensor("float32", {0, 3}, {}), itensor({0, 3}, {})), true);
  EXPECT_EQ(e.grads.at("input").shape, (Shape{0, 3}));
}
