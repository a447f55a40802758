#include <chrono>
#include <cmath>
#include <random>

#include "testing.hpp"

using namespace lossbench;
using namespace lossbench::testing;
using lossbench::ref::Real;

namespace {

std::string ctc(const std::string& reduction, const std::string& lp, const std::string& targets,
                const std::string& il, const std::string& tl, const std::string& params = "{}",
                const std::string& extra = "") {
  return R"({"loss": "ctc_loss", "reduction": ")" + reduction + R"(", "params": )" + params +
         R"(, "inputs": {"log_probs": )" + lp + R"(, "targets": )" + targets +
         R"(, "input_lengths": )" + il + R"(, "target_lengths": )" + tl + "}" + extra + "}";
}

struct Bits {
  long saved;
  explicit Bits(long b) : saved(ref::working_bits()) { ref::set_working_bits(b); }
  ~Bits() { ref::set_working_bits(saved); }
};

// log_softmax in double of normal draws: log-probabilities normalised to rounding.
std::vector<double> random_log_probs(std::mt19937_64& rng, std::int64_t frames, std::int64_t C,
                                     double scale = 1.5) {
  std::normal_distribution<double> nd(0, scale);
  std::vector<double> out;
  for (std::int64_t f = 0; f < frames; ++f) {
    std::vector<double> z(static_cast<std::size_t>(C));
    double mx = -INFINITY, s = 0;
    for (auto& v : z) mx = std::max(mx, v = nd(rng));
    for (auto v : z) s += std::exp(v - mx);
    for (auto v : z) out.push_back(v - mx - std::log(s));
  }
  return out;
}

// Brute force at 400 bits: P = sum over all C^L label paths whose collapse (merge repeats, drop
// blanks) is the target of prod_t exp(lp[t][pi_t]); returns -log P. lp is (T, N, C) row-major.
Real brute_nll(const std::vector<double>& lp, std::int64_t N, std::int64_t C, std::int64_t b,
               std::int64_t L, const std::vector<std::int64_t>& target, std::int64_t blank) {
  Bits bits(400);
  std::vector<Real> terms;
  std::vector<std::int64_t> path(static_cast<std::size_t>(L), 0);
  for (;;) {
    std::vector<std::int64_t> out;
    std::int64_t prev = -1;
    for (auto k : path) {
      if (k != prev && k != blank) out.push_back(k);
      prev = k;
    }
    if (out == target) {
      Real s(0);
      for (std::int64_t t = 0; t < L; ++t)
        s +=
            Real(lp[static_cast<std::size_t>((t * N + b) * C + path[static_cast<std::size_t>(t)])]);
      terms.push_back(ref::exp(s));
    }
    std::size_t i = 0;
    while (i < path.size() && ++path[i] == C) path[i++] = 0;
    if (i == path.size()) break;
  }
  return terms.empty() ? ref::infinity() : Real(-ref::log(ref::sum(terms)));
}

void expect_close(const Real& got, const Real& want, double rel = 1e-40) {
  Bits bits(400);
  if (ref::isinf(want) || ref::isnan(want)) {
    EXPECT_EQ(ref::decimal_string(got), ref::decimal_string(want));
    return;
  }
  const Real err = abs(got - want);
  const Real bound = Real(rel) * ref::maximum(abs(want), Real(1e-300));
  EXPECT_LE(err, bound) << "got " << ref::decimal_string(got) << " want "
                        << ref::decimal_string(want);
}

std::string f64(const Shape& s, const std::vector<double>& v) { return tensor("float64", s, v); }
std::string i64(const Shape& s, const std::vector<std::int64_t>& v) { return itensor(s, v); }

// log_probs of the torch cross-checks: torch.manual_seed(3); torch.randn(4,2,3).log_softmax(2).
const std::vector<double> kTorchLp = {
    -0x1.951ebc6f940e8p+0, -0x1.37d3b80889126p+0, -0x1.642ee6db29feap-1, -0x1.841b5c69eea63p-1,
    -0x1.d47234c3c6214p+0, -0x1.fbb697d4cb513p-1, -0x1.57324bdb5d2fcp+0, -0x1.1582cc04b8ec1p+0,
    -0x1.d508a950838e0p-1, -0x1.68383a7f95fb0p+0, -0x1.07ea26a1774e3p+0, -0x1.d71a73aadb4e6p-1,
    -0x1.980f14d245e61p-3, -0x1.1e03a59bfa6a8p+1, -0x1.4df4bb1abdb30p+1, -0x1.075240b75e36dp+0,
    -0x1.3f82953ce2947p+0, -0x1.08ce92aa99fc6p+0, -0x1.f572689dd647fp-1, -0x1.618888338ff77p+1,
    -0x1.27afc0f490c64p-1, -0x1.b80293314d3e6p-1, -0x1.16c53c2f5cf29p+0, -0x1.6d547f885c5acp+0};

// Plain double log-space CTC (PyTorch's CPU algorithm) for the float64 cross-check.
double double_nll(const std::vector<double>& lp, std::int64_t N, std::int64_t C, std::int64_t b,
                  std::int64_t L, const std::vector<std::int64_t>& tg, std::int64_t blank) {
  const std::int64_t S = static_cast<std::int64_t>(tg.size()), n = 2 * S + 1;
  auto lab = [&](std::int64_t s) { return s % 2 ? tg[static_cast<std::size_t>(s / 2)] : blank; };
  auto P = [&](std::int64_t t, std::int64_t k) {
    return lp[static_cast<std::size_t>((t * N + b) * C + k)];
  };
  std::vector<double> a(static_cast<std::size_t>(n), -INFINITY);
  a[0] = P(0, blank);
  if (S > 0) a[1] = P(0, lab(1));
  for (std::int64_t t = 1; t < L; ++t) {
    std::vector<double> na(static_cast<std::size_t>(n));
    for (std::int64_t s = 0; s < n; ++s) {
      const double a1 = a[static_cast<std::size_t>(s)];
      const double a2 = s > 0 ? a[static_cast<std::size_t>(s - 1)] : -INFINITY;
      const double a3 =
          s > 1 && lab(s - 2) != lab(s) ? a[static_cast<std::size_t>(s - 2)] : -INFINITY;
      double m = std::max({a1, a2, a3});
      if (m == -INFINITY) m = 0;
      na[static_cast<std::size_t>(s)] =
          std::log(std::exp(a1 - m) + std::exp(a2 - m) + std::exp(a3 - m)) + m + P(t, lab(s));
    }
    a = na;
  }
  if (S == 0) return -a[0];
  const double l1 = a[static_cast<std::size_t>(n - 1)], l2 = a[static_cast<std::size_t>(n - 2)];
  double m = std::max(l1, l2);
  if (m == -INFINITY) m = 0;
  return -(std::log(std::exp(l1 - m) + std::exp(l2 - m)) + m);
}

}  // namespace

// ---------------------------------------------------------------- forward

TEST(ctc_loss, ClosedFormsCountAlignments) {
  // Unnormalised log_probs 0: every alignment has probability 1, nll = -log(#alignments).
  // Target [1] in 3 frames over {0, 1}: the 1s form one block, 3 + 2 + 1 = 6 alignments.
  const auto z3 = f64({3, 1, 2}, std::vector<double>(6, 0.0));
  const auto r = exact(ctc("none", z3, i64({1, 1}, {1}), i64({1}, {3}), i64({1}, {1})));
  {
    Bits bits(300);
    EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
              ref::decimal_string(-ref::log(Real(6))));
  }
  // One frame, probability 1: nll exactly 0 (exact, not just rounded).
  const auto one =
      exact(ctc("sum", f64({1, 2}, {-INFINITY, 0}), i64({1}, {1}), i64({}, {1}), i64({}, {1})));
  EXPECT_TRUE(one.output.values[0].exact);
  EXPECT_EQ(one.output.rounded_value(0), 0.0);
  // Repeated labels need a blank between them: target [1, 1] in 3 frames has the single
  // alignment 1 0 1, so nll = -(lp0[1] + lp1[0] + lp2[1]).
  const std::vector<double> lp = {-0.75, -0.5, -0.125, -2.5, -3.0, -0.25};
  const auto rep = exact(ctc("sum", f64({3, 2}, lp), i64({2}, {1, 1}), i64({}, {3}), i64({}, {2})));
  EXPECT_EQ(rep.output.rounded_value(0), 0.5 + 0.125 + 0.25);
  // ... and in 2 frames it is infeasible (+inf), whereas [1, 2] fits in 2 frames.
  EXPECT_EQ(rounded_scalar(ctc("sum", f64({2, 3}, {-1, -1, -1, -1, -1, -1}), i64({2}, {1, 1}),
                               i64({}, {2}), i64({}, {2}))),
            INFINITY);
  EXPECT_EQ(rounded_scalar(ctc("sum", f64({2, 3}, {-1, -1, -1, -1, -1, -1}), i64({2}, {1, 2}),
                               i64({}, {2}), i64({}, {2}))),
            2.0);
}

TEST(ctc_loss, MatchesBruteForceOverAllPaths) {
  std::mt19937_64 rng(11);
  struct Cfg {
    std::int64_t T, C, blank;
    std::vector<std::int64_t> il, tl;
    std::vector<std::vector<std::int64_t>> targets;
  };
  const std::vector<Cfg> cfgs = {
      {4, 3, 0, {4, 3, 4}, {2, 1, 0}, {{1, 2}, {2}, {}}},
      {5, 3, 0, {5, 5, 4}, {2, 2, 3}, {{1, 1}, {2, 1}, {1, 1, 1}}},  // repeats; last is infeasible
      {6, 2, 1, {6, 5}, {2, 3}, {{0, 0}, {0, 0, 0}}},                // blank 1, repeats
      {5, 4, 2, {5, 2}, {3, 1}, {{0, 3, 1}, {3}}},                   // blank in the middle
      {6, 3, 0, {6, 1}, {3, 1}, {{1, 2, 1}, {2}}},
  };
  for (const auto& cfg : cfgs) {
    const std::int64_t N = static_cast<std::int64_t>(cfg.il.size());
    const auto lp = random_log_probs(rng, cfg.T * N, cfg.C);
    std::int64_t S = 0;
    for (auto l : cfg.tl) S = std::max(S, l);
    std::vector<std::int64_t> padded(static_cast<std::size_t>(N * S), cfg.blank), concat;
    for (std::int64_t b = 0; b < N; ++b)
      for (std::size_t i = 0; i < cfg.targets[static_cast<std::size_t>(b)].size(); ++i) {
        padded[static_cast<std::size_t>(b * S) + i] = cfg.targets[static_cast<std::size_t>(b)][i];
        concat.push_back(cfg.targets[static_cast<std::size_t>(b)][i]);
      }
    const std::string params = R"({"blank": )" + std::to_string(cfg.blank) + "}";
    const auto lpj = f64({cfg.T, N, cfg.C}, lp);
    const auto r =
        exact(ctc("none", lpj, i64({N, S}, padded), i64({N}, cfg.il), i64({N}, cfg.tl), params));
    const auto rc = exact(ctc("none", lpj, i64({static_cast<std::int64_t>(concat.size())}, concat),
                              i64({N}, cfg.il), i64({N}, cfg.tl), params));
    ASSERT_EQ(r.output.shape, (Shape{N}));
    for (std::int64_t b = 0; b < N; ++b) {
      const auto ub = static_cast<std::size_t>(b);
      const Real want = brute_nll(lp, N, cfg.C, b, cfg.il[ub], cfg.targets[ub], cfg.blank);
      expect_close(r.output.values[ub].value, want);
      EXPECT_EQ(ref::decimal_string(rc.output.values[ub].value),
                ref::decimal_string(r.output.values[ub].value));
    }
  }
}

TEST(ctc_loss, ReductionsAndZeroInfinity) {
  std::mt19937_64 rng(5);
  const auto lp = random_log_probs(rng, 5 * 3, 3);
  const auto lpj = f64({5, 3, 3}, lp);
  // Sample 2 has an infeasible target ([1, 1, 1] needs 5 frames, it has 4).
  const auto tg = i64({3, 3}, {1, 2, 0, 2, 2, 0, 1, 1, 1});
  const auto il = i64({3}, {5, 3, 4});
  const auto tl = i64({3}, {2, 0, 3});
  const auto none = exact(ctc("none", lpj, tg, il, tl));
  EXPECT_EQ(none.output.rounded_value(2), INFINITY);
  const auto zi = exact(ctc("none", lpj, tg, il, tl, R"({"zero_infinity": true})"));
  EXPECT_EQ(zi.output.rounded_value(2), 0.0);
  EXPECT_EQ(ref::decimal_string(zi.output.values[0].value),
            ref::decimal_string(none.output.values[0].value));
  EXPECT_EQ(rounded_scalar(ctc("sum", lpj, tg, il, tl)), INFINITY);
  EXPECT_EQ(rounded_scalar(ctc("mean", lpj, tg, il, tl)), INFINITY);
  // mean = mean over the batch of nll_b / max(target_length_b, 1) (checked with torch 2.2.2;
  // not sum(nll) / sum(target_lengths)).
  const auto mean = exact(ctc("mean", lpj, tg, il, tl, R"({"zero_infinity": true})"));
  const auto sum = exact(ctc("sum", lpj, tg, il, tl, R"({"zero_infinity": true})"));
  {
    Bits bits(400);
    const Real n0 = none.output.values[0].value, n1 = none.output.values[1].value;
    expect_close(mean.output.values[0].value, (n0 / 2 + n1 / 1 + 0) / 3);
    expect_close(sum.output.values[0].value, n0 + n1);
  }
  // -inf is not replaced by zero_infinity, NaN neither.
  std::vector<double> nanlp = lp;
  nanlp[(0 * 3 + 1) * 3 + 0] = NAN;  // t = 0, sample 1, blank (used)
  const auto rn =
      exact(ctc("none", f64({5, 3, 3}, nanlp), tg, il, tl, R"({"zero_infinity": true})"));
  EXPECT_TRUE(std::isnan(rn.output.rounded_value(1)));
}

TEST(ctc_loss, ShapesUnbatchedAndEmpty) {
  std::mt19937_64 rng(9);
  const auto lp = random_log_probs(rng, 4, 3);
  const auto batched =
      exact(ctc("none", f64({4, 1, 3}, lp), i64({1, 2}, {1, 2}), i64({1}, {4}), i64({1}, {2})));
  ASSERT_EQ(batched.output.shape, (Shape{1}));
  // Unbatched (T, C): 1-D targets of exactly target_length elements, 0-d lengths, 0-d output.
  const auto unb =
      exact(ctc("none", f64({4, 3}, lp), i64({2}, {1, 2}), i64({}, {4}), i64({}, {2})));
  ASSERT_EQ(unb.output.shape, Shape{});
  EXPECT_EQ(ref::decimal_string(unb.output.values[0].value),
            ref::decimal_string(batched.output.values[0].value));
  // torch 2.2.2 also accepts (1, S) padded targets and (1) lengths when unbatched.
  const auto unb2 =
      exact(ctc("none", f64({4, 3}, lp), i64({1, 3}, {1, 2, 7}), i64({1}, {4}), i64({1}, {2})));
  ASSERT_EQ(unb2.output.shape, Shape{});
  EXPECT_EQ(ref::decimal_string(unb2.output.values[0].value),
            ref::decimal_string(batched.output.values[0].value));
  expect_error(ctc("none", f64({4, 3}, lp), i64({3}, {1, 2, 1}), i64({}, {4}), i64({}, {2})),
               ErrorKind::ShapeMismatch,
               "Expected tensor to have size 2 at dimension 0, but got size 3");
  // Unbatched mean divides by the target length.
  {
    const auto m =
        exact(ctc("mean", f64({4, 3}, lp), i64({2}, {1, 2}), i64({}, {4}), i64({}, {2})));
    Bits bits(400);
    expect_close(m.output.values[0].value, unb.output.values[0].value / 2);
  }
  // Padding beyond a sample's length is ignored (even out-of-range values).
  const auto pad = exact(
      ctc("none", f64({4, 1, 3}, lp), i64({1, 4}, {1, 2, -5, 9}), i64({1}, {4}), i64({1}, {2})));
  EXPECT_EQ(ref::decimal_string(pad.output.values[0].value),
            ref::decimal_string(batched.output.values[0].value));
  // Input length shorter than T: frames from input_length on are not read (NaN there is harmless).
  std::vector<double> lp2 = lp;
  for (std::size_t i = 9; i < 12; ++i) lp2[i] = NAN;
  const auto shortl =
      exact(ctc("none", f64({4, 3}, lp2), i64({2}, {1, 2}), i64({}, {3}), i64({}, {2})));
  {
    Bits bits(400);
    std::vector<double> lp3(lp.begin(), lp.begin() + 9);
    expect_close(shortl.output.values[0].value, brute_nll(lp3, 1, 3, 0, 3, {1, 2}, 0));
  }
  // Empty batch: 'none' gives (0), sum 0, mean NaN (torch 2.2.2).
  const auto e = f64({5, 0, 4}, {});
  EXPECT_EQ(exact(ctc("none", e, i64({0, 3}, {}), i64({0}, {}), i64({0}, {}))).output.shape,
            (Shape{0}));
  EXPECT_EQ(rounded_scalar(ctc("sum", e, i64({0}, {}), i64({0}, {}), i64({0}, {}))), 0.0);
  EXPECT_TRUE(
      std::isnan(rounded_scalar(ctc("mean", e, i64({0, 3}, {}), i64({0}, {}), i64({0}, {})))));
}

TEST(ctc_loss, ZeroInputLengthUsesTheLaterDefinition) {
  // Undefined in PyTorch 2.2; lossbench uses PR #123193 (2.4): 0 for an empty target, else +inf.
  const auto lp = f64({2, 2, 3}, std::vector<double>(12, -1.0));
  const auto r =
      exact(ctc("none", lp, i64({2, 1}, {1, 2}), i64({2}, {0, 0}), i64({2}, {0, 1})), true);
  EXPECT_EQ(r.output.rounded_value(0), 0.0);
  EXPECT_EQ(r.output.rounded_value(1), INFINITY);
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(r.grads.at("log_probs").rounded_value(i), 0.0);
  EXPECT_EQ(rounded_scalar(ctc("sum", lp, i64({2, 1}, {1, 2}), i64({2}, {0, 0}), i64({2}, {0, 1}),
                               R"({"zero_infinity": true})")),
            0.0);
}

TEST(ctc_loss, SpecialValuesFollowTheLogSpaceFormula) {
  // Checked against torch 2.2.2 (float64).
  const std::vector<double> base = {-1, -0.5, -2, -0.25, -1.5, -1, -0.75, -0.5, -1.25};  // (3, 3)
  auto one = [&](std::vector<double> v, std::vector<std::int64_t> tg) {
    return exact(ctc("sum", f64({3, 3}, v), i64({static_cast<std::int64_t>(tg.size())}, tg),
                     i64({}, {3}), i64({}, {static_cast<std::int64_t>(tg.size())})));
  };
  // NaN on a label the target never uses: no effect. On a used label: NaN.
  auto v = base;
  v[2] = NAN;
  EXPECT_EQ(ref::decimal_string(one(v, {1}).output.values[0].value),
            ref::decimal_string(one(base, {1}).output.values[0].value));
  v = base;
  v[1] = NAN;
  EXPECT_TRUE(std::isnan(one(v, {1}).output.rounded_value(0)));
  // -inf: probability 0. Blocking every alignment gives +inf.
  v = base;
  v[1] = v[4] = v[7] = -INFINITY;
  EXPECT_EQ(one(v, {1}).output.rounded_value(0), INFINITY);
  v = base;
  v[1] = -INFINITY;  // 1 not at t = 0: alignments 0 1 x, 0 0 1
  {
    const auto r = one(v, {1});
    Bits bits(400);
    std::vector<double> w = v;
    expect_close(r.output.values[0].value, brute_nll(w, 1, 3, 0, 3, {1}, 0));
  }
  // +inf on a reachable state at t = 0: alpha is +inf, and the next log-sum-exp (max trick)
  // gives inf - inf = NaN, as in PyTorch.
  v = base;
  v[1] = INFINITY;
  EXPECT_TRUE(std::isnan(one(v, {1}).output.rounded_value(0)));
  // ... with an empty target the final state is read without log-sum-exp, at t = L - 1:
  v = base;
  v[6] = INFINITY;  // t = 2, blank
  EXPECT_EQ(one(v, {}).output.rounded_value(0), -INFINITY);
}

TEST(ctc_loss, Errors) {
  const auto lp = f64({3, 2, 3}, std::vector<double>(18, -1.0986));
  const auto tg = i64({2, 2}, {1, 2, 2, 1});
  const auto il = i64({2}, {3, 3});
  const auto tl = i64({2}, {2, 1});
  expect_error(ctc("mean", lp, tg, il, tl, R"({"blank": 3})"), ErrorKind::Value,
               "blank must be in label range");
  expect_error(ctc("mean", lp, tg, il, tl, R"({"blank": -1})"), ErrorKind::Value,
               "blank must be in label range");
  expect_error(ctc("mean", lp, tg, i64({3}, {3, 3, 3}), tl), ErrorKind::ShapeMismatch,
               "input_lengths must be of size batch_size");
  expect_error(ctc("mean", lp, tg, il, i64({1}, {2})), ErrorKind::ShapeMismatch,
               "target_lengths must be of size batch_size");
  expect_error(ctc("mean", lp, tg, i64({2}, {4, 3}), tl), ErrorKind::Value,
               "Expected input_lengths to have value at most 3, but got value 4");
  expect_error(ctc("mean", lp, i64({5}, {1, 2, 2, 1, 1}), il, tl), ErrorKind::ShapeMismatch,
               "Expected tensor to have size 3 at dimension 0, but got size 5");
  expect_error(ctc("mean", lp, i64({2, 1}, {1, 2}), il, tl), ErrorKind::ShapeMismatch,
               "Expected tensor to have size at least 2 at dimension 1, but got size 1");
  expect_error(ctc("mean", lp, i64({1, 2}, {1, 2}), il, tl), ErrorKind::ShapeMismatch,
               "Expected tensor to have size 2 at dimension 0, but got size 1");
  expect_error(ctc("mean", lp, i64({1, 2, 2}, {1, 2, 2, 1}), il, tl), ErrorKind::ShapeMismatch,
               "Expected 1 to 2 dimensions, but got 3-dimensional tensor");
  expect_error(
      ctc("mean", f64({3, 2, 3, 1}, std::vector<double>(18, -1.0)), tg, il, tl),
      ErrorKind::ShapeMismatch,
      "Expected 3-dimensional tensor, but got 5-dimensional tensor for argument #1 'log_probs'");
  expect_error(ctc("mean", f64({3}, {-1, -1, -1}), tg, il, tl), ErrorKind::ShapeMismatch,
               "Expected 3-dimensional tensor, but got 2-dimensional");
  expect_error(ctc("mean", tensor("float16", {3, 2, 3}, std::vector<double>(18, -1.0)), tg, il, tl),
               ErrorKind::Type, "not implemented for 'Half'");
  expect_error(
      ctc("mean", tensor("bfloat16", {3, 2, 3}, std::vector<double>(18, -1.0)), tg, il, tl),
      ErrorKind::Type, "not implemented for 'BFloat16'");
  // Undefined behaviour in PyTorch 2.2, rejected (spec policy 5).
  expect_error(ctc("mean", lp, tg, i64({2}, {3, -1}), tl), ErrorKind::Value,
               "Expected input_lengths to have value at least 0, but got value -1");
  expect_error(ctc("mean", lp, tg, il, i64({2}, {2, -1})), ErrorKind::Value,
               "Expected target_lengths to have value at least 0, but got value -1");
  expect_error(ctc("mean", lp, i64({2, 2}, {1, 3, 2, 1}), il, tl), ErrorKind::Index,
               "Target 3 is out of bounds");
  expect_error(ctc("mean", lp, i64({2, 2}, {1, 2, -1, 1}), il, tl), ErrorKind::Index,
               "Target -1 is out of bounds");
  expect_error(ctc("mean", lp, i64({2, 2}, {0, 2, 2, 1}), il, tl), ErrorKind::Value,
               "Target 0 equals the blank label");
  expect_error(ctc("mean", lp, tg, il, tl, R"({"blank": 2})"), ErrorKind::Value,
               "Target 2 equals the blank label");
}

TEST(ctc_loss, Float64CrossCheck) {
  std::mt19937_64 rng(21);
  std::uniform_int_distribution<std::int64_t> lab(1, 4);
  for (int trial = 0; trial < 6; ++trial) {
    const std::int64_t T = 12, N = 2, C = 5;
    const auto lp = random_log_probs(rng, T * N, C);
    std::vector<std::int64_t> tg(8);
    for (auto& x : tg) x = lab(rng);
    const std::vector<std::int64_t> il = {12, 10}, tl = {4, 3};
    const auto r =
        exact(ctc("none", f64({T, N, C}, lp), i64({N, 4}, tg), i64({N}, il), i64({N}, tl)));
    for (std::int64_t b = 0; b < N; ++b) {
      const auto ub = static_cast<std::size_t>(b);
      const std::vector<std::int64_t> t(tg.begin() + b * 4, tg.begin() + b * 4 + tl[ub]);
      EXPECT_LE(ulp_error64(double_nll(lp, N, C, b, il[ub], t, 0), r.output.values[ub]), 64.0);
    }
  }
}

TEST(ctc_loss, LongSequenceSanity) {
  // T = 300, 60 labels with repeats: against the double log-space algorithm; and fast enough.
  std::mt19937_64 rng(4);
  const std::int64_t T = 300, C = 6, S = 60;
  const auto lp = random_log_probs(rng, T, C, 3.0);
  std::uniform_int_distribution<std::int64_t> lab(1, 5);
  std::vector<std::int64_t> tg(static_cast<std::size_t>(S));
  for (auto& x : tg) x = lab(rng);
  tg[10] = tg[11] = tg[12];
  const auto start = std::chrono::steady_clock::now();
  const auto r =
      exact(ctc("mean", f64({T, 1, C}, lp), i64({1, S}, tg), i64({1}, {T}), i64({1}, {S})), true);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(secs, 10.0);
  const double d = double_nll(lp, 1, C, 0, T, tg, 0) / S;
  EXPECT_NEAR(r.output.rounded_value(0), d, 1e-11 * std::abs(d));
  // Posteriors sum to 1 per frame: sum_c grad = (sum_c exp(lp) - 1) / S ~ 0 for normalised lp.
  for (std::int64_t t = 0; t < T; t += 37) {
    double s = 0;
    for (std::int64_t k = 0; k < C; ++k)
      s += r.grads.at("log_probs").rounded_value(static_cast<std::size_t>(t * C + k));
    EXPECT_NEAR(s, 0.0, 1e-15);
  }
}

TEST(ctc_loss, TorchFloat64Values) {
  // From torch 2.2.2: ctc_loss(lp, [[1,1],[2,0]], [4,3], [2,1]) in float64 (kTorchLp).
  const auto lpj = f64({4, 2, 3}, kTorchLp);
  const auto tg = i64({2, 2}, {1, 1, 2, 0});
  const auto il = i64({2}, {4, 3});
  const auto tl = i64({2}, {2, 1});
  const auto none = exact(
      ctc("none", lpj, tg, il, tl, "{}", R"(, "grad_output": )" + f64({2}, {1.0, -0.5})), true);
  EXPECT_LE(ulp_error64(0x1.0701f4257c83cp+2, none.output.values[0]), 4.0);
  EXPECT_LE(ulp_error64(0x1.2a5ea099b7a84p+0, none.output.values[1]), 4.0);
  const std::vector<double> grad = {-0x1.beb242c7762e0p-7,
                                    -0x1.f0c021b648ec3p-2,
                                    0x1.feb5b3cc849e7p-2,
                                    0x1.6d65a5942150cp-5,
                                    -0x1.48920a66e5a75p-4,
                                    0x1.23be6f39a9fe0p-5,
                                    -0x1.a15ff4be2ae26p-3,
                                    -0x1.91ff159d5dc96p-3,
                                    0x1.99af852dc4573p-2,
                                    -0x1.43d43b8006b10p-8,
                                    -0x1.6d3d7d32aeb72p-3,
                                    0x1.775c1f0eaeec5p-3,
                                    0x1.4e222a5479b90p-5,
                                    -0x1.d48e62bb92f74p-4,
                                    0x1.2d7d4d9156198p-4,
                                    0x1.0acf5f6883304p-4,
                                    -0x1.25f161a4ae528p-3,
                                    0x1.411363e0d9744p-4,
                                    0x1.7ce510b5bd756p-3,
                                    -0x1.7e9b05c80b593p-1,
                                    0x1.1f61c19a9bfbcp-1,
                                    0,
                                    0,
                                    0};
  for (std::size_t i = 0; i < grad.size(); ++i) {
    // absolute tolerance: torch rounds in its log-space recursion (a few ulps of 0.5)
    EXPECT_NEAR(none.grads.at("log_probs").rounded_value(i), grad[i], 2e-15) << i;
  }
  EXPECT_LE(ulp_error64(0x1.9c3144725857ep+0, exact(ctc("mean", lpj, tg, il, tl)).output.values[0]),
            4.0);
  // Unnormalised log_probs lp * 0.5 + 0.25, reduction sum: torch returns exp(lp) - posterior.
  std::vector<double> lu(kTorchLp);
  for (auto& x : lu) x = x * 0.5 + 0.25;
  const auto su = exact(ctc("sum", f64({4, 2, 3}, lu), tg, il, tl), true);
  EXPECT_LE(ulp_error64(-0x1.85549dce0c48ap-1, su.output.values[0]), 8.0);
  const std::vector<double> gu = {0x1.73c450c6f81b8p-2,
                                  -0x1.52ad7a34195c0p-4,
                                  0x1.d047dffe6b0b2p-1,
                                  0x1.66668cedea8f8p-2,
                                  0x1.0753521ad65cdp-1,
                                  0x1.3e7f2876701c5p-2,
                                  0x1.1bbd02d9f53dcp-3,
                                  0x1.0f6bfd49c2694p-2,
                                  0x1.9fd5406e7cb14p-1,
                                  0x1.6a4b763288ca3p-2,
                                  0x1.88a1245f762a9p-1,
                                  0x1.793a5e3e411c0p-4,
                                  0x1.cc436157dc05cp-2,
                                  0x1.102fde42f1d00p-3,
                                  0x1.64b8c91caa945p-2,
                                  0x1.19d643c517ca9p-2,
                                  0x1.603a9e90480dfp-1,
                                  0x1.083960da92016p-2,
                                  0x1.2a98942ec1128p-1,
                                  -0x1.e4fad9cd238d3p-2,
                                  0x1.ec894d6f66bf0p-1,
                                  0,
                                  0,
                                  0};
  for (std::size_t i = 0; i < gu.size(); ++i)
    EXPECT_NEAR(su.grads.at("log_probs").rounded_value(i), gu[i], 2e-15) << i;
}

// ---------------------------------------------------------------- gradients

namespace {

// Checks the log_probs gradient of a case at 640 bits against central finite differences
// (step 2^-100) of the forward, element by element. gb[b] is the upstream gradient of sample b's
// nll as the test expects it (g_b, g, or g / (N max(S_b, 1)); 0 for a sample zeroed by
// zero_infinity). For t < input_length:
//  - PyTorch's formula: grad = d(loss)/d lp + gb exp(lp) (to 25 digits);
//  - when the case's log_probs are normalised (float64 log_softmax): grad is the gradient of
//    z -> loss(log_softmax(z)) at z = log_probs. log_softmax(z) = z - lse_t(z) on each frame,
//    and shifting frame t (< input_length) by a constant k changes nll_b by -k (each alignment
//    takes one label per frame: checked in ShiftingAFrameShiftsTheLoss), so loss(log_softmax(z))
//    = loss(z) + sum_{b, t < L_b} gb lse_t(z); its finite differences under a perturbation of
//    z[t,b,c] are those of loss(z) plus gb (lse_t(z + h e_c) - lse_t(z - h e_c)) / 2h. Agreement
//    to 1e-13: float64 log_probs are normalised only to rounding, and the composite gradient
//    has softmax(z) where PyTorch has exp(lp).
// For t >= input_length both are exactly 0.
void check_gradient(const std::string& json, const std::vector<double>& gb, bool normalised) {
  const Case c = parse(json);
  Bits bits(640);
  const auto an = ref::evaluate_once({c, true, nullptr});
  const auto& G = an.grads.at("log_probs").data;
  const Tensor& lpt = c.input("log_probs");
  ASSERT_EQ(an.grads.at("log_probs").shape, lpt.shape);
  const bool batched = lpt.dim() == 3;
  const std::int64_t T = lpt.shape[0], N = batched ? lpt.shape[1] : 1, C = lpt.shape.back();
  const auto& il = c.input("input_lengths").ints;
  std::vector<Real> w(an.output.data.size(), Real(1));
  if (c.grad_output)
    for (std::size_t j = 0; j < w.size(); ++j) w[j] = Real(c.grad_output->values[j]);
  auto weighted = [&](const ref::Evaluation& e) {
    std::vector<Real> t;
    for (std::size_t j = 0; j < e.output.data.size(); ++j) t.push_back(e.output.data[j] * w[j]);
    return ref::sum(t);
  };
  const Real h = ldexp(Real(1), -100);
  Real scale(0);
  for (const auto& v : G) scale = ref::maximum(scale, abs(v));
  if (ref::iszero(scale)) scale = 1;
  auto lse = [&](std::int64_t t, std::int64_t b, std::int64_t k, const Real& d) {
    std::vector<Real> terms;
    for (std::int64_t j = 0; j < C; ++j) {
      Real z(lpt.values[static_cast<std::size_t>((t * N + b) * C + j)]);
      if (j == k) z += d;
      terms.push_back(ref::exp(z));
    }
    return ref::log(ref::sum(terms));
  };
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t b = 0; b < N; ++b)
      for (std::int64_t k = 0; k < C; ++k) {
        const auto i = static_cast<std::size_t>((t * N + b) * C + k);
        ref::Perturbation up{"log_probs", i, h}, down{"log_probs", i, -h};
        const Real fd = (weighted(ref::evaluate_once({c, false, &up})) -
                         weighted(ref::evaluate_once({c, false, &down}))) /
                        (2 * h);
        if (t >= il[static_cast<std::size_t>(b)]) {
          EXPECT_TRUE(ref::iszero(G[i]) && ref::iszero(fd)) << "t >= input_length, element " << i;
          continue;
        }
        const Real g(gb[static_cast<std::size_t>(b)]);
        const Real pinned = fd + g * ref::exp(Real(lpt.values[i]));
        EXPECT_LT(abs(G[i] - pinned) / scale, Real(1e-25))
            << "element " << i << ": analytic " << ref::decimal_string(G[i], 30)
            << " fd + g exp(lp) " << ref::decimal_string(pinned, 30);
        if (normalised) {
          const Real composite = fd + g * (lse(t, b, k, h) - lse(t, b, k, -h)) / (2 * h);
          EXPECT_LT(abs(G[i] - composite) / scale, Real(1e-13))
              << "element " << i << ": analytic " << ref::decimal_string(G[i], 30)
              << " d/dz loss(log_softmax(z)) " << ref::decimal_string(composite, 30);
        }
      }
}

}  // namespace

TEST(ctc_loss, ShiftingAFrameShiftsTheLoss) {
  // nll(lp with frame t < L shifted by k) = nll(lp) - k: what makes PyTorch's gradient the
  // gradient through log_softmax.
  std::mt19937_64 rng(17);
  auto lp = random_log_probs(rng, 4 * 2, 3);
  for (auto& x : lp) x = std::ldexp(std::round(std::ldexp(x, 20)), -20);  // so that +0.5 is exact
  const auto tg = i64({2, 2}, {1, 2, 2, 2});
  const auto il = i64({2}, {4, 4});
  const auto tl = i64({2}, {2, 2});
  const auto r0 = exact(ctc("none", f64({4, 2, 3}, lp), tg, il, tl));
  for (std::size_t k = 6; k < 9; ++k) lp[k] += 0.5;  // t = 1, sample 0
  const auto r1 = exact(ctc("none", f64({4, 2, 3}, lp), tg, il, tl));
  Bits bits(400);
  expect_close(r1.output.values[0].value, r0.output.values[0].value - Real(0.5));
  expect_close(r1.output.values[1].value, r0.output.values[1].value);
}

TEST(ctc_loss, GradientIsPyTorchsFormula) {
  std::mt19937_64 rng(23);
  // Normalised, 'none' with grad_output, blank 1, repeated labels, a sample shorter than T.
  {
    const auto lp = random_log_probs(rng, 4 * 2, 3);
    check_gradient(
        ctc("none", f64({4, 2, 3}, lp), i64({2, 2}, {0, 0, 2, 1}), i64({2}, {4, 3}),
            i64({2}, {2, 1}), R"({"blank": 1})", R"(, "grad_output": )" + f64({2}, {0.75, -1.5})),
        {0.75, -1.5}, true);
  }
  // 'mean': g / (N max(S_b, 1)), with an empty target (divided by 1); concatenated targets.
  {
    const auto lp = random_log_probs(rng, 3 * 2, 3);
    check_gradient(
        ctc("mean", f64({3, 2, 3}, lp), i64({2}, {1, 2}), i64({2}, {3, 2}), i64({2}, {2, 0})),
        {1.0 / 4, 1.0 / 2}, true);
    check_gradient(ctc("mean", f64({3, 2, 3}, lp), i64({2}, {1, 2}), i64({2}, {3, 2}),
                       i64({2}, {2, 0}), "{}", R"(, "grad_output": )" + f64({}, {3.0})),
                   {3.0 / 4, 3.0 / 2}, true);
  }
  // 'sum', unnormalised log_probs: PyTorch still adds exp(lp) (not a true partial derivative).
  {
    auto lp = random_log_probs(rng, 3 * 2, 4);
    for (auto& x : lp) x = x * 0.75 + 0.5;
    check_gradient(ctc("sum", f64({3, 2, 4}, lp), i64({2, 2}, {1, 3, 2, 2}), i64({2}, {3, 3}),
                       i64({2}, {2, 1})),
                   {1.0, 1.0}, false);
  }
  // Unbatched 'none' with a 0-d grad_output.
  {
    const auto lp = random_log_probs(rng, 4, 3);
    check_gradient(ctc("none", f64({4, 3}, lp), i64({2}, {2, 1}), i64({}, {4}), i64({}, {2}), "{}",
                       R"(, "grad_output": )" + f64({}, {2.5})),
                   {2.5}, true);
  }
  // zero_infinity: the infeasible sample 1 ([1, 1] in 2 frames) gets a zero gradient.
  {
    const auto lp = random_log_probs(rng, 3 * 2, 3);
    check_gradient(ctc("mean", f64({3, 2, 3}, lp), i64({2, 2}, {1, 2, 1, 1}), i64({2}, {3, 2}),
                       i64({2}, {2, 2}), R"({"zero_infinity": true})"),
                   {1.0 / 4, 0.0}, true);
  }
}

TEST(ctc_loss, GradientConventionsAndSpecialValues) {
  // All-zero unnormalised log_probs, target [1] in 3 frames (6 alignments): grad = 1 - posterior:
  // t=0: 1 - 3/6 for both labels; t=1: blank 1 - 2/6, label 1 - 4/6. Checked with torch 2.2.2.
  {
    const auto r = exact(ctc("sum", f64({3, 2}, std::vector<double>(6, 0.0)), i64({1}, {1}),
                             i64({}, {3}), i64({}, {1})),
                         true);
    const auto& g = r.grads.at("log_probs");
    const std::vector<double> want = {0.5, 0.5, 2.0 / 3, 1.0 / 3, 0.5, 0.5};
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(g.rounded_value(i), want[i]) << i;
    EXPECT_TRUE(g.values[0].exact);
  }
  // Posterior 1 at probability 1: gradient exactly 0; log_probs -inf gives NaN
  // (exp(-inf) - exp(lcab + nll - (-inf)) = -inf + inf in PyTorch), torch 2.2.2: [[nan, 0.]].
  {
    const auto r = exact(
        ctc("sum", f64({1, 2}, {-INFINITY, 0}), i64({1}, {1}), i64({}, {1}), i64({}, {1})), true);
    EXPECT_TRUE(std::isnan(r.grads.at("log_probs").rounded_value(0)));
    EXPECT_EQ(r.grads.at("log_probs").rounded_value(1), 0.0);
    EXPECT_TRUE(r.grads.at("log_probs").values[1].exact);
  }
  // -inf on a label the target does not use is NaN too, only there (torch 2.2.2).
  {
    const auto r = exact(ctc("sum", f64({2, 3}, {-1, -0.5, -INFINITY, -0.25, -1.5, -1}),
                             i64({1}, {1}), i64({}, {2}), i64({}, {1})),
                         true);
    const auto& g = r.grads.at("log_probs");
    EXPECT_TRUE(std::isnan(g.rounded_value(2)));
    for (std::size_t i : {0, 1, 3, 4, 5}) EXPECT_TRUE(std::isfinite(g.rounded_value(i))) << i;
    EXPECT_NEAR(g.rounded_value(5), std::exp(-1.0), 1e-16);  // label 2 unused: exp(lp) - 0
  }
  // Infeasible sample without zero_infinity: NaN for t < input_length, even where its upstream
  // gradient is 0; 0 for t >= input_length. With zero_infinity: all 0.
  {
    std::mt19937_64 rng(2);
    const auto lp = f64({3, 2, 3}, random_log_probs(rng, 6, 3));
    const auto tg = i64({2, 2}, {1, 2, 1, 1});
    const auto il = i64({2}, {3, 2});
    const auto tl = i64({2}, {2, 2});
    const auto r = exact(
        ctc("none", lp, tg, il, tl, "{}", R"(, "grad_output": )" + f64({2}, {1.0, 0.0})), true);
    const auto& g = r.grads.at("log_probs");
    for (std::int64_t t = 0; t < 3; ++t)
      for (std::int64_t k = 0; k < 3; ++k) {
        const auto i1 = static_cast<std::size_t>((t * 2 + 1) * 3 + k);
        const auto i0 = static_cast<std::size_t>((t * 2 + 0) * 3 + k);
        if (t < 2)
          EXPECT_TRUE(std::isnan(g.rounded_value(i1))) << i1;
        else
          EXPECT_EQ(g.rounded_value(i1), 0.0);
        EXPECT_TRUE(std::isfinite(g.rounded_value(i0)));
      }
    const auto z = exact(ctc("none", lp, tg, il, tl, R"({"zero_infinity": true})"), true);
    for (std::int64_t t = 0; t < 3; ++t)
      for (std::int64_t k = 0; k < 3; ++k)
        EXPECT_EQ(
            z.grads.at("log_probs").rounded_value(static_cast<std::size_t>((t * 2 + 1) * 3 + k)),
            0.0);
  }
}

TEST(ctc_loss, RationalResultsAreExact) {
  // A single feasible alignment gives the rational nll = -sum of its log_probs. Here it needs
  // 57 bits and sits exactly on a float64 rounding midpoint: the reference must compute it
  // exactly (Viterbi offsets) or certification never ends (found by fuzzing against torch).
  const double a = 0x1.5c3286a93fbe6p-5, b = -0x1.0a6e9ca6c51eep-2;
  const auto lp = f64({2, 3}, {-0.5, a, 0.25, b, -0.25, -0.125});
  const auto r =
      exact(ctc("none", lp, i64({2}, {1, 0}), i64({}, {2}), i64({}, {2}), R"({"blank": 2})"), true);
  EXPECT_TRUE(r.output.values[0].exact);
  {
    Bits bits(400);
    EXPECT_EQ(ref::decimal_string(r.output.values[0].value),
              ref::decimal_string(-(Real(a) + Real(b))));
  }
  // Posterior exactly 1 at a frame with probability 1 (log_probs 0): gradient exactly 0, among
  // several alignments (frame 1 is one-hot on label 1; its -inf entry has a NaN gradient).
  std::mt19937_64 rng(8);
  auto v = random_log_probs(rng, 3, 2);
  v[2] = -INFINITY;
  v[3] = 0;
  const auto g = exact(ctc("sum", f64({3, 2}, v), i64({1}, {1}), i64({}, {3}), i64({}, {1})), true);
  EXPECT_EQ(g.grads.at("log_probs").rounded_value(3), 0.0);
  EXPECT_TRUE(g.grads.at("log_probs").values[3].exact);
  EXPECT_TRUE(std::isnan(g.grads.at("log_probs").rounded_value(2)));
}
