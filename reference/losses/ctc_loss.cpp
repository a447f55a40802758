// ctc_loss: -log sum over the alignments of the target of prod_t p_t(pi_t)
// (docs/losses/ctc_loss.md, spec B section 4).
//
// Forward. PyTorch runs the alpha recursion of Graves et al. in log space (log-sum-exp with a
// max trick). Its exact value is the same recursion in probability space, which this reference
// runs: alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) + [l'_{s-2} != l'_s] alpha_{t-1}(s-2))
// * p_t(l'_s), with p = exp(log_probs), then nll = -log(alpha_{L-1}(2S) + alpha_{L-1}(2S-1))
// (-log alpha_{L-1}(0) when S = 0). Sums and products of probabilities are exact-friendly: with
// log_probs 0 / -inf (or all 0, unnormalised) everything is an exact rational. Each frame's
// probabilities are scaled by exp(-m_t), m_t the largest finite log-probability of the sample's
// labels at t, and rows of alpha/beta are rescaled by powers of two when they leave a safe
// exponent range (exact operations); the offsets are added back in log space at the end.
//
// Special values follow PyTorch's log-space formula: in log space a term -inf is a probability
// 0 and IEEE products/quotients of probabilities map one to one to sums/differences of logs,
// except the log-sum-exp: its max trick gives NaN as soon as one operand is +inf (inf - inf), so
// `add_states` returns NaN for an operand that is +inf or NaN.
//
// Gradient (only log_probs). PyTorch 2.2 returns, for t < input_length,
//   grad[t,b,c] = (exp(lp[t,b,c]) - exp(lcab[t,c] + nll_b - lp[t,b,c])) * gout_b,
// lcab = log sum_{s: l'_s = c} alpha_t(s) beta_t(s) (beta includes the emission at t), and 0
// for t >= input_length. This is NOT the partial derivative of the loss with respect to
// log_probs (that is -exp(lcab + nll - lp) alone): it is the gradient with respect to logits z
// when log_probs = log_softmax(z) (the extra exp(lp) is what log_softmax's backward removes), and
// it is what PyTorch returns whether or not log_probs are normalised. With zero_infinity a sample
// whose nll is +inf gets an all-zero gradient; without it such a sample's gradient is NaN for
// t < input_length (even where its upstream gradient is 0). gout_b: upstream g_b for 'none', g
// for 'sum', g / (N max(S_b, 1)) for 'mean'. lcab is collected as PyTorch's CPU kernel does:
// at t = L-1 the two final states are assigned; for t < L-1 states are log-added in descending s
// (the order matters only for which special values give NaN).
//
// Validation: PyTorch 2.2's checks, plus (spec policy 5) lossbench rejects what 2.2 leaves
// undefined: negative lengths, target values outside [0, C) and targets equal to blank. A zero
// input length, garbage in 2.2, uses the definition of PyTorch PR #123193 (2.4): nll = 0 when
// the target length is 0, +inf otherwise, gradient 0.
// Only float32 and float64 log_probs are accepted ("ctc_loss_cpu" not implemented for 'Half'),
// as PyTorch 2.2 (AT_DISPATCH_FLOATING_TYPES). No floating parameter.
#include <mpfr.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.hpp"

namespace lossbench::ref {

namespace {

// Rows of alpha/beta are rescaled by a power of two when their largest exponent leaves
// [-kExpLimit, kExpLimit] (MPFR's default range is about +-2^30).
constexpr long kExpLimit = 1L << 24;

bool is_pos_inf(const Real& x) { return isinf(x) && !signbit(x); }

// log-sum-exp of log-space states, in probability space, with PyTorch's special values.
Real add_states(const Real& a, const Real* b, const Real* c) {
  if (isnan(a) || is_pos_inf(a)) return nan();
  if (b && (isnan(*b) || is_pos_inf(*b))) return nan();
  if (c && (isnan(*c) || is_pos_inf(*c))) return nan();
  Real r = a;
  if (b) r += *b;
  if (c) r += *c;
  return r;
}

// Rescales a row by 2^-e when its largest finite nonzero exponent is out of range; returns e.
long rescale(std::vector<Real>& row) {
  bool any = false;
  mpfr_exp_t emax = 0;
  for (const auto& v : row) {
    if (!isfinite(v) || iszero(v)) continue;
    const mpfr_exp_t e = mpfr_get_exp(v.backend().data());
    if (!any || e > emax) emax = e;
    any = true;
  }
  if (!any || (emax > -kExpLimit && emax < kExpLimit)) return 0;
  for (auto& v : row) mpfr_mul_2si(v.backend().data(), v.backend().data(), -emax, MPFR_RNDN);
  return static_cast<long>(emax);
}

Real times_pow2(Real x, long e) {
  if (e != 0) mpfr_mul_2si(x.backend().data(), x.backend().data(), e, MPFR_RNDN);
  return x;
}

// A most probable alignment (state per frame) through the CTC trellis of n = 2S+1 states, by
// the log-probabilities lpd(t, label) (-HUGE_VAL for unusable ones); empty if none is finite.
template <class Label, class Skip, class Lp>
std::vector<std::int64_t> viterbi(std::int64_t L, std::int64_t n, const Label& label,
                                  const Skip& skip_ok, const Lp& lpd) {
  const auto un = static_cast<std::size_t>(n);
  std::vector<double> v(un, -HUGE_VAL), next(un);
  std::vector<unsigned char> back(static_cast<std::size_t>(L) * un, 0);
  v[0] = lpd(0, label(0));
  if (n > 1) v[1] = lpd(0, label(1));
  for (std::int64_t t = 1; t < L; ++t) {
    for (std::int64_t s = 0; s < n; ++s) {
      const auto us = static_cast<std::size_t>(s);
      double best = v[us];
      unsigned char bp = 0;
      if (s > 0 && v[us - 1] > best) best = v[us - 1], bp = 1;
      if (skip_ok(s) && v[us - 2] > best) best = v[us - 2], bp = 2;
      back[static_cast<std::size_t>(t) * un + us] = bp;
      next[us] = best == -HUGE_VAL ? -HUGE_VAL : best + lpd(t, label(s));
    }
    std::swap(v, next);
  }
  std::int64_t end = n - 1;
  if (n > 1 && v[un - 2] > v[un - 1]) end = n - 2;
  if (!(v[static_cast<std::size_t>(end)] > -HUGE_VAL)) return {};
  std::vector<std::int64_t> states(static_cast<std::size_t>(L));
  for (std::int64_t t = L - 1; t >= 0; --t) {
    states[static_cast<std::size_t>(t)] = end;
    end -= back[static_cast<std::size_t>(t) * un + static_cast<std::size_t>(end)];
  }
  return states;
}

struct Sample {
  std::int64_t input_length = 0;
  std::vector<std::int64_t> target;
};

const char* dtype_name(DType d) {
  switch (d) {
    case DType::float16: return "Half";
    case DType::bfloat16: return "BFloat16";
    default: return "?";
  }
}

}  // namespace

Evaluation evaluate_ctc_loss(const Request& r) {
  const Case& c = r.c;
  const DType dtype = loss_dtype(c);
  if (dtype != DType::float32 && dtype != DType::float64)
    throw Error(ErrorKind::Type, std::string("\"ctc_loss_cpu\" not implemented for '") +
                                     dtype_name(dtype) + "' (CTC supports float32 and float64)");
  const std::string& reduction = c.reduction;
  if (reduction != "none" && reduction != "mean" && reduction != "sum")
    throw Error(ErrorKind::Value, reduction + " is not a valid value for reduction");

  const Tensor& lp_t = c.input("log_probs");
  const Tensor& tg = c.input("targets");
  const Tensor& il_t = c.input("input_lengths");
  const Tensor& tl_t = c.input("target_lengths");

  // Shapes. A log_probs that is not 3-D is unsqueezed at dim 1 (so 2-D is the unbatched (T, C)).
  const bool batched = lp_t.dim() == 3;
  if (!batched && lp_t.dim() != 2)
    throw Error(ErrorKind::ShapeMismatch,
                "Expected 3-dimensional tensor, but got " + std::to_string(lp_t.dim() + 1) +
                    "-dimensional tensor for argument #1 'log_probs' (log_probs must be (T, N, C) "
                    "or unbatched (T, C), got shape " +
                    shape_string(lp_t.shape) + ")");
  const std::int64_t T = lp_t.shape[0];
  const std::int64_t N = batched ? lp_t.shape[1] : 1;
  const std::int64_t C = batched ? lp_t.shape[2] : lp_t.shape[1];
  if (tg.dim() < 1 || tg.dim() > 2)
    throw Error(ErrorKind::ShapeMismatch, "Expected 1 to 2 dimensions, but got " +
                                              std::to_string(tg.dim()) +
                                              "-dimensional tensor for argument #2 'targets'");
  const std::int64_t blank = c.param_int("blank");
  if (blank < 0 || blank >= C)
    throw Error(ErrorKind::Value, "blank must be in label range (blank " + std::to_string(blank) +
                                      ", " + std::to_string(C) + " classes)");
  if (il_t.numel() != N)
    throw Error(ErrorKind::ShapeMismatch, "input_lengths must be of size batch_size (" +
                                              std::to_string(N) + "), got shape " +
                                              shape_string(il_t.shape));
  if (tl_t.numel() != N)
    throw Error(ErrorKind::ShapeMismatch, "target_lengths must be of size batch_size (" +
                                              std::to_string(N) + "), got shape " +
                                              shape_string(tl_t.shape));
  const auto& il = il_t.ints;
  const auto& tl = tl_t.ints;
  for (std::int64_t b = 0; b < N; ++b) {
    const auto ub = static_cast<std::size_t>(b);
    // Not checked by PyTorch 2.2 (undefined behaviour); PyTorch 2.4 rejects it the same way.
    if (il[ub] < 0)
      throw Error(ErrorKind::Value,
                  "Expected input_lengths to have value at least 0, but got value " +
                      std::to_string(il[ub]) + " (undefined in PyTorch 2.2)");
    if (tl[ub] < 0)
      throw Error(ErrorKind::Value,
                  "Expected target_lengths to have value at least 0, but got value " +
                      std::to_string(tl[ub]) + " (undefined in PyTorch 2.2)");
  }
  std::vector<std::int64_t> offset(static_cast<std::size_t>(N));
  std::int64_t max_tl = 0;
  if (tg.dim() == 1) {  // concatenated (also the only 1-D form when unbatched)
    std::int64_t pos = 0;
    for (std::int64_t b = 0; b < N; ++b) {
      offset[static_cast<std::size_t>(b)] = pos;
      pos += tl[static_cast<std::size_t>(b)];
    }
    if (tg.shape[0] != pos)
      throw Error(ErrorKind::ShapeMismatch, "Expected tensor to have size " + std::to_string(pos) +
                                                " at dimension 0, but got size " +
                                                std::to_string(tg.shape[0]) +
                                                " for argument #2 'targets' (concatenated targets "
                                                "must have sum(target_lengths) elements)");
  } else {  // padded (N, S)
    for (std::int64_t b = 0; b < N; ++b) {
      offset[static_cast<std::size_t>(b)] = b * tg.shape[1];
      max_tl = std::max(max_tl, tl[static_cast<std::size_t>(b)]);
    }
    if (tg.shape[0] != N)
      throw Error(ErrorKind::ShapeMismatch, "Expected tensor to have size " + std::to_string(N) +
                                                " at dimension 0, but got size " +
                                                std::to_string(tg.shape[0]) +
                                                " for argument #2 'targets'");
    if (tg.shape[1] < max_tl)
      throw Error(ErrorKind::ShapeMismatch,
                  "Expected tensor to have size at least " + std::to_string(max_tl) +
                      " at dimension 1, but got size " + std::to_string(tg.shape[1]) +
                      " for argument #2 'targets'");
  }
  for (std::int64_t b = 0; b < N; ++b) {
    const auto v = il[static_cast<std::size_t>(b)];
    if (v > T)
      throw Error(ErrorKind::Value, "Expected input_lengths to have value at most " +
                                        std::to_string(T) + ", but got value " + std::to_string(v));
  }
  std::vector<Sample> samples(static_cast<std::size_t>(N));
  for (std::int64_t b = 0; b < N; ++b) {
    const auto ub = static_cast<std::size_t>(b);
    samples[ub].input_length = il[ub];
    for (std::int64_t i = 0; i < tl[ub]; ++i) {
      const std::int64_t v = tg.ints[static_cast<std::size_t>(offset[ub] + i)];
      auto where = [&] {
        return " (sample " + std::to_string(b) + ", position " + std::to_string(i) +
               "; undefined in PyTorch 2.2)";
      };
      if (v < 0 || v >= C)
        throw Error(ErrorKind::Index, "Target " + std::to_string(v) +
                                          " is out of bounds: targets must be in [0, " +
                                          std::to_string(C) + ")" + where());
      if (v == blank)
        throw Error(ErrorKind::Value,
                    "Target " + std::to_string(v) +
                        " equals the blank label: targets must not contain blank" + where());
      samples[ub].target.push_back(v);
    }
  }

  const bool zero_infinity = c.param_bool("zero_infinity");
  const std::vector<Real> lp = input_values(r, "log_probs");
  auto at = [&](std::int64_t t, std::int64_t b, std::int64_t k) -> const Real& {
    return lp[static_cast<std::size_t>((t * N + b) * C + k)];
  };

  std::vector<Real> nll(static_cast<std::size_t>(N));
  std::vector<Real> grad;
  if (r.grad) grad.assign(lp.size(), Real(0));
  std::vector<Real> gout;
  if (r.grad) {
    // Upstream gradient of each sample's nll.
    if (reduction == "none") {
      gout = upstream(r, batched ? Shape{N} : Shape{});
    } else {
      const Real g = upstream(r, {}).front();
      gout.assign(static_cast<std::size_t>(N), g);
      if (reduction == "mean")
        for (std::int64_t b = 0; b < N; ++b) {
          const auto ub = static_cast<std::size_t>(b);
          gout[ub] = g / Real(static_cast<long long>(N * std::max<std::int64_t>(tl[ub], 1)));
        }
    }
  }

  for (std::int64_t b = 0; b < N; ++b) {
    const auto ub = static_cast<std::size_t>(b);
    const Sample& smp = samples[ub];
    const std::int64_t L = smp.input_length;
    const std::int64_t S = static_cast<std::int64_t>(smp.target.size());
    if (L == 0) {  // PyTorch 2.4's definition (PR #123193); the gradient stays 0
      nll[ub] = S == 0 ? Real(0) : infinity();
      continue;
    }
    const std::int64_t n = 2 * S + 1;
    auto label = [&](std::int64_t s) {
      return s % 2 == 0 ? blank : smp.target[static_cast<std::size_t>(s / 2)];
    };
    // Distinct labels of l' (blank first) and each state's index among them.
    std::vector<std::int64_t> labels{blank};
    std::vector<std::size_t> state_label(static_cast<std::size_t>(n));
    for (std::int64_t s = 0; s < n; ++s) {
      const std::int64_t l = label(s);
      auto it = std::find(labels.begin(), labels.end(), l);
      if (it == labels.end()) {
        labels.push_back(l);
        it = labels.end() - 1;
      }
      state_label[static_cast<std::size_t>(s)] = static_cast<std::size_t>(it - labels.begin());
    }
    const std::size_t K = labels.size();
    auto skip_ok = [&](std::int64_t s) { return s > 1 && label(s - 2) != label(s); };
    // Frame offsets m_t: the log-probabilities along a most probable alignment (Viterbi, in
    // double over the finite log_probs), so that this alignment has scaled probability exactly
    // 1. With a single feasible alignment nll = -sum_t m_t is then computed exactly (it is a
    // rational number that can sit on a rounding boundary). Without a finite alignment, the
    // largest finite log-probability of the sample's labels at t (0 if none).
    std::vector<Real> m(static_cast<std::size_t>(L));
    const auto path = viterbi(L, 2 * S + 1, label, skip_ok, [&](std::int64_t t, std::int64_t l) {
      const Real& v = at(t, b, l);
      return isfinite(v) ? static_cast<double>(v) : -HUGE_VAL;
    });
    for (std::int64_t t = 0; t < L; ++t) {
      const auto ut = static_cast<std::size_t>(t);
      if (!path.empty()) {
        m[ut] = at(t, b, label(path[ut]));
        continue;
      }
      bool any = false;
      Real mt(0);
      for (auto l : labels) {
        const Real& v = at(t, b, l);
        if (isfinite(v) && (!any || v > mt)) {
          mt = v;
          any = true;
        }
      }
      m[ut] = mt;
    }
    // Scaled emissions e[t][k] = exp(lp[t, labels[k]] - m_t).
    std::vector<std::vector<Real>> e(static_cast<std::size_t>(L));
    for (std::int64_t t = 0; t < L; ++t) {
      const auto ut = static_cast<std::size_t>(t);
      e[ut].resize(K);
      for (std::size_t k = 0; k < K; ++k) {
        const Real& v = at(t, b, labels[k]);
        e[ut][k] = exp(v - m[ut]);
        if (isfinite(v) && (iszero(e[ut][k]) || isinf(e[ut][k])))
          throw Error(ErrorKind::Precision,
                      "ctc_loss: log_probs of one frame spread beyond the exponent range of the "
                      "reference");
      }
    }
    auto emit = [&](std::int64_t t, std::int64_t s) -> const Real& {
      return e[static_cast<std::size_t>(t)][state_label[static_cast<std::size_t>(s)]];
    };

    // alpha (rows kept only when the gradient is needed).
    std::vector<std::vector<Real>> alpha;
    std::vector<long> ka(static_cast<std::size_t>(L), 0);  // alpha_t = row * 2^ka[t] * exp(sum m)
    std::vector<Real> row(static_cast<std::size_t>(n), Real(0));
    row[0] = emit(0, 0);
    if (S > 0) row[1] = emit(0, 1);
    ka[0] = rescale(row);
    if (r.grad) alpha.push_back(row);
    for (std::int64_t t = 1; t < L; ++t) {
      std::vector<Real> next(static_cast<std::size_t>(n));
      for (std::int64_t s = 0; s < n; ++s) {
        const auto us = static_cast<std::size_t>(s);
        const Real* a2 = s > 0 ? &row[us - 1] : nullptr;
        const Real* a3 = skip_ok(s) ? &row[us - 2] : nullptr;
        next[us] = add_states(row[us], a2, a3) * emit(t, s);
      }
      row = std::move(next);
      ka[static_cast<std::size_t>(t)] = ka[static_cast<std::size_t>(t - 1)] + rescale(row);
      if (r.grad) alpha.push_back(row);
    }
    const auto un = static_cast<std::size_t>(n);
    const Real P = S == 0 ? row[0] : add_states(row[un - 1], &row[un - 2], nullptr);
    // nll = -(log P + ka log 2 + sum m), the offsets added only when nonzero (exact zeros stay).
    std::vector<Real> terms{log(P)};
    const long kP = ka[static_cast<std::size_t>(L - 1)];
    if (kP != 0) {
      Real l2;
      mpfr_const_log2(l2.backend().data(), MPFR_RNDN);
      terms.push_back(l2 * Real(static_cast<long long>(kP)));
    }
    for (const auto& v : m)
      if (!iszero(v)) terms.push_back(v);
    nll[ub] = -(terms.size() == 1 ? terms[0] : sum(terms));

    if (!r.grad) continue;
    if (zero_infinity && is_pos_inf(nll[ub])) continue;  // whole sample's gradient 0

    // beta, from the last frame down, collecting A[t][k] = sum_{s: l'_s = labels[k]} alpha beta.
    std::vector<std::vector<Real>> A(static_cast<std::size_t>(L), std::vector<Real>(K, Real(0)));
    // The products alpha beta that PyTorch collects, per frame (for the normalised posteriors).
    std::vector<std::vector<Real>> AB(static_cast<std::size_t>(L), std::vector<Real>(un, Real(0)));
    std::vector<long> kb(static_cast<std::size_t>(L), 0);
    std::vector<Real> brow(un, Real(0));
    brow[un - 1] = emit(L - 1, n - 1);
    if (S > 0) brow[un - 2] = emit(L - 1, n - 2);
    kb[static_cast<std::size_t>(L - 1)] = rescale(brow);
    {
      auto& a = alpha[static_cast<std::size_t>(L - 1)];
      auto& acc = A[static_cast<std::size_t>(L - 1)];
      auto& ab = AB[static_cast<std::size_t>(L - 1)];
      ab[un - 1] = a[un - 1] * brow[un - 1];
      acc[state_label[un - 1]] = ab[un - 1];
      if (S > 0) {
        ab[un - 2] = a[un - 2] * brow[un - 2];
        acc[state_label[un - 2]] = ab[un - 2];
      }
    }
    for (std::int64_t t = L - 2; t >= 0; --t) {
      const auto ut = static_cast<std::size_t>(t);
      std::vector<Real> next(un);
      for (std::int64_t s = n - 1; s >= 0; --s) {
        const auto us = static_cast<std::size_t>(s);
        const Real* b2 = s < n - 1 ? &brow[us + 1] : nullptr;
        const Real* b3 = (s < n - 2 && label(s + 2) != label(s)) ? &brow[us + 2] : nullptr;
        next[us] = add_states(brow[us], b2, b3) * emit(t, s);
      }
      brow = std::move(next);
      kb[ut] = kb[ut + 1] + rescale(brow);
      auto& acc = A[ut];
      for (std::int64_t s = n - 1; s >= 0; --s) {
        const auto us = static_cast<std::size_t>(s);
        AB[ut][us] = alpha[ut][us] * brow[us];
        const Real& ab = AB[ut][us];
        Real& x = acc[state_label[us]];
        if (iszero(x)) {
          x = ab;  // lcab == -inf: assignment
        } else if (isnan(x) || isnan(ab) || is_pos_inf(x) || is_pos_inf(ab)) {
          x = nan();  // log-add with a NaN or +inf operand
        } else {
          x += ab;
        }
      }
    }
    // grad = (exp(lp) - R) gout, R = exp(lcab + nll - lp) = A_true / (P_true p)
    //      = (A / P) 2^(ka_t + kb_t - ka_{L-1}) / exp(lp - m_t)   (special values: PyTorch's).
    // When the frame has no special value, R is the posterior of c at t, computed as
    // sum_{s: l'_s = c} q_s / sum_s q_s with q_s = alpha_t(s) beta_t(s) / p_t(l'_s) (the
    // denominator is P at every frame): the same value, but a posterior that is exactly 1 (every
    // alignment takes c at t) or an exact rational (log_probs 0) is then computed exactly.
    const bool P_regular = isfinite(P) && !iszero(P);
    for (std::int64_t t = 0; t < L; ++t) {
      const auto ut = static_cast<std::size_t>(t);
      const long shift = ka[ut] + kb[ut] - kP;
      bool regular = P_regular;
      for (const auto& a : A[ut]) regular = regular && isfinite(a);
      std::vector<Real> posterior;
      if (regular) {
        std::vector<std::vector<Real>> parts(K);
        std::vector<Real> all;
        for (std::int64_t s = 0; s < n; ++s) {
          const auto us = static_cast<std::size_t>(s);
          if (iszero(AB[ut][us])) continue;
          const Real q = AB[ut][us] / emit(t, s);
          parts[state_label[us]].push_back(q);
          all.push_back(q);
        }
        const Real total = sum(all);
        for (const auto& p : parts) posterior.push_back(p.empty() ? Real(0) : Real(sum(p) / total));
      }
      for (std::int64_t k = 0; k < C; ++k) {
        const Real& v = at(t, b, k);
        const auto it = std::find(labels.begin(), labels.end(), k);
        const auto ki = static_cast<std::size_t>(it - labels.begin());
        const Real a = it == labels.end() ? Real(0) : A[ut][ki];
        Real R;
        if (regular && !iszero(a)) {
          R = posterior[ki];
        } else {
          const Real q = times_pow2(a / P, shift);
          if (isfinite(v) && iszero(q)) {
            R = 0;  // exp(-inf + nll - lp) with nll finite or -inf: 0 (no underflow of exp(lp - m))
          } else {
            const Real ev = exp(v - m[ut]);
            if (isfinite(v) && iszero(ev) && isfinite(q))
              throw Error(ErrorKind::Precision,
                          "ctc_loss: log_probs spread beyond the exponent range of the reference");
            R = q / ev;
          }
        }
        grad[static_cast<std::size_t>((t * N + b) * C + k)] = (exp(v) - R) * gout[ub];
      }
    }
  }

  Evaluation ev;
  std::vector<Real> terms(nll.size());
  for (std::size_t b = 0; b < nll.size(); ++b) {
    terms[b] = zero_infinity && is_pos_inf(nll[b]) ? Real(0) : nll[b];
    if (reduction == "mean")
      terms[b] /= Real(static_cast<long long>(std::max<std::int64_t>(tl[b], 1)));
  }
  if (reduction == "none")
    ev.output = {dtype, batched ? Shape{N} : Shape{}, std::move(terms)};
  else
    ev.output = reduce(std::move(terms), Shape{N}, reduction, dtype);
  if (r.grad) ev.grads["log_probs"] = grad_tensor(lp_t, std::move(grad));
  return ev;
}

}  // namespace lossbench::ref
