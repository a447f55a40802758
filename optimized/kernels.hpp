#pragma once
// The interface between the drivers (ISA-independent: loops, blocks, reductions, threads) and
// the per-ISA kernels (isa/*.cpp: the formulas applied to a block of doubles, and the block sum).
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "formulas/all.hpp"

namespace lossbench::opt {

enum class Loss {
#define LOSSBENCH_OPT_ENUM(id, F) id,
  LOSSBENCH_OPT_LOSSES(LOSSBENCH_OPT_ENUM) LOSSBENCH_OPT_CLASSIFICATION_LOSSES(LOSSBENCH_OPT_ENUM)
#undef LOSSBENCH_OPT_ENUM
      count
};
inline constexpr int kLossCount = static_cast<int>(Loss::count);
inline constexpr int kMaxInputs = 4;
// Every block buffer is padded to a multiple of this many doubles (the widest vector).
inline constexpr std::size_t kPad = 8;
// A triplet p = 2 gradient element (anchor: G0 u/|u| - G0 v/|v|; positive under swap likewise)
// whose double sum came out below this fraction of its first term lost as many bits to the
// cancellation. Each term carries its distance's rounding (about 2^-49 relative for a row of 8192
// features, summed in double), so at 2^-22 the sum keeps an error near 2^-27 of itself, well
// within float32's 1 ULP; rows with an element beyond are redone in double-double. float64 (the
// general path) takes the rows beyond 2^-20, the worst: every cancelling bit costs it one, and a
// trigger that fires on every bit would put the double-double pass on most rows
// (optimized/README.md: 2.4x the float64 time, dropped).
inline constexpr double kTripletCancelF32 = 0x1p-22;
inline constexpr double kTripletCancelF64 = 0x1p-20;
// The float64 fast path's terms are double-doubles (about 2^-100 of themselves after the
// distance's own error): a sum below 2^-40 of its first term keeps fewer than 60 bits, still
// above double's 53, but the trigger leaves the margin to the DD fix-up (unit_difference_dd).
inline constexpr double kTripletCancelF64DD = 0x1p-40;

// Applies the loss's formula to n elements (n a multiple of kPad; in[k] holds input k of the
// formula, broadcast and converted to double).
using ForwardKernel = void (*)(const double* const* in, double* out, std::size_t n,
                               const formulas::Params& p);
// out[k] receives the gradient with respect to input k (times the upstream gradient g).
using BackwardKernel = void (*)(const double* const* in, const double* g, double* const* out,
                                std::size_t n, const formulas::Params& p);
// backward's gradients as double-doubles, out[k][i] + lo[k][i] (the tables whose lanes are
// double-double: a broadcast input's gradient sums the unrounded terms).
using BackwardSplitKernel = void (*)(const double* const* in, const double* g, double* const* out,
                                     double* const* lo, std::size_t n, const formulas::Params& p);
// Compensated sum of v[0..n) into hi + lo (a double-double); may overwrite v[n..round_up(n)).
using SumKernel = void (*)(double* v, std::size_t n, double* hi, double* lo);

// The dense fast path of the elementwise driver: every tensor operand is contiguous with the
// output's shape and of the loss dtype (float32 or float64), so the kernel reads the tensors
// directly (float32 widened to double in registers), applies the formula and either stores the
// result rounded once to the dtype or sums it (double-double per lane, like SumKernel): one pass,
// no block buffers. Elements [start, start + n) of the output index space.
struct DenseIO {
  const void* in[kMaxInputs] = {};  // nullptr: the input is the constant below
  double constant[kMaxInputs] = {};
  const void* g = nullptr;  // backward: the upstream gradient, or g_constant when null
  double g_constant = 0.0;
  void* out[kMaxInputs] = {};   // forward: out[0] or nullptr to reduce; backward: gradients
  void* grad[kMaxInputs] = {};  // forward_backward (dense_fused): the gradients, or nullptr
  // Write out[] and grad[] with non-temporal stores (drivers/block.hpp: put). Only set when
  // every written tensor is 64-byte aligned and too large to stay in cache (elementwise.cpp:
  // streamable); the values written are the same either way.
  bool stream = false;
  // PyTorch's value checks (binary_cross_entropy's input and target, gaussian_nll_loss's var:
  // the formula's F::invalid): when set, the kernels of a formula that has them set it to 1 if a
  // value they read is one PyTorch rejects (the driver then raises the error: Plan::value_check),
  // so that the check costs no read of its own.
  std::atomic<int>* invalid = nullptr;
};
using DenseForwardKernel = void (*)(const DenseIO& io, std::int64_t start, std::int64_t n,
                                    const formulas::Params& p, double* hi, double* lo);
using DenseBackwardKernel = void (*)(const DenseIO& io, std::int64_t start, std::int64_t n,
                                     const formulas::Params& p);

// ctc_loss over one sample whose log_probs are float32 with contiguous classes (ctc.cpp's fast
// path): PyTorch's log-space alpha/beta recursion in double, vectorised over the states of one
// time step. The states are kept planar: each time step's row holds ctc_half(S) doubles for the
// blank states 0..S (at 1 + j) and as many for the label states 0..S-1 (at ctc_half(S) + 1 + j);
// index 0 and the padding beyond hold -inf.
struct CtcSample {
  const float* lp = nullptr;     // log_probs[0, b, 0]: time step t's classes at lp + t * st
  const double* lp64 = nullptr;  // the same for float64 log_probs (the float64 kernels')
  std::int64_t st = 0;
  std::int64_t C = 0, L = 0, S = 0;  // classes, input length (>= 1), target length
  std::int64_t blank = 0;
  const std::int64_t* tgt = nullptr;  // the S labels (in [0, C), none the blank)
};
inline std::int64_t ctc_half(std::int64_t S) {
  const auto pad = static_cast<std::int64_t>(kPad);
  return (S + 1 + pad - 1) / pad * pad + pad;
}

// Listed classes per pass of KernelTable::mlm_group_f32.
inline constexpr int kMlmGroup = 4;

// multilabel_margin_loss over one sample: the row x of c float32 classes against nj (1 to
// kMlmGroup) listed classes j in one pass, given a[k] = 1 - x_j exact in double (so a[k] + x_d
// is the exact z rounded once, and the hinge test exact). skip: the sample's listed classes,
// ascending and distinct; their pairs are left out (read as -inf).
// - sums (forward, nullable): sums[k] = the sum over d of max(0, z) in plain double (terms
//   >= 0: a relative error below c 2^-53).
// - count (gradient, several passes; not with sums): count[d] += the number of k active at d.
// - out (gradient, one pass: nj is the whole list): out[d] = vals[number of k active at d],
//   rounded to float32 (the listed classes' entries are then the caller's to write); stream:
//   non-temporal stores (out 32-byte aligned).
// With count or out, active[k] = the number of d active for k.
// float64 rows (MlmRow64, E = double): a[k] + a_lo[k] = 1 - x_j exactly (a double-double), z is
// a[k] + x_d by TwoSum with the errors added back (formulas::MultilabelMarginLoss::z's value),
// and sums[k] + sums_lo[k] is the sum of those z in TwoSum form per lane (sums[k] not finite
// where a term or the sum is not: the caller redoes the row); out[d] is vals[...] itself.
template <class E>
struct MlmRowOf {
  const E* x = nullptr;
  std::int64_t c = 0;
  const std::int64_t* skip = nullptr;
  std::int64_t nskip = 0;
  const double* a = nullptr;
  const double* a_lo = nullptr;  // float64 rows only
  int nj = 0;
  double* sums = nullptr;
  double* sums_lo = nullptr;  // float64 rows only
  float* count = nullptr;
  E* out = nullptr;
  const double* vals = nullptr;  // kMlmGroup + 1 values
  double* active = nullptr;
  bool stream = false;
};
using MlmRow = MlmRowOf<float>;
using MlmRow64 = MlmRowOf<double>;

// multi_margin_loss over one sample: the row x of c float32 classes, the target y left out (read
// as -inf), z_i = formulas::MultiMarginRow::z(x_i, p) (p: s0, s1, f0, f1 as that formula).
// sums[0] = the sum of the hinges h(z_i), sums[1] (only with out) = the sum of their derivatives
// d_i (1, or 2 z_i for p = 2, where z_i > 0), both in plain double (terms >= 0: a relative error
// below c 2^-53). out (nullable): out[i] = d_i scale
// rounded to float32 for i != y (out[y] is the caller's); stream: non-temporal stores (out
// 32-byte aligned).
struct MmRow {
  const float* x = nullptr;
  std::int64_t c = 0, y = 0;
  formulas::Params p;
  double scale = 0.0;
  float* out = nullptr;
  bool stream = false;
  double sums[2] = {};
};

// The same over float64 classes, in double-double: z_i = s0 + s1 + x_i as a double-double (TwoSum,
// then the error terms), h(z_i) and d_i from it (z_i^2 with its fma error and the cross term), each
// lane summing in TwoSum form; sums = {hinges hi, lo, derivatives hi, lo (only with out)}. out[i] =
// d_i times the double-double scale (scale, scale_lo), rounded once. The caller redoes a row whose
// sums are not finite (an infinite input, or z^2 overflowing) by the general path.
struct MmRow64 {
  const double* x = nullptr;
  std::int64_t c = 0, y = 0;
  formulas::Params p;
  double scale = 0.0, scale_lo = 0.0;
  double* out = nullptr;
  bool stream = false;
  double sums[4] = {};
};

struct KernelTable {
  const char* isa;
  ForwardKernel forward[kLossCount];  // null for the classification losses
  BackwardKernel backward[kLossCount];
  BackwardSplitKernel backward_split[kLossCount];  // only where the lanes are double-double
  SumKernel sum;
  // The dense fast path, per loss, for float32 ([0]) and float64 ([1]) tensors.
  DenseForwardKernel dense_forward[kLossCount][2];
  DenseBackwardKernel dense_backward[kLossCount][2];
  // forward_backward in one pass: dense_forward that also writes io.grad as dense_backward would.
  DenseForwardKernel dense_fused[kLossCount][2];
  // The ISA's vector math (0 exp, 1 log, 2 log1p, 3 expm1, 4 log1p(exp(-|x|)) (softplus_tail),
  // 5 1 / x for a positive normal x (vdiv_pos)) on n doubles (n a multiple of kPad), for
  // tests/cpu_test.cpp. (The cpu-fast table's: float lanes, on n float values held in doubles, n
  // a multiple of 16.)
  void (*math)(int fn, const double* in, double* out, std::size_t n);
  // The double-double tables only (isa/exact64*.cpp): the same functions in DD, hi + lo.
  void (*dd_math)(int fn, const double* in, double* hi, double* lo, std::size_t n);
  // cross_entropy over a contiguous float32 row of C logits (classification.cpp's fast path):
  // ce_row: m = max, s_hi + s_lo = sum of exp(x - m) less 1 (the argmax's term), a double-double;
  // e (nullable, C doubles) receives the exps. False when the row has a NaN or an infinite max
  // (the general path handles those rows).
  bool (*ce_row_f32)(const float* x, std::int64_t c, double* m, double* s_hi, double* s_lo,
                     double* e);
  // ce_grad_row: out[k] = e[k] * scale, rounded once to float32.
  // stream: non-temporal stores where out is 64-byte aligned (block.hpp: put), then a fence.
  void (*ce_grad_row_f32)(const double* e, std::int64_t c, double scale, float* out, bool stream);
  // multilabel_soft_margin_loss over one sample's contiguous float32 classes (multilabel.cpp's
  // fast path): formulas::MultilabelSoftMarginRow as a dense kernel.
  DenseForwardKernel mlsm_forward_f32;
  DenseBackwardKernel mlsm_backward_f32;
  // The same over float64 classes, in the float64 table on AVX-512 only (null elsewhere: the
  // driver's scalar path): exp, log1p and the divisions there are within about half an ULP of
  // double, as the scalar path's glibc functions.
  DenseForwardKernel mlsm_forward_f64 = nullptr;
  DenseBackwardKernel mlsm_backward_f64 = nullptr;
  // The same rows in one pass (dense_forward's fused mode: io.grad as mlsm_backward writes it),
  // for forward_backward; float32 in every table, float64 where mlsm_forward_f64 is.
  DenseForwardKernel mlsm_fused_f32 = nullptr;
  DenseForwardKernel mlsm_fused_f64 = nullptr;
  // multilabel_margin_loss, rows mlm_group_f32 does not take: one listed class against a
  // contiguous float32 row (formulas::MultilabelMarginRow).
  DenseForwardKernel mlm_forward_f32;
  // multilabel_margin_loss's float32 pair counts: formulas::MultilabelMarginCountRow in
  // dense_forward's fused mode (io.in[2] and io.grad[2] the same float row of counts).
  DenseForwardKernel mlm_count_f32;
  // multilabel_margin_loss over one sample's contiguous float32 classes (MlmRow).
  void (*mlm_group_f32)(const MlmRow& r);
  // The same over contiguous float64 classes (MlmRow64).
  void (*mlm_group_f64)(const MlmRow64& r);
  // Whether every v[i] (i < n) lies in [lo, hi]: multilabel_margin_loss's range check over
  // the whole target, as PyTorch's CPU kernel makes it (a global min and max).
  bool (*int64_in_range)(const std::int64_t* v, std::int64_t n, std::int64_t lo, std::int64_t hi);
  // triplet_margin_loss's p = 2 gradients over one row of d float32 elements of the anchor a,
  // positive p and negative q: with w = u_k + eps for u_0 = a - p, u_1 = a - q, u_2 = p - q,
  // v_k = sgn(w) G_k where |w| == dist_k, else w s_k (s[k] = s_k = G_k / dist_k, s[3 + k] = G_k,
  // s[6 + k] = dist_k, the caller's; -1 for dist_k where the distance is 0 (then s_k = 0) or
  // not finite; v_2 = 0
  // unless three: the swap's third distance), and out[0] = (0 + v_0) + v_1, out[1] = (0 - v_0) +
  // v_2, out[2] = (0 - v_1) - v_2 rounded to float32 (null outputs skipped); stream: non-temporal
  // stores (outputs 32-byte aligned). Returns bit 0 where an element of out[0] (bit 1: of out[1]
  // with three) came out below kTripletCancelF32 times its first term |v_0|: the two terms
  // cancelled, and double kept too few of the result's bits (the caller redoes that row).
  int (*triplet2_grad_row_f32)(const float* a, const float* p, const float* q, std::int64_t d,
                               double eps, const double* s, bool three, float* const* out,
                               bool stream);
  // cosine_embedding_loss's gradients over one row of d contiguous float32 elements, s = {p, m1,
  // m2, t1, t2} (the row's dot product, squared norms with EPS, and t_k = gcos / den_k, den_k the
  // row's denominator of d cos / d x_k): g1[j] = 0 + fma(x2_j, m1, -(p x1_j)) t1 and g2[j] =
  // 0 + fma(x1_j, m2, -(p x2_j)) t2 rounded to float32 (null outputs skipped); stream:
  // non-temporal stores (outputs 32-byte aligned).
  void (*cos_grad_row_f32)(const float* x1, const float* x2, std::int64_t d, const double* s,
                           float* g1, float* g2, bool stream);
  // The same over float64 rows, in double-double: s = {p, m1, m2, t1, t2} as hi, lo pairs (ten
  // doubles); g1[j] = 0 + (x2_j M1 - P x1_j) T1 with the numerator and the product in
  // double-double (formulas: dd_cos_numerator, dd_scaled), rounded once to double.
  void (*cos_grad_row_f64)(const double* x1, const double* x2, std::int64_t d, const double* s,
                           double* g1, double* g2, bool stream);
  // multi_margin_loss over one sample's contiguous float32 classes (MmRow).
  void (*mm_row_f32)(MmRow& r);
  // The same over contiguous float64 classes (MmRow64).
  void (*mm_row_f64)(MmRow64& r);
  // Pairwise rows of D contiguous float32 elements (pairwise.cpp's fast path), summed over the
  // lanes in a fixed order: sum of (x - y + eps)^2 in double; the dot product and both squared
  // norms as double-doubles (sums: hi, lo of x.y, x.x, y.y; false when one is not finite).
  double (*sq_diff_row_f32)(const float* x, const float* y, std::int64_t d, double eps);
  // The sums sq_diff_row_f32 gives for (a, p), (a, q) and, with three, (p, q) of a triplet row
  // (out[0..2 or 3)), the same bits, in one pass over the three rows.
  void (*sq_diff3_row_f32)(const float* a, const float* p, const float* q, std::int64_t d,
                           double eps, bool three, double* out);
  bool (*dot3_row_f32)(const float* x, const float* y, std::int64_t d, double* sums);
  // Sum of (x - y + eps)^2 over a float64 row as a double-double (the float64 triplet p = 2 fast
  // path; false when not finite).
  bool (*sq_diff_row_f64_dd)(const double* x, const double* y, std::int64_t d, double eps,
                             double* hi, double* lo);
  // triplet_margin_loss's p = 2 gradients over one float64 row, in double-double: each pair's
  // r_k = x - y + eps times S_k = G_k / dist_k (s[0..6) = hi, lo of S_0, S_1, S_2; S_k = 0 where
  // dist_k = 0), or sgn(r_k) G_k exactly where |r_k| (its DD hi) equals dist_k (s[6..9) = G_k,
  // s[9..12) = dist_k, -1 where it is 0), out[0] = r_0 S_0 + r_1 S_1, out[1] = -r_0 S_0 + r_2 S_2
  // (three; else r_2 S_2 = 0), out[2] = -r_1 S_1 - r_2 S_2, each rounded once (null outputs
  // skipped). Returns bit 0 (bit 1) where an element of out[0] (out[1], three) came out below
  // kTripletCancelF64DD of its first term (double-double's bits too few there: the caller redoes
  // the row).
  int (*triplet2_grad_row_f64)(const double* a, const double* p, const double* q, std::int64_t d,
                               double eps, const double* s, bool three, double* const* out,
                               bool stream);
  // The same sums of float64 rows (each product split exactly with an fma).
  bool (*dot3_row_f64)(const double* x, const double* y, std::int64_t d, double* sums);
  // The classification driver's row kernel: out = exp(in[0] - p.s0) (formulas/cross_entropy.hpp).
  ForwardKernel row_exp;
  // ctc_loss's float32 fast path (CtcSample). ctc_alpha_f32 fills alpha (all L rows of
  // 2 ctc_half(S) doubles when all_rows, else two rows used in turn) and sets *nll; false when an
  // emission it reads (the blank's or a label's log_prob) is NaN or +inf (the general path
  // handles those samples). ctc_grad_f32, from all_rows' table and a finite nll: the gradient
  // rows t < L, (exp(lp) - exp(lcab + nll - lp)) gr rounded once to float32, row t at grad + t gst.
  bool (*ctc_alpha_f32)(const CtcSample& s, double* alpha, bool all_rows, double* nll);
  void (*ctc_grad_f32)(const CtcSample& s, const double* alpha, double nll, double gr, float* grad,
                       std::int64_t gst);
  // ctc_loss's float64 kernels (CtcSample with lp64), in the float64 table on AVX-512 only (null
  // elsewhere: the driver's scalar double-double path): isa/ctc_dd.hpp. ctc_paths_f64: the last
  // row's final states' probabilities as (hi, lo, binary exponent) each, out[0..3) the blank's
  // and out[3..6) label S - 1's (hi = 0 for zero). ctc_grad_f64: the gradient rows t < L (C
  // doubles each, row t at g + t gst), upstream gr. Both false where the driver's scalar path must
  // take the sample (isa/ctc_dd.hpp says when).
  bool (*ctc_paths_f64)(const CtcSample& s, double* out) = nullptr;
  // cross_entropy's float64 rows, in the float64 table on AVX-512 only (null elsewhere: the
  // general path): isa/ce_dd.hpp. ce_row_f64 as ce_row_f32, with each exp(x_k - m) as the
  // double-double e[k] + e_lo[k] (both null: not stored); ce_grad_row_f64: out[k] = (e[k] +
  // e_lo[k]) (q_hi + q_lo) rounded once.
  bool (*ce_row_f64)(const double* x, std::int64_t c, double* m, double* s_hi, double* s_lo,
                     double* e, double* e_lo) = nullptr;
  void (*ce_grad_row_f64)(const double* e, const double* e_lo, std::int64_t c, double q_hi,
                          double q_lo, double* out, bool stream) = nullptr;
  bool (*ctc_grad_f64)(const CtcSample& s, double gr, double* g, std::int64_t gst) = nullptr;
};

// One per ISA, each defined in its own translation unit compiled with its own -m flags.
const KernelTable& scalar_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();
// The AVX-512 table with exp, log, log1p and softplus's tail to about half an ULP of double
// (isa/avx512_f64.cpp): the float64 losses with exp/log whose terms do not cancel (api.cpp).
const KernelTable& avx512_f64_kernels();
// The opt-in cpu-fast table (isa/avx512_fast.cpp): the AVX-512 table with the dense float32
// kernels of the losses with exp/log evaluated in float lanes (faster, not within 1 ULP).
const KernelTable& avx512_fast_kernels();
// The float64 double-double kernels of the elementwise losses: only their float64 forward,
// backward, dense and sum entries (and dd_math) are set. Scalar (isa/exact64.cpp, for the scalar
// path; isa/exact64_fma.cpp, the same with FMA, for the AVX2 path) and eight lanes on AVX-512
// (isa/exact64_avx512.cpp).
const KernelTable& exact64_kernels();
const KernelTable& exact64_fma_kernels();
const KernelTable& exact64_avx512_kernels();

}  // namespace lossbench::opt
