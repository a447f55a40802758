#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string tml(const std::string& reduction, const std::string& a, const std::string& p,
                const std::string& n, const std::string& params = "",
                const std::string& extra = "") {
  return R"({"loss": "triplet_margin_loss", "reduction": ")" + reduction +
         R"(", "inputs": {"anchor": )" + a + R"(, "positive": )" + p + R"(, "negative": )" + n +
         "}" + (params.empty() ? "" : R"(, "params": {)" + params + "}") + extra + "}";
}
std::string f64(const Shape& s, const std::vector<double>& v) { return tensor("float64", s, v); }

// Every value of a certified tensor within `ulps` float64 ULPs of `expected` (same order).
void expect_near(const ref::CertifiedTensor& t, const std::vector<double>& expected,
                 double ulps = 4) {
  ASSERT_EQ(t.values.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_LE(ulp_error64(expected[i], t.values[i]), ulps)
        << "element " << i << ": expected " << expected[i] << " got " << t.values[i].rounded[0];
}
void expect_exact(const ref::CertifiedTensor& t, const std::vector<double>& expected) {
  ASSERT_EQ(t.values.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(t.values[i].rounded[0], expected[i]) << "element " << i;
}
}  // namespace

TEST(triplet_margin_loss, ClosedForms) {
  // p = 2, eps = 0: d(a, p) = 5, d(a, n) = 10.
  const auto a = f64({1, 2}, {0, 0}), p = f64({1, 2}, {3, 4}), n = f64({1, 2}, {6, 8});
  EXPECT_EQ(rounded_scalar(tml("sum", a, p, n, R"("eps": 0, "margin": 6)")), 1.0);
  EXPECT_EQ(rounded_scalar(tml("sum", a, p, n, R"("eps": 0, "margin": 5)")), 0.0);  // exact 0
  EXPECT_EQ(rounded_scalar(tml("sum", a, p, n, R"("eps": 0, "margin": 1)")), 0.0);
  // p = 1: 3 + 1 - 3; p = inf: 2 + 1 - 3 = 0; p = 0.5: (1 + 2)^2 = 9.
  const auto p2 = f64({1, 2}, {1, -2}), n2 = f64({1, 2}, {3, 0});
  EXPECT_EQ(rounded_scalar(tml("mean", a, p2, n2, R"("eps": 0, "p": 1)")), 1.0);
  EXPECT_EQ(rounded_scalar(tml("mean", a, p2, n2, R"("eps": 0, "p": "inf")")), 0.0);
  EXPECT_EQ(
      rounded_scalar(tml("mean", a, f64({1, 2}, {1, 4}), n2, R"("eps": 0, "p": 0.5, "margin": 0)")),
      6.0);
  // p = 3 through perfect cubes: 2 + 1 - 3 = 0 exactly (correctly rounded roots), and 2 + 2 - 3.
  const auto p3 = f64({1, 3}, {2, 0, 0}), n3 = f64({1, 3}, {0, 3, 0});
  EXPECT_EQ(rounded_scalar(tml("sum", f64({1, 3}, {0, 0, 0}), p3, n3, R"("eps": 0, "p": 3)")), 0.0);
  EXPECT_EQ(rounded_scalar(
                tml("sum", f64({1, 3}, {0, 0, 0}), p3, n3, R"("eps": 0, "p": 3, "margin": 2)")),
            1.0);
  // p = 0 counts the non-zero elements of a - b + eps: 2 + 1 - 1.
  EXPECT_EQ(rounded_scalar(tml("sum", a, p2, n2, R"("eps": 0, "p": 0)")), 2.0);
  // Default eps = 1e-6 added to every element of the difference: d = sqrt(2) * (1 + 1e-6)
  // against d = sqrt(2) * (1 - 1e-6), margin 0: the loss is 2 sqrt(2) 1e-6.
  const double e = 1e-6;
  const auto r =
      exact(tml("sum", f64({2}, {0, 0}), f64({2}, {-1, -1}), f64({2}, {1, 1}), R"("margin": 0)"));
  EXPECT_LE(ulp_error64(2 * std::sqrt(2.0) * e, r.output.values[0]), 64);  // cancellation in double
}

TEST(triplet_margin_loss, ExactTiesThroughSquareRoots) {
  // d(a, p) = d(a, n) = sqrt(2), margin 0: the hinge is exactly 0 (decided on sum of squares).
  const auto a = f64({1, 2}, {0, 0}), p = f64({1, 2}, {1, 1}), n = f64({1, 2}, {1, -1});
  const auto r = exact(tml("none", a, p, n, R"("eps": 0, "margin": 0)"), true);
  EXPECT_TRUE(r.output.values[0].exact);
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  // clamp_min passes the gradient at exactly 0: d/da = (a-p)/dp - (a-n)/dn.
  const double h = 1 / std::sqrt(2.0);
  expect_near(r.grads.at("anchor"), {-h + h, -h - h});
  expect_near(r.grads.at("positive"), {h, h});
  expect_near(r.grads.at("negative"), {-h, h});
  // Float32 with eps = 1e-6 rounded to float: still an exact tie (|1 + e| vs |-1 + e| swapped).
  const auto r32 = exact(tml("sum", tensor("float32", {2}, {0, 0}), tensor("float32", {2}, {1, -1}),
                             tensor("float32", {2}, {-1, 1}), R"("margin": 0)"));
  EXPECT_EQ(r32.output.rounded_value(0), 0.0);
}

TEST(triplet_margin_loss, ReductionsAndShapes) {
  const auto a = f64({2, 3}, {1, 2, 0.5, 0.5, -1, 2});
  const auto p = f64({2, 3}, {3, -1, 0, 1, 1, 1});
  const auto n = f64({2, 3}, {-1, 0.5, 0.25, 2, 0.25, -3});
  // torch 2.2.2 float64, p = 3, margin = 2.5: [3.5249550526416713, 0.0].
  const auto none = exact(tml("none", a, p, n, R"("margin": 2.5, "p": 3)"));
  EXPECT_EQ(none.output.shape, (Shape{2}));
  expect_near(none.output, {3.5249550526416713, 0.0});
  EXPECT_LE(ulp_error64(3.5249550526416713,
                        exact(tml("sum", a, p, n, R"("margin": 2.5, "p": 3)")).output.values[0]),
            4);
  EXPECT_LE(ulp_error64(3.5249550526416713 / 2,
                        exact(tml("mean", a, p, n, R"("margin": 2.5, "p": 3)")).output.values[0]),
            4);
  // torch 2.2.2, p = 0.5, mean: 3.747701534246697, 6.4 ULPs from the exact value
  // 3.74770153424669396859... (checked with 60-digit decimal arithmetic).
  const auto half = exact(tml("mean", a, p, n, R"("margin": 2.5, "p": 0.5)"));
  EXPECT_LE(ulp_error64(3.747701534246697, half.output.values[0]), 8);
  EXPECT_EQ(ref::decimal_string(half.output.values[0].value, 20), "3.7477015342466939686e+00");
  // Unbatched (D): a 0-d output even with "none"; torch 2.2.2: 3.627584958886178.
  const auto u = exact(tml("none", f64({3}, {1, 2, 0.5}), f64({3}, {3, -1, 0}),
                           f64({3}, {-1, 0.5, 0.25}), R"("margin": 2.5)"));
  EXPECT_EQ(u.output.shape, Shape{});
  expect_near(u.output, {3.627584958886178});
  // 0-d inputs: the distance is |x - y + eps|.
  EXPECT_EQ(rounded_scalar(tml("none", f64({}, {1}), f64({}, {0.5}), f64({}, {3}),
                               R"("margin": 2, "eps": 0)")),
            0.5);
  // 3-D inputs: the distance is over the last dimension, the output (2, 1).
  const auto k = exact(tml("none", f64({2, 1, 2}, {0, 0, 0, 0}), f64({2, 1, 2}, {3, 4, 0, 1}),
                           f64({2, 1, 2}, {0, 2, 6, 8}), R"("eps": 0)"));
  EXPECT_EQ(k.output.shape, (Shape{2, 1}));
  expect_exact(k.output, {4, 0});
  // Broadcasting: (3, 2) with (1, 2) and (3, 1).
  const auto b = exact(tml("none", f64({3, 2}, {0, 0, 1, 0, 0, 1}), f64({1, 2}, {0, 0}),
                           f64({3, 1}, {1, 2, 3}), R"("eps": 0, "p": 1)"));
  EXPECT_EQ(b.output.shape, (Shape{3}));
  expect_exact(b.output, {0, 0, 0});  // 0 + 1 - 2, 1 + 1 - 3, 1 + 1 - 5 (d(a, n) = 2, 3, 5)
  const auto b2 = exact(tml("none", f64({3, 2}, {0, 0, 1, 0, 0, 1}), f64({1, 2}, {0, 0}),
                            f64({3, 1}, {1, 2, 3}), R"("eps": 0, "p": 1, "margin": 4)"));
  expect_exact(b2.output, {2, 2, 0});
}

TEST(triplet_margin_loss, SwapAndMargin) {
  // d(a, p) = sqrt(18), d(a, n) = 5, d(p, n) = 1: swap uses 1.
  const auto a = f64({1, 2}, {0, 0}), p = f64({1, 2}, {3, 3}), n = f64({1, 2}, {3, 4});
  // 3 sqrt(2) - 4 = 0.24264068711928514640506617262909...
  EXPECT_EQ(exact_scalar(tml("sum", a, p, n, R"("eps": 0, "margin": 1)")).substr(0, 22),
            "2.42640687119285146405");
  // 2.2 accepts margin <= 0: max(0, sqrt(18) - 5 - 1) = 0, swap: sqrt(18) - 1 - 1.
  EXPECT_EQ(rounded_scalar(tml("sum", a, p, n, R"("eps": 0, "margin": -1)")), 0.0);
  const auto s = exact(tml("sum", a, p, n, R"("eps": 0, "margin": -1, "swap": true)"));
  EXPECT_LE(ulp_error64(std::sqrt(18.0) - 2, s.output.values[0]), 2);
  // Margin rounding: float16 rounds the scalar to float16 (torch 2.2.2 gives 1.0 for this case;
  // with a float32 margin the exact result would round to 1 + 2^-10).
  const double m16 = 0x1p-11 * (1 + 0x1p-12);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", m16);
  const std::string params = std::string(R"("eps": 0, "margin": ")") + buf + "\"";
  EXPECT_EQ(
      rounded_scalar(tml("sum", tensor("float16", {1, 1}, {1}), tensor("float16", {1, 1}, {0}),
                         tensor("float16", {1, 1}, {1}), params)),
      1.0);
  std::snprintf(buf, sizeof buf, "%a", 0x1p-24 * (1 + 0x1p-30));
  EXPECT_EQ(rounded_scalar(tml("sum", tensor("float32", {1, 1}, {1}),
                               tensor("float32", {1, 1}, {0}), tensor("float32", {1, 1}, {1}),
                               std::string(R"("eps": 0, "margin": ")") + buf + "\"")),
            1.0);
}

TEST(triplet_margin_loss, SpecialValuesAndEmpty) {
  const auto nanv =
      exact(tml("none", f64({1, 2}, {NAN, 0}), f64({1, 2}, {0, 0}), f64({1, 2}, {1, 1})));
  EXPECT_TRUE(std::isnan(nanv.output.rounded_value(0)));
  // inf - inf inside the hinge: NaN.
  EXPECT_TRUE(std::isnan(rounded_scalar(
      tml("sum", f64({1, 2}, {INFINITY, 0}), f64({1, 2}, {0, 0}), f64({1, 2}, {1, 1})))));
  // d(a, n) = inf: 0.
  EXPECT_EQ(rounded_scalar(
                tml("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {0, 0}), f64({1, 2}, {INFINITY, 1}))),
            0.0);
  // Empty batch: mean NaN, sum 0; empty feature dimension: d = 0, the loss is the margin.
  const auto e = f64({0, 3}, {});
  EXPECT_TRUE(std::isnan(rounded_scalar(tml("mean", e, e, e))));
  EXPECT_EQ(rounded_scalar(tml("sum", e, e, e)), 0.0);
  const auto z = f64({2, 0}, {});
  const auto r = exact(tml("none", z, z, z, R"("margin": 1.5)"));
  expect_exact(r.output, {1.5, 1.5});
  EXPECT_EQ(rounded_scalar(tml("sum", z, z, z, R"("p": 3)")), 2.0);
  // p = NaN: NaN.
  EXPECT_TRUE(std::isnan(rounded_scalar(
      tml("sum", f64({2}, {0, 1}), f64({2}, {0, 0}), f64({2}, {2, 0}), R"("p": "nan")"))));
}

TEST(triplet_margin_loss, Errors) {
  expect_error(tml("mean", f64({3, 4}, std::vector<double>(12, 0)), f64({4}, {0, 0, 0, 0}),
                   f64({3, 4}, std::vector<double>(12, 0))),
               ErrorKind::ShapeMismatch, "anchor 2D, positive 1D, and negative 2D inputs");
  expect_error(tml("mean", f64({3, 2}, std::vector<double>(6, 0)), f64({2, 2}, {0, 0, 0, 0}),
                   f64({3, 2}, std::vector<double>(6, 0))),
               ErrorKind::ShapeMismatch, "must match");
  // The hinge's broadcast: d(a, p) of shape (2) against d(a, n) of shape (3).
  expect_error(tml("mean", f64({1, 2}, {0, 0}), f64({2, 2}, {0, 0, 0, 0}),
                   f64({3, 2}, std::vector<double>(6, 0))),
               ErrorKind::ShapeMismatch, "must match");
  const auto z = f64({2, 0}, {});
  expect_error(tml("mean", z, z, z, R"("p": "inf")"), ErrorKind::Value,
               "cannot compute the inf norm on the dimension 1");
  expect_error(tml("mean", z, z, z, R"("p": -1)"), ErrorKind::Value, "cannot compute the -1 norm");
  expect_error(
      tml("mean", tensor("float32", {1, 2}, {0, 0}), f64({1, 2}, {0, 0}), f64({1, 2}, {0, 0})),
      ErrorKind::Type, "dtype");
}

TEST(triplet_margin_loss, Float64CrossCheck) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> dist(0, 1);
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<double> a(12), p(12), n(12);
    for (int i = 0; i < 12; ++i) {
      a[i] = dist(rng);
      p[i] = dist(rng);
      n[i] = dist(rng);
    }
    const double eps = 1e-6, margin = 1.0;
    std::vector<double> expected;
    for (int row = 0; row < 3; ++row) {
      double sp = 0, sn = 0;
      for (int j = 0; j < 4; ++j) {
        const double dp = a[row * 4 + j] - p[row * 4 + j] + eps;
        const double dn = a[row * 4 + j] - n[row * 4 + j] + eps;
        sp += dp * dp;
        sn += dn * dn;
      }
      expected.push_back(std::max(0.0, margin + std::sqrt(sp) - std::sqrt(sn)));
    }
    const auto r = exact(tml("none", f64({3, 4}, a), f64({3, 4}, p), f64({3, 4}, n)));
    for (int row = 0; row < 3; ++row) {
      if (expected[row] < 0.25) continue;  // cancellation near the hinge
      EXPECT_LE(ulp_error64(expected[row], r.output.values[row]), 16.0);
    }
  }
}

TEST(triplet_margin_loss, GradientsMatchFiniteDifferences) {
  const auto a = f64({2, 3}, {1, 2, 0.5, 0.5, -1, 2});
  const auto p = f64({2, 3}, {3, -1, 0, 1, 1, 1});
  const auto n = f64({2, 3}, {-1, 0.5, 0.25, 2, 0.25, -3});
  expect_gradients_match_finite_differences(tml("mean", a, p, n, R"("margin": 4)"));
  expect_gradients_match_finite_differences(tml("sum", a, p, n, R"("margin": 4, "p": 3)"));
  expect_gradients_match_finite_differences(tml("sum", a, p, n, R"("margin": 4, "p": 1.5)"));
  expect_gradients_match_finite_differences(tml("sum", a, p, n, R"("margin": 9, "p": 0.5)"));
  expect_gradients_match_finite_differences(tml("sum", a, p, n, R"("margin": 4, "p": 1)"));
  expect_gradients_match_finite_differences(tml("sum", a, p, n, R"("margin": 4, "p": "inf")"));
  expect_gradients_match_finite_differences(tml("sum", a, p, n, R"("margin": 4, "p": -1.5)"));
  expect_gradients_match_finite_differences(tml("none", a, p, n, R"("margin": 4, "swap": true)",
                                                R"(, "grad_output": )" + f64({2}, {0.5, -2})));
  // Broadcast inputs and float32.
  expect_gradients_match_finite_differences(
      tml("mean", tensor("float32", {2, 2}, {1, 2, -1, 0.5}), tensor("float32", {1, 2}, {0.25, -1}),
          tensor("float32", {2, 1}, {3, -2}), R"("margin": 2)"));
  // torch 2.2.2 float64 gradients, p = 3, margin 2.5, reduction sum.
  const auto r = exact(tml("sum", a, p, n, R"("margin": 2.5, "p": 3)"), true);
  expect_near(r.grads.at("anchor"),
              {-1.1630715910797487, 0.3946903489331549, 0.010963616196785334, 0, 0, 0});
  expect_near(r.grads.at("positive"),
              {0.3729482199134141, -0.8391348933622884, -0.023309380291111056, 0, 0, 0});
  expect_near(r.grads.at("negative"),
              {0.7901233711663347, 0.4444445444291335, 0.012345764094325723, 0, 0, 0});
}

TEST(triplet_margin_loss, GradientConventions) {
  // Hinge exactly 0 (p = 2, rational distances 1 and 2, margin 1): passes (torch 2.2.2).
  auto r = exact(
      tml("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {1, 0}), f64({1, 2}, {2, 0}), R"("eps": 0)"),
      true);
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  expect_exact(r.grads.at("anchor"), {0, 0});
  expect_exact(r.grads.at("positive"), {1, 0});
  expect_exact(r.grads.at("negative"), {-1, 0});
  // p = 2 at distance 0: norm_backward gives 0 there (torch 2.2.2: anchor (1/sqrt2, -1/sqrt2)).
  r = exact(tml("sum", f64({1, 2}, {1, 2}), f64({1, 2}, {1, 2}), f64({1, 2}, {3, 0}),
                R"("eps": 0, "margin": 5)"),
            true);
  expect_near(r.grads.at("anchor"), {0.7071067811865475, -0.7071067811865475});
  expect_exact(r.grads.at("positive"), {0, 0});
  // Swap tie d(a, n) = d(p, n) = sqrt(2): each gets g/2 (torch 2.2.2 values).
  r = exact(tml("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {2, 0}), f64({1, 2}, {1, 1}),
                R"("eps": 0, "margin": 2, "swap": true)"),
            true);
  expect_near(r.output, {2.585786437626905});
  expect_near(r.grads.at("anchor"), {-0.6464466094067263, 0.35355339059327373});
  expect_near(r.grads.at("positive"), {0.6464466094067263, 0.35355339059327373});
  expect_near(r.grads.at("negative"), {0.0, -0.7071067811865475});
  // p = inf: the two elements of largest |.| share the gradient (torch 2.2.2).
  r = exact(tml("sum", f64({1, 3}, {0, 0, 0}), f64({1, 3}, {1, -1, 0.5}), f64({1, 3}, {2, 0, 0}),
                R"("eps": 0, "margin": 2, "p": "inf")"),
            true);
  expect_exact(r.output, {1});
  expect_exact(r.grads.at("anchor"), {0.5, 0.5, 0});
  expect_exact(r.grads.at("positive"), {0.5, -0.5, 0});
  expect_exact(r.grads.at("negative"), {-1, 0, 0});
  // p = -inf: the smallest |.|.
  r = exact(tml("sum", f64({1, 3}, {0, 0, 0}), f64({1, 3}, {1, -1, 0.5}), f64({1, 3}, {2, 3, 0}),
                R"("eps": 0, "margin": 2, "p": "-inf")"),
            true);
  expect_exact(r.output, {2.5});
  expect_exact(r.grads.at("anchor"), {0, 0, -1});
  // p = 1 with zero differences: sgn(0) = 0 (torch 2.2.2).
  r = exact(tml("sum", f64({1, 3}, {0, 0, 0}), f64({1, 3}, {1, 0, -0.5}), f64({1, 3}, {2, 0, 0}),
                R"("eps": 0, "margin": 2, "p": 1)"),
            true);
  expect_exact(r.grads.at("anchor"), {0, 0, 1});
  expect_exact(r.grads.at("positive"), {1, 0, -1});
  expect_exact(r.grads.at("negative"), {-1, 0, 0});
  // p = 0.5 with a zero difference: |x|^(p-1) is masked to 0 there (torch 2.2.2).
  r = exact(tml("sum", f64({1, 3}, {0, 0, 0}), f64({1, 3}, {0, 0, 0}), f64({1, 3}, {2, 0, 1}),
                R"("eps": 0, "margin": 10, "p": 0.5)"),
            true);
  expect_near(r.grads.at("anchor"), {1.7071067811865472, 0.0, 2.414213562373095});
  expect_exact(r.grads.at("positive"), {0, 0, 0});
  // p = 0: the distance is a count; PyTorch returns no gradient (None): zeros here.
  r = exact(tml("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {1, 0}), f64({1, 2}, {2, 1}),
                R"("eps": 0, "p": 0)"),
            true);
  expect_exact(r.output, {0});
  expect_exact(r.grads.at("anchor"), {0, 0});
  // NaN in the hinge: clamp_min passes nothing (NaN >= 0 is false), p = inf: zeros (torch).
  r = exact(tml("none", f64({1, 3}, {0, NAN, 0}), f64({1, 3}, {0, 0, 0}), f64({1, 3}, {2, 0, 1}),
                R"("eps": 0, "margin": 2, "p": "inf")"),
            true);
  expect_exact(r.grads.at("anchor"), {0, 0, 0});
  // ... p = 2: 0 * NaN = NaN everywhere (torch).
  r = exact(tml("none", f64({1, 3}, {0, NAN, 0}), f64({1, 3}, {0, 0, 0}), f64({1, 3}, {2, 0, 1}),
                R"("eps": 0, "margin": 2)"),
            true);
  for (const auto& v : r.grads.at("positive").values) EXPECT_TRUE(std::isnan(v.rounded[0]));
}
