#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;
using lossbench::ref::Real;

namespace {
std::string ce(const std::string& reduction, const std::string& x, const std::string& t,
               const std::string& weight = "", const std::string& params = "",
               const std::string& extra = "") {
  return R"({"loss": "cross_entropy", "reduction": ")" + reduction + R"(", "inputs": {"input": )" +
         x + R"(, "target": )" + t + (weight.empty() ? "" : R"(, "weight": )" + weight) + "}" +
         (params.empty() ? "" : R"(, "params": )" + params) + extra + "}";
}
std::string ls(double e) { return R"({"label_smoothing": )" + std::to_string(e) + "}"; }

// (keep + C spread) log(C) as a 45-digit decimal, computed independently at 1024 bits.
std::string log_decimal(long classes, double keep = 1, double spread = 0) {
  const long saved = ref::working_bits();
  ref::set_working_bits(1024);
  const Real factor = Real(keep) + Real(classes) * Real(spread);
  const std::string s = ref::decimal_string(factor * ref::log(Real(classes)));
  ref::set_working_bits(saved);
  return s;
}
std::string decimal_of(const std::string& json, std::size_t i = 0) {
  return ref::decimal_string(exact(json).output.values.at(i).value);
}

// A (3, 4) batch used by several tests, and torch 2.2.2 float64 results on it.
const std::vector<double> kXv = {0.5,  -1.25, 2.0,  0.125, 3.0,  -0.75,
                                 -2.5, 1.0,   -1.0, 0.25,  0.75, -0.5};
const std::string kX = tensor("float64", {3, 4}, kXv);
const std::string kW = tensor("float64", {4}, {1.0, 2.0, 0.5, 1.5});
const std::string kP =
    tensor("float64", {3, 4}, {0.25, 0.25, 0.5, 0, 0.125, 0.375, 0.25, 0.25, 1, 0, 0, 0});

// Plain double cross entropy of one row (max-shifted log-sum-exp).
double ce_row(const double* x, int classes, int t) {
  double m = x[0];
  for (int k = 1; k < classes; ++k) m = std::max(m, x[k]);
  double s = 0;
  for (int k = 0; k < classes; ++k) s += std::exp(x[k] - m);
  return std::log(s) - (x[t] - m);
}
}  // namespace

TEST(cross_entropy, UniformLogitsGiveLogC) {
  for (long classes : {2L, 3L, 7L, 10L, 1000L}) {
    const auto n = static_cast<std::size_t>(classes);
    const auto x = tensor("float32", {1, classes}, std::vector<double>(n, 0.0));
    EXPECT_EQ(decimal_of(ce("mean", x, itensor({1}, {classes - 1}))), log_decimal(classes))
        << classes;
    // Unbatched, and probability mode with a one-hot target.
    std::vector<double> onehot(n, 0.0);
    onehot[1] = 1;
    EXPECT_EQ(decimal_of(ce("none", tensor("float64", {classes}, std::vector<double>(n, 0.0)),
                            itensor({}, {0}))),
              log_decimal(classes));
    EXPECT_EQ(decimal_of(ce("sum", x, tensor("float32", {1, classes}, onehot))),
              log_decimal(classes));
  }
  // Shifted uniform logits are still uniform.
  EXPECT_EQ(decimal_of(ce("mean", tensor("float64", {2, 3}, {1e300, 1e300, 1e300, -5, -5, -5}),
                          itensor({2}, {0, 2}))),
            log_decimal(3));
  // Label smoothing keeps log C when (1 - e) + C (e / C) is exactly 1 (C = 4, e = 0.5) ...
  const auto x4 = tensor("float32", {2, 4}, std::vector<double>(8, 0.0));
  EXPECT_EQ(decimal_of(ce("mean", x4, itensor({2}, {0, 3}), "", ls(0.5))), log_decimal(4));
  // ... and shows the rounding of e / C otherwise: PyTorch's scalar e / C is a double, used as
  // float32 by float32 tensors (C = 7, e = 0.25).
  const auto x7 = [](const char* dt) { return tensor(dt, {1, 7}, std::vector<double>(7, 0.0)); };
  const double spread64 = 0.25 / 7;
  const double spread32 = static_cast<double>(static_cast<float>(spread64));
  EXPECT_EQ(decimal_of(ce("mean", x7("float64"), itensor({1}, {0}), "", ls(0.25))),
            log_decimal(7, 0.75, spread64));
  EXPECT_EQ(decimal_of(ce("mean", x7("float32"), itensor({1}, {0}), "", ls(0.25))),
            log_decimal(7, 0.75, spread32));
  EXPECT_NE(log_decimal(7, 0.75, spread64), log_decimal(7, 0.75, spread32));
}

TEST(cross_entropy, TorchValues) {
  // float64 results of torch 2.2.2 (F.cross_entropy) on kX: a few ULPs from the exact value.
  const auto t = itensor({3}, {2, -100, 3});
  const auto a = exact(ce("mean", kX, t, kW, ls(0.2)));
  EXPECT_LE(ulp_error64(0x1.c6717245223bap+0, a.output.values[0]), 4.0);
  const auto an = exact(ce("none", kX, t, kW, ls(0.2)));
  EXPECT_LE(ulp_error64(0x1.8862bd008f23ep-1, an.output.values[0]), 4.0);
  EXPECT_EQ(an.output.rounded_value(1), 0.0);
  EXPECT_LE(ulp_error64(0x1.6458c304fe72ap+1, an.output.values[2]), 4.0);
  const auto b = exact(ce("mean", kX, t, "", ls(0.2)));
  EXPECT_LE(ulp_error64(0x1.4a2f4fefb1fa1p+0, b.output.values[0]), 4.0);
  const auto c = exact(ce("mean", kX, kP, kW, ls(0.1)));
  EXPECT_LE(ulp_error64(0x1.8983ddc1546fbp+1, c.output.values[0]), 4.0);
  const auto d = exact(ce("sum", kX, kP, kW));
  EXPECT_LE(ulp_error64(0x1.28fcf0fd548aep+3, d.output.values[0]), 4.0);
}

TEST(cross_entropy, ModesAgreeWhereTheyShould) {
  const auto t = itensor({3}, {2, 0, 3});
  const auto onehot = tensor("float64", {3, 4}, {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1});
  // Index targets and one-hot probabilities: same loss, also with label smoothing (both
  // normalise the mean by N when there is no weight), and with weights for "sum" / "none".
  EXPECT_EQ(decimal_of(ce("mean", kX, t)), decimal_of(ce("mean", kX, onehot)));
  EXPECT_EQ(decimal_of(ce("mean", kX, t, "", ls(0.3))),
            decimal_of(ce("mean", kX, onehot, "", ls(0.3))));
  EXPECT_EQ(decimal_of(ce("sum", kX, t, kW, ls(0.3))),
            decimal_of(ce("sum", kX, onehot, kW, ls(0.3))));
  EXPECT_EQ(decimal_of(ce("none", kX, t, kW, ls(0.3)), 2),
            decimal_of(ce("none", kX, onehot, kW, ls(0.3)), 2));
  // Index mode: the weighted mean divides by the weights of the targets, so a constant weight
  // cancels. Probability mode divides by N: a weight of 2 doubles the mean.
  const auto w2 = tensor("float64", {4}, {2, 2, 2, 2});
  EXPECT_EQ(decimal_of(ce("mean", kX, t, w2)), decimal_of(ce("mean", kX, t)));
  EXPECT_EQ(decimal_of(ce("mean", kX, t, w2, ls(0.3))), decimal_of(ce("mean", kX, t, "", ls(0.3))));
  EXPECT_EQ(rounded64(exact(ce("mean", kX, kP, w2)).output.values[0]),
            2 * rounded64(exact(ce("mean", kX, kP)).output.values[0]));
  // A negative label_smoothing is ignored (torch 2.2.2).
  EXPECT_EQ(decimal_of(ce("mean", kX, t, "", ls(-0.5))), decimal_of(ce("mean", kX, t)));
  EXPECT_EQ(decimal_of(ce("mean", kX, kP, "", ls(-0.5))), decimal_of(ce("mean", kX, kP)));
  // label_smoothing = 1: only the smoothing term, the mean of -log_softmax over classes.
  const auto x1 = tensor("float64", {1, 3}, {1, 2, 3});
  const auto e1 = exact(ce("mean", x1, itensor({1}, {0}), "", ls(1.0)));
  EXPECT_LE(ulp_error64(1.4076059644443804, e1.output.values[0]), 2.0);  // torch 2.2.2
}

TEST(cross_entropy, KDimMatchesTheFlattenedBatch) {
  // (N, C, d) = (2, 3, 2) against the (4, 3) batch of its positions.
  const std::vector<double> xk = {0.5, -1, 2, 0.25, -3, 1.5, 1, 0, -0.5, 2, 0.75, -1.25};
  std::vector<double> xf(12);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int s = 0; s < 2; ++s) xf[(n * 2 + s) * 3 + c] = xk[(n * 3 + c) * 2 + s];
  const auto K = tensor("float64", {2, 3, 2}, xk);
  const auto F = tensor("float64", {4, 3}, xf);
  const auto w = tensor("float64", {3}, {0.5, 2, 1});
  const std::vector<std::int64_t> tv = {2, 7, 0, 1};
  const auto tk = itensor({2, 2}, tv), tf = itensor({4}, tv);
  const std::string ig = R"({"ignore_index": 7, "label_smoothing": 0.25})";
  for (const char* red : {"none", "mean", "sum"}) {
    const auto a = exact(ce(red, K, tk, w, ig)), b = exact(ce(red, F, tf, w, ig));
    ASSERT_EQ(a.output.values.size(), b.output.values.size());
    for (std::size_t i = 0; i < a.output.values.size(); ++i)
      EXPECT_EQ(ref::decimal_string(a.output.values[i].value),
                ref::decimal_string(b.output.values[i].value))
          << red << " " << i;
  }
  EXPECT_EQ(exact(ce("none", K, tk, "", ig)).output.shape, (Shape{2, 2}));
  // Probability mode: the weight broadcasts along dim 1; the mean divides by N * d = 4.
  std::vector<double> pk(12), pf(12);
  for (int i = 0; i < 12; ++i) pk[i] = 0.125 * (i % 5);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int s = 0; s < 2; ++s) pf[(n * 2 + s) * 3 + c] = pk[(n * 3 + c) * 2 + s];
  const auto P = tensor("float64", {2, 3, 2}, pk), PF = tensor("float64", {4, 3}, pf);
  const auto pn = exact(ce("none", K, P, w, ls(0.25)));
  EXPECT_EQ(pn.output.shape, (Shape{2, 2}));
  const auto pfn = exact(ce("none", F, PF, w, ls(0.25)));
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_EQ(ref::decimal_string(pn.output.values[i].value),
              ref::decimal_string(pfn.output.values[i].value));
  EXPECT_EQ(rounded64(exact(ce("mean", K, P, w)).output.values[0]) * 4,
            rounded64(exact(ce("sum", K, P, w)).output.values[0]));
  // 4-D.
  const auto x4 = tensor("float32", {1, 2, 2, 1}, {0, 0, 0, 0});
  EXPECT_EQ(decimal_of(ce("mean", x4, itensor({1, 2, 1}, {1, 0}))), log_decimal(2));
}

TEST(cross_entropy, IgnoreIndex) {
  // Ignored rows drop out of the value and of both normalisers (weighted, smoothed).
  const auto w = kW;
  const auto sub = tensor("float64", {2, 4}, {0.5, -1.25, 2.0, 0.125, -1.0, 0.25, 0.75, -0.5});
  for (const std::string& p : {std::string(R"({"ignore_index": 7, "label_smoothing": 0.25})"),
                               std::string(R"({"ignore_index": 7})")}) {
    EXPECT_EQ(decimal_of(ce("mean", kX, itensor({3}, {2, 7, 3}), w, p)),
              decimal_of(ce("mean", sub, itensor({2}, {2, 3}), w, p)));
    EXPECT_EQ(decimal_of(ce("mean", kX, itensor({3}, {2, 7, 3}), "", p)),
              decimal_of(ce("mean", sub, itensor({2}, {2, 3}), "", p)));
  }
  // In-range ignore_index: class 1 targets are ignored.
  EXPECT_EQ(decimal_of(ce("sum", kX, itensor({3}, {2, 1, 3}), w,
                          R"({"ignore_index": 1, "label_smoothing": 0.5})")),
            decimal_of(ce("sum", sub, itensor({2}, {2, 3}), w, ls(0.5))));
  // All ignored: mean NaN (0/0 in both terms), sum 0, none zeros.
  const auto all = itensor({3}, {-100, -100, -100});
  EXPECT_TRUE(std::isnan(rounded_scalar(ce("mean", kX, all))));
  EXPECT_TRUE(std::isnan(rounded_scalar(ce("mean", kX, all, "", ls(0.3)))));
  EXPECT_TRUE(std::isnan(rounded_scalar(ce("mean", kX, all, w, ls(0.3)))));
  EXPECT_EQ(rounded_scalar(ce("sum", kX, all, w, ls(0.3))), 0.0);
  const auto none = exact(ce("none", kX, all, w, ls(0.3)));
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(none.output.rounded_value(i), 0.0);
  // A single ignored sample: NaN on CPU (canonical).
  EXPECT_TRUE(std::isnan(
      rounded_scalar(ce("mean", tensor("float32", {3}, {1, 2, 3}), itensor({}, {-100})))));
}

TEST(cross_entropy, EmptyInputs) {
  EXPECT_TRUE(
      std::isnan(rounded_scalar(ce("mean", tensor("float32", {0, 3}, {}), itensor({0}, {})))));
  EXPECT_EQ(rounded_scalar(ce("sum", tensor("float32", {0, 3}, {}), itensor({0}, {}), "", ls(0.5))),
            0.0);
  EXPECT_TRUE(std::isnan(
      rounded_scalar(ce("mean", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {})))));
  EXPECT_TRUE(std::isnan(
      rounded_scalar(ce("mean", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}),
                        tensor("float32", {3}, {1, 1, 1})))));
  EXPECT_EQ(rounded_scalar(ce("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}))),
            0.0);
  // C = 0: probability mode's mean is NaN; index targets can only be ignored.
  EXPECT_TRUE(std::isnan(
      rounded_scalar(ce("mean", tensor("float32", {2, 0}, {}), tensor("float32", {2, 0}, {})))));
  EXPECT_TRUE(std::isnan(
      rounded_scalar(ce("mean", tensor("float32", {2, 0}, {}), itensor({2}, {-100, -100})))));
  expect_error(ce("mean", tensor("float32", {2, 0}, {}), itensor({2}, {0, -100})), ErrorKind::Index,
               "Target 0 is out of bounds.");
}

TEST(cross_entropy, SpecialValues) {
  const auto row = [](double a, double b, double c) { return tensor("float64", {3}, {a, b, c}); };
  // +inf or NaN anywhere, or a row of -inf: log_softmax is NaN on the whole row (torch 2.2.2).
  for (int t = 0; t < 3; ++t) {
    EXPECT_TRUE(std::isnan(rounded_scalar(ce("none", row(INFINITY, 0, 1), itensor({}, {t})))));
    EXPECT_TRUE(std::isnan(rounded_scalar(ce("none", row(NAN, 0, 1), itensor({}, {t})))));
    EXPECT_TRUE(std::isnan(
        rounded_scalar(ce("none", row(-INFINITY, -INFINITY, -INFINITY), itensor({}, {t})))));
  }
  // A -inf logit: infinite loss on its class, finite elsewhere.
  EXPECT_EQ(rounded_scalar(ce("none", row(-INFINITY, 0, 1), itensor({}, {0}))), INFINITY);
  EXPECT_LE(ulp_error64(std::log1p(std::exp(-1.0)),
                        exact(ce("none", row(-INFINITY, 0, 1), itensor({}, {2}))).output.values[0]),
            1.0);
  // ... but 0 * -inf = NaN in probability mode, and inf in the smoothing term.
  EXPECT_TRUE(std::isnan(rounded_scalar(ce("sum", row(-INFINITY, 0, 1), row(0, 1, 0)))));
  EXPECT_EQ(rounded_scalar(ce("sum", row(-INFINITY, 0, 1), itensor({}, {1}), "", ls(0.3))),
            INFINITY);
  // An ignored row with NaN logits contributes 0 (also to the smoothing term, masked).
  const auto xn = tensor("float64", {2, 3}, {NAN, 0, 1, 0, 1, 2});
  const auto tn = itensor({2}, {-100, 1});
  EXPECT_EQ(decimal_of(ce("sum", xn, tn)),
            decimal_of(ce("sum", tensor("float64", {1, 3}, {0, 1, 2}), itensor({1}, {1}))));
  EXPECT_FALSE(std::isnan(rounded_scalar(ce("sum", xn, tn, "", ls(0.3)))));
  // Huge logits: stable; the difference 6e38 overflows float32 only when rounded.
  const double big = static_cast<double>(3e38f);
  const auto h = exact(ce("none", tensor("float32", {2}, {big, -big}), itensor({}, {1})));
  EXPECT_EQ(h.output.rounded_value(0), INFINITY);
  EXPECT_EQ(rounded64(h.output.values[0]), 2 * big);
  EXPECT_EQ(rounded_scalar(ce("none", tensor("float32", {2}, {big, -big}), itensor({}, {0}))), 0.0);
  const auto hd = exact(ce("none", tensor("float64", {3}, {1e308, -1e308, 0}), itensor({}, {1})));
  EXPECT_EQ(rounded64(hd.output.values[0]), INFINITY);  // 2e308; torch 2.2.2 also gives inf
  EXPECT_EQ(
      rounded_scalar(ce("none", tensor("float64", {3}, {1e308, -1e308, 0}), itensor({}, {2}))),
      1e308);
  // A tiny loss keeps its value: log1p(e^-700) (a plain log of the sum would give 0).
  const auto tiny = exact(ce("none", tensor("float64", {2}, {0, -700}), itensor({}, {0})));
  EXPECT_LE(ulp_error64(std::exp(-700.0), tiny.output.values[0]), 1.0);
  EXPECT_GT(tiny.output.rounded_value(0), 0.0);
}

TEST(cross_entropy, Errors) {
  const auto t = itensor({3}, {0, 1, 2});
  expect_error(ce("mean", kX, itensor({3}, {0, 4, 2})), ErrorKind::Index,
               "Target 4 is out of bounds.");
  expect_error(ce("mean", kX, itensor({3}, {0, -1, 2}), "", ls(0.2)), ErrorKind::Index,
               "Target -1 is out of bounds.");
  expect_error(ce("mean", kX, t, "", ls(1.5)), ErrorKind::Value,
               "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
  expect_error(ce("mean", kX, kP, "", R"({"label_smoothing": 1.25})"), ErrorKind::Value,
               "label_smoothing must be between 0.0 and 1.0. Got: 1.25");
  expect_error(ce("mean", kX, kP, "", ls(1.5)), ErrorKind::Value,
               "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
  expect_error(ce("mean", kX, itensor({3, 4}, std::vector<std::int64_t>(12, 0))), ErrorKind::Type,
               "Expected floating point type for target with class probabilities, got Long");
  expect_error(ce("mean", kX, kP, "", R"({"ignore_index": 0})"), ErrorKind::Value,
               "ignore_index is not supported for floating point target");
  EXPECT_FALSE(std::isnan(rounded_scalar(ce("mean", kX, kP, "", R"({"ignore_index": -1})"))));
  expect_error(ce("mean", kX, kP, tensor("float64", {3}, {1, 1, 1})), ErrorKind::ShapeMismatch,
               "cross_entropy: weight tensor should be defined either for all 4 classes or no "
               "classes but got "
               "weight tensor of shape: [3]");
  expect_error(ce("mean", kX, t, tensor("float64", {3}, {1, 1, 1}), ls(0.5)),
               ErrorKind::ShapeMismatch,
               "weight tensor should be defined either for all 4 classes or no classes but got "
               "weight tensor of "
               "shape: [3]");
  expect_error(ce("mean", kX, tensor("float64", {3}, {0, 1, 2})), ErrorKind::Type,
               "expected scalar type Long but found Double");
  expect_error(ce("mean", kX, itensor({2}, {0, 1})), ErrorKind::ShapeMismatch,
               "Expected input batch_size (3) to match target batch_size (2).");
  expect_error(ce("mean", tensor("float64", {}, {1}), itensor({1}, {0})), ErrorKind::Index,
               "Dimension out of range");
  expect_error(ce("mean", tensor("float64", {}, {1}), tensor("float64", {}, {1})), ErrorKind::Index,
               "Dimension specified as 1 but tensor has no dimensions");
  expect_error(ce("mean", tensor("float64", {2, 3, 2}, std::vector<double>(12, 0)),
                  itensor({2, 3}, {0, 0, 0, 0, 0, 0})),
               ErrorKind::ShapeMismatch, "Expected target size [2, 2], got [2, 3]");
  expect_error(ce("mean", kX, kP, tensor("float32", {4}, {1, 1, 1, 1})), ErrorKind::Type,
               "input is float64 and weight is float32");
}

TEST(cross_entropy, Float64CrossCheck) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> n(0, 3);
  std::uniform_int_distribution<int> cls(0, 5);
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<double> x(48);
    std::vector<std::int64_t> t(8);
    for (auto& v : x) v = n(rng);
    double s = 0;
    for (int i = 0; i < 8; ++i) {
      t[i] = cls(rng);
      s += ce_row(&x[static_cast<std::size_t>(i) * 6], 6, static_cast<int>(t[i]));
    }
    const auto r = exact(ce("mean", tensor("float64", {8, 6}, x), itensor({8}, t)));
    EXPECT_LE(ulp_error64(s / 8, r.output.values[0]), 32.0);
  }
}

TEST(cross_entropy, GradientsMatchFiniteDifferences) {
  const auto x23 = tensor("float64", {2, 3}, {0.5, -1.25, 2, 0.75, 0.25, -0.5});
  const auto w3 = tensor("float64", {3}, {0.5, 2, 1.5});
  expect_gradients_match_finite_differences(ce("mean", x23, itensor({2}, {2, 0}), w3));
  expect_gradients_match_finite_differences(
      ce("mean", kX, itensor({3}, {2, -100, 3}), kW, ls(0.2)));
  expect_gradients_match_finite_differences(
      ce("none", tensor("float32", {1, 3, 2}, {0.5, -1, 2, 0.25, -3, 1.5}), itensor({1, 2}, {2, 0}),
         tensor("float32", {3}, {0.5, 2, 1.5}), ls(0.25),
         R"(, "grad_output": )" + tensor("float32", {1, 2}, {1.5, -2})));
  expect_gradients_match_finite_differences(
      ce("sum", tensor("float64", {3}, {1, 2, 3}), itensor({}, {1}), "", ls(0.5)));
  // Probability mode: input, target and weight.
  expect_gradients_match_finite_differences(
      ce("mean", x23, tensor("float64", {2, 3}, {0.25, 0.5, 0.25, 1, 0, -0.5}), w3, ls(0.1)));
  expect_gradients_match_finite_differences(
      ce("none", tensor("float64", {1, 3, 2}, {0.5, -1, 2, 0.25, -3, 1.5}),
         tensor("float64", {1, 3, 2}, {0.5, 0, 0.25, 0.5, 0.25, 0.5}), w3, "",
         R"(, "grad_output": )" + tensor("float64", {1, 2}, {1.5, -2})));
  expect_gradients_match_finite_differences(
      ce("sum", tensor("float64", {3}, {1, 2, 3}), tensor("float64", {3}, {0.25, 0.5, 0.25})));
}

TEST(cross_entropy, GradientValues) {
  // Uniform logits, C = 4, sum: p - onehot.
  const auto u = exact(ce("sum", tensor("float64", {1, 4}, {0, 0, 0, 0}), itensor({1}, {0})), true);
  const std::vector<double> want = {-0.75, 0.25, 0.25, 0.25};
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(u.grads.at("input").rounded_value(i), want[i]);
  // Index mode: the input only, even with a weight (PyTorch 2.2 refuses weight.requires_grad).
  const auto r = exact(ce("mean", kX, itensor({3}, {2, -100, 3}), kW, ls(0.2)), true);
  EXPECT_EQ(r.grads.size(), 1u);
  EXPECT_EQ(r.grads.count("input"), 1u);
  for (std::size_t i = 4; i < 8; ++i)
    EXPECT_EQ(r.grads.at("input").rounded_value(i), 0.0);  // ignored row
  // All ignored with smoothing: the value is NaN, the gradient exactly 0 (torch 2.2.2).
  const auto a = exact(ce("mean", kX, itensor({3}, {-100, -100, -100}), kW, ls(0.3)), true);
  EXPECT_TRUE(std::isnan(a.output.rounded_value(0)));
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(a.grads.at("input").rounded_value(i), 0.0);
  // An ignored row with NaN logits gets NaN through the log_softmax backward (torch 2.2.2).
  const auto n = exact(
      ce("sum", tensor("float64", {2, 3}, {NAN, 0, 1, 0, 1, 2}), itensor({2}, {-100, 1})), true);
  EXPECT_TRUE(std::isnan(n.grads.at("input").rounded_value(0)));
  EXPECT_FALSE(std::isnan(n.grads.at("input").rounded_value(3)));
  // Exactly 0 gradients certify: uniform logits against a uniform target, or full smoothing.
  const auto z = exact(ce("mean", tensor("float64", {1, 4}, {1, 1, 1, 1}),
                          tensor("float64", {1, 4}, {0.25, 0.25, 0.25, 0.25})),
                       true);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(z.grads.at("input").rounded_value(i), 0.0);
  const auto z3 =
      exact(ce("mean", tensor("float64", {1, 3}, {0, 0, 0}), itensor({1}, {0}), "", ls(1.0)), true);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(z3.grads.at("input").rounded_value(i), 0.0);
  // Probability mode: d/dt_c = -s (1 - e) w_c logp_c, d/dw_c = -s sum t'_c logp_c; here
  // uniform logits (logp = -log 4), e = 0.5, s = 1 / N = 1 / 2.
  const auto p = exact(ce("mean", tensor("float64", {2, 4}, std::vector<double>(8, 0)),
                          tensor("float64", {2, 4}, {1, 0, 0, 0, 0, 0, 0, 0}),
                          tensor("float64", {4}, {1, 2, 1, 1}), ls(0.5)),
                       true);
  const double l4 = std::log(4.0);
  EXPECT_LE(ulp_error64(0.5 * 0.5 * 2 * l4, p.grads.at("target").values[1]), 1.0);
  // t' = 0.5 t + 0.125: w_0 gets 0.5 * (0.625 + 0.125) log 4, w_1 gets 0.5 * 0.25 log 4.
  EXPECT_LE(ulp_error64(0.5 * 0.75 * l4, p.grads.at("weight").values[0]), 1.0);
  EXPECT_LE(ulp_error64(0.5 * 0.25 * l4, p.grads.at("weight").values[1]), 1.0);
}
