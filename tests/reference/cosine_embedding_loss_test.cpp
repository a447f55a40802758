#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;

namespace {
std::string cel(const std::string& reduction, const std::string& x1, const std::string& x2,
                const std::string& y, double margin = 0, const std::string& extra = "") {
  return R"({"loss": "cosine_embedding_loss", "reduction": ")" + reduction +
         R"(", "params": {"margin": ")" + hex_string(margin) + R"("}, "inputs": {"input1": )" + x1 +
         R"(, "input2": )" + x2 + R"(, "target": )" + y + "}" + extra + "}";
}
const double kEps = static_cast<double>(1e-12f);  // PyTorch's float EPSILON
}  // namespace

TEST(cosine_embedding_loss, ClosedForms) {
  // Orthogonal vectors: cos = 0 exactly.
  const auto a = tensor("float32", {2, 2}, {1, 0, 2, 0});
  const auto b = tensor("float32", {2, 2}, {0, 1, 0, 3});
  EXPECT_EQ(rounded_scalar(cel("sum", a, b, tensor("float32", {2}, {1, 1}))), 2.0);
  EXPECT_EQ(rounded_scalar(cel("sum", a, b, tensor("float32", {2}, {-1, -1}))), 0.0);
  EXPECT_EQ(rounded_scalar(cel("mean", a, b, tensor("float32", {2}, {1, -1}), -0.5)), 0.75);
  // Identical vectors: 1 - cos = 1 - 25 / (25 + eps) = eps / (25 + eps) with the float EPSILON.
  const auto v = tensor("float64", {1, 2}, {3, 4});
  const auto r = exact(cel("sum", v, v, tensor("float64", {1}, {1})));
  EXPECT_LE(ulp_error64(kEps / (25 + kEps), r.output.values[0]), 1.0);
  // float16: EPSILON rounds to 0, and 1 - cos is exactly 0.
  const auto h = tensor("float16", {1, 2}, {3, 4});
  const auto rh = exact(cel("sum", h, h, tensor("float16", {1}, {1})));
  EXPECT_EQ(rounded64(rh.output.values[0]), 0.0);
  EXPECT_TRUE(rh.output.values[0].exact);
  // Targets other than +-1 give 0; int64 targets work.
  EXPECT_EQ(rounded_scalar(cel("sum", a, b, tensor("float32", {2}, {0.5, 0}))), 0.0);
  EXPECT_EQ(rounded_scalar(cel("sum", a, b, itensor({2}, {1, 1}))), 2.0);
  // torch 2.2.2 float64, margin -0.5, 'none'.
  const auto t = exact(cel("none", tensor("float64", {3, 3}, {1, 2, 3, 0.5, -1, 2, 1, 0, -1}),
                           tensor("float64", {3, 3}, {2, -1, 0.5, 1, 1, 1, 0.25, 3, 1}),
                           tensor("float64", {3}, {1, -1, -1}), -0.5));
  const std::vector<double> want = {0.8250364469440816, 0.8779644730091283, 0.3328165362274443};
  for (std::size_t i = 0; i < 3; ++i) EXPECT_LE(ulp_error64(want[i], t.output.values[i]), 4.0) << i;
}

TEST(cosine_embedding_loss, EpsilonAndMarginRounding) {
  // A zero vector: cos = 0 / sqrt(eps (2 + eps)) = 0, so y = 1 gives 1 (float32, float64 and
  // bfloat16, where EPSILON stays nonzero), but float16 rounds EPSILON to 0: 0 / 0 = NaN
  // (all as torch 2.2.2 CPU).
  for (const char* dt : {"float32", "float64", "bfloat16"})
    EXPECT_EQ(rounded_scalar(cel("sum", tensor(dt, {1, 2}, {0, 0}), tensor(dt, {1, 2}, {1, 1}),
                                 tensor(dt, {1}, {1}))),
              1.0)
        << dt;
  EXPECT_TRUE(std::isnan(
      rounded_scalar(cel("sum", tensor("float16", {1, 2}, {0, 0}),
                         tensor("float16", {1, 2}, {1, 1}), tensor("float16", {1}, {1})))));
  // y = -1, cos = 0: the loss is -margin, with the margin rounded to the dtype.
  auto m = exact(cel("sum", tensor("float32", {2}, {1, 0}), tensor("float32", {2}, {0, 1}),
                     tensor("float32", {}, {-1}), -0.1));
  EXPECT_EQ(rounded64(m.output.values[0]), static_cast<double>(0.1f));
  m = exact(cel("sum", tensor("float16", {2}, {1, 0}), tensor("float16", {2}, {0, 1}),
                tensor("float16", {}, {-1}), -(0x1p-11 + 0x1p-30)));
  EXPECT_EQ(rounded64(m.output.values[0]), 0x1p-11);
}

TEST(cosine_embedding_loss, ShapesAndErrors) {
  // Unbatched (D) inputs with a 0-d target (torch 2.2.2: 0.7071067811860171).
  const auto u = exact(cel("none", tensor("float64", {2}, {1, 0}), tensor("float64", {2}, {1, 1}),
                           tensor("float64", {}, {-1})));
  EXPECT_EQ(u.output.shape, (Shape{}));
  EXPECT_LE(ulp_error64(0.7071067811860171, u.output.values[0]), 2.0);
  // Inputs broadcast: (2, 3) with (1, 3); a (1) target broadcasts over N; a (3) target over
  // a single row.
  EXPECT_EQ(exact(cel("none", tensor("float32", {2, 3}, std::vector<double>(6, 1)),
                      tensor("float32", {1, 3}, {1, 2, 3}), tensor("float32", {1}, {1})))
                .output.shape,
            (Shape{2}));
  const auto tb =
      exact(cel("none", tensor("float32", {1, 3}, {1, 1, 1}), tensor("float32", {1, 3}, {1, 1, 1}),
                tensor("float32", {3}, {1, -1, 1})));
  EXPECT_EQ(tb.output.shape, (Shape{3}));
  EXPECT_EQ(tb.output.rounded_value(1), 1.0);  // 3 / (3 + eps) rounds to 1 in float32
  // x2 of shape (N, 1): P uses the broadcast x2 but M2 sums x2's own row (torch 2.2.2 float64
  // sum over 2 rows of ones(2, 3) against [[1], [2]]: -1.4641016151360946).
  const auto bd = exact(cel("sum", tensor("float64", {2, 3}, std::vector<double>(6, 1)),
                            tensor("float64", {2, 1}, {1, 2}), tensor("float64", {2}, {1, 1})));
  EXPECT_LE(ulp_error64(-1.4641016151360946, bd.output.values[0]), 4.0);
  const auto f = [](const Shape& s) {
    return tensor("float32", s, std::vector<double>(numel(s), 1));
  };
  expect_error(cel("mean", f({2, 3}), f({2, 3}), f({2, 1})), ErrorKind::ShapeMismatch,
               "0D or 1D target tensor expected, multi-target not supported");
  expect_error(
      cel("mean", f({3}), f({3}), f({2})), ErrorKind::ShapeMismatch,
      "1D target tensor expects 2D input tensors, but found inputs with sizes [3] and [3].");
  expect_error(
      cel("mean", f({2, 3}), f({3}), f({2})), ErrorKind::ShapeMismatch,
      "1D target tensor expects 2D input tensors, but found inputs with sizes [2, 3] and [3].");
  expect_error(
      cel("mean", f({2, 3}), f({2, 3}), f({})), ErrorKind::ShapeMismatch,
      "0D target tensor expects 1D input tensors, but found inputs with sizes [2, 3] and [2, 3].");
  expect_error(
      cel("mean", f({3}), f({1, 3}), f({})), ErrorKind::ShapeMismatch,
      "0D target tensor expects 1D input tensors, but found inputs with sizes [3] and [1, 3].");
  expect_error(cel("mean", f({2, 3}), f({3, 3}), f({3})), ErrorKind::ShapeMismatch,
               "tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0");
  expect_error(cel("mean", f({2, 3}), f({2, 3}), f({3})), ErrorKind::ShapeMismatch,
               "tensor a (3) must match the size of tensor b (2) at non-singleton dimension 0");
}

TEST(cosine_embedding_loss, EmptyAndSpecialValues) {
  EXPECT_TRUE(
      std::isnan(rounded_scalar(cel("mean", tensor("float32", {0, 3}, {}),
                                    tensor("float32", {0, 3}, {}), tensor("float32", {0}, {})))));
  EXPECT_EQ(rounded_scalar(cel("sum", tensor("float32", {0, 3}, {}), tensor("float32", {0, 3}, {}),
                               tensor("float32", {0}, {}))),
            0.0);
  // D = 0: cos = 0 / eps = 0 (torch: [1, 1] for y = 1).
  const auto d0 = exact(cel("none", tensor("float32", {2, 0}, {}), tensor("float32", {2, 0}, {}),
                            tensor("float32", {2}, {1, -1})));
  EXPECT_EQ(d0.output.rounded_value(0), 1.0);
  EXPECT_EQ(d0.output.rounded_value(1), 0.0);
  const auto s =
      exact(cel("none", tensor("float64", {2, 2}, {NAN, 1, INFINITY, 1}),
                tensor("float64", {2, 2}, {1, 1, 1, 1}), tensor("float64", {2}, {-1, 1})));
  EXPECT_TRUE(std::isnan(s.output.rounded_value(0)));
  EXPECT_TRUE(std::isnan(s.output.rounded_value(1)));  // inf / inf
}

TEST(cosine_embedding_loss, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(
      cel("mean", tensor("float64", {3, 3}, {1, 2, 3, 0.5, -1, 2, 1, 0, -1}),
          tensor("float64", {3, 3}, {2, -1, 0.5, 1, 1, 1, 0.25, 3, 1}),
          tensor("float64", {3}, {1, -1, -1}), -0.5));
  // Broadcast rows and features, with grad_output.
  expect_gradients_match_finite_differences(
      cel("none", tensor("float32", {2, 3}, {1, 2, 3, 0.5, -1, 2}),
          tensor("float32", {2, 1}, {0.5, -2}), tensor("float32", {2}, {1, -1}), -0.25,
          R"(, "grad_output": )" + tensor("float32", {2}, {2, -0.5})));
  expect_gradients_match_finite_differences(cel("sum", tensor("float16", {1, 2}, {1, 2}),
                                                tensor("float16", {3, 2}, {0.5, 1, -1, 1, 2, 0.25}),
                                                itensor({3}, {1, -1, 1}), 0.125));
  expect_gradients_match_finite_differences(cel("sum", tensor("float64", {3}, {1, 2, -1}),
                                                tensor("float64", {3}, {0.5, 1, 1}),
                                                tensor("float64", {}, {1})));
}

TEST(cosine_embedding_loss, GradientValues) {
  // torch 2.2.2 float64, margin -0.5, y = [1, -1, -1], sum.
  const auto t = exact(cel("sum", tensor("float64", {3, 3}, {1, 2, 3, 0.5, -1, 2, 1, 0, -1}),
                           tensor("float64", {3, 3}, {2, -1, 0.5, 1, 1, 1, 0.25, 3, 1}),
                           tensor("float64", {3}, {1, -1, -1}), -0.5),
                       true);
  const std::vector<double> g1 = {-0.22078734076104073, 0.14163716199764642, -0.020828994411421532,
                                  0.21597969886236587,  0.32396954829352476, 0.10798984943120696,
                                  0.1393195531437546,   0.6687338550902229,  0.13931955314383826};
  const std::vector<double> g2 = {
      -0.04998958658741795,   -0.266611128466155,  -0.3332639105827048,
      4.2021941482062175e-14, -0.3779644730090862, 0.37796447300917024,
      0.2270649114592057,     0.04984351714957687, -0.20629677931354867};
  for (std::size_t i = 0; i < 9; ++i) {
    EXPECT_NEAR(t.grads.at("input1").rounded_value(i), g1[i], 1e-14) << i;
    EXPECT_NEAR(t.grads.at("input2").rounded_value(i), g2[i], 1e-14) << i;
  }
  EXPECT_EQ(t.grads.count("target"), 0u);
  // A zero x1 in float32: d/dx1 = -x2 / sqrt(eps (2 + eps)) (torch: -707106.8125).
  const auto z = exact(cel("sum", tensor("float32", {1, 2}, {0, 0}),
                           tensor("float32", {1, 2}, {1, 1}), tensor("float32", {1}, {1})),
                       true);
  EXPECT_LE(ulp_error64(-1 / std::sqrt(kEps * (2 + kEps)), z.grads.at("input1").values[0]), 2.0);
  EXPECT_EQ(z.grads.at("input2").rounded_value(0), 0.0);
  // x2 of shape (N, 1) against ones(N, 3), y = 1: d/dx1 = -x2 eps / (sqrt(M1 M2) M1), the
  // cancellation that torch gets only to a few digits (-1.924e-13) comes out exact.
  const auto bd = exact(cel("sum", tensor("float64", {2, 3}, std::vector<double>(6, 1)),
                            tensor("float64", {2, 1}, {1, 2}), tensor("float64", {2}, {1, 1})),
                        true);
  for (int n = 0; n < 2; ++n) {
    const double x2 = n + 1.0, m1 = 3 + kEps, m2 = x2 * x2 + kEps;
    const double want = -x2 * kEps / (std::sqrt(m1 * m2) * m1);
    EXPECT_LE(ulp_error64(want, bd.grads.at("input1").values[3 * static_cast<std::size_t>(n)]), 8.0)
        << n;
  }
}

TEST(cosine_embedding_loss, HingeAndDegenerateGradients) {
  // float16 (EPSILON = 0): x1 = [1, 1, 1, 1], x2 = [1, 1, 1, -1]: cos = 0.5 exactly = margin,
  // y = -1: the loss is 0 and the gradient passes (clamp_min inclusive). torch 2.2.2 float16:
  // x1.grad = [0.125, 0.125, 0.125, -0.375], x2.grad = [0.125, 0.125, 0.125, 0.375].
  const auto h =
      exact(cel("sum", tensor("float16", {1, 4}, {1, 1, 1, 1}),
                tensor("float16", {1, 4}, {1, 1, 1, -1}), tensor("float16", {1}, {-1}), 0.5),
            true);
  EXPECT_EQ(h.output.rounded_value(0), 0.0);
  const std::vector<double> g1 = {0.125, 0.125, 0.125, -0.375}, g2 = {0.125, 0.125, 0.125, 0.375};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(h.grads.at("input1").rounded_value(i), g1[i]) << i;
    EXPECT_EQ(h.grads.at("input2").rounded_value(i), g2[i]) << i;
  }
  // float64 (EPSILON > 0): cos = 2 / (4 + eps) < 0.5: below the hinge, everything is 0.
  const auto d =
      exact(cel("sum", tensor("float64", {1, 4}, {1, 1, 1, 1}),
                tensor("float64", {1, 4}, {1, 1, 1, -1}), tensor("float64", {1}, {-1}), 0.5),
            true);
  EXPECT_EQ(d.output.rounded_value(0), 0.0);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(d.grads.at("input1").rounded_value(i), 0.0);
  // float16 parallel vectors, y = 1: the gradient is exactly 0 (torch: 0), and so is a
  // component whose derivative vanishes: x1 = [1, 0], x2 = [1, 1] gives d/dx1_0 = 0
  // (torch 2.2.2 float16: x1.grad = [0, -0.707], x2.grad = [-0.3535, 0.3535]).
  const auto p = exact(cel("sum", tensor("float16", {1, 2}, {3, 4}),
                           tensor("float16", {1, 2}, {6, 8}), tensor("float16", {1}, {1})),
                       true);
  EXPECT_EQ(p.grads.at("input1").rounded_value(0), 0.0);
  EXPECT_EQ(p.grads.at("input2").rounded_value(1), 0.0);
  const auto q = exact(cel("sum", tensor("float16", {1, 2}, {1, 0}),
                           tensor("float16", {1, 2}, {1, 1}), tensor("float16", {1}, {1})),
                       true);
  EXPECT_EQ(q.grads.at("input1").rounded_value(0), 0.0);
  EXPECT_EQ(q.grads.at("input1").rounded_value(1), -0.70703125);
  EXPECT_EQ(q.grads.at("input2").rounded_value(0), -0.353515625);
  EXPECT_EQ(q.grads.at("input2").rounded_value(1), 0.353515625);
  // Zero vector in float16: NaN loss and NaN gradients (torch 2.2.2).
  const auto n = exact(cel("sum", tensor("float16", {1, 2}, {0, 0}),
                           tensor("float16", {1, 2}, {1, 1}), tensor("float16", {1}, {1})),
                       true);
  EXPECT_TRUE(std::isnan(n.grads.at("input1").rounded_value(0)));
  EXPECT_TRUE(std::isnan(n.grads.at("input2").rounded_value(1)));
}

TEST(cosine_embedding_loss, Float64CrossCheck) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd(0, 2);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> a(12), b(12), y(3);
    double s = 0;
    for (int n = 0; n < 3; ++n) {
      double p = 0, m1 = kEps, m2 = kEps;
      for (int k = 0; k < 4; ++k) {
        a[4 * n + k] = nd(rng);
        b[4 * n + k] = nd(rng);
        p += a[4 * n + k] * b[4 * n + k];
        m1 += a[4 * n + k] * a[4 * n + k];
        m2 += b[4 * n + k] * b[4 * n + k];
      }
      y[n] = (rng() & 1) ? 1 : -1;
      const double c = p / std::sqrt(m1 * m2);
      s += y[n] == 1 ? 1 - c : std::fmax(c - 0.25, 0);
    }
    const auto r = exact(cel("sum", tensor("float64", {3, 4}, a), tensor("float64", {3, 4}, b),
                             tensor("float64", {3}, y), 0.25));
    EXPECT_LE(ulp_error64(s, r.output.values[0]), 256.0);
  }
}
