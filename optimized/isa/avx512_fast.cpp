// The opt-in "cpu-fast" table: the AVX-512 table, except that the dense float32 kernels of the
// losses with exp or log (and cross_entropy's float32 rows) evaluate their formulas in float lanes
// (isa/simd_f32.hpp: 16 floats, Highway's float exp/log) instead of double ones. Twice the lanes
// and cheaper transcendentals, for several float roundings per result instead of one: "cpu" keeps
// the 1-ULP evaluation, and optimized/budgets.txt holds cpu-fast's measured errors. Compiled with
// the AVX-512 flags (optimized/CMakeLists.txt).
#include "simd_f32.hpp"

namespace lossbench::opt {
namespace {

using simd::VD;
using simd::VF;

// dense_forward (drivers/block.hpp) over float lanes: each vector of results is widened to two
// vectors of doubles and summed there, four accumulators in a fixed order; a sum of float terms
// in double keeps a relative error near n 2^-53 (n, a lane's terms: below 2^-30 for any tensor
// that fits in memory), far below the terms' own float error, so no compensation is needed.
// Non-finite terms give IEEE's sum directly. kFused: the gradients too, as dense_backward.
template <class F, bool kFused>
void fast_forward(const DenseIO& io, std::int64_t start, std::int64_t n, const formulas::Params& p,
                  double* hi, double* lo) {
  using T = kernels::Traits<VF>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  kernels::DenseBlock<VF, F, float, kFused> d(io, start, n);
  const auto eval = [&](const float* const* from, const float* gfrom, float* const* to,
                        std::int64_t i) __attribute__((always_inline)) {
    VF a[F::kInputs];
    d.load(io, from, gfrom, to, i, false, p, a);
    return F::forward(a, p);
  };
  const auto &src = d.src, &gdst = d.gdst;
  const float* gsrc = d.gsrc;
  const std::int64_t full = d.full, rest = d.rest;
  float tail[T::kLanes] = {};
  if (rest > 0) {
    T::store(eval(d.tail_src, d.tail_gsrc, d.tail_dst, 0), tail);
    d.copy_tail_grads();
  }
  if (io.out[0] != nullptr) {
    float* out = static_cast<float*>(io.out[0]) + start;
    for (std::int64_t i = 0; i < full; i += L) T::store(eval(src, gsrc, gdst, i), out + i);
    for (std::int64_t j = 0; j < rest; ++j) out[full + j] = tail[j];
    kernels::report_values(io, d.flagged);
    return;
  }
  VD acc[4] = {VD(0.0), VD(0.0), VD(0.0), VD(0.0)};
  std::int64_t i = 0;
  for (; i + 2 * L <= full; i += 2 * L) {
    for (int k = 0; k < F::kInputs; ++k)
      if (src[k] != nullptr) __builtin_prefetch(src[k] + i + kernels::kPrefetch);
    const VF r0 = eval(src, gsrc, gdst, i), r1 = eval(src, gsrc, gdst, i + L);
    acc[0] = acc[0] + simd::lower_half(r0);
    acc[1] = acc[1] + simd::upper_half(r0);
    acc[2] = acc[2] + simd::lower_half(r1);
    acc[3] = acc[3] + simd::upper_half(r1);
  }
  if (i < full) {
    const VF r0 = eval(src, gsrc, gdst, i);
    acc[0] = acc[0] + simd::lower_half(r0);
    acc[1] = acc[1] + simd::upper_half(r0);
  }
  double lanes[HWY_LANES(double)];
  simd::hn::StoreU(((acc[0] + acc[1]) + (acc[2] + acc[3])).v, simd::D(), lanes);
  double sum = 0.0;
  for (const double v : lanes) sum += v;
  for (std::int64_t j = 0; j < rest; ++j) sum += static_cast<double>(tail[j]);
  *hi = sum;
  *lo = 0.0;
  kernels::report_values(io, d.flagged);
}

}  // namespace

const KernelTable& avx512_fast_kernels() {
  static const KernelTable table = [] {
    KernelTable t = avx512_kernels();
    t.isa = "avx512-fast";
#define LOSSBENCH_OPT_FAST(id, F)                                                    \
  t.dense_forward[static_cast<int>(Loss::id)][0] = fast_forward<formulas::F, false>; \
  t.dense_fused[static_cast<int>(Loss::id)][0] = fast_forward<formulas::F, true>;    \
  t.dense_backward[static_cast<int>(Loss::id)][0] = kernels::dense_backward<VF, formulas::F, float>;
    LOSSBENCH_OPT_FAST(binary_cross_entropy, BinaryCrossEntropy)
    LOSSBENCH_OPT_FAST(binary_cross_entropy_with_logits, BinaryCrossEntropyWithLogits)
    LOSSBENCH_OPT_FAST(soft_margin_loss, SoftMarginLoss)
    LOSSBENCH_OPT_FAST(poisson_nll_loss, PoissonNllLoss)
    LOSSBENCH_OPT_FAST(gaussian_nll_loss, GaussianNllLoss)
    LOSSBENCH_OPT_FAST(kl_div, KlDiv)
#undef LOSSBENCH_OPT_FAST
    t.mlsm_forward_f32 = fast_forward<formulas::MultilabelSoftMarginRow, false>;
    t.mlsm_backward_f32 = kernels::dense_backward<VF, formulas::MultilabelSoftMarginRow, float>;
    t.mlsm_fused_f32 = fast_forward<formulas::MultilabelSoftMarginRow, true>;
    // cross_entropy's float32 rows (classification.cpp's fast path): the max, exp(x - m) and
    // their float-float sum over float lanes (block.hpp: ce_row_impl, here with x - m and exp in
    // float); the exps are kept as doubles for the gradient row, as the other tables keep them.
    t.ce_row_f32 = kernels::ce_row_f32<VF>;
    // The float functions above, on float values held in doubles (n a multiple of 16).
    t.math = kernels::math_block<VF>;
    return t;
  }();
  return table;
}

}  // namespace lossbench::opt
