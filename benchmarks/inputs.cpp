#include "inputs.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <stdexcept>

#include "elements.hpp"

namespace lossbench::bench {

namespace {

// The transcendental evaluations of the floor (transc.hpp measures what each costs).
constexpr Transc kExp{1, 0, 0}, kLog{0, 1, 0}, kLog1p{0, 0, 1};
// One CTC dynamic-programming cell: a log-sum-exp of up to three terms, m + log1p(exp(a - m) +
// exp(b - m)), vectorised over the states (performance anchors §2.2 count it as about 1.6 ns:
// 2 x 0.42 + 0.80).
constexpr Transc kCtcCell{2, 0, 1};

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A reproducible stream of random numbers indexed by position (the same values whatever the
// thread count).
struct Stream {
  std::uint64_t s;
  std::uint64_t bits(std::int64_t i) const { return splitmix(s ^ static_cast<std::uint64_t>(i)); }
  double unit(std::int64_t i) const { return static_cast<double>(bits(i) >> 11) * 0x1p-53; }
};

enum class Fill { Uniform, Sign, Bit };

void fill(Buffer& b, const Stream& st, Fill kind, double lo = 0, double hi = 1) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < b.n; ++i) {
    double v;
    switch (kind) {
      case Fill::Sign: v = (st.bits(i) & 1) ? 1.0 : -1.0; break;
      case Fill::Bit: v = (st.bits(i) & 1) ? 1.0 : 0.0; break;
      default: v = lo + (hi - lo) * st.unit(i); break;
    }
    b.set(i, v);
  }
}

// Class indices in [lo, hi).
void fill_index(Buffer& b, const Stream& st, std::int64_t lo, std::int64_t hi) {
  auto* p = static_cast<std::int64_t*>(b.data.get());
  const auto span = static_cast<std::uint64_t>(hi - lo);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < b.n; ++i) p[i] = lo + static_cast<std::int64_t>(st.bits(i) % span);
}

struct Elementwise {
  std::vector<std::pair<const char*, std::pair<Fill, std::pair<double, double>>>> inputs;
  Transc fwd, bwd;  // transcendental evaluations per element
};

const std::map<std::string_view, Elementwise>& elementwise() {
  using P = std::pair<Fill, std::pair<double, double>>;
  const P any{Fill::Uniform, {-2, 2}}, sign{Fill::Sign, {-1, 1}}, prob{Fill::Uniform, {0, 1}};
  static const std::map<std::string_view, Elementwise> t = {
      {"l1_loss", {{{"input", any}, {"target", any}}, {}, {}}},
      {"mse_loss", {{{"input", any}, {"target", any}}, {}, {}}},
      {"huber_loss", {{{"input", any}, {"target", any}}, {}, {}}},
      {"smooth_l1_loss", {{{"input", any}, {"target", any}}, {}, {}}},
      // backward: the sigmoid's exp
      {"soft_margin_loss", {{{"input", any}, {"target", sign}}, kExp + kLog1p, kExp}},
      {"binary_cross_entropy",
       {{{"input", {Fill::Uniform, {0.02, 0.98}}}, {"target", prob}}, 2.0 * kLog, {}}},
      {"binary_cross_entropy_with_logits",
       {{{"input", {Fill::Uniform, {-6, 6}}}, {"target", prob}}, kExp + kLog1p, kExp}},
      {"margin_ranking_loss", {{{"input1", any}, {"input2", any}, {"target", sign}}, {}, {}}},
      {"hinge_embedding_loss", {{{"input", any}, {"target", sign}}, {}, {}}},
      {"poisson_nll_loss", {{{"input", any}, {"target", {Fill::Uniform, {0, 4}}}}, kExp, kExp}},
      {"gaussian_nll_loss",
       {{{"input", any}, {"target", any}, {"var", {Fill::Uniform, {0.25, 2}}}}, kLog, {}}},
      {"kl_div",
       {{{"input", {Fill::Uniform, {-6, -0.05}}}, {"target", {Fill::Uniform, {0.001, 1}}}},
        kLog,
        {}}},
  };
  return t;
}

const std::vector<std::string_view> kRowwise = {"cross_entropy",
                                                "nll_loss",
                                                "multi_margin_loss",
                                                "multilabel_margin_loss",
                                                "multilabel_soft_margin_loss",
                                                "cosine_embedding_loss",
                                                "triplet_margin_loss",
                                                "triplet_margin_with_distance_loss"};

// N rows of C classes (or D features): C = 8192 from 2^19 elements (the anchors' shape), 1024 from
// 8192, small C for the check and the reference.
void rows(std::int64_t elements, std::int64_t& n, std::int64_t& c) {
  if (elements >= (std::int64_t{1} << 19))
    c = 8192;
  else if (elements >= 8192)
    c = 1024;
  else if (elements >= 74)
    c = 37;
  else
    c = 8;
  n = std::max<std::int64_t>(1, elements / c);
}

// Labels per row of multilabel_margin_loss (followed by the -1 terminator).
constexpr std::int64_t kLabels = 4;

}  // namespace

std::size_t dtype_size(std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT64:
    case LB_INT64: return 8;
    case LB_FLOAT32: return 4;
    default: return 2;
  }
}

const char* dtype_label(std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT64: return "float64";
    case LB_FLOAT32: return "float32";
    case LB_FLOAT16: return "float16";
    case LB_BFLOAT16: return "bfloat16";
    default: return "int64";
  }
}

Buffer::Buffer(std::string name_, std::int32_t dtype_, std::vector<std::int64_t> dims)
    : dtype(dtype_), name(std::move(name_)) {
  if (dims.empty() || dims.size() > 3) throw std::invalid_argument("Buffer: 1 to 3 dimensions");
  ndim = static_cast<std::int32_t>(dims.size());
  n = 1;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    shape[d] = dims[d];
    n *= dims[d];
  }
  for (std::int32_t d = ndim - 1; d >= 0; --d)
    stride[d] = d == ndim - 1 ? 1 : stride[d + 1] * shape[d + 1];
  std::size_t b = (bytes() + 63) / 64 * 64;
  if (b == 0) b = 64;
  void* p = std::aligned_alloc(64, b);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, b);
  data.reset(p);
}

lb_tensor Buffer::tensor() const {
  return lb_tensor{name.c_str(), data.get(), dtype, ndim, shape, stride, {LB_DEVICE_CPU, 0}};
}

double Buffer::get(std::int64_t i) const {
  switch (dtype) {
    case LB_FLOAT64: return static_cast<const double*>(data.get())[i];
    case LB_FLOAT32: return static_cast<const float*>(data.get())[i];
    case LB_FLOAT16:
      return conformance::half_to_double(static_cast<const std::uint16_t*>(data.get())[i]);
    case LB_BFLOAT16:
      return conformance::bfloat16_to_double(static_cast<const std::uint16_t*>(data.get())[i]);
    default: return static_cast<double>(static_cast<const std::int64_t*>(data.get())[i]);
  }
}

void Buffer::set(std::int64_t i, double v) {
  void* p = data.get();
  switch (dtype) {
    case LB_FLOAT64: static_cast<double*>(p)[i] = v; break;
    case LB_FLOAT32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case LB_FLOAT16: static_cast<std::uint16_t*>(p)[i] = conformance::double_to_half(v); break;
    case LB_BFLOAT16: static_cast<std::uint16_t*>(p)[i] = conformance::double_to_bfloat16(v); break;
    default: static_cast<std::int64_t*>(p)[i] = static_cast<std::int64_t>(v); break;
  }
}

bool has_builder(std::string_view loss) {
  return elementwise().count(loss) != 0 || loss == "ctc_loss" ||
         std::find(kRowwise.begin(), kRowwise.end(), loss) != kRowwise.end();
}

Problem make_problem(std::string_view loss, std::int32_t dtype, std::int64_t elements,
                     std::uint64_t seed) {
  if (!has_builder(loss))
    throw std::invalid_argument("no input builder for loss '" + std::string(loss) + "'");
  Problem p;
  std::uint64_t stream = seed * 1000003u;
  auto next = [&] { return Stream{splitmix(++stream)}; };
  const std::size_t e = dtype_size(dtype);
  auto main_bytes = [&] { return p.inputs[0].bytes(); };

  if (auto it = elementwise().find(loss); it != elementwise().end()) {
    const std::int64_t n = std::max<std::int64_t>(1, elements);
    for (const auto& [name, range] : it->second.inputs) {
      p.inputs.emplace_back(name, dtype, std::vector<std::int64_t>{n});
      fill(p.inputs.back(), next(), range.first, range.second.first, range.second.second);
    }
    p.none_shape = {n};
    p.elements = n;
    for (const auto& b : p.inputs) p.fwd_bytes += b.bytes();
    p.grad_bytes = main_bytes();
    p.floor_fwd = static_cast<double>(n) * it->second.fwd;
    p.floor_bwd = static_cast<double>(n) * it->second.bwd;
    p.shape = "n=" + std::to_string(n);
    return p;
  }

  if (loss == "ctc_loss") {
    // log_probs (T, N, C), log_softmax of uniform logits; padded targets (N, S) in [1, C)
    // (blank 0), all input lengths T and target lengths S. C = 256, T up to 512, S = T / 8
    // (the anchors' T=512, N=64, C=256, S=64 at 2^23 elements); small counts: C = 8, S = T / 4.
    const bool small = elements < 4096;
    const std::int64_t c = small ? 8 : 256;
    const std::int64_t t =
        std::max<std::int64_t>(4, std::min<std::int64_t>(small ? 16 : 512, elements / c));
    const std::int64_t n = std::max<std::int64_t>(1, elements / (c * t));
    const std::int64_t s = std::max<std::int64_t>(1, t / (small ? 4 : 8));
    p.inputs.emplace_back("log_probs", dtype, std::vector<std::int64_t>{t, n, c});
    Buffer& lp = p.inputs.back();
    const Stream st = next();
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < t * n; ++r) {
      double z[256], m = -1e300, sum = 0;
      for (std::int64_t k = 0; k < c; ++k) {
        z[k] = -3 + 6 * st.unit(r * c + k);
        m = std::max(m, z[k]);
      }
      for (std::int64_t k = 0; k < c; ++k) sum += std::exp(z[k] - m);
      const double lse = m + std::log(sum);
      for (std::int64_t k = 0; k < c; ++k) lp.set(r * c + k, z[k] - lse);
    }
    p.inputs.emplace_back("targets", LB_INT64, std::vector<std::int64_t>{n, s});
    fill_index(p.inputs.back(), next(), 1, c);
    p.inputs.emplace_back("input_lengths", LB_INT64, std::vector<std::int64_t>{n});
    for (std::int64_t i = 0; i < n; ++i) p.inputs.back().set(i, static_cast<double>(t));
    p.inputs.emplace_back("target_lengths", LB_INT64, std::vector<std::int64_t>{n});
    for (std::int64_t i = 0; i < n; ++i) p.inputs.back().set(i, static_cast<double>(s));
    p.none_shape = {n};
    p.elements = t * n * c;
    for (const auto& b : p.inputs) p.fwd_bytes += b.bytes();
    p.grad_bytes = main_bytes();
    const double cells = static_cast<double>(t * n * (2 * s + 1));
    p.floor_fwd = cells * kCtcCell;  // alpha recursion
    p.floor_bwd = cells * kCtcCell;  // beta recursion (the gradient reuses both)
    p.shape = "T=" + std::to_string(t) + " N=" + std::to_string(n) + " C=" + std::to_string(c) +
              " S=" + std::to_string(s);
    return p;
  }

  std::int64_t n = 0, c = 0;
  rows(elements, n, c);
  const std::vector<std::int64_t> nc{n, c};
  const auto nd = static_cast<double>(n * c);
  p.none_shape = {n};
  p.elements = n * c;
  p.shape =
      "N=" + std::to_string(n) +
      (loss.find("triplet") != std::string_view::npos || loss == "cosine_embedding_loss" ? " D="
                                                                                         : " C=") +
      std::to_string(c);
  auto add = [&](const char* name, std::int32_t dt, std::vector<std::int64_t> dims) -> Buffer& {
    p.inputs.emplace_back(name, dt, std::move(dims));
    return p.inputs.back();
  };

  if (loss == "cross_entropy" || loss == "nll_loss" || loss == "multi_margin_loss") {
    // cross_entropy: logits; nll_loss: log-probabilities (negative); multi_margin_loss: scores.
    if (loss == "nll_loss")
      fill(add("input", dtype, nc), next(), Fill::Uniform, -6, -0.05);
    else
      fill(add("input", dtype, nc), next(), Fill::Uniform, -4, 4);
    fill_index(add("target", LB_INT64, {n}), next(), 0, c);
    if (loss == "nll_loss") {
      // Only the N gathered values and the N targets must be read (latency-bound).
      p.fwd_bytes = static_cast<std::size_t>(n) * (e + 8);
    } else {
      p.fwd_bytes = main_bytes() + static_cast<std::size_t>(n) * 8;
    }
    p.grad_bytes = main_bytes();
    // cross_entropy: one exp per element and one log per row; the fused gradient reuses them.
    if (loss == "cross_entropy") p.floor_fwd = nd * kExp + static_cast<double>(n) * kLog;
    return p;
  }
  if (loss == "multilabel_margin_loss") {
    // K distinct labels per row, then the -1 terminator; the rest of the row (ignored, but
    // range-checked) is 0.
    fill(add("input", dtype, nc), next(), Fill::Uniform, -2, 2);
    Buffer& tg = add("target", LB_INT64, nc);
    const std::int64_t k = std::min<std::int64_t>(kLabels, c - 1);
    const Stream st = next();
    auto* tp = static_cast<std::int64_t*>(tg.data.get());
    for (std::int64_t r = 0; r < n; ++r) {
      const auto first = static_cast<std::int64_t>(st.bits(r) % static_cast<std::uint64_t>(c));
      for (std::int64_t j = 0; j < k; ++j) tp[r * c + j] = (first + 3 * j) % c;
      tp[r * c + k] = -1;
    }
    // The input and the whole target: PyTorch's CPU kernel rejects an entry below -1 or at
    // least C anywhere in the target (a global min and max), past the terminator too, so a
    // conforming pass reads every entry.
    p.fwd_bytes = main_bytes() + static_cast<std::size_t>(n * c) * 8;
    p.grad_bytes = main_bytes();
    return p;
  }
  if (loss == "multilabel_soft_margin_loss") {
    fill(add("input", dtype, nc), next(), Fill::Uniform, -4, 4);
    fill(add("target", dtype, nc), next(), Fill::Bit);
    p.fwd_bytes = 2 * main_bytes();
    p.grad_bytes = main_bytes();
    p.floor_fwd = nd * (kExp + kLog1p);  // one log-sigmoid serves both terms
    p.floor_bwd = nd * kExp;             // the sigmoid of the gradient
    return p;
  }
  if (loss == "cosine_embedding_loss") {
    fill(add("input1", dtype, nc), next(), Fill::Uniform, -2, 2);
    fill(add("input2", dtype, nc), next(), Fill::Uniform, -2, 2);
    fill(add("target", dtype, {n}), next(), Fill::Sign);
    for (const auto& b : p.inputs) p.fwd_bytes += b.bytes();
    p.grad_bytes = main_bytes();
    return p;
  }
  // triplet_margin_loss, triplet_margin_with_distance_loss (default distance)
  for (const char* name : {"anchor", "positive", "negative"})
    fill(add(name, dtype, nc), next(), Fill::Uniform, -2, 2);
  p.fwd_bytes = 3 * main_bytes();
  p.grad_bytes = main_bytes();
  return p;
}

}  // namespace lossbench::bench
