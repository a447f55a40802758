#pragma once
// The block kernels, written once over a lane type (double, or a SIMD wrapper with the
// Traits below) and instantiated by each ISA's translation unit (isa/*.cpp). Included after the
// ISA's lane type; lives in that TU's inline namespace (see formulas/common.hpp).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../formulas/cosine_embedding_loss.hpp"
#include "../formulas/ctc_loss.hpp"
#include "../kernels.hpp"

namespace lossbench::opt::kernels {
inline namespace LOSSBENCH_FORMULA_NS {

// Traits<V>: kLanes, load(const double*), store(V, double*), and the double-double helpers.
template <class V>
struct Traits;

template <>
struct Traits<double> {
  static constexpr std::size_t kLanes = 1;
  static double load(const double* p) { return *p; }
  static double load(const float* p) { return static_cast<double>(*p); }
  static void store(double v, double* p) { *p = v; }
  static void store(double v, float* p) { *p = static_cast<float>(v); }
};

// Stores a whole vector of results at p: with a non-temporal store when `stream` is set and the
// lane type has one (Traits<V>::stream; p is then aligned to the vector's width, see
// DenseIO::stream), else a plain store. Non-temporal stores skip the read-for-ownership of each
// written line: a full-size gradient costs its write only, not a read and a write.
template <class T, class V, class E>
inline __attribute__((always_inline)) void put(V v, E* p, bool stream) {
  if constexpr (requires { T::stream(v, p); }) {
    if (stream) {
      T::stream(v, p);
      return;
    }
  }
  T::store(v, p);
}

// Whether F's dense kernels honour DenseIO::stream: only the memory-bound formulas
// (F::kStreamStores). For the others it is false at compile time, so their loops are the plain
// ones: between an exp/log formula's stores, streaming costs more than it saves, and the
// run-time flag alone slowed gaussian_nll_loss forward+backward from 116 to 190 ms.
template <class F>
constexpr bool streams() {
  if constexpr (requires { F::kStreamStores; })
    return F::kStreamStores;
  else
    return false;
}

// PyTorch's value checks on the lanes a dense kernel read (DenseIO::invalid, F::invalid): sets
// `flagged` where a lane holds a value PyTorch rejects; nothing for a formula without checks or
// a call that did them already.
template <class F, class V>
__attribute__((always_inline)) inline void check_values(const DenseIO& io, const V* a,
                                                        bool& flagged) {
  if constexpr (requires { F::invalid(a); }) {
    using formulas::vany;
    if (io.invalid != nullptr && vany(F::invalid(a))) flagged = true;
  }
}
// Reports what check_values found (one relaxed store per kernel call that found something).
inline void report_values(const DenseIO& io, bool flagged) {
  if (flagged) io.invalid->store(1, std::memory_order_relaxed);
}

// Orders a thread's non-temporal stores before whatever it does next (the end of a block).
inline void stream_fence(bool stream) {
#if defined(__x86_64__) || defined(__i386__)
  if (stream) __builtin_ia32_sfence();
#else
  (void)stream;
#endif
}

template <class V, class F>
void forward_block(const double* const* in, double* out, std::size_t n, const formulas::Params& p) {
  using T = Traits<V>;
  for (std::size_t i = 0; i < n; i += T::kLanes) {
    V a[F::kInputs];
    for (int k = 0; k < F::kInputs; ++k) a[k] = T::load(in[k] + i);
    T::store(F::forward(a, p), out + i);
  }
}

// F::backward over n gathered elements (whole vectors); put(r, k, i) writes gradient k's lanes
// at element i: backward_block rounds them to double, backward_block_split (double-double
// lanes) keeps hi and lo apart.
template <class V, class F, class Put>
void backward_lanes(const double* const* in, const double* g, std::size_t n,
                    const formulas::Params& p, Put put) {
  using T = Traits<V>;
  for (std::size_t i = 0; i < n; i += T::kLanes) {
    V a[F::kInputs];
    V r[F::kInputs];
    for (int k = 0; k < F::kInputs; ++k) a[k] = T::load(in[k] + i);
    F::backward(a, T::load(g + i), p, r);
    for (int k = 0; k < F::kInputs; ++k) put(r[k], k, i);
  }
}

template <class V, class F>
void backward_block(const double* const* in, const double* g, double* const* out, std::size_t n,
                    const formulas::Params& p) {
  backward_lanes<V, F>(in, g, n, p,
                       [&](V v, int k, std::size_t i) { Traits<V>::store(v, out[k] + i); });
}

template <class V, class F>
void backward_block_split(const double* const* in, const double* g, double* const* out,
                          double* const* lo, std::size_t n, const formulas::Params& p) {
  backward_lanes<V, F>(in, g, n, p, [&](V v, int k, std::size_t i) {
    Traits<V>::store_split(v, out[k] + i, lo[k] + i);
  });
}

// A formula with backward_split gives each gradient as out + lo (the float64 table's
// double-double formulas, isa/f64_dd.hpp), for a broadcast input's gradient to be summed from
// both, as backward_block_split does for double-double lanes.
template <class V, class F>
inline constexpr bool kHasBackwardSplit = requires(const V* a, V g, V* r) {
  F::backward_split(a, g, formulas::Params{}, r, r);
};
template <class V, class F>
void backward_block_lo(const double* const* in, const double* g, double* const* out,
                       double* const* lo, std::size_t n, const formulas::Params& p) {
  using T = Traits<V>;
  for (std::size_t i = 0; i < n; i += T::kLanes) {
    V a[F::kInputs], r[F::kInputs], l[F::kInputs];
    for (int k = 0; k < F::kInputs; ++k) a[k] = T::load(in[k] + i);
    F::backward_split(a, T::load(g + i), p, r, l);
    for (int k = 0; k < F::kInputs; ++k) {
      T::store(r[k], out[k] + i);
      T::store(l[k], lo[k] + i);
    }
  }
}

// Error-free transformation: s + e == a + b exactly (formulas/common.hpp).
using formulas::two_sum;

// Lane sums of the kAcc accumulators (s, c) in a fixed order into hi + lo. Returns false when
// the sum is not finite (a term was infinite or NaN, or the sum overflowed): the compensation is
// then meaningless and the caller sums the terms plainly, as sum_block does.
template <class V, std::size_t kAcc = 4>
bool finish_sum(const V* s, const V* c, double* hi, double* lo) {
  using T = Traits<V>;
  double lanes_s[kAcc * T::kLanes], lanes_c[kAcc * T::kLanes];
  for (std::size_t k = 0; k < kAcc; ++k) {
    T::store(s[k], lanes_s + k * T::kLanes);
    T::store(c[k], lanes_c + k * T::kLanes);
  }
  double hs = 0.0, hc = 0.0;
  for (std::size_t j = 0; j < kAcc * T::kLanes; ++j) {
    double e;
    two_sum(hs, lanes_s[j], hs, e);
    hc += e + lanes_c[j];
  }
  two_sum(hs, hc, *hi, *lo);
  return std::fabs(*hi) < HUGE_VAL;
}

// Per lane: a running double-double (s, c) in TwoSum form, 4 independent accumulators; then
// the lanes and accumulators are combined in a fixed order. Deterministic for a given ISA.
template <class V>
void sum_block(double* v, std::size_t n, double* hi, double* lo) {
  using T = Traits<V>;
  constexpr std::size_t kAcc = 4;
  constexpr std::size_t kStep = kAcc * T::kLanes;
  std::size_t padded = (n + kStep - 1) / kStep * kStep;
  for (std::size_t i = n; i < padded; ++i) v[i] = 0.0;
  V s[kAcc], c[kAcc];
  for (std::size_t k = 0; k < kAcc; ++k) s[k] = c[k] = V(0.0);
  for (std::size_t i = 0; i < padded; i += kStep) {
    for (std::size_t k = 0; k < kAcc; ++k) {
      V e;
      two_sum(s[k], T::load(v + i + k * T::kLanes), s[k], e);
      c[k] = c[k] + e;
    }
  }
  if (!finish_sum(s, c, hi, lo)) {
    // An infinity or NaN among the terms: the compensation is meaningless; the plain sum gives
    // IEEE's answer (inf, -inf or NaN).
    double plain = 0.0;
    for (std::size_t i = 0; i < n; ++i) plain += v[i];
    *hi = plain;
    *lo = 0.0;
  }
}

// The dense fast path (kernels.hpp: DenseIO): E is float or double, the tensors' element type.
// The last partial vector goes through a small padded buffer (inputs padded with 0.5, a value
// every formula accepts; results beyond n are dropped).
// Elements ahead of the loop that the dense kernels prefetch.
inline constexpr std::int64_t kPrefetch = 2048;

// Software prefetch for the row kernels whose loop takes two vectors a step (mm_row_impl,
// mm_row64_impl, mlm_group_impl, dot3_row): kPrefetch elements ahead of step i, one prefetch per
// 64-byte line (two lines a step for AVX-512 doubles; every other step, or less, for narrower
// steps).
template <class V, class E>
__attribute__((always_inline)) inline void prefetch_step(const E* x, std::int64_t i) {
  constexpr std::int64_t kStep = 2 * static_cast<std::int64_t>(Traits<V>::kLanes);
  constexpr std::int64_t kLine = 64 / static_cast<std::int64_t>(sizeof(E));
  if constexpr (kStep >= kLine) {
    for (std::int64_t k = 0; k < kStep; k += kLine) __builtin_prefetch(x + i + kPrefetch + k);
  } else if (i % kLine == 0) {
    __builtin_prefetch(x + i + kPrefetch);
  }
}

// A dense kernel's view of its elements [start, start + n) (DenseIO): the inputs (or their
// constants); in fused mode (forward_backward) the gradients it writes and the upstream gradient;
// and the last partial vector's padded copies (inputs padded with 0.5, a value every formula
// accepts; its gradients land in tail_out, and copy_tail_grads writes the first `rest` of them).
// dense_forward and the cpu-fast table's forward (isa/avx512_fast.cpp). Not copyable: the tail
// pointers point into it.
template <class V, class F, class E, bool kFused>
struct DenseBlock {
  using T = Traits<V>;
  static constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const E* src[F::kInputs] = {};
  E* gdst[F::kInputs] = {};
  V cst[F::kInputs];
  const E* gsrc = nullptr;
  V gc;
  std::int64_t full = 0, rest = 0;
  E tail_in[F::kInputs][T::kLanes] = {}, tail_g[T::kLanes] = {},
    tail_out[F::kInputs][T::kLanes] = {};
  const E* tail_src[F::kInputs] = {};
  E* tail_dst[F::kInputs] = {};
  const E* tail_gsrc = nullptr;
  bool flagged = false;  // check_values

  DenseBlock(const DenseIO& io, std::int64_t start, std::int64_t n) {
    full = n / L * L;
    rest = n - full;
    for (int k = 0; k < F::kInputs; ++k) {
      src[k] = io.in[k] != nullptr ? static_cast<const E*>(io.in[k]) + start : nullptr;
      gdst[k] = kFused && io.grad[k] != nullptr ? static_cast<E*>(io.grad[k]) + start : nullptr;
      cst[k] = V(io.constant[k]);
      tail_src[k] = src[k] != nullptr ? tail_in[k] : nullptr;
      tail_dst[k] = gdst[k] != nullptr ? tail_out[k] : nullptr;
      for (std::int64_t j = 0; j < L; ++j)
        tail_in[k][j] = src[k] != nullptr && j < rest ? src[k][full + j] : static_cast<E>(0.5);
    }
    gsrc = kFused && io.g != nullptr ? static_cast<const E*>(io.g) + start : nullptr;
    gc = V(io.g_constant);
    for (std::int64_t j = 0; j < L; ++j)
      tail_g[j] = gsrc != nullptr && j < rest ? gsrc[full + j] : static_cast<E>(0);
    tail_gsrc = gsrc != nullptr ? tail_g : nullptr;
  }
  DenseBlock(const DenseBlock&) = delete;
  DenseBlock& operator=(const DenseBlock&) = delete;

  // a = the formula's inputs at `from` + i, value-checked (check_values); in fused mode their
  // gradients are written to `to` + i (upstream from `gfrom` + i or the constant; streamed where
  // st).
  __attribute__((always_inline)) void load(const DenseIO& io, const E* const* from, const E* gfrom,
                                           E* const* to, std::int64_t i, bool st,
                                           const formulas::Params& p, V* a) {
    for (int k = 0; k < F::kInputs; ++k) a[k] = from[k] != nullptr ? T::load(from[k] + i) : cst[k];
    check_values<F>(io, a, flagged);
    if constexpr (kFused) {
      V r[F::kInputs];
      F::backward(a, gfrom != nullptr ? T::load(gfrom + i) : gc, p, r);
      for (int k = 0; k < F::kInputs; ++k)
        if (to[k] != nullptr) put<T>(r[k], to[k] + i, st);
    }
  }
  // (GCC 12 reports tail_out as maybe uninitialized here once this is inlined into a fused
  // kernel, though every member is initialized: a false positive, silenced for this function.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
  void copy_tail_grads() {
    if constexpr (kFused)
      for (int k = 0; k < F::kInputs; ++k)
        if (gdst[k] != nullptr)
          for (std::int64_t j = 0; j < rest; ++j) gdst[k][full + j] = tail_out[k][j];
  }
#pragma GCC diagnostic pop
};

// kFused (forward_backward): the gradients too, from the same loads. io.grad[k] receives the
// gradient of input k (nullptr: not wanted), from the upstream io.g (per element) or
// io.g_constant, as dense_backward computes them.
template <class V, class F, class E, bool kFused = false>
void dense_forward(const DenseIO& io, std::int64_t start, std::int64_t n, const formulas::Params& p,
                   double* hi, double* lo) {
  using T = Traits<V>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  DenseBlock<V, F, E, kFused> d(io, start, n);
  const auto &src = d.src, &tail_src = d.tail_src;
  const auto &gdst = d.gdst, &tail_dst = d.tail_dst;
  const E *gsrc = d.gsrc, *tail_gsrc = d.tail_gsrc;
  const std::int64_t full = d.full, rest = d.rest;
  // The loss of the elements at `from` + i; fused, their gradients go to `to` + i.
  // st: stream the gradients (the whole vectors in place; the padded tail's go to a buffer).
  const bool stream = streams<F>() && io.stream;
  // A formula with forward_split gives each loss as hi + lo (hi the rounded value): the sums
  // below take the low parts into their compensation, so that the loss is not rounded before it
  // is summed (formulas/binary_cross_entropy.hpp).
  constexpr bool kSplit = requires(const V* a, V& l) { F::forward_split(a, p, l); };
  const auto eval_lo = [&](const E* const* from, const E* gfrom, E* const* to, std::int64_t i,
                           bool st, V& low) __attribute__((always_inline)) {
    V a[F::kInputs];
    d.load(io, from, gfrom, to, i, st, p, a);
    if constexpr (kSplit) {
      return F::forward_split(a, p, low);
    } else {
      low = V(0.0);
      return F::forward(a, p);
    }
  };
  const auto eval = [&](const E* const* from, const E* gfrom, E* const* to, std::int64_t i, bool st)
      __attribute__((always_inline)) {
    V low;
    return eval_lo(from, gfrom, to, i, st, low);
  };
  const auto copy_tail_grads = [&] { d.copy_tail_grads(); };
  if (io.out[0] != nullptr) {
    E* out = static_cast<E*>(io.out[0]) + start;
    for (std::int64_t i = 0; i < full; i += L)
      put<T>(eval(src, gsrc, gdst, i, stream), out + i, stream);
    stream_fence(stream);
    if (rest > 0) {
      E tmp[T::kLanes];
      T::store(eval(tail_src, tail_gsrc, tail_dst, 0, false), tmp);
      for (std::int64_t j = 0; j < rest; ++j) out[full + j] = tmp[j];
      copy_tail_grads();
    }
    report_values(io, d.flagged);
    return;
  }
  constexpr std::int64_t kAcc = 4;
  V s[kAcc], c[kAcc];
  for (std::int64_t k = 0; k < kAcc; ++k) s[k] = c[k] = V(0.0);
  const auto add = [&](V r, V low, std::int64_t k) {
    V e;
    two_sum(s[k], r, s[k], e);
    if constexpr (kSplit)
      c[k] = c[k] + (e + low);
    else
      c[k] = c[k] + e;
  };
  // The tail's terms: in tail (rounded to double: the non-finite sum below) and as a vector with
  // the padded lanes zeroed by a select, not through memory, so that a double-double lane keeps
  // its low part (a store rounds it: 18.5 ULP on a float64 poisson_nll_loss mean of 12 terms
  // that cancel to 0.0145, isa/exact64_avx512.cpp).
  double tail[T::kLanes] = {};
  V tail_v(0.0), tail_lo(0.0);
  if (rest > 0) {
    V r_lo;
    const V r = eval_lo(tail_src, tail_gsrc, tail_dst, 0, false, r_lo);
    T::store(r, tail);
    for (std::int64_t j = rest; j < L; ++j) tail[j] = 0.0;
    double lane[T::kLanes];
    for (std::int64_t j = 0; j < L; ++j) lane[j] = static_cast<double>(j);
    using formulas::vselect;  // (and DD lanes' own, by argument-dependent lookup)
    const auto in_tail = T::load(lane) < V(static_cast<double>(rest));
    tail_v = vselect(in_tail, r, V(0.0));
    tail_lo = vselect(in_tail, r_lo, V(0.0));
    copy_tail_grads();
  }
  // Every index into s and c is a constant after unrolling, so the accumulators stay in
  // registers (a variable index would put them in memory, on the loop's critical path).
  std::int64_t i = 0;
  for (; i + kAcc * L <= full; i += kAcc * L) {
    // Software prefetch a few KiB ahead: more misses in flight per core than the hardware
    // prefetcher keeps while the core is busy with the formula.
    for (int k = 0; k < F::kInputs; ++k)
      if (src[k] != nullptr) {
        __builtin_prefetch(src[k] + i + kPrefetch);
        __builtin_prefetch(src[k] + i + kPrefetch + 64 / sizeof(E));
      }
#pragma GCC unroll 4
    for (std::int64_t k = 0; k < kAcc; ++k) {
      V low;
      const V r = eval_lo(src, gsrc, gdst, i + k * L, stream, low);
      add(r, low, k);
    }
  }
  // At most 3 whole vectors and the tail are left: one more round, padded with zeros.
  V left[kAcc], left_lo[kAcc];
  std::int64_t count = 0;
  for (std::int64_t r = i; r < full; r += L) {
    left[count] = eval_lo(src, gsrc, gdst, r, stream, left_lo[count]);
    ++count;
  }
  stream_fence(stream);
  if (rest > 0) {
    left[count] = tail_v;
    left_lo[count++] = tail_lo;
  }
  for (std::int64_t k = count; k < kAcc; ++k) left[k] = left_lo[k] = V(0.0);
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kAcc; ++k) add(left[k], left_lo[k], k);
  report_values(io, d.flagged);
  if (finish_sum(s, c, hi, lo)) return;
  // Not finite: IEEE's plain sum of the same terms (inf, -inf or NaN), evaluated again (the
  // gradients are already written).
  E* const none[F::kInputs] = {};
  V plain(0.0);
  for (i = 0; i < full; i += L) plain = plain + eval(src, nullptr, none, i, false);
  if (rest > 0) plain = plain + T::load(tail);
  double lanes[T::kLanes];
  T::store(plain, lanes);
  *hi = 0.0;
  for (std::int64_t j = 0; j < L; ++j) *hi += lanes[j];
  *lo = 0.0;
}

template <class V, class F, class E>
void dense_backward(const DenseIO& io, std::int64_t start, std::int64_t n,
                    const formulas::Params& p) {
  using T = Traits<V>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const E* src[F::kInputs];
  E* dst[F::kInputs];
  V cst[F::kInputs];
  for (int k = 0; k < F::kInputs; ++k) {
    src[k] = io.in[k] != nullptr ? static_cast<const E*>(io.in[k]) + start : nullptr;
    dst[k] = io.out[k] != nullptr ? static_cast<E*>(io.out[k]) + start : nullptr;
    cst[k] = V(io.constant[k]);
  }
  const E* g = io.g != nullptr ? static_cast<const E*>(io.g) + start : nullptr;
  const V gc(io.g_constant);
  const bool stream = streams<F>() && io.stream;
  const std::int64_t full = n / L * L;
  bool flagged = false;  // check_values
  for (std::int64_t i = 0; i < full; i += L) {
    if (i % (4 * L) == 0)  // software prefetch, as in dense_forward
      for (int k = 0; k < F::kInputs; ++k)
        if (src[k] != nullptr) {
          __builtin_prefetch(src[k] + i + kPrefetch);
          __builtin_prefetch(src[k] + i + kPrefetch + 64 / sizeof(E));
        }
    V a[F::kInputs], r[F::kInputs];
    for (int k = 0; k < F::kInputs; ++k) a[k] = src[k] != nullptr ? T::load(src[k] + i) : cst[k];
    check_values<F>(io, a, flagged);
    F::backward(a, g != nullptr ? T::load(g + i) : gc, p, r);
    for (int k = 0; k < F::kInputs; ++k)
      if (dst[k] != nullptr) put<T>(r[k], dst[k] + i, stream);
  }
  stream_fence(stream);
  const std::int64_t rest = n - full;
  if (rest == 0) {
    report_values(io, flagged);
    return;
  }
  E tin[F::kInputs][T::kLanes], tg[T::kLanes], tout[T::kLanes];
  V a[F::kInputs], r[F::kInputs];
  for (int k = 0; k < F::kInputs; ++k) {
    for (std::int64_t j = 0; j < L; ++j)
      tin[k][j] = src[k] != nullptr && j < rest ? src[k][full + j] : static_cast<E>(0.5);
    a[k] = src[k] != nullptr ? T::load(tin[k]) : cst[k];
  }
  for (std::int64_t j = 0; j < L; ++j) tg[j] = g != nullptr && j < rest ? g[full + j] : E(0);
  check_values<F>(io, a, flagged);
  report_values(io, flagged);
  F::backward(a, g != nullptr ? T::load(tg) : gc, p, r);
  for (int k = 0; k < F::kInputs; ++k) {
    if (dst[k] == nullptr) continue;
    T::store(r[k], tout);
    for (std::int64_t j = 0; j < rest; ++j) dst[k][full + j] = tout[j];
  }
}

// cross_entropy rows (kernels.hpp: ce_row_f32, ce_grad_row_f32). The last partial vector is
// read from a copy padded with -inf (exp gives 0 there).
template <class V, bool kStore>
bool ce_row_impl(const float* x, std::int64_t C, double* m_out, double* s_hi, double* s_lo,
                 double* e_out) {
  using T = Traits<V>;
  using formulas::vany, formulas::vexp, formulas::visnan, formulas::vselect;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t full = C / L * L, rest = C - full;
  float tail[T::kLanes];
  for (std::int64_t j = 0; j < L; ++j) tail[j] = j < rest ? x[full + j] : -HUGE_VALF;
  V mx(-HUGE_VAL);
  auto nan = visnan(mx);
  for (std::int64_t i = 0; i <= full; i += L) {
    if (i == full && rest == 0) break;
    const V v = i < full ? T::load(x + i) : T::load(tail);
    nan = nan | visnan(v);
    mx = vselect(v > mx, v, mx);
  }
  if (vany(nan)) return false;
  double lanes[T::kLanes];
  T::store(mx, lanes);
  double m = -HUGE_VAL;
  for (std::int64_t j = 0; j < L; ++j) m = lanes[j] > m ? lanes[j] : m;
  if (!(std::fabs(m) < HUGE_VAL)) return false;
  constexpr std::int64_t kAcc = 4;
  V s[kAcc], c[kAcc];
  for (std::int64_t k = 0; k < kAcc; ++k) s[k] = c[k] = V(0.0);
  const V vm(m);
  const auto add = [&](V r, std::int64_t k) {
    V e;
    two_sum(s[k], r, s[k], e);
    c[k] = c[k] + e;
  };
  std::int64_t i = 0;
  for (; i + kAcc * L <= full; i += kAcc * L) {
    // This pass is compute-bound on a row already in cache: fetch the next row (rows are
    // contiguous in the fast path; past the last row the prefetch is a harmless no-op).
    __builtin_prefetch(x + C + i);
    __builtin_prefetch(x + C + i + 16);
#pragma GCC unroll 4
    for (std::int64_t k = 0; k < kAcc; ++k) {
      const V e = vexp(T::load(x + i + k * L) - vm);
      if constexpr (kStore) T::store(e, e_out + i + k * L);
      add(e, k);
    }
  }
  V left[kAcc];
  std::int64_t count = 0;
  for (std::int64_t r = i; r < full; r += L) {
    left[count] = vexp(T::load(x + r) - vm);
    if constexpr (kStore) T::store(left[count], e_out + r);
    ++count;
  }
  if (rest > 0) {
    left[count] = vexp(T::load(tail) - vm);
    if constexpr (kStore) {
      double t[T::kLanes];
      T::store(left[count], t);
      for (std::int64_t j = 0; j < rest; ++j) e_out[full + j] = t[j];
    }
    ++count;
  }
  for (std::int64_t k = count; k < kAcc; ++k) left[k] = V(0.0);
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kAcc; ++k) add(left[k], k);
  double hi, lo;
  finish_sum(s, c, &hi, &lo);
  // The argmax's term is exp(0) = 1 exactly; hi >= 1, and hi - 1 is exact while hi < 2.
  double e;
  two_sum(hi - 1.0, lo, *s_hi, e);
  *s_lo = e;
  *m_out = m;
  return true;
}

// The exps are stored only when asked for (a separate instantiation: the forward's loop stays
// as tight as without them).
template <class V>
bool ce_row_f32(const float* x, std::int64_t C, double* m, double* s_hi, double* s_lo, double* e) {
  return e != nullptr ? ce_row_impl<V, true>(x, C, m, s_hi, s_lo, e)
                      : ce_row_impl<V, false>(x, C, m, s_hi, s_lo, e);
}

template <class V>
void ce_grad_row_f32(const double* e, std::int64_t C, double scale, float* out, bool stream) {
  using T = Traits<V>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t full = C / L * L;
  const V vs(scale);
  stream = stream && reinterpret_cast<std::uintptr_t>(out) % 64 == 0;
  for (std::int64_t i = 0; i < full; i += L) put<T>(T::load(e + i) * vs, out + i, stream);
  stream_fence(stream);  // the caller stores the target's gradient into this row next
  for (std::int64_t i = full; i < C; ++i) out[i] = static_cast<float>(e[i] * scale);
}

template <class V>
double lane_sum(V v) {
  using T = Traits<V>;
  double lanes[T::kLanes];
  T::store(v, lanes);
  double s = 0.0;
  for (std::size_t j = 0; j < T::kLanes; ++j) s += lanes[j];
  return s;
}

// Pairwise row sums (kernels.hpp: sq_diff_row_f32, sq_diff3_row_f32): the sum of
// (x - y + eps)^2 over one float32 row for K pairs of the rows a, p, q: (a, p), then (a, q), then
// (p, q), in one pass (q is read only for K >= 2). Per pair two accumulators per lane (alternate
// vectors, the tail in the second), combined in a fixed order, so that a pair's sum has the same
// bits whatever K. The last partial vector is read from zero-padded copies (its padded lanes are
// masked out of the squared difference, whose eps would not vanish).
template <class V, int K>
void sq_diff_rows(const float* a, const float* p, const float* q, std::int64_t D, double eps,
                  double* out) {
  using T = Traits<V>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t full = D / L * L, rest = D - full;
  const V e(eps);
  V s0[K], s1[K];
  for (int k = 0; k < K; ++k) s0[k] = s1[k] = V(0.0);
  const auto diffs = [&](const float* xa, const float* xp, const float* xq, V* d)
      __attribute__((always_inline)) {
    const V va = T::load(xa), vp = T::load(xp);
    d[0] = va - vp + e;
    if constexpr (K >= 2) {
      const V vq = T::load(xq);
      d[1] = va - vq + e;
      if constexpr (K == 3) d[2] = vp - vq + e;
    }
  };
  const auto step = [&](std::int64_t i, V * s) __attribute__((always_inline)) {
    V d[K];
    diffs(a + i, p + i, K >= 2 ? q + i : nullptr, d);
    for (int k = 0; k < K; ++k) s[k] = s[k] + d[k] * d[k];
  };
  std::int64_t i = 0;
  for (; i + 2 * L <= full; i += 2 * L) {
    step(i, s0);
    step(i + L, s1);
  }
  if (i < full) step(i, s0);
  if (rest > 0) {
    float ta[T::kLanes] = {}, tp[T::kLanes] = {}, tq[T::kLanes] = {};
    for (std::int64_t j = 0; j < rest; ++j) {
      ta[j] = a[full + j];
      tp[j] = p[full + j];
      if constexpr (K >= 2) tq[j] = q[full + j];
    }
    V d[K];
    diffs(ta, tp, tq, d);
    for (int k = 0; k < K; ++k) {
      double t[T::kLanes];
      T::store(d[k] * d[k], t);
      for (std::int64_t j = rest; j < L; ++j) t[j] = 0.0;
      s1[k] = s1[k] + T::load(t);
    }
  }
  for (int k = 0; k < K; ++k) out[k] = lane_sum(s0[k] + s1[k]);
}

template <class V>
double sq_diff_row_f32(const float* x, const float* y, std::int64_t D, double eps) {
  double s;
  sq_diff_rows<V, 1>(x, y, nullptr, D, eps, &s);
  return s;
}

template <class V>
void sq_diff3_row_f32(const float* a, const float* p, const float* q, std::int64_t D, double eps,
                      bool three, double* out) {
  if (three)
    sq_diff_rows<V, 3>(a, p, q, D, eps, out);
  else
    sq_diff_rows<V, 2>(a, p, q, D, eps, out);
}

// x . y, x . x and y . y of a float32 or float64 row as double-doubles (sums[0..6): hi, lo of
// each): a float32 product is exact in double; a float64 one is split exactly (p = u v,
// e = fma(u, v, -p)). Each lane accumulates the products in TwoSum form (two accumulator sets,
// alternate vectors), the float64 product errors with the TwoSum errors in the low accumulator,
// so 1 - cos keeps its bits when the rows are nearly parallel. False when a sum is not finite.
template <class V, class E>
bool dot3_row(const E* x, const E* y, std::int64_t D, double* sums) {
  using T = Traits<V>;
  using formulas::vfma;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  constexpr std::size_t kSets = 2;
  const std::int64_t full = D / L * L, rest = D - full;
  V s[3][kSets], c[3][kSets];
  for (auto& q : s)
    for (auto& v : q) v = V(0.0);
  for (auto& q : c)
    for (auto& v : q) v = V(0.0);
  const auto step = [&](V u, V v, std::size_t k) __attribute__((always_inline)) {
    const V t[3] = {u * v, u * u, v * v};
    for (int q = 0; q < 3; ++q) {
      V e;
      two_sum(s[q][k], t[q], s[q][k], e);
      if constexpr (std::is_same_v<E, double>) {
        const V a = q == 2 ? v : u, b = q == 1 ? u : v;
        c[q][k] = c[q][k] + (e + vfma(a, b, -t[q]));
      } else {
        c[q][k] = c[q][k] + e;
      }
    }
  };
  std::int64_t i = 0;
  for (; i + 2 * L <= full; i += 2 * L) {
    // Without it the loop reaches about 70% of the read bandwidth at 2 threads (its compute
    // leaves the hardware prefetcher behind; 12.4 against 16.4 ms at 256 MiB per tensor).
    prefetch_step<V, E>(x, i);
    prefetch_step<V, E>(y, i);
    step(T::load(x + i), T::load(y + i), 0);
    step(T::load(x + i + L), T::load(y + i + L), 1);
  }
  if (i < full) step(T::load(x + i), T::load(y + i), 0);
  if (rest > 0) {
    E tx[T::kLanes] = {}, ty[T::kLanes] = {};
    for (std::int64_t j = 0; j < rest; ++j) {
      tx[j] = x[full + j];
      ty[j] = y[full + j];
    }
    step(T::load(tx), T::load(ty), 1);
  }
  bool ok = true;
  for (int q = 0; q < 3; ++q)
    ok = finish_sum<V, kSets>(s[q], c[q], &sums[2 * q], &sums[2 * q + 1]) && ok;
  return ok;
}

// x - y + eps as a normalized double-double (h, l): x - y exactly by TwoSum, then + eps, the two
// errors added and renormalized (the float64 triplet row kernels).
template <class V>
__attribute__((always_inline)) inline void diff_dd(V x, V y, V eps, V& h, V& l) {
  V dh, dl, uh, ue;
  two_sum(x, -y, dh, dl);
  two_sum(dh, eps, uh, ue);
  two_sum(uh, dl + ue, h, l);
}

// Sum of (x - y + eps)^2 over a float64 row as a double-double (*hi, *lo): x - y + eps as a
// normalized DD per element (two TwoSums and a renormalization), its square split exactly by an fma
// plus the cross term, accumulated per lane in TwoSum form (two accumulator sets). The tail's
// padded lanes are zeroed after squaring (their eps^2 would not vanish). False when the sum is
// not finite.
template <class V>
bool sq_diff_row_f64_dd(const double* x, const double* y, std::int64_t D, double eps, double* hi,
                        double* lo) {
  using T = Traits<V>;
  using formulas::vfma;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t full = D / L * L, rest = D - full;
  const V e(eps), two(2.0), zero(0.0);
  V s[2] = {zero, zero}, c[2] = {zero, zero};
  const auto square = [&](V a, V b, V & sq, V & sqe) __attribute__((always_inline)) {
    V h, l;
    diff_dd(a, b, e, h, l);
    sq = h * h;
    sqe = vfma(h, h, -sq) + two * h * l;
  };
  const auto add = [&](V sq, V sqe, std::size_t k) __attribute__((always_inline)) {
    V err;
    two_sum(s[k], sq, s[k], err);
    c[k] = c[k] + (err + sqe);
  };
  std::int64_t i = 0;
  V sq, sqe;
  for (; i + 2 * L <= full; i += 2 * L) {
    square(T::load(x + i), T::load(y + i), sq, sqe);
    add(sq, sqe, 0);
    square(T::load(x + i + L), T::load(y + i + L), sq, sqe);
    add(sq, sqe, 1);
  }
  if (i < full) {
    square(T::load(x + i), T::load(y + i), sq, sqe);
    add(sq, sqe, 0);
  }
  if (rest > 0) {
    double tx[T::kLanes] = {}, ty[T::kLanes] = {}, a[T::kLanes], b[T::kLanes];
    for (std::int64_t j = 0; j < rest; ++j) {
      tx[j] = x[full + j];
      ty[j] = y[full + j];
    }
    square(T::load(tx), T::load(ty), sq, sqe);
    T::store(sq, a);
    T::store(sqe, b);
    for (std::int64_t j = rest; j < L; ++j) a[j] = b[j] = 0.0;
    add(T::load(a), T::load(b), 1);
  }
  return finish_sum<V, 2>(s, c, hi, lo);
}

// Loads of a float32 row of c elements in increasing order, the indices in skip (ascending,
// distinct) read as -inf, and past the row's end too (a patched copy for those vectors).
template <class V, class E = float>
struct SkipLoad {
  const E* x;
  std::int64_t c;
  const std::int64_t* skip;
  std::int64_t nskip;
  std::int64_t next = 0;  // the next index to skip
  __attribute__((always_inline)) V operator()(std::int64_t i) {
    using T = Traits<V>;
    constexpr auto L = static_cast<std::int64_t>(T::kLanes);
    if (__builtin_expect(i + L <= c && (next == nskip || skip[next] >= i + L), 1))
      return T::load(x + i);
    E t[T::kLanes];
    for (std::int64_t j = 0; j < L; ++j) t[j] = i + j < c ? x[i + j] : -static_cast<E>(HUGE_VAL);
    for (; next < nskip && skip[next] < i + L; ++next)
      t[skip[next] - i] = -static_cast<E>(HUGE_VAL);
    return T::load(t);
  }
};

// ---------------------------------------------------------------- float32 gradient rows
// The loop of the gradient row kernels below (triplet2_grad_impl, cos_grad_row_f32) over D
// elements of kIn input rows: at(in, i, out, st) on each whole vector (the inputs prefetched),
// the fence after streaming stores, then the tail through zero-padded copies of the inputs,
// whose first D - full results are copied to the outputs that are not null.
template <class V, int kIn, int kOut, class E, class At>
void grad_row_loop(const E* const (&in)[kIn], E* const (&out)[kOut], std::int64_t D, bool stream,
                   At at) {
  using T = Traits<V>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t full = D / L * L;
  for (std::int64_t i = 0; i < full; i += L) {
    if ((i & 15) == 0)
      for (int k = 0; k < kIn; ++k) __builtin_prefetch(in[k] + i + kPrefetch);
    at(in, i, out, stream);
  }
  stream_fence(stream);
  if (full == D) return;
  E tin[kIn][T::kLanes] = {}, tout[kOut][T::kLanes];
  const E* tin_p[kIn];
  E* tout_p[kOut];
  for (int k = 0; k < kIn; ++k) {
    for (std::int64_t j = 0; j < D - full; ++j) tin[k][j] = in[k][full + j];
    tin_p[k] = tin[k];
  }
  for (int k = 0; k < kOut; ++k) tout_p[k] = out[k] != nullptr ? tout[k] : nullptr;
  at(tin_p, 0, tout_p, false);
  for (int k = 0; k < kOut; ++k)
    if (out[k] != nullptr)
      for (std::int64_t j = 0; j < D - full; ++j) out[k][full + j] = tout[k][j];
}

// ---------------------------------------------------------------- triplet_margin_loss, p = 2
// (kernels.hpp: triplet2_grad_row_f32). The per-row scales replace a division per element.
// kTies: the exact sgn(u) G_k where |u| is the whole distance, per element; without it, u S_k
// everywhere and the row's largest |u| per pair kept: where it reaches the pair's distance (a
// lane might have needed sgn(u) G_k; rows of one non-zero element), bit 4 of the result asks for
// the kTies pass over the row (kTies's selects cost about a third of the loop).
template <class V, bool kThree, bool kTies>
int triplet2_grad_impl(const float* a, const float* p, const float* q, std::int64_t D, double eps,
                       const double* s, float* const* out, bool stream) {
  using T = Traits<V>;
  using formulas::vabs, formulas::vany, formulas::vmax, formulas::vselect, formulas::vsign;
  const V e(eps), zero(0.0), tiny(kTripletCancelF32);
  const V sc[3] = {V(s[0]), V(s[1]), V(s[2])}, g[3] = {V(s[3]), V(s[4]), V(s[5])},
          n[3] = {V(s[6]), V(s[7]), V(s[8])};
  // The largest |u| per pair (without kTies). Named variables, not an array: GCC keeps an array
  // captured by the loop's lambda in memory, a store and a load per vector on the loop's chain.
  V top0 = zero, top1 = zero, top2 = zero;
  // u s_k, or sgn(u) G_k exactly where |u| is the whole distance (a row's only non-zero
  // element, every element of a one-feature row: G u / dist is exactly that there).
  const auto grad = [&](V u, int k, V& top) __attribute__((always_inline)) {
    if constexpr (kTies) {
      return vselect(vabs(u) == n[k], vsign(u) * g[k], u * sc[k]);
    } else {
      top = vmax(top, vabs(u));
      return u * sc[k];
    }
  };
  // The lanes where the anchor's (bad_a) or the positive's (bad_p) two terms cancelled beyond
  // kTripletCancelF32 of the first (tail lanes included: a spurious flag costs time only).
  auto bad_a = zero < zero, bad_p = bad_a;
  const auto at = [&](const float* const* x, std::int64_t i, float* const* o, bool st)
      __attribute__((always_inline)) {
    const V xa = T::load(x[0] + i), xp = T::load(x[1] + i), xq = T::load(x[2] + i);
    const V v0 = grad(xa - xp + e, 0, top0), v1 = grad(xa - xq + e, 1, top1);
    const V v2 = kThree ? grad(xp - xq + e, 2, top2) : zero;
    if (o[0] != nullptr) {
      const V ga = (zero + v0) + v1;
      bad_a = bad_a | (vabs(ga) < tiny * vabs(v0));
      put<T>(ga, o[0] + i, st);
    }
    if (o[1] != nullptr) {
      const V gp = (zero - v0) + v2;
      if constexpr (kThree) bad_p = bad_p | (vabs(gp) < tiny * vabs(v0));
      put<T>(gp, o[1] + i, st);
    }
    if (o[2] != nullptr) put<T>((zero - v1) - v2, o[2] + i, st);
  };
  const float* const in[3] = {a, p, q};
  float* const o[3] = {out[0], out[1], out[2]};
  grad_row_loop<V, 3, 3>(in, o, D, stream, at);
  bool ties = false;
  if constexpr (!kTies) {
    const V top[3] = {top0, top1, top2};
    for (int k = 0; k < (kThree ? 3 : 2); ++k)
      ties = ties || (s[6 + k] > 0.0 && vany(n[k] <= top[k]));
  }
  return (vany(bad_a) ? 1 : 0) | (vany(bad_p) ? 2 : 0) | (ties ? 4 : 0);
}

template <class V>
int triplet2_grad_row_f32(const float* a, const float* p, const float* q, std::int64_t D,
                          double eps, const double* s, bool three, float* const* out, bool stream) {
  const int r = three ? triplet2_grad_impl<V, true, false>(a, p, q, D, eps, s, out, stream)
                      : triplet2_grad_impl<V, false, false>(a, p, q, D, eps, s, out, stream);
  if ((r & 4) == 0) return r;
  return three ? triplet2_grad_impl<V, true, true>(a, p, q, D, eps, s, out, stream)
               : triplet2_grad_impl<V, false, true>(a, p, q, D, eps, s, out, stream);
}

// ---------------------------------------------------------------- cosine_embedding_loss
// (kernels.hpp: cos_grad_row_f32). The per-row scales t_k replace a division per element.
template <class V>
void cos_grad_row_f32(const float* x1, const float* x2, std::int64_t D, const double* s, float* g1,
                      float* g2, bool stream) {
  using T = Traits<V>;
  using formulas::vfma;
  const V p(s[0]), m1(s[1]), m2(s[2]), t1(s[3]), t2(s[4]), zero(0.0);
  const auto at = [&](const float* const* x, std::int64_t i, float* const* o, bool st)
      __attribute__((always_inline)) {
    const V xa = T::load(x[0] + i), xb = T::load(x[1] + i);
    if (o[0] != nullptr) put<T>(zero + vfma(xb, m1, -(p * xa)) * t1, o[0] + i, st);
    if (o[1] != nullptr) put<T>(zero + vfma(xa, m2, -(p * xb)) * t2, o[1] + i, st);
  };
  const float* const in[2] = {x1, x2};
  float* const out[2] = {g1, g2};
  grad_row_loop<V, 2, 2>(in, out, D, stream, at);
}

// float64 triplet p = 2 rows (kernels.hpp: triplet2_grad_row_f64): r_k = x - y + eps per pair as a
// normalized double-double, times the pair's scale S_k = G_k / dist_k (s: hi, lo of S_0, S_1,
// S_2), the two terms of each gradient added in double-double and rounded once. Returns bit 0
// (bit 1) where an anchor (positive) element came out below kTripletCancelF64DD of its first
// term.
template <class V, bool kThree>
int triplet2_grad_f64_impl(const double* a, const double* p, const double* q, std::int64_t D,
                           double eps, const double* s, double* const* out, bool stream) {
  using T = Traits<V>;
  using formulas::vabs, formulas::vany, formulas::vfma, formulas::vselect, formulas::vsign;
  const V e(eps), zero(0.0), one(1.0), tiny(kTripletCancelF64DD);
  const V sh[3] = {V(s[0]), V(s[2]), V(s[4])}, sl[3] = {V(s[1]), V(s[3]), V(s[5])};
  const V g[3] = {V(s[6]), V(s[7]), V(s[8])}, n[3] = {V(s[9]), V(s[10]), V(s[11])};
  // (x - y + eps) S_k as a DD (h, l); sgn(r) G_k exactly where |r| is the whole distance (a
  // one-element row, a row's only non-zero element), as the float32 kernel: the DD product
  // would carry 2^-104 of noise there, and the anchor's two such terms must cancel to 0.
  const auto term = [&](V x, V y, int k, V& h, V& l) __attribute__((always_inline)) {
    V rh, rl;
    diff_dd(x, y, e, rh, rl);
    const auto whole = vabs(rh) == n[k];
    h = vselect(whole, vsign(rh) * g[k], rh * sh[k]);
    l = vselect(whole, zero, vfma(rh, sh[k], -(rh * sh[k])) + vfma(rh, sl[k], rl * sh[k]));
  };
  // (h0 + l0) + (h1 + l1), rounded once.
  const auto add = [](V h0, V l0, V h1, V l1) __attribute__((always_inline)) {
    V t, te;
    two_sum(h0, h1, t, te);
    return t + (te + (l0 + l1));
  };
  V bad_a = zero, bad_p = zero;
  const auto at = [&](const double* const* x, std::int64_t i, double* const* o, bool st)
      __attribute__((always_inline)) {
    const V xa = T::load(x[0] + i), xp = T::load(x[1] + i), xq = T::load(x[2] + i);
    V h0, l0, h1, l1, h2 = zero, l2 = zero;
    term(xa, xp, 0, h0, l0);
    term(xa, xq, 1, h1, l1);
    if constexpr (kThree) term(xp, xq, 2, h2, l2);
    if (o[0] != nullptr) {
      const V ga = add(h0, l0, h1, l1);
      bad_a = vselect(vabs(ga) < tiny * vabs(h0), one, bad_a);
      put<T>(ga, o[0] + i, st);
    }
    if (o[1] != nullptr) {
      const V gp = add(-h0, -l0, h2, l2);
      if constexpr (kThree) bad_p = vselect(vabs(gp) < tiny * vabs(h0), one, bad_p);
      put<T>(gp, o[1] + i, st);
    }
    if (o[2] != nullptr) put<T>(add(-h1, -l1, -h2, -l2), o[2] + i, st);
  };
  const double* const in[3] = {a, p, q};
  double* const o[3] = {out[0], out[1], out[2]};
  grad_row_loop<V, 3, 3>(in, o, D, stream, at);
  return (vany(bad_a > zero) ? 1 : 0) | (vany(bad_p > zero) ? 2 : 0);
}

template <class V>
int triplet2_grad_row_f64(const double* a, const double* p, const double* q, std::int64_t D,
                          double eps, const double* s, bool three, double* const* out,
                          bool stream) {
  return three ? triplet2_grad_f64_impl<V, true>(a, p, q, D, eps, s, out, stream)
               : triplet2_grad_f64_impl<V, false>(a, p, q, D, eps, s, out, stream);
}

// float64 rows (kernels.hpp: cos_grad_row_f64): s = {ph, pl, m1h, m1l, m2h, m2l, t1h, t1l, t2h,
// t2l}, each element's numerator and its product with the row's scale in double-double
// (formulas: dd_cos_numerator, dd_scaled), rounded once.
template <class V>
void cos_grad_row_f64(const double* x1, const double* x2, std::int64_t D, const double* s,
                      double* g1, double* g2, bool stream) {
  using T = Traits<V>;
  const V ph(s[0]), pl(s[1]), m1h(s[2]), m1l(s[3]), m2h(s[4]), m2l(s[5]), t1h(s[6]), t1l(s[7]),
      t2h(s[8]), t2l(s[9]), zero(0.0);
  const auto at = [&](const double* const* x, std::int64_t i, double* const* o, bool st)
      __attribute__((always_inline)) {
    const V xa = T::load(x[0] + i), xb = T::load(x[1] + i);
    V nh, nl;
    if (o[0] != nullptr) {
      formulas::dd_cos_numerator(xa, xb, m1h, m1l, ph, pl, nh, nl);
      put<T>(zero + formulas::dd_scaled(nh, nl, t1h, t1l), o[0] + i, st);
    }
    if (o[1] != nullptr) {
      formulas::dd_cos_numerator(xb, xa, m2h, m2l, ph, pl, nh, nl);
      put<T>(zero + formulas::dd_scaled(nh, nl, t2h, t2l), o[1] + i, st);
    }
  };
  const double* const in[2] = {x1, x2};
  double* const out[2] = {g1, g2};
  grad_row_loop<V, 2, 2>(in, out, D, stream, at);
}

// ---------------------------------------------------------------- multi_margin_loss
// (kernels.hpp: MmRow). Two accumulators per sum (alternate vectors), summed over the lanes in a
// fixed order; kP2, kComp: p = 2 and the compensated z (MultiMarginRow's f0, f1) as constants.
template <class V, bool kP2, bool kComp, bool kOut>
void mm_row_impl(MmRow& r) {
  using T = Traits<V>;
  using formulas::vselect;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const V zero(0.0), one(1.0), two(2.0), scale(r.scale);
  formulas::Params p = r.p;
  p.f0 = kP2;
  p.f1 = kComp;
  const std::int64_t skip[1] = {r.y};
  SkipLoad<V> load{r.x, r.c, skip, 1};
  V h[2] = {zero, zero}, d[2] = {zero, zero};
  // The vector at i into accumulators q; its gradients (the tail's to buffer `to`).
  const auto body = [&](std::int64_t i, int q, float* to, bool st) __attribute__((always_inline)) {
    const V z = formulas::MultiMarginRow::z(load(i), p);
    const auto on = z > zero;
    h[q] = h[q] + vselect(on, kP2 ? z * z : z, zero);
    if constexpr (kOut) {  // the derivatives: their sum and the gradients
      const V dz = vselect(on, kP2 ? two * z : one, zero);
      d[q] = d[q] + dz;
      put<T>(dz * scale, to, st);
    }
  };
  const std::int64_t full = r.c / L * L;
  float* out = r.out;
  std::int64_t i = 0;
  for (; i + 2 * L <= full; i += 2 * L) {
    prefetch_step<V>(r.x, i);
    body(i, 0, kOut ? out + i : nullptr, r.stream);
    body(i + L, 1, kOut ? out + i + L : nullptr, r.stream);
  }
  if (i < full) body(i, 0, kOut ? out + i : nullptr, r.stream);
  stream_fence(kOut && r.stream);
  if (full < r.c) {
    float t[T::kLanes];
    body(full, 1, t, false);
    if constexpr (kOut)
      for (std::int64_t j = 0; j < r.c - full; ++j) out[full + j] = t[j];
  }
  r.sums[0] = lane_sum(h[0] + h[1]);
  if constexpr (kOut) r.sums[1] = lane_sum(d[0] + d[1]);
}

template <class V>
void mm_row_f32(MmRow& r) {
  const bool p2 = r.p.f0, comp = r.p.f1, out = r.out != nullptr;
  if (p2) {
    if (comp)
      return out ? mm_row_impl<V, true, true, true>(r) : mm_row_impl<V, true, true, false>(r);
    return out ? mm_row_impl<V, true, false, true>(r) : mm_row_impl<V, true, false, false>(r);
  }
  if (comp)
    return out ? mm_row_impl<V, false, true, true>(r) : mm_row_impl<V, false, true, false>(r);
  return out ? mm_row_impl<V, false, false, true>(r) : mm_row_impl<V, false, false, false>(r);
}

// The float64 rows (kernels.hpp: MmRow64): z_i as a double-double (zh, zl), the hinges and the
// derivatives summed per lane in TwoSum form (two accumulator sets, alternate vectors).
template <class V, bool kP2, bool kOut>
void mm_row64_impl(MmRow64& r) {
  using T = Traits<V>;
  using formulas::vfma;
  using formulas::visfinite;
  using formulas::vselect;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const V zero(0.0), two(2.0), s0(r.p.s0), s1(r.p.s1), sh(r.scale), sl(r.scale_lo);
  const std::int64_t skip[1] = {r.y};
  SkipLoad<V, double> load{r.x, r.c, skip, 1};
  V hs[2] = {zero, zero}, hc[2] = {zero, zero}, ds[2] = {zero, zero}, dc[2] = {zero, zero};
  const auto body = [&](std::int64_t i, int q, double* to, bool st) __attribute__((always_inline)) {
    const V xi = load(i);
    V t, f;
    two_sum(s0, xi, t, f);
    // |u| is at most about ulp(t): zh + zl = t + u by Fast2Sum. An infinite t (f is NaN there)
    // stays infinite, so that its hinge makes the sums infinite and the caller redoes the row.
    const V u = vselect(visfinite(t), s1 + f, zero);
    const V zh = t + u, zl = u - (zh - t);
    const auto on = zh > zero;  // the sign of the exact z (zh is z rounded once)
    // The products that have their error taken by an fma are fmas themselves (with +0): a
    // plain product could be contracted into the sums below, which would count its error twice.
    V hh, hl, dh, dl;
    if constexpr (kP2) {
      hh = vfma(zh, zh, zero);
      hl = vfma(two * zh, zl, vfma(zh, zh, zero - hh));
      dh = two * zh;
      dl = two * zl;
    } else {
      hh = zh;
      hl = zl;
      dh = V(1.0);
      dl = zero;
    }
    V e;
    two_sum(hs[q], vselect(on, hh, zero), hs[q], e);
    hc[q] = hc[q] + (e + vselect(on, hl, zero));
    if constexpr (kOut) {  // the derivatives: their sum and the gradients
      if constexpr (kP2) {
        two_sum(ds[q], vselect(on, dh, zero), ds[q], e);
        dc[q] = dc[q] + (e + vselect(on, dl, zero));
      } else {
        ds[q] = ds[q] + vselect(on, dh, zero);  // a count: exact
      }
      // d_i (dh + dl) times the scale (sh + sl), rounded once.
      const V ph = vfma(dh, sh, zero);
      const V pl = vfma(dh, sh, zero - ph) + vfma(dh, sl, dl * sh);
      put<T>(vselect(on, ph + pl, zero), to, st);
    }
  };
  const std::int64_t full = r.c / L * L;
  double* out = r.out;
  std::int64_t i = 0;
  for (; i + 2 * L <= full; i += 2 * L) {
    prefetch_step<V>(r.x, i);
    body(i, 0, kOut ? out + i : nullptr, r.stream);
    body(i + L, 1, kOut ? out + i + L : nullptr, r.stream);
  }
  if (i < full) body(i, 0, kOut ? out + i : nullptr, r.stream);
  stream_fence(kOut && r.stream);
  if (full < r.c) {
    double t[T::kLanes];
    body(full, 1, t, false);
    if constexpr (kOut)
      for (std::int64_t j = 0; j < r.c - full; ++j) out[full + j] = t[j];
  }
  if (!finish_sum<V, 2>(hs, hc, &r.sums[0], &r.sums[1])) r.sums[0] = HUGE_VAL;
  if constexpr (kOut)
    if (!finish_sum<V, 2>(ds, dc, &r.sums[2], &r.sums[3])) r.sums[2] = HUGE_VAL;
}

template <class V>
void mm_row_f64(MmRow64& r) {
  const bool p2 = r.p.f0, out = r.out != nullptr;
  if (p2) return out ? mm_row64_impl<V, true, true>(r) : mm_row64_impl<V, true, false>(r);
  return out ? mm_row64_impl<V, false, true>(r) : mm_row64_impl<V, false, false>(r);
}

// ---------------------------------------------------------------- multilabel_margin_loss
// One vector of mlm_group_impl: the sums (and for float64 their TwoSum errors) or the counts;
// returns the number of k active per lane. (A function over arrays, not a lambda capturing them:
// GCC then keeps the arrays in registers.)
template <class V, class E, int NJ, bool kSums, int kGrad>
__attribute__((always_inline)) inline V mlm_step(V xv, const V (&A)[NJ], const V (&Alo)[NJ],
                                                 V (&s)[NJ], V (&cs)[NJ], std::int64_t (&n)[NJ]) {
  using formulas::vcount;
  using formulas::visfinite;
  using formulas::vselect;
  constexpr bool kDD = std::is_same_v<E, double>;
  const V zero(0.0), one(1.0);
  V c = zero;
#pragma GCC unroll 4
  for (int k = 0; k < NJ; ++k) {
    V z;
    if constexpr (kDD) {
      // z = (A + x) + (Alo + f): MultilabelMarginLoss::z's value (an infinite A + x stays).
      V t, f;
      two_sum(A[k], xv, t, f);
      z = vselect(visfinite(t), t + (Alo[k] + f), t);
    } else {
      z = A[k] + xv;  // the exact z rounded once (a[k] exact)
    }
    const auto on = z > zero;
    // The float32 sums and the counts as selected adds (s + 0 is s: the same values as adding
    // the selected term), which AVX-512 does in one masked add each.
    if constexpr (kSums) {
      if constexpr (kDD) {
        V e;
        two_sum(s[k], vselect(on, z, zero), s[k], e);
        cs[k] = cs[k] + e;
      } else {
        s[k] = vselect(on, s[k] + z, s[k]);
      }
    }
    if constexpr (kGrad != 0) {
      c = vselect(on, c + one, c);
      n[k] += vcount(on);  // (a population count: off the vector pipes)
    }
  }
  return c;
}

// The gradient of the elements with c active pairs: val[c] (c in 0..NJ); with 8 lanes, one
// lookup in lanes (table: val[0..NJ] in lanes 0..NJ), else a select per value.
template <class V, int NJ>
__attribute__((always_inline)) inline V mlm_grad(V c, const V (&val)[NJ + 1], V table) {
  using formulas::vselect;
  if constexpr (Traits<V>::kLanes == 8) {
    return vlookup(table, c);
  } else {
    V g = val[0];
#pragma GCC unroll 4
    for (int k = 1; k <= NJ; ++k) g = vselect(c == V(static_cast<double>(k)), val[k], g);
    return g;
  }
}

// (kernels.hpp: MlmRow). NJ listed classes against the row in one pass: each element is loaded
// once and compared with all NJ. Two accumulators per class (alternate vectors), summed over the
// lanes in a fixed order. kSums: the hinge sums; kGrad: 0 none, 1 the counts, 2 the gradient row.
template <class V, class E, int NJ, bool kSums, int kGrad>
void mlm_group_impl(const MlmRowOf<E>& r) {
  using T = Traits<V>;
  constexpr bool kDD = std::is_same_v<E, double>;
  constexpr auto L = static_cast<std::int64_t>(T::kLanes);
  const V zero(0.0);
  V A[NJ], Alo[NJ], s0[NJ], s1[NJ], c0[NJ], c1[NJ], val[NJ + 1];
  std::int64_t n[NJ];
  for (int k = 0; k < NJ; ++k) {
    A[k] = V(r.a[k]);
    Alo[k] = V(kDD ? r.a_lo[k] : 0.0);
    s0[k] = s1[k] = c0[k] = c1[k] = zero;
    n[k] = 0;
  }
  for (int k = 0; k <= NJ; ++k) val[k] = kGrad == 2 ? V(r.vals[k]) : zero;
  V table = zero;
  if constexpr (kGrad == 2 && Traits<V>::kLanes == 8) {
    double t[Traits<V>::kLanes] = {};
    for (int k = 0; k <= NJ; ++k) t[k] = r.vals[k];
    table = T::load(t);
  }
  // Locals, not r's fields: the stores through out and count could alias r.
  const E* const x = r.x;
  E* const out = r.out;
  float* const count = r.count;
  const bool stream = r.stream;
  const std::int64_t C = r.c;
  SkipLoad<V, E> load{x, C, r.skip, r.nskip};
  const std::int64_t full = C / L * L;
  std::int64_t i = 0;
  for (; i + 2 * L <= full; i += 2 * L) {
    // (Past the row's end: the next row's start, or nothing; a prefetch never faults.)
    prefetch_step<V>(x, i);
    const V ca = mlm_step<V, E, NJ, kSums, kGrad>(load(i), A, Alo, s0, c0, n);
    const V cb = mlm_step<V, E, NJ, kSums, kGrad>(load(i + L), A, Alo, s1, c1, n);
    if constexpr (kGrad == 1) {
      T::store(T::load(count + i) + ca, count + i);
      T::store(T::load(count + i + L) + cb, count + i + L);
    }
    if constexpr (kGrad == 2) {
      put<T>(mlm_grad<V, NJ>(ca, val, table), out + i, stream);
      put<T>(mlm_grad<V, NJ>(cb, val, table), out + i + L, stream);
    }
  }
  if (i < full) {
    const V ca = mlm_step<V, E, NJ, kSums, kGrad>(load(i), A, Alo, s0, c0, n);
    if constexpr (kGrad == 1) T::store(T::load(count + i) + ca, count + i);
    if constexpr (kGrad == 2) put<T>(mlm_grad<V, NJ>(ca, val, table), out + i, stream);
  }
  stream_fence(stream);
  if (full < C) {
    // The tail from padded copies (-inf never activates a pair).
    const std::int64_t rest = C - full;
    const V c = mlm_step<V, E, NJ, kSums, kGrad>(load(full), A, Alo, s1, c1, n);
    if constexpr (kGrad == 1) {
      float t[T::kLanes];
      for (std::int64_t j = 0; j < rest; ++j) t[j] = count[full + j];
      for (std::int64_t j = rest; j < L; ++j) t[j] = 0.0f;
      T::store(T::load(t) + c, t);
      for (std::int64_t j = 0; j < rest; ++j) count[full + j] = t[j];
    }
    if constexpr (kGrad == 2) {
      E t[T::kLanes];
      T::store(mlm_grad<V, NJ>(c, val, table), t);
      for (std::int64_t j = 0; j < rest; ++j) out[full + j] = t[j];
    }
  }
  for (int k = 0; k < NJ; ++k) {
    if constexpr (kSums) {
      if constexpr (kDD) {
        const V s[2] = {s0[k], s1[k]}, cs[2] = {c0[k], c1[k]};
        if (!finish_sum<V, 2>(s, cs, &r.sums[k], &r.sums_lo[k])) r.sums[k] = HUGE_VAL;
      } else {
        r.sums[k] = lane_sum(s0[k] + s1[k]);
      }
    }
    if constexpr (kGrad != 0) r.active[k] = static_cast<double>(n[k]);
  }
}

template <class V, class E, int NJ>
void mlm_group_nj(const MlmRowOf<E>& r) {
  if (r.out != nullptr) {
    if (r.sums != nullptr)
      mlm_group_impl<V, E, NJ, true, 2>(r);
    else
      mlm_group_impl<V, E, NJ, false, 2>(r);
  } else if (r.count != nullptr) {
    mlm_group_impl<V, E, NJ, false, 1>(r);
  } else {
    mlm_group_impl<V, E, NJ, true, 0>(r);
  }
}

template <class V, class E>
void mlm_group(const MlmRowOf<E>& r) {
  switch (r.nj) {
    case 1: return mlm_group_nj<V, E, 1>(r);
    case 2: return mlm_group_nj<V, E, 2>(r);
    case 3: return mlm_group_nj<V, E, 3>(r);
    default: return mlm_group_nj<V, E, kMlmGroup>(r);
  }
}

// kernels.hpp: int64_in_range. v - lo as unsigned is at most hi - lo exactly for v in [lo, hi];
// one unsigned max over the block, which the compiler vectorizes for the TU's ISA (vpmaxuq on
// AVX-512). Blocks of 4096 with an early exit.
template <class V>
bool int64_in_range(const std::int64_t* v, std::int64_t n, std::int64_t lo, std::int64_t hi) {
  const auto base = static_cast<std::uint64_t>(lo);
  const auto span = static_cast<std::uint64_t>(hi) - base;
  constexpr std::int64_t kBlock = 4096;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t end = std::min(n, b + kBlock);
    std::uint64_t worst = 0;
    for (std::int64_t i = b; i < end; ++i) {
      const std::uint64_t d = static_cast<std::uint64_t>(v[i]) - base;
      worst = d > worst ? d : worst;
    }
    if (worst > span) return false;
  }
  return true;
}

// ---------------------------------------------------------------- ctc_loss (kernels.hpp)
//
// One sample, planar rows (kernels.hpp: ctc_half): blank state j at row[1 + j], label state j at
// row[P + 1 + j]. Each time step updates n = round_up(S + 1, lanes) entries of both halves with
// whole vectors; the entries past the last state stay -inf because the padded emissions are
// -inf, and index 0 of each half (the "state -1") is -inf.

// The emissions of time step t: the blank's into *eb, label j's into em[j] (j < S; em[S..n)
// keep -inf). False when one is NaN or +inf (the fast path then gives the sample up).
inline bool ctc_gather(const CtcSample& s, std::int64_t t, double* em, double* eb) {
  const float* row = s.lp + t * s.st;
  const float b = row[s.blank];
  bool ok = b < HUGE_VALF;
  for (std::int64_t j = 0; j < s.S; ++j) {
    const float v = row[s.tgt[j]];
    ok = ok && v < HUGE_VALF;
    em[j] = v;
  }
  *eb = b;
  return ok;
}

// The alpha recursion's gathers: time step t's row of log_probs is far from its neighbours (the
// time stride spans the batch), so its entries that ctc_gather reads are fetched a few steps
// ahead (the whole row when it has fewer cache lines than those entries). Forced inline: GCC
// finds an out-of-line copy free of side effects and drops the calls, prefetches and all.
// (Measured: about 15% off the forward on the benchmark; no gain seen for the gradient's whole
// rows, which the hardware prefetcher follows.)
inline constexpr std::int64_t kCtcAhead = 2;
[[gnu::always_inline]] inline void ctc_prefetch(const CtcSample& s, std::int64_t t) {
  if (t >= s.L) return;
  const float* row = s.lp + t * s.st;
  constexpr std::int64_t kLine = 64 / sizeof(float);
  if ((s.C + kLine - 1) / kLine <= s.S + 1) {
    for (std::int64_t k = 0; k < s.C; k += kLine) __builtin_prefetch(row + k);
    __builtin_prefetch(row + s.C - 1);
    return;
  }
  __builtin_prefetch(row + s.blank);
  for (std::int64_t j = 0; j < s.S; ++j) __builtin_prefetch(row + s.tgt[j]);
}

// allow[j] = 1 when label state j may be entered from label state j - 1 (a different label), else
// 0; j in [0, P] (0 beyond S).
inline std::vector<double> ctc_allow(const CtcSample& s) {
  std::vector<double> allow(static_cast<std::size_t>(ctc_half(s.S) + 1), 0.0);
  for (std::int64_t j = 1; j < s.S; ++j)
    allow[static_cast<std::size_t>(j)] = s.tgt[j] != s.tgt[j - 1] ? 1.0 : 0.0;
  return allow;
}

template <class V>
bool ctc_alpha_f32(const CtcSample& s, double* alpha, bool all_rows, double* nll) {
  using T = Traits<V>;
  using F = formulas::CtcLoss;
  using formulas::vselect;
  constexpr auto Lw = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t S = s.S, P = ctc_half(S), R = 2 * P, n = (S + 1 + Lw - 1) / Lw * Lw;
  std::vector<double> em(static_cast<std::size_t>(P), -HUGE_VAL);
  const std::vector<double> allow = ctc_allow(s);
  double eb;
  for (std::int64_t t = 1; t <= kCtcAhead; ++t) ctc_prefetch(s, t);
  if (!ctc_gather(s, 0, em.data(), &eb)) return false;
  // Row 0 is -inf but for its two states; the later rows' entries 0 and P (read as the states
  // before the first) too; the rest of each row is written whole.
  for (std::int64_t i = 0; i < R; ++i) alpha[i] = -HUGE_VAL;
  alpha[1] = eb;
  if (S > 0) alpha[P + 1] = em[0];
  const V ninf(-HUGE_VAL), half(0.5);
  for (std::int64_t t = 1; t < s.L; ++t) {
    const double* p = alpha + (all_rows ? t - 1 : (t - 1) % 2) * R;
    double* c = alpha + (all_rows ? t : t % 2) * R;
    c[0] = c[P] = -HUGE_VAL;
    ctc_prefetch(s, t + kCtcAhead);
    if (!ctc_gather(s, t, em.data(), &eb)) return false;
    const V vb(eb);
    // blank j: from blank j and label j - 1.
    for (std::int64_t j = 0; j < n; j += Lw)
      T::store(F::log_add2_finite(T::load(p + 1 + j), T::load(p + P + j)) + vb, c + 1 + j);
    // label j: from label j, blank j and (a different) label j - 1.
    for (std::int64_t j = 0; j < n; j += Lw) {
      const V skip = vselect(T::load(allow.data() + j) > half, T::load(p + P + j), ninf);
      T::store(F::log_add3_finite(T::load(p + P + 1 + j), T::load(p + 1 + j), skip) +
                   T::load(em.data() + j),
               c + P + 1 + j);
    }
  }
  const double* last = alpha + (all_rows ? s.L - 1 : (s.L - 1) % 2) * R;
  *nll = S == 0 ? -last[1] : -F::log_add2(last[1 + S], last[P + S]);
  return true;
}

// The gradient, row t: (exp(lp) - post) gr with post = exp(lcab + nll - lp) the class's
// posterior, lcab = log of the sum of exp(alpha + beta) over the class's states (PyTorch's
// formula). The posterior is summed here in linear space, post = sum of exp(alpha + beta + nll -
// lp) over the states (the same exponent, rounded as lcab + nll - lp is, without the log and its
// exp: each term is at most 1); outside the target's classes post = exp(-inf + nll - lp), 0 or
// NaN (lp = -inf).
template <class V>
void ctc_grad_f32(const CtcSample& s, const double* alpha, double nll, double gr, float* grad,
                  std::int64_t gst) {
  using T = Traits<V>;
  using F = formulas::CtcLoss;
  using formulas::vexp, formulas::vselect;
  constexpr auto Lw = static_cast<std::int64_t>(T::kLanes);
  const std::int64_t S = s.S, C = s.C, P = ctc_half(S), R = 2 * P, n = (S + 1 + Lw - 1) / Lw * Lw;
  const auto z = [](std::int64_t k) { return static_cast<std::size_t>(k); };
  std::vector<double> em(z(P), -HUGE_VAL);
  const std::vector<double> allow = ctc_allow(s);
  // The target's classes: u = 0 the blank, then each distinct label (cls[j] for label j).
  std::vector<std::int64_t> slot(z(C), -1), cls(z(S)), class_of(1, s.blank);
  slot[z(s.blank)] = 0;
  for (std::int64_t j = 0; j < S; ++j) {
    std::int64_t& u = slot[z(s.tgt[j])];
    if (u < 0) {
      u = static_cast<std::int64_t>(class_of.size());
      class_of.push_back(s.tgt[j]);
    }
    cls[z(j)] = u;
  }
  // beta: two rows in turn; post: the label states' posteriors; sum: per class; ex: exp(lp).
  std::vector<double> beta(z(2 * R), -HUGE_VAL), post(z(n)), sum(class_of.size()),
      ex(z((C + Lw - 1) / Lw * Lw));
  const V ninf(-HUGE_VAL), half(0.5), vnll(nll), vgr(gr);
  const std::int64_t full = C / Lw * Lw, rest = C - full;
  for (std::int64_t t = s.L - 1; t >= 0; --t) {
    double* c = beta.data() + (t % 2) * R;
    const double* nx = beta.data() + ((t + 1) % 2) * R;
    double eb;
    ctc_gather(s, t, em.data(), &eb);
    if (t == s.L - 1) {
      c[1 + S] = eb;
      if (S > 0) c[P + S] = em[z(S - 1)];
    } else {
      const V vb(eb);
      // blank j: to blank j and label j.
      for (std::int64_t j = 0; j < n; j += Lw)
        T::store(F::log_add2_finite(T::load(nx + 1 + j), T::load(nx + P + 1 + j)) + vb, c + 1 + j);
      // label j: to label j, blank j + 1 and (a different) label j + 1.
      for (std::int64_t j = 0; j < n; j += Lw) {
        const V skip = vselect(T::load(allow.data() + 1 + j) > half, T::load(nx + P + 2 + j), ninf);
        T::store(F::log_add3_finite(T::load(nx + P + 1 + j), T::load(nx + 2 + j), skip) +
                     T::load(em.data() + j),
                 c + P + 1 + j);
      }
    }
    // The posteriors: the blank's summed over its states by lane, then the lanes in order; the
    // label states' one by one (lanes past S hold NaN, unused).
    const double* a = alpha + t * R;
    const V vxb(eb);
    V acc(0.0);
    for (std::int64_t j = 0; j < n; j += Lw)
      acc = acc + vexp(T::load(a + 1 + j) + T::load(c + 1 + j) + vnll - vxb);
    sum[0] = lane_sum(acc);
    for (std::int64_t j = 0; j < n; j += Lw)
      T::store(
          vexp(T::load(a + P + 1 + j) + T::load(c + P + 1 + j) + vnll - T::load(em.data() + j)),
          post.data() + j);
    for (std::size_t u = 1; u < sum.size(); ++u) sum[u] = 0.0;
    for (std::int64_t j = 0; j < S; ++j) sum[z(cls[z(j)])] += post[z(j)];
    // The row: every class as outside the target, then the target's classes.
    const float* x = s.lp + t * s.st;
    float* g = grad + t * gst;
    const V nan(__builtin_nan(""));
    const auto row = [&](V lp, double* e) {
      const V ev = vexp(lp);
      T::store(ev, e);
      return (ev - vselect(lp == ninf, nan, V(0.0))) * vgr;
    };
    for (std::int64_t k = 0; k < full; k += Lw) T::store(row(T::load(x + k), ex.data() + k), g + k);
    if (rest > 0) {
      float xin[T::kLanes], out[T::kLanes];
      for (std::int64_t j = 0; j < Lw; ++j) xin[j] = j < rest ? x[full + j] : 0.0f;
      T::store(row(T::load(xin), ex.data() + full), out);
      for (std::int64_t j = 0; j < rest; ++j) g[full + j] = out[j];
    }
    for (std::size_t u = 0; u < sum.size(); ++u) {
      const std::int64_t k = class_of[u];
      g[k] = static_cast<float>((ex[z(k)] - sum[u]) * gr);
    }
  }
}

template <class V>
void math_block(int fn, const double* in, double* out, std::size_t n) {
  using T = Traits<V>;
  // Unqualified calls, so that argument-dependent lookup finds an ISA's own versions.
  using formulas::vexp, formulas::vexpm1, formulas::vlog, formulas::vlog1p, formulas::softplus_tail,
      formulas::vdiv_pos;
  for (std::size_t i = 0; i < n; i += T::kLanes) {
    const V x = T::load(in + i);
    V y;
    switch (fn) {
      case 0: y = vexp(x); break;
      case 1: y = vlog(x); break;
      case 2: y = vlog1p(x); break;
      case 3: y = vexpm1(x); break;
      case 4: y = softplus_tail(x); break;
      default: y = vdiv_pos(V(1.0), x); break;
    }
    T::store(y, out + i);
  }
}

template <class V>
KernelTable make_table(const char* isa) {
  KernelTable t{};
  t.isa = isa;
#define LOSSBENCH_OPT_FILL(id, F)                                                            \
  t.forward[static_cast<int>(Loss::id)] = forward_block<V, formulas::F>;                     \
  t.backward[static_cast<int>(Loss::id)] = backward_block<V, formulas::F>;                   \
  t.dense_forward[static_cast<int>(Loss::id)][0] = dense_forward<V, formulas::F, float>;     \
  t.dense_forward[static_cast<int>(Loss::id)][1] = dense_forward<V, formulas::F, double>;    \
  t.dense_backward[static_cast<int>(Loss::id)][0] = dense_backward<V, formulas::F, float>;   \
  t.dense_backward[static_cast<int>(Loss::id)][1] = dense_backward<V, formulas::F, double>;  \
  t.dense_fused[static_cast<int>(Loss::id)][0] = dense_forward<V, formulas::F, float, true>; \
  t.dense_fused[static_cast<int>(Loss::id)][1] = dense_forward<V, formulas::F, double, true>;
  LOSSBENCH_OPT_LOSSES(LOSSBENCH_OPT_FILL)
#undef LOSSBENCH_OPT_FILL
#if defined(LOSSBENCH_F64_MATH)
  // The float64 table: the formulas with a backward_split (low parts: isa/f64_dd.hpp's overloads)
  // sum a broadcast input's gradient from hi and lo (drivers/elementwise.cpp).
#define LOSSBENCH_OPT_FILL(id, F)                  \
  if constexpr (kHasBackwardSplit<V, formulas::F>) \
    t.backward_split[static_cast<int>(Loss::id)] = backward_block_lo<V, formulas::F>;
  LOSSBENCH_OPT_LOSSES(LOSSBENCH_OPT_FILL)
#undef LOSSBENCH_OPT_FILL
#endif
  t.sum = sum_block<V>;
  t.math = math_block<V>;
  t.ce_row_f32 = ce_row_f32<V>;
  t.sq_diff_row_f32 = sq_diff_row_f32<V>;
  t.sq_diff3_row_f32 = sq_diff3_row_f32<V>;
  t.dot3_row_f32 = dot3_row<V, float>;
  t.dot3_row_f64 = dot3_row<V, double>;
  t.sq_diff_row_f64_dd = sq_diff_row_f64_dd<V>;
  t.triplet2_grad_row_f64 = triplet2_grad_row_f64<V>;
  t.mlsm_forward_f32 = dense_forward<V, formulas::MultilabelSoftMarginRow, float>;
  t.mlsm_backward_f32 = dense_backward<V, formulas::MultilabelSoftMarginRow, float>;
  t.mlsm_fused_f32 = dense_forward<V, formulas::MultilabelSoftMarginRow, float, true>;
  t.mm_row_f32 = mm_row_f32<V>;
  t.mm_row_f64 = mm_row_f64<V>;
  t.triplet2_grad_row_f32 = triplet2_grad_row_f32<V>;
  t.cos_grad_row_f32 = cos_grad_row_f32<V>;
  t.cos_grad_row_f64 = cos_grad_row_f64<V>;
  t.mlm_forward_f32 = dense_forward<V, formulas::MultilabelMarginRow, float>;
  t.mlm_count_f32 = dense_forward<V, formulas::MultilabelMarginCountRow, float, true>;
  t.mlm_group_f32 = mlm_group<V, float>;
  t.mlm_group_f64 = mlm_group<V, double>;
  t.int64_in_range = int64_in_range<V>;
  t.ce_grad_row_f32 = ce_grad_row_f32<V>;
  t.row_exp = forward_block<V, formulas::CrossEntropyExp>;
  t.ctc_alpha_f32 = ctc_alpha_f32<V>;
  t.ctc_grad_f32 = ctc_grad_f32<V>;
  return t;
}

// The double-double tables (isa/exact64*.cpp, V a DD lane type): only the float64 entries of the
// cancelling losses (formulas/all.hpp), the block sum and `dd_math`; the rest stays null.
template <class V>
KernelTable make_exact_table(const char* isa, decltype(KernelTable::dd_math) dd_math) {
  KernelTable t{};
  t.isa = isa;
#define LOSSBENCH_OPT_FILL(id, F)                                                           \
  t.forward[static_cast<int>(Loss::id)] = forward_block<V, formulas::F>;                    \
  t.backward[static_cast<int>(Loss::id)] = backward_block<V, formulas::F>;                  \
  t.backward_split[static_cast<int>(Loss::id)] = backward_block_split<V, formulas::F>;      \
  t.dense_forward[static_cast<int>(Loss::id)][1] = dense_forward<V, formulas::F, double>;   \
  t.dense_backward[static_cast<int>(Loss::id)][1] = dense_backward<V, formulas::F, double>; \
  t.dense_fused[static_cast<int>(Loss::id)][1] = dense_forward<V, formulas::F, double, true>;
  LOSSBENCH_OPT_CANCELLING_LOSSES(LOSSBENCH_OPT_FILL)
#undef LOSSBENCH_OPT_FILL
  t.sum = sum_block<V>;
  t.dd_math = dd_math;
  return t;
}

}  // namespace LOSSBENCH_FORMULA_NS
}  // namespace lossbench::opt::kernels
