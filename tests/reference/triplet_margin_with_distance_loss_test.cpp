#include <algorithm>
#include <cmath>

#include "distance.hpp"
#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string twd(const std::string& reduction, const std::string& a, const std::string& p,
                const std::string& n, const std::string& params = "",
                const std::string& extra = "") {
  return R"({"loss": "triplet_margin_with_distance_loss", "reduction": ")" + reduction +
         R"(", "inputs": {"anchor": )" + a + R"(, "positive": )" + p + R"(, "negative": )" + n +
         "}" + (params.empty() ? "" : R"(, "params": {)" + params + "}") + extra + "}";
}
std::string tml(const std::string& reduction, const std::string& a, const std::string& p,
                const std::string& n, const std::string& params = "") {
  return R"({"loss": "triplet_margin_loss", "reduction": ")" + reduction +
         R"(", "inputs": {"anchor": )" + a + R"(, "positive": )" + p + R"(, "negative": )" + n +
         "}" + (params.empty() ? "" : R"(, "params": {)" + params + "}") + "}";
}
std::string f64(const Shape& s, const std::vector<double>& v) { return tensor("float64", s, v); }

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

const auto A = f64({2, 2}, {1, 2, 0.5, -1});
const auto P = f64({2, 2}, {3, -1, 1, 1});
const auto N = f64({2, 2}, {-1, 0.5, 2, 0.25});
}  // namespace

TEST(triplet_margin_with_distance_loss, DefaultIsPairwiseDistance) {
  // None and "pairwise_distance" are pairwise_distance(p = 2, eps = 1e-6): the same exact values
  // as triplet_margin_loss with its defaults.
  for (const std::string red : {"none", "mean", "sum"}) {
    const auto ref = exact(tml(red, A, P, N, R"("margin": 0.5, "swap": true)"));
    for (const std::string df : {"null", "\"pairwise_distance\""}) {
      const auto r =
          exact(twd(red, A, P, N, R"("margin": 0.5, "swap": true, "distance_function": )" + df));
      ASSERT_EQ(r.output.values.size(), ref.output.values.size());
      for (std::size_t i = 0; i < r.output.values.size(); ++i)
        EXPECT_EQ(r.output.values[i].rounded[0], ref.output.values[i].rounded[0]);
    }
  }
  // torch 2.2.2 float64, mean, margin 0.5, swap: 1.458550976472198 and its gradients.
  const auto r = exact(twd("mean", A, P, N, R"("margin": 0.5, "swap": true)"), true);
  expect_near(r.output, {1.458550976472198});
  expect_near(
      r.grads.at("anchor"),
      {-0.6773499141029466, 0.11602522184201647, -0.12126764131644055, -0.48507129287306533}, 8);
  expect_near(r.grads.at("positive"),
              {0.2773499381029344, -0.41602525384199757, 0.521267305316136, 0.18507084487318176});
  expect_near(r.grads.at("negative"),
              {0.3999999760000122, 0.3000000319999811, -0.3999996639996954, 0.30000044799988357});
  // Margin <= 0 is accepted in 2.2 (checked from 2.3 on): max(0, 5 - 10 - 1) = 0.
  EXPECT_EQ(rounded_scalar(twd("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {3, 4}), f64({1, 2}, {6, 8}),
                               R"("margin": -1)")),
            0.0);
}

TEST(triplet_margin_with_distance_loss, Cosine) {
  const std::string cos = R"("distance_function": "cosine")";
  // Closed forms: D(a, p) = 0, D(a, n) = 1 (orthogonal), margin 1: exactly 0; margin 2: 1.
  const auto a = f64({1, 2}, {1, 0}), p = f64({1, 2}, {2, 0}), n = f64({1, 2}, {0, 3});
  EXPECT_EQ(rounded_scalar(twd("sum", a, p, n, cos)), 0.0);
  EXPECT_EQ(rounded_scalar(twd("sum", a, p, n, cos + R"(, "margin": 2)")), 1.0);
  // Equal cosines through square roots (1/sqrt(2) both), margin 0: an exact 0; the gradient
  // passes (clamp_min inclusive). torch 2.2.2 values.
  const auto r0 = exact(
      twd("sum", a, f64({1, 2}, {1, 1}), f64({1, 2}, {1, -1}), cos + R"(, "margin": 0)"), true);
  EXPECT_TRUE(r0.output.values[0].exact);
  EXPECT_EQ(r0.output.rounded_value(0), 0.0);
  expect_near(r0.grads.at("anchor"), {0.0, -1.414213562373095});
  expect_near(r0.grads.at("positive"), {-0.3535533905932738, 0.3535533905932737});
  expect_near(r0.grads.at("negative"), {0.3535533905932738, 0.3535533905932737});
  // torch 2.2.2 float64, "none", margin 1.
  const auto r = exact(twd("none", A, P, N, cos), true);
  expect_near(r.output, {0.8585786437626906, 1.6490478837519755});
  // torch's anchor gradient of row 1 (-0.004554371574099242, -0.0022771857870496626) suffers
  // cancellation (~200 ULPs off); the expected values there come from 50-digit decimal
  // arithmetic of the closed form: -0.0045543715740994337347..., -0.0022771857870497168673...
  expect_near(r.grads.at("anchor"), {-0.7959797974644666, 0.39798989873223334,
                                     -0.0045543715740994337347, -0.0022771857870497168673});
  expect_near(r.grads.at("positive"), {-0.09899494936611666, -0.29698484809834996,
                                       -0.4743416490252568, 0.4743416490252569});
  expect_near(r.grads.at("negative"),
              {0.39999999999999997, 0.7999999999999999, 0.05803017437433167, -0.46424139499465333});
  // Swap and mean: torch 2.2.2 0.9820793135779274.
  expect_near(exact(twd("mean", A, P, N, cos + R"(, "margin": 0.5, "swap": true)")).output,
              {0.9820793135779274});
  // Norm below eps = 1e-8: the clamp is invisible to autograd (the norm's gradient still flows),
  // torch 2.2.2 values.
  const auto s = exact(
      twd("sum", f64({1, 2}, {1e-9, 2e-9}), f64({1, 2}, {3, -1}), f64({1, 2}, {-1, 0.5}), cos),
      true);
  expect_near(s.output, {0.9683772233983161});
  expect_near(s.grads.at("anchor"), {-182896835.34266984, 79172563.27642578}, 16);
  expect_near(s.grads.at("positive"), {-0.022135943621178655, -0.06640783086353597});
  expect_near(s.grads.at("negative"), {0.08944271909999159, 0.17888543819998318});
  // Zero anchor: cos = 0 / eps^2 = 0, D = 1; norm_backward is 0 at a zero norm (torch 2.2.2).
  const auto z = exact(
      twd("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {3, -1}), f64({1, 2}, {-1, 0.5}), cos), true);
  expect_exact(z.output, {1});
  expect_near(z.grads.at("anchor"), {-184311048.90504295, 76344136.15167959}, 16);
  expect_exact(z.grads.at("positive"), {0, 0});
  // float16: eps = 1e-8 rounds to 0, so a zero vector gives 0/0 = NaN (as torch 2.2.2).
  EXPECT_TRUE(std::isnan(rounded_scalar(twd("sum", tensor("float16", {1, 2}, {1, 1}),
                                            tensor("float16", {1, 2}, {0, 0}),
                                            tensor("float16", {1, 2}, {2, 2}), cos))));
  // cosine_similarity reduces over dim 1: (2, 3, 1) inputs give a (2, 1) loss (D over the 3).
  const auto k =
      exact(twd("none", f64({2, 3, 1}, {1, 0, 0, 0, 1, 0}), f64({2, 3, 1}, {1, 0, 0, 1, 0, 0}),
                f64({2, 3, 1}, {0, 1, 0, 0, 1, 0}), cos));
  EXPECT_EQ(k.output.shape, (Shape{2, 1}));
  expect_exact(k.output, {0, 2});
  // anchor == positive: D(a, p) = 0 and its gradient is exactly 0 (certified through the
  // rational numerator), so the positive's gradient is exactly 0.
  const auto same =
      exact(twd("sum", f64({1, 2}, {1, 3}), f64({1, 2}, {1, 3}), f64({1, 2}, {2, -1}), cos), true);
  expect_exact(same.grads.at("positive"), {0, 0});
  EXPECT_TRUE(same.grads.at("positive").values[0].exact);
  expect_gradients_match_finite_differences(twd("mean", A, P, N, cos + R"(, "margin": 1.5)"));
  expect_gradients_match_finite_differences(
      twd("sum", A, P, N, cos + R"(, "margin": 1.5, "swap": true)"));
}

TEST(triplet_margin_with_distance_loss, RegisteredDistances) {
  // Built-in "squared_euclidean": sum (x - y)^2, no eps.
  const std::string sq = R"("distance_function": "squared_euclidean")";
  EXPECT_EQ(
      rounded_scalar(twd("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {1, 2}), f64({1, 2}, {2, 0}), sq)),
      2.0);
  // Unbatched (D): a 0-d output.
  const auto u = exact(
      twd("none", f64({2}, {0, 0}), f64({2}, {1, 2}), f64({2}, {2, 0}), sq + R"(, "margin": 0.5)"));
  EXPECT_EQ(u.output.shape, Shape{});
  expect_exact(u.output, {1.5});
  // Swap tie (d(a, n) = d(p, n) = 2): each gets g/2.
  const auto tie = exact(twd("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {2, 0}), f64({1, 2}, {1, 1}),
                             sq + R"(, "margin": 1, "swap": true)"),
                         true);
  expect_exact(tie.output, {3});                       // 4 + 1 - 2
  expect_exact(tie.grads.at("anchor"), {-4 + 1, 1});   // 2(a - p) - (2(a - n))/2
  expect_exact(tie.grads.at("positive"), {4 - 1, 1});  // -2(a - p) - (2(p - n))/2
  expect_exact(tie.grads.at("negative"), {0, -2});     // (2(a - n))/2 + (2(p - n))/2
  expect_gradients_match_finite_differences(twd("mean", A, P, N, sq + R"(, "margin": 6)"));

  // A user distance with a gradient: sum |x - y|^3, registered through distance.hpp.
  ref::DistanceFn cube;
  cube.value = [](const std::vector<ref::Real>& x, const std::vector<ref::Real>& y) {
    std::vector<ref::Real> t;
    for (std::size_t j = 0; j < x.size(); ++j) {
      const ref::Real d = abs(x[j] - y[j]);
      t.push_back(d * d * d);
    }
    return ref::sum(t);
  };
  cube.gradient = [](const std::vector<ref::Real>& x, const std::vector<ref::Real>& y,
                     std::vector<ref::Real>& dx, std::vector<ref::Real>& dy) {
    for (std::size_t j = 0; j < x.size(); ++j) {
      const ref::Real d = x[j] - y[j];
      dx[j] = 3 * d * abs(d);
      dy[j] = -dx[j];
    }
  };
  ref::register_distance("test_cube", cube);
  EXPECT_EQ(rounded_scalar(twd("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {1, -2}),
                               f64({1, 2}, {2, 0}), R"("distance_function": "test_cube")")),
            2.0);  // 9 + 1 - 8
  expect_gradients_match_finite_differences(
      twd("sum", A, P, N, R"("distance_function": "test_cube", "margin": 20, "swap": true)"));
  // A distance without a gradient: the forward works, gradients are refused.
  ref::DistanceFn l1;
  l1.value = [](const std::vector<ref::Real>& x, const std::vector<ref::Real>& y) {
    std::vector<ref::Real> t;
    for (std::size_t j = 0; j < x.size(); ++j) t.push_back(abs(x[j] - y[j]));
    return ref::sum(t);
  };
  ref::register_distance("test_l1", l1);
  const auto c = twd("sum", f64({1, 2}, {0, 0}), f64({1, 2}, {1, -2}), f64({1, 2}, {2, 0}),
                     R"("distance_function": "test_l1")");
  EXPECT_EQ(rounded_scalar(c), 2.0);
  try {
    (void)exact(c, true);
    ADD_FAILURE() << "gradient of a distance without one";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Value);
    EXPECT_NE(std::string(e.what()).find("without a gradient"), std::string::npos);
  }
  const auto names = ref::registered_distances();
  EXPECT_NE(std::find(names.begin(), names.end(), "squared_euclidean"), names.end());
  EXPECT_TRUE(ref::unregister_distance("test_l1"));
  EXPECT_FALSE(ref::unregister_distance("test_l1"));
  expect_error(c, ErrorKind::Value, "unknown distance_function 'test_l1'");
  EXPECT_THROW(ref::register_distance("cosine", cube), Error);
  EXPECT_THROW(ref::register_distance("", cube), Error);
  EXPECT_THROW(ref::register_distance("x", ref::DistanceFn{}), Error);
  EXPECT_TRUE(ref::unregister_distance("test_cube"));
}

TEST(triplet_margin_with_distance_loss, SpecialValuesAndErrors) {
  const auto e = f64({0, 2}, {});
  EXPECT_TRUE(std::isnan(rounded_scalar(twd("mean", e, e, e))));
  EXPECT_EQ(rounded_scalar(twd("sum", e, e, e, R"("distance_function": "cosine")")), 0.0);
  EXPECT_TRUE(
      std::isnan(rounded_scalar(twd("sum", f64({1, 2}, {NAN, 0}), f64({1, 2}, {0, 0}),
                                    f64({1, 2}, {1, 1}), R"("distance_function": "cosine")"))));
  EXPECT_TRUE(
      std::isnan(rounded_scalar(twd("sum", f64({1, 2}, {INFINITY, 0}), f64({1, 2}, {1, 0}),
                                    f64({1, 2}, {1, 1}), R"("distance_function": "cosine")"))));
  expect_error(twd("mean", A, f64({2}, {0, 0}), N), ErrorKind::ShapeMismatch,
               "anchor 2D, positive 1D, and negative 2D inputs");
  expect_error(twd("mean", A, f64({3, 2}, std::vector<double>(6, 0)), N), ErrorKind::ShapeMismatch,
               "must match");
  // 1 - F.cosine_similarity(x, y) uses dim = 1: 1-D inputs are out of range (IndexError).
  expect_error(twd("mean", f64({2}, {1, 0}), f64({2}, {1, 1}), f64({2}, {0, 1}),
                   R"("distance_function": "cosine")"),
               ErrorKind::Index, "Dimension out of range");
  expect_error(twd("mean", A, P, N, R"("distance_function": "no_such_distance")"), ErrorKind::Value,
               "unknown distance_function 'no_such_distance'");
}

TEST(triplet_margin_with_distance_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(twd("mean", A, P, N, R"("margin": 4)"));
  expect_gradients_match_finite_differences(twd("none", A, P, N, R"("margin": 4, "swap": true)",
                                                R"(, "grad_output": )" + f64({2}, {0.5, -2})));
  expect_gradients_match_finite_differences(
      twd("sum", tensor("float32", {2, 2}, {1, 2, -1, 0.5}), tensor("float32", {1, 2}, {0.25, -1}),
          tensor("float32", {2, 1}, {3, -2}), R"("margin": 2, "distance_function": "cosine")"));
}
