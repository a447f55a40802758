// The multilabel driver (see multilabel.hpp).
#include "multilabel.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../formulas/dd.hpp"
#include "../formulas/multilabel_margin_loss.hpp"
#include "../formulas/multilabel_soft_margin_loss.hpp"
#include "../kernels.hpp"
#include "args.hpp"
#include "elements.hpp"

namespace lossbench::opt::multilabel {

namespace {

using conformance::load_float;
using conformance::load_int;
using conformance::store_float;
using conformance::strided_offset;
using formulas::MultilabelMarginLoss;
using formulas::MultilabelSoftMarginLoss;

bool is_float(std::int32_t dtype) { return dtype >= LB_FLOAT64 && dtype <= LB_BFLOAT16; }

void read_common(const lb_call& call, Common& c, bool weight_ok) {
  if (call.device.type != LB_DEVICE_CPU) unsupported("the cpu backend runs on the CPU only");
  for (std::int32_t k = 0; k < call.num_inputs; ++k) {
    const lb_tensor& t = call.inputs[k];
    const std::string_view name = t.name ? t.name : "";
    if (t.device.type != LB_DEVICE_CPU) unsupported("tensors must be on the CPU");
    if (t.ndim > 16) unsupported("more than 16 dimensions");
    if (name == "input")
      c.input = &t;
    else if (name == "target")
      c.target = &t;
    else if (name == "weight" && weight_ok)
      c.weight = &t;
    else
      unsupported("unknown input '" + std::string(name) + "'");
  }
  if (c.input == nullptr || c.target == nullptr) bad("missing input or target");
  if (!is_float(c.input->dtype)) bad("input: a floating dtype is expected");
  for (std::int32_t k = 0; k < call.num_params; ++k)
    unsupported("unknown parameter '" +
                std::string(call.params[k].name ? call.params[k].name : "") + "'");
  const std::string_view red = call.reduction ? call.reduction : "mean";
  if (red == "none")
    c.reduction = Common::Reduction::none;
  else if (red == "sum")
    c.reduction = Common::Reduction::sum;
  else if (red == "mean")
    c.reduction = Common::Reduction::mean;
  else
    bad(std::string(red) + " is not a valid value for reduction");
}

// Reduces per-sample losses (in sample order, double-double) and stores the output.
void reduce_store(const Common& c, const std::vector<double>& v, const Shape& none_shape,
                  lb_tensor& output, const std::vector<double>* v_lo = nullptr) {
  const std::int64_t n = static_cast<std::int64_t>(v.size());
  check_output(c, none_shape, output);
  if (c.reduction == Common::Reduction::none) {
    for (std::int64_t i = 0; i < n; ++i)
      store_float(output.data, output.dtype, strided_offset(output, i),
                  v[static_cast<std::size_t>(i)]);
    return;
  }
  double hi = 0.0, lo = 0.0;
  for (const double x : v) dd_add(hi, lo, x);
  if (v_lo != nullptr)  // the samples' low parts (v[i] + (*v_lo)[i] each)
    for (const double x : *v_lo) dd_add(hi, lo, x);
  const double r =
      c.reduction == Common::Reduction::mean ? dd_div(hi, lo, static_cast<double>(n)) : hi + lo;
  store_float(output.data, output.dtype, 0, r);
}

// The upstream of each sample (divided by the sample count for mean); a null or 0-d
// grad_output of a 'none' call broadcasts.
std::vector<double> upstreams(const Common& c, const lb_tensor* go, const Shape& none_shape,
                              std::int64_t n) {
  std::vector<double> g(static_cast<std::size_t>(n), 1.0);
  check_grad_output(c, go, none_shape);
  if (go != nullptr) {
    const Shape gs = shape_of(*go);
    const bool each = c.reduction == Common::Reduction::none && !gs.empty();
    for (std::int64_t i = 0; i < n; ++i)
      g[static_cast<std::size_t>(i)] =
          load_float(go->data, go->dtype, each ? strided_offset(*go, i) : 0);
  }
  if (c.reduction == Common::Reduction::mean)
    for (auto& x : g) x = x / static_cast<double>(n);
  return g;
}

// ---- multilabel_margin_loss ----

void build_margin(const lb_call& call, Margin& m, int threads, const KernelTable* k) {
  read_common(call, m.c, false);
  const lb_tensor& x = *m.c.input;
  const lb_tensor& t = *m.c.target;
  if (t.dtype != LB_INT64) bad("expected scalar type Long but found another dtype (target)");
  const Shape xs = shape_of(x), ts = shape_of(t);
  const std::size_t nd = xs.size();
  if (!((nd == 2 && xs[1] != 0) || (nd == 1 && xs[0] != 0) || nd == 0))
    bad("Expected non-empty vector or matrix with optional 0-dim batch size, but got: " +
        shape_string(xs));
  m.n = nd <= 1 ? 1 : xs[0];
  m.dim = nd == 0 ? 1 : xs[nd - 1];
  const bool target_ok = nd <= 1 ? (ts.size() <= 1 && numel(ts) == m.dim) : ts == xs;
  if (!target_ok)
    bad("inconsistent target size: " + shape_string(ts) +
        " for input of size: " + shape_string(xs));
  if (ts.size() == 2) m.none_shape = {m.n};
  if (m.n == 0) {
    if (m.c.reduction != Common::Reduction::none)
      bad("multilabel_margin_loss of an empty batch (input " + shape_string(xs) +
          ") with reduction '" + (call.reduction ? call.reduction : "mean") +
          "' is undefined in PyTorch 2.2 (it returns uninitialised memory)");
    return;
  }
  const std::int64_t total = m.n * m.dim;
  const auto out_of_range = [&](std::int64_t v) {
    bad("argument #2 'target' is out of range: " + std::to_string(v) + " not in [-1, " +
        std::to_string(m.dim) + ")");
  };
  bool dense = t.dtype == LB_INT64;
  for (std::int64_t d = t.ndim, expect = 1; d-- > 0; expect *= t.shape[d])
    if (t.shape[d] != 1 && t.strides[d] != expect) dense = false;
  if (dense) {
    // Used in place; the range check (PyTorch's, over every entry) is the ISA's vectorized
    // unsigned max (KernelTable::int64_in_range), in chunks over the threads.
    const auto* v = static_cast<const std::int64_t*>(t.data);
    constexpr std::int64_t kChunk = std::int64_t{1} << 16;
    const std::int64_t chunks = (total + kChunk - 1) / kChunk;
    bool ok = true;
#pragma omp parallel for num_threads(threads) reduction(&& : ok) if (chunks > 16)
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t from = c * kChunk, n = std::min(kChunk, total - from);
      ok = ok && (k != nullptr ? k->int64_in_range(v + from, n, -1, m.dim - 1)
                               : std::all_of(v + from, v + from + n,
                                             [&](std::int64_t e) { return e >= -1 && e < m.dim; }));
    }
    if (!ok)
      for (std::int64_t i = 0; i < total; ++i)
        if (!(v[i] >= -1 && v[i] < m.dim)) out_of_range(v[i]);
    m.contiguous_t = v;
    return;
  }
  m.t.resize(static_cast<std::size_t>(total));
  for (std::int64_t i = 0; i < total; ++i) {
    const std::int64_t v = load_int(t.data, strided_offset(t, i));
    if (!(v >= -1 && v < m.dim)) out_of_range(v);
    m.t[static_cast<std::size_t>(i)] = v;
  }
}

// Sample r: the loss (sum of the hinges / C) and, when count != null, the signed count of active
// pairs per element.
double margin_row(const Margin& m, std::int64_t r, std::vector<double>& x,
                  std::vector<char>& is_target, double* count) {
  const std::int64_t C = m.dim;
  const lb_tensor& in = *m.c.input;
  if (in.dtype == LB_FLOAT32 && in.ndim > 0 && in.strides[in.ndim - 1] == 1 &&
      (in.ndim == 1 || in.strides[0] == C)) {
    const float* row = static_cast<const float*>(in.data) + r * C;
    for (std::int64_t k = 0; k < C; ++k) x[static_cast<std::size_t>(k)] = row[k];
  } else {
    for (std::int64_t k = 0; k < C; ++k)
      x[static_cast<std::size_t>(k)] = load_float(in.data, in.dtype, strided_offset(in, r * C + k));
  }
  const std::int64_t* tr = m.targets() + r * C;
  const std::int64_t listed = std::find_if(tr, tr + C, [](std::int64_t v) { return v < 0; }) - tr;
  std::fill(is_target.begin(), is_target.end(), 0);
  for (std::int64_t k = 0; k < listed; ++k) is_target[static_cast<std::size_t>(tr[k])] = 1;
  if (count) std::fill(count, count + C, 0.0);
  double hi = 0.0, lo = 0.0;
  for (std::int64_t k = 0; k < listed; ++k) {
    const std::size_t j = static_cast<std::size_t>(tr[k]);
    for (std::size_t d = 0; d < static_cast<std::size_t>(C); ++d) {
      if (is_target[d]) continue;
      const double z = MultilabelMarginLoss::z(x[j], x[d]);
      if (!MultilabelMarginLoss::active(z)) continue;
      dd_add(hi, lo, MultilabelMarginLoss::term(z));
      if (count) {
        count[j] -= 1.0;
        count[d] += 1.0;
      }
    }
  }
  return dd_div(hi, lo, static_cast<double>(C));
}

// The float32 forward fast path: contiguous rows; the grouped passes (KernelTable::mlm_group_f32)
// where they apply, else each listed class against the row through the ISA's dense kernel
// (KernelTable::mlm_forward_f32); the sums added in list order as double-doubles.
bool margin_fast(const Margin& m) {
  const lb_tensor& in = *m.c.input;
  return in.dtype == LB_FLOAT32 && in.ndim > 0 && in.strides[in.ndim - 1] == 1 &&
         (in.ndim == 1 || in.strides[0] == m.dim);
}

// Whether 1 - v is exact in double for a float32 v (KernelTable::mlm_group_f32's premise):
// v zero, or 2^-29 <= |v| < 2^52 (v's last bit is then no lower than 2^-52, the last bit of
// doubles in [1, 2), and 1 - v needs at most 53 bits).
bool one_minus_exact(float v) {
  const float a = std::fabs(v);
  return a == 0.0f || (a >= 0x1p-29f && a < 0x1p52f);
}

// Per-thread buffers of the float32 fast paths.
struct MarginScratch {
  std::vector<float> listed_mask, count;
  std::vector<std::int64_t> skip;
  std::vector<double> sums, sums_lo, active;
  std::vector<std::pair<std::int64_t, double>> own;
  // The general path's row (margin_row), for the float64 rows the grouped passes do not take.
  std::vector<double> x, row_count;
  std::vector<char> is_target;
  explicit MarginScratch(std::int64_t C)
      : listed_mask(static_cast<std::size_t>(C)), count(listed_mask.size()) {}
};

// The grouped passes' premise (KernelTable::mlm_group_f32): 1 - x_j exact in double for every
// listed j; false otherwise (the per-class kernels then take the row). Fills b.skip with the
// listed classes, ascending and distinct, and row with the sample's row.
// For float64 rows (KernelTable::mlm_group_f64) the premise is a finite x_j (1 - x_j is then a
// double-double).
template <class E>
bool group_row(const E* x, const std::int64_t* tr, std::int64_t listed, std::int64_t C,
               MarginScratch& b, MlmRowOf<E>& row) {
  for (std::int64_t i = 0; i < listed; ++i) {
    if constexpr (std::is_same_v<E, float>) {
      if (!one_minus_exact(x[tr[i]])) return false;
    } else {
      if (!std::isfinite(x[tr[i]])) return false;
    }
  }
  b.skip.assign(tr, tr + listed);
  std::sort(b.skip.begin(), b.skip.end());
  b.skip.erase(std::unique(b.skip.begin(), b.skip.end()), b.skip.end());
  b.sums.assign(static_cast<std::size_t>(listed), 0.0);
  b.sums_lo.assign(b.sums.size(), 0.0);
  b.active.assign(b.sums.size(), 0.0);
  row = MlmRowOf<E>{};
  row.x = x;
  row.c = C;
  row.skip = b.skip.data();
  row.nskip = static_cast<std::int64_t>(b.skip.size());
  return true;
}

// The passes over the listed entries in groups of kMlmGroup, in list order: each entry's hinge
// sum into b.sums (sums) and, with row.count or row.out set, its active pairs into b.active.
template <class E>
void run_groups(const KernelTable& k, const E* x, const std::int64_t* tr, std::int64_t listed,
                MarginScratch& b, MlmRowOf<E> row, bool sums) {
  const bool grad = row.count != nullptr || row.out != nullptr;
  for (std::int64_t g = 0; g < listed; g += kMlmGroup) {
    double a[kMlmGroup], a_lo[kMlmGroup];
    row.nj = static_cast<int>(std::min<std::int64_t>(kMlmGroup, listed - g));
    for (int q = 0; q < row.nj; ++q)
      two_sum(1.0, -static_cast<double>(x[tr[g + q]]), a[q], a_lo[q]);
    row.a = a;
    row.sums = sums ? b.sums.data() + g : nullptr;
    row.active = grad ? b.active.data() + g : nullptr;
    if constexpr (std::is_same_v<E, float>) {
      k.mlm_group_f32(row);  // (a_lo is 0: 1 - x_j is exact, the premise)
    } else {
      row.a_lo = a_lo;
      row.sums_lo = sums ? b.sums_lo.data() + g : nullptr;
      k.mlm_group_f64(row);
    }
  }
}

// The sample's loss from b.sums (and b.sums_lo): their sum / C; not finite where a sum is not.
double group_loss(const MarginScratch& b, std::int64_t C) {
  double hi = 0.0, lo = 0.0;
  for (std::size_t i = 0; i < b.sums.size(); ++i) {
    if (b.sums_lo[i] == 0.0)
      dd_add(hi, lo, b.sums[i]);  // (float32 rows: their sums are doubles)
    else
      dd_add(hi, lo, b.sums[i], b.sums_lo[i]);
  }
  return dd_div(hi, lo, static_cast<double>(C));
}

// The listed classes' gradients after the passes (the pass left them to the caller): each is
// less its active pairs (b.active), summed per class in double (a class listed many times can
// pass 2^24 pairs).
template <class E>
void listed_grads(const std::int64_t* tr, std::int64_t listed, MarginScratch& b, double g, double C,
                  E* out) {
  auto& own = b.own;
  own.resize(static_cast<std::size_t>(listed));
  for (std::int64_t i = 0; i < listed; ++i)
    own[static_cast<std::size_t>(i)] = {tr[i], b.active[static_cast<std::size_t>(i)]};
  std::sort(own.begin(), own.end());
  for (std::size_t i = 0; i < own.size();) {
    double n = 0.0;
    const std::int64_t j = own[i].first;
    for (; i < own.size() && own[i].first == j; ++i) n -= own[i].second;
    out[j] = static_cast<E>(MultilabelMarginLoss::grad(n, g, C));
  }
}

// The one-pass gradient's table (MlmRow::vals): the gradient of an element in c active pairs.
void grad_table(double g, double C, double* vals) {
  for (int c = 0; c <= kMlmGroup; ++c)
    vals[c] = MultilabelMarginLoss::grad(static_cast<double>(c), g, C);
}

double margin_row_fast(const KernelTable& k, const Margin& m, std::int64_t r, MarginScratch& b) {
  const std::int64_t C = m.dim;
  const float* x = static_cast<const float*>(m.c.input->data) + r * C;
  const std::int64_t* tr = m.targets() + r * C;
  const std::int64_t listed = std::find_if(tr, tr + C, [](std::int64_t v) { return v < 0; }) - tr;
  MlmRow row;
  if (group_row(x, tr, listed, C, b, row)) {
    run_groups(k, x, tr, listed, b, row, true);
    return group_loss(b, C);
  }
  std::vector<float>& listed_mask = b.listed_mask;
  std::fill(listed_mask.begin(), listed_mask.end(), 0.0f);
  for (std::int64_t i = 0; i < listed; ++i) listed_mask[static_cast<std::size_t>(tr[i])] = 1.0f;
  DenseIO io;
  io.in[0] = x;
  io.in[1] = listed_mask.data();
  double hi = 0.0, lo = 0.0;
  for (std::int64_t i = 0; i < listed; ++i) {
    formulas::Params p;
    p.s0 = x[tr[i]];
    double h, l;
    k.mlm_forward_f32(io, 0, C, p, &h, &l);
    dd_add(hi, lo, h);
    dd_add(hi, lo, l);
  }
  return dd_div(hi, lo, static_cast<double>(C));
}

// ---- the float64 fast path: contiguous rows through the grouped passes
// (KernelTable::mlm_group_f64); a row whose listed x_j is not finite, or whose hinge sums are
// not, takes the general path (margin_row). Gradients as the general path's (count g / C).
bool margin_fast64(const Margin& m) {
  const lb_tensor& in = *m.c.input;
  return in.dtype == LB_FLOAT64 && in.ndim > 0 && in.strides[in.ndim - 1] == 1 &&
         (in.ndim == 1 || in.strides[0] == m.dim) && m.dim < (1 << 24);
}

// The general path's loss of sample r and, where out is given, its gradient row.
double general_row64(const Margin& m, std::int64_t r, MarginScratch& b, double g, double* out) {
  const std::int64_t C = m.dim;
  b.x.resize(static_cast<std::size_t>(C));
  b.is_target.resize(b.x.size());
  if (out != nullptr) b.row_count.resize(b.x.size());
  const double loss = margin_row(m, r, b.x, b.is_target, out ? b.row_count.data() : nullptr);
  if (out != nullptr)
    for (std::int64_t d = 0; d < C; ++d)
      out[d] = MultilabelMarginLoss::grad(b.row_count[static_cast<std::size_t>(d)], g,
                                          static_cast<double>(C));
  return loss;
}

// Sample r: its loss (want_loss, else 0) and, where out is given, its gradient row (upstream g).
// The backward alone skips the hinge sums: the pair counts give the gradient whatever the sums
// (an infinite x_d is an active pair in both paths).
double margin_row64(const KernelTable& k, const Margin& m, std::int64_t r, MarginScratch& b,
                    double g, double* out, bool stream, bool want_loss = true) {
  const std::int64_t C = m.dim;
  const double* x = static_cast<const double*>(m.c.input->data) + r * C;
  const std::int64_t* tr = m.targets() + r * C;
  const std::int64_t listed = std::find_if(tr, tr + C, [](std::int64_t v) { return v < 0; }) - tr;
  MlmRow64 row;
  if (listed == 0 || !group_row(x, tr, listed, C, b, row)) return general_row64(m, r, b, g, out);
  const double Cd = static_cast<double>(C);
  if (out != nullptr && listed <= kMlmGroup) {
    // One pass: the non-listed classes' gradients (vals[number of active pairs]), and the sums.
    double vals[kMlmGroup + 1];
    grad_table(g, Cd, vals);
    row.out = out;
    row.vals = vals;
    row.stream = stream;
    run_groups(k, x, tr, listed, b, row, want_loss);
  } else {
    if (want_loss) run_groups(k, x, tr, listed, b, row, true);  // the sums, then the counts
    if (out != nullptr) {
      std::vector<float>& count = b.count;
      std::fill(count.begin(), count.end(), 0.0f);
      MlmRow64 counting = row;
      counting.count = count.data();
      run_groups(k, x, tr, listed, b, counting, false);
      for (std::int64_t d = 0; d < C; ++d)
        out[d] = MultilabelMarginLoss::grad(static_cast<double>(count[static_cast<std::size_t>(d)]),
                                            g, Cd);
    }
  }
  double loss = 0.0;
  if (want_loss) {
    loss = group_loss(b, C);
    if (!std::isfinite(loss)) return general_row64(m, r, b, g, out);
  }
  if (out != nullptr) listed_grads(tr, listed, b, g, Cd, out);
  return loss;
}

// Runs row(r, b) over the samples, in parallel over the threads with a MarginScratch each.
template <class Row>
void each_row(const Margin& m, int threads, Row row) {
#pragma omp parallel num_threads(threads) if (m.n > 64)
  {
    MarginScratch b(m.dim);
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < m.n; ++r) row(r, b);
  }
}

// each_row over the gradient's rows: row(r, b, out, stream) with out gx's row r (E elements),
// streamed (non-temporal stores) where the gradient is too large to stay in cache and the row
// starts 64-byte aligned. gx is contiguous (the ABI's rule).
template <class E, class Row>
void each_grad_row(const Margin& m, const lb_tensor& gx, int threads, Row row) {
  const bool big = m.n * m.dim * static_cast<std::int64_t>(sizeof(E)) >= kStreamBytes;
  each_row(m, threads, [&](std::int64_t r, MarginScratch& b) {
    E* out = static_cast<E*>(gx.data) + r * m.dim;
    row(r, b, out, big && reinterpret_cast<std::uintptr_t>(out) % 64 == 0);
  });
}

void margin_forward(const lb_call& call, lb_tensor& output, int threads, const KernelTable* k) {
  Margin m;
  build_margin(call, m, threads, k);
  std::vector<double> loss(static_cast<std::size_t>(m.n));
  if (k != nullptr && (margin_fast64(m) || margin_fast(m))) {
    const bool f64 = margin_fast64(m);
    each_row(m, threads, [&](std::int64_t r, MarginScratch& b) {
      loss[static_cast<std::size_t>(r)] =
          f64 ? margin_row64(*k, m, r, b, 0.0, nullptr, false) : margin_row_fast(*k, m, r, b);
    });
    reduce_store(m.c, loss, m.none_shape, output);
    return;
  }
#pragma omp parallel num_threads(threads) if (m.n > 64)
  {
    std::vector<double> x(static_cast<std::size_t>(m.dim));
    std::vector<char> is_target(x.size());
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < m.n; ++r)
      loss[static_cast<std::size_t>(r)] = margin_row(m, r, x, is_target, nullptr);
  }
  reduce_store(m.c, loss, m.none_shape, output);
}

// The float32 gradient fast path: the grouped passes (KernelTable::mlm_group_f32) where they
// apply, else the pair counts of each listed class through the ISA's dense kernel
// (KernelTable::mlm_count_f32); count * g / C per element. stream: out is 64-byte aligned and
// the gradient too large to stay in cache.
void margin_grad_row_fast(const KernelTable& k, const Margin& m, std::int64_t r, double g,
                          MarginScratch& b, float* out, bool stream) {
  const std::int64_t C = m.dim;
  const float* x = static_cast<const float*>(m.c.input->data) + r * C;
  const std::int64_t* tr = m.targets() + r * C;
  const std::int64_t listed = std::find_if(tr, tr + C, [](std::int64_t v) { return v < 0; }) - tr;
  std::vector<float>& count = b.count;
  const double Cd = static_cast<double>(C);
  MlmRow row;
  if (listed > 0 && group_row(x, tr, listed, C, b, row)) {
    // The non-listed classes: one pass writes their gradients (vals[number of active pairs]);
    // a longer list counts the pairs over several passes first.
    double vals[kMlmGroup + 1];
    if (listed <= kMlmGroup) {
      grad_table(g, Cd, vals);
      row.out = out;
      row.vals = vals;
      row.stream = stream;
      run_groups(k, x, tr, listed, b, row, false);
    } else {
      std::fill(count.begin(), count.end(), 0.0f);
      row.count = count.data();
      run_groups(k, x, tr, listed, b, row, false);
      for (std::int64_t d = 0; d < C; ++d)
        out[d] = static_cast<float>(MultilabelMarginLoss::grad(
            static_cast<double>(count[static_cast<std::size_t>(d)]), g, Cd));
    }
    listed_grads(tr, listed, b, g, Cd, out);
    return;
  }
  std::fill(count.begin(), count.end(), 0.0f);
  std::vector<float>& listed_mask = b.listed_mask;
  std::fill(listed_mask.begin(), listed_mask.end(), 0.0f);
  for (std::int64_t i = 0; i < listed; ++i) listed_mask[static_cast<std::size_t>(tr[i])] = 1.0f;
  DenseIO io;
  io.in[0] = x;
  io.in[1] = listed_mask.data();
  io.in[2] = count.data();
  io.grad[2] = count.data();
  for (std::int64_t i = 0; i < listed; ++i) {
    formulas::Params p;
    p.s0 = x[tr[i]];
    double h, l;
    k.mlm_count_f32(io, 0, C, p, &h, &l);
    count[static_cast<std::size_t>(tr[i])] -= static_cast<float>(h + l);  // exact: integers
  }
  for (std::int64_t d = 0; d < C; ++d)
    out[d] = static_cast<float>(
        MultilabelMarginLoss::grad(static_cast<double>(count[static_cast<std::size_t>(d)]), g, Cd));
}

void margin_backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                     std::int32_t num_grads, int threads, const KernelTable* k) {
  Margin m;
  build_margin(call, m, threads, k);
  lb_tensor* gx = match_margin_grads(m, grads, num_grads);
  const std::vector<double> g = upstreams(m.c, grad_output, m.none_shape, m.n);
  if (gx == nullptr) return;
  const double C = static_cast<double>(m.dim);
  // gx is contiguous (the ABI's rule).
  if (k != nullptr && margin_fast64(m) && gx->dtype == LB_FLOAT64) {
    each_grad_row<double>(
        m, *gx, threads, [&](std::int64_t r, MarginScratch& b, double* out, bool stream) {
          margin_row64(*k, m, r, b, g[static_cast<std::size_t>(r)], out, stream, false);
        });
    return;
  }
  if (k != nullptr && margin_fast(m) && gx->dtype == LB_FLOAT32 && m.dim < (1 << 24)) {
    each_grad_row<float>(
        m, *gx, threads, [&](std::int64_t r, MarginScratch& b, float* out, bool stream) {
          margin_grad_row_fast(*k, m, r, g[static_cast<std::size_t>(r)], b, out, stream);
        });
    return;
  }
#pragma omp parallel num_threads(threads) if (m.n > 64)
  {
    std::vector<double> x(static_cast<std::size_t>(m.dim)), count(x.size());
    std::vector<char> is_target(x.size());
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < m.n; ++r) {
      margin_row(m, r, x, is_target, count.data());
      const double gr = g[static_cast<std::size_t>(r)];
      for (std::int64_t d = 0; d < m.dim; ++d)
        store_float(gx->data, gx->dtype, strided_offset(*gx, r * m.dim + d),
                    MultilabelMarginLoss::grad(count[static_cast<std::size_t>(d)], gr, C));
    }
  }
}

// forward_backward's float32 fast path: the loss and the gradient of each sample in one pass
// where its list is at most kMlmGroup long (else margin_row_fast, then margin_grad_row_fast).
// False (nothing written) where the fast path does not apply: the caller makes the two calls.
bool margin_fused(const lb_call& call, lb_tensor& output, const lb_tensor* grad_output,
                  lb_tensor* grads, std::int32_t num_grads, int threads, const KernelTable* k) {
  if (k == nullptr) return false;
  Margin m;
  build_margin(call, m, threads, k);
  lb_tensor* gx = match_margin_grads(m, grads, num_grads);
  if (gx != nullptr && m.n > 0 && margin_fast64(m) && gx->dtype == LB_FLOAT64) {
    check_output(m.c, m.none_shape, output);
    const std::vector<double> g = upstreams(m.c, grad_output, m.none_shape, m.n);
    std::vector<double> loss(static_cast<std::size_t>(m.n));
    each_grad_row<double>(
        m, *gx, threads, [&](std::int64_t r, MarginScratch& b, double* out, bool stream) {
          loss[static_cast<std::size_t>(r)] =
              margin_row64(*k, m, r, b, g[static_cast<std::size_t>(r)], out, stream);
        });
    reduce_store(m.c, loss, m.none_shape, output);
    return true;
  }
  if (gx == nullptr || m.n == 0 || !margin_fast(m) || gx->dtype != LB_FLOAT32 || m.dim >= (1 << 24))
    return false;
  check_output(m.c, m.none_shape, output);
  const std::vector<double> g = upstreams(m.c, grad_output, m.none_shape, m.n);
  std::vector<double> loss(static_cast<std::size_t>(m.n));
  const std::int64_t C = m.dim;
  each_grad_row<float>(
      m, *gx, threads, [&](std::int64_t r, MarginScratch& b, float* out, bool stream) {
        const float* x = static_cast<const float*>(m.c.input->data) + r * C;
        const std::int64_t* tr = m.targets() + r * C;
        const double gr = g[static_cast<std::size_t>(r)];
        const std::int64_t listed =
            std::find_if(tr, tr + C, [](std::int64_t v) { return v < 0; }) - tr;
        MlmRow row;
        if (listed > 0 && listed <= kMlmGroup && group_row(x, tr, listed, C, b, row)) {
          double vals[kMlmGroup + 1];
          grad_table(gr, static_cast<double>(C), vals);
          row.out = out;
          row.vals = vals;
          row.stream = stream;
          run_groups(*k, x, tr, listed, b, row, true);
          loss[static_cast<std::size_t>(r)] = group_loss(b, C);
          listed_grads(tr, listed, b, gr, static_cast<double>(C), out);
          return;
        }
        loss[static_cast<std::size_t>(r)] = margin_row_fast(*k, m, r, b);
        margin_grad_row_fast(*k, m, r, gr, b, out, stream);
      });
  reduce_store(m.c, loss, m.none_shape, output);
  return true;
}

// ---- multilabel_soft_margin_loss ----

// Element strides of t seen in the broadcast shape (0 along broadcast dimensions).
Shape view_strides(const lb_tensor& t, const Shape& shape) {
  Shape s(shape.size(), 0);
  const std::size_t off = shape.size() - static_cast<std::size_t>(t.ndim);
  for (std::int32_t d = 0; d < t.ndim; ++d)
    if (t.shape[d] != 1) s[off + static_cast<std::size_t>(d)] = t.strides[d];
  return s;
}

void build_soft(const lb_call& call, Soft& s) {
  read_common(call, s.c, true);
  const lb_tensor& x = *s.c.input;
  if (!is_float(s.c.target->dtype)) bad("target: a floating dtype is expected");
  if (s.c.weight && !is_float(s.c.weight->dtype)) bad("weight: a floating dtype is expected");
  for (const lb_tensor* t : {s.c.target, s.c.weight})
    if (t && t->dtype != x.dtype)
      bad("expected all floating inputs to have one dtype, but input and " +
          std::string(t->name ? t->name : "") + " differ");
  const Shape elem = broadcast(shape_of(*s.c.target), shape_of(x));
  s.shape = s.c.weight ? broadcast(elem, shape_of(*s.c.weight)) : elem;
  if (x.ndim == 0) bad("Dimension specified as -1 but tensor has no dimensions");
  const std::size_t cd = static_cast<std::size_t>(x.ndim - 1);
  s.classes = x.shape[x.ndim - 1];
  s.out_shape = s.shape;
  s.out_shape.erase(s.out_shape.begin() + static_cast<std::ptrdiff_t>(cd));
  for (std::size_t d = 0; d < cd; ++d) s.outer *= s.shape[d];
  s.reduced = s.shape[cd];
  for (std::size_t d = cd + 1; d < s.shape.size(); ++d) s.inner *= s.shape[d];
  s.sx = view_strides(x, s.shape);
  s.sy = view_strides(*s.c.target, s.shape);
  if (s.c.weight) s.sw = view_strides(*s.c.weight, s.shape);
}

struct SoftElement {
  double x, y, w;
};

SoftElement soft_element(const Soft& s, std::int64_t i) {
  const lb_tensor& x = *s.c.input;
  const lb_tensor& y = *s.c.target;
  SoftElement e{load_float(x.data, x.dtype, s.offset(s.sx, i)),
                load_float(y.data, y.dtype, s.offset(s.sy, i)), 1.0};
  if (s.c.weight) e.w = load_float(s.c.weight->data, s.c.weight->dtype, s.offset(s.sw, i));
  return e;
}

bool contiguous_as(const lb_tensor* t, const Shape& shape, std::int32_t dtype = LB_FLOAT32) {
  if (t == nullptr || t->dtype != dtype || shape_of(*t) != shape) return false;
  std::int64_t expect = 1;
  for (std::int32_t d = t->ndim; d-- > 0;) {
    if (t->shape[d] != 1 && t->strides[d] != expect) return false;
    expect *= t->shape[d];
  }
  return true;
}

// The fast path (KernelTable::mlsm_*_f32, mlsm_*_f64): float32 input and target of the full
// shape, both contiguous, and no weight or a contiguous float32 weight of shape (C): each
// sample's classes are then contiguous runs, fed to the ISA's dense row kernels; the same in
// float64 where the table has the float64 rows (the float64 table on AVX-512). The row kernels,
// or null where the call takes the scalar path.
struct SoftKernels {
  DenseForwardKernel forward = nullptr;
  DenseBackwardKernel backward = nullptr;
  DenseForwardKernel fused = nullptr;  // forward and backward in one pass (soft_fused)
};
SoftKernels soft_fast(const Soft& s, const KernelTable* k) {
  if (k == nullptr) return {};
  const std::int32_t dt = s.c.input->dtype;
  const Shape w_shape{s.classes};
  if (!contiguous_as(s.c.input, s.shape, dt) || !contiguous_as(s.c.target, s.shape, dt) ||
      (s.c.weight != nullptr && !contiguous_as(s.c.weight, w_shape, dt)))
    return {};
  if (dt == LB_FLOAT32) return {k->mlsm_forward_f32, k->mlsm_backward_f32, k->mlsm_fused_f32};
  if (dt == LB_FLOAT64 && k->mlsm_forward_f64 != nullptr)
    return {k->mlsm_forward_f64, k->mlsm_backward_f64, k->mlsm_fused_f64};
  return {};
}

// A sample's loss from its row sum hi + lo over C classes: loss + loss_lo, the quotient's rounding
// kept, so that a sum or mean over samples rounds once.
void soft_row_loss(double hi, double lo, double C, double& loss, double& loss_lo) {
  loss = dd_div(hi, lo, C);
  // hi - loss C is exact (C an integer, loss within an ULP or so of hi / C).
  loss_lo = std::isfinite(loss) ? (std::fma(-loss, C, hi) + lo) / C : 0.0;
}

// Whether the fast path's row kernels can write the requested gradients (gx, gy: of input and
// target): no weight gradient (gw: the scalar path sums it), and each contiguous in the loss's
// dtype. soft_backward and soft_fused.
bool soft_rows_write(const Soft& s, const lb_tensor* gx, const lb_tensor* gy, const lb_tensor* gw) {
  const std::int32_t dt = s.c.input->dtype;
  return gw == nullptr && (gx == nullptr || contiguous_as(gx, s.shape, dt)) &&
         (gy == nullptr || contiguous_as(gy, s.shape, dt));
}

DenseIO soft_row(const Soft& s, std::int64_t o) {
  DenseIO io;
  io.in[0] = element_at(*s.c.input, o * s.classes);
  io.in[1] = element_at(*s.c.target, o * s.classes);
  io.in[2] = s.c.weight != nullptr ? s.c.weight->data : nullptr;
  io.constant[2] = 1.0;
  return io;
}

void soft_forward(const lb_call& call, lb_tensor& output, int threads, const KernelTable* k) {
  Soft s;
  build_soft(call, s);
  const std::int64_t n = s.samples();
  std::vector<double> loss(static_cast<std::size_t>(n));
  const double C = static_cast<double>(s.classes);
  if (const SoftKernels fk = soft_fast(s, k); fk.forward != nullptr) {
    const formulas::Params none;
    // Each sample's loss as loss + loss_lo (the row sum hi + lo over C, its quotient's rounding
    // kept), so that a sum or mean over samples rounds once.
    std::vector<double> loss_lo(loss.size());
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 64)
    for (std::int64_t o = 0; o < n; ++o) {
      double hi, lo;
      fk.forward(soft_row(s, o), 0, s.classes, none, &hi, &lo);
      soft_row_loss(hi, lo, C, loss[static_cast<std::size_t>(o)],
                    loss_lo[static_cast<std::size_t>(o)]);
    }
    reduce_store(s.c, loss, s.out_shape, output, &loss_lo);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 64)
  for (std::int64_t o = 0; o < n; ++o) {
    double hi = 0.0, lo = 0.0;
    for (std::int64_t r = 0; r < s.reduced; ++r) {
      const SoftElement e = soft_element(s, s.flat(o, r));
      const double l = MultilabelSoftMarginLoss::term(e.x, e.y);
      dd_add(hi, lo, s.c.weight ? l * e.w : l);
    }
    loss[static_cast<std::size_t>(o)] = dd_div(hi, lo, C);  // C = 0: 0 / 0 = NaN
  }
  reduce_store(s.c, loss, s.out_shape, output);
}

// Sums the broadcast gradient `full` (over s.shape) back to the operand's shape, in index order,
// and stores it into grad.
void sum_back(const Soft& s, const lb_tensor& operand, const std::vector<double>& full,
              lb_tensor& grad, const std::vector<double>* full_lo = nullptr) {
  const Shape os = shape_of(operand);
  const std::int64_t total = numel(s.shape);
  if (os == s.shape) {
    for (std::int64_t i = 0; i < total; ++i)
      store_float(grad.data, grad.dtype, strided_offset(grad, i),
                  full[static_cast<std::size_t>(i)]);
    return;
  }
  // Contiguous strides of the operand, seen in the broadcast shape.
  Shape cs(s.shape.size(), 0);
  const std::size_t off = s.shape.size() - os.size();
  std::int64_t stride = 1;
  for (std::size_t d = os.size(); d-- > 0;) {
    if (os[d] != 1) cs[off + d] = stride;
    stride *= os[d];
  }
  const std::size_t m = static_cast<std::size_t>(numel(os));
  std::vector<double> hi(m, 0.0), lo(m, 0.0);
  for (std::int64_t i = 0; i < total; ++i) {
    const std::size_t k = static_cast<std::size_t>(s.offset(cs, i));
    const auto u = static_cast<std::size_t>(i);
    if (full_lo != nullptr)
      dd_add(hi[k], lo[k], full[u], (*full_lo)[u]);
    else
      dd_add(hi[k], lo[k], full[u]);
  }
  for (std::size_t k = 0; k < m; ++k)
    store_float(grad.data, grad.dtype, strided_offset(grad, static_cast<std::int64_t>(k)),
                hi[k] + lo[k]);
}

void soft_backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                   std::int32_t num_grads, int threads, const KernelTable* k) {
  Soft s;
  build_soft(call, s);
  lb_tensor* gx = nullptr;
  lb_tensor* gy = nullptr;
  lb_tensor* gw = nullptr;
  match_soft_grads(s, grads, num_grads, gx, gy, gw);
  const std::int64_t n = s.samples();
  const std::vector<double> g = upstreams(s.c, grad_output, s.out_shape, n);
  const double C = static_cast<double>(s.classes);
  if (const SoftKernels fk = soft_fast(s, k);
      fk.backward != nullptr && soft_rows_write(s, gx, gy, gw)) {
    const formulas::Params none;
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 64)
    for (std::int64_t o = 0; o < n; ++o) {
      DenseIO io = soft_row(s, o);
      io.g_constant = g[static_cast<std::size_t>(o)] / C;  // backward of sum(dim) / C
      if (gx) io.out[0] = element_at(*gx, o * s.classes);
      if (gy) io.out[1] = element_at(*gy, o * s.classes);
      fk.backward(io, 0, s.classes, none);
    }
    return;
  }
  const std::size_t total = static_cast<std::size_t>(numel(s.shape));
  std::vector<double> fx(gx ? total : 0), fy(gy ? total : 0), fw(gw ? total : 0);
  // float64: the gradients from the same formulas over double-double values (gl = g w / C
  // included), each rounded once: the input's sigma(x) - y cancels where the target is near
  // sigma(x), and the double formula's roundings of the sigmoid were amplified (lossbench fuzz
  // seed 20261203 case 24: 445 ULP; a weight whose gradient sends the call here), and the
  // target's -gl x and the weight's h l carried two or three roundings (1.36 and 1.25 ULP). The
  // fast path's float64 rows do the same on AVX-512 (isa/f64_dd.hpp). Where a value is not
  // finite, the double formula.
  const bool dd64 = s.c.input->dtype == LB_FLOAT64;
  // A broadcast operand's gradient sums these over the broadcast (sum_back): the terms' low parts
  // too (the weight's h l terms have the upstream's signs, and cancel: 7.45 ULP from rounded
  // terms, fuzz seed 20261203 case 9618).
  std::vector<double> fx_lo(dd64 ? fx.size() : 0), fy_lo(dd64 ? fy.size() : 0),
      fw_lo(dd64 ? fw.size() : 0);
  // The DD value rounded, its rounding error into lo; the double formula (fallback()) where it
  // is not finite.
  const auto round_or = [](formulas::DD v, auto fallback, double& lo) {
    if (!std::isfinite(v.hi)) return fallback();
    const double r = v.hi + v.lo;
    lo = (v.hi - r) + v.lo;
    return r;
  };
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 64)
  for (std::int64_t o = 0; o < n; ++o) {
    using formulas::DD;
    const double h = g[static_cast<std::size_t>(o)] / C;  // backward of sum(dim) / C
    const DD h_dd = DD(g[static_cast<std::size_t>(o)]) / DD(C);
    for (std::int64_t r = 0; r < s.reduced; ++r) {
      const std::int64_t i = s.flat(o, r);
      const std::size_t u = static_cast<std::size_t>(i);
      const SoftElement e = soft_element(s, i);
      const double gl = s.c.weight ? h * e.w : h;
      const auto vx = [&] { return MultilabelSoftMarginLoss::grad_input(e.x, e.y, gl); };
      const auto vy = [&] { return MultilabelSoftMarginLoss::grad_target(e.x, gl); };
      const auto vw = [&] {
        return MultilabelSoftMarginLoss::grad_weight(MultilabelSoftMarginLoss::term(e.x, e.y), h);
      };
      const DD gl_dd = dd64 && s.c.weight ? h_dd * DD(e.w) : h_dd;
      if (gx)
        fx[u] = dd64 ? round_or(MultilabelSoftMarginLoss::grad_input(DD(e.x), DD(e.y), gl_dd), vx,
                                fx_lo[u])
                     : vx();
      if (gy)
        fy[u] = dd64 ? round_or(MultilabelSoftMarginLoss::grad_target(DD(e.x), gl_dd), vy, fy_lo[u])
                     : vy();
      if (gw)
        fw[u] = dd64 ? round_or(MultilabelSoftMarginLoss::grad_weight(
                                    MultilabelSoftMarginLoss::term(DD(e.x), DD(e.y)), h_dd),
                                vw, fw_lo[u])
                     : vw();
    }
  }
  if (gx) sum_back(s, *s.c.input, fx, *gx, dd64 ? &fx_lo : nullptr);
  if (gy) sum_back(s, *s.c.target, fy, *gy, dd64 ? &fy_lo : nullptr);
  if (gw) sum_back(s, *s.c.weight, fw, *gw, dd64 ? &fw_lo : nullptr);
}

bool is_margin(const lb_call& call) {
  return std::string_view(call.loss) == "multilabel_margin_loss";
}

}  // namespace

bool handles(const char* loss) {
  if (loss == nullptr) return false;
  const std::string_view l(loss);
  return l == "multilabel_margin_loss" || l == "multilabel_soft_margin_loss";
}

std::int32_t forward(const lb_call& call, lb_tensor& output, int threads, char* error,
                     std::size_t error_size, const KernelTable* k) {
  return guarded(error, error_size, [&] {
    if (is_margin(call))
      margin_forward(call, output, threads, k);
    else
      soft_forward(call, output, threads, k);
  });
}

std::int32_t backward(const lb_call& call, const lb_tensor* grad_output, lb_tensor* grads,
                      std::int32_t num_grads, int threads, char* error, std::size_t error_size,
                      const KernelTable* k) {
  return guarded(error, error_size, [&] {
    if (is_margin(call))
      margin_backward(call, grad_output, grads, num_grads, threads, k);
    else
      soft_backward(call, grad_output, grads, num_grads, threads, k);
  });
}

// forward_backward of multilabel_soft_margin_loss on the fast path's rows in one pass (the row
// kernels' fused mode, SoftKernels::fused): the values of forward then backward, bit for bit, each
// row read once. False, with nothing written, where the two calls are needed: no grad_output, no
// fast path, a weight gradient, or gradients that are not contiguous.
bool soft_fused(const lb_call& call, lb_tensor& output, const lb_tensor* grad_output,
                lb_tensor* grads, std::int32_t num_grads, int threads, const KernelTable* k) {
  if (grad_output == nullptr) return false;
  Soft s;
  build_soft(call, s);
  check_output(s.c, s.out_shape, output);
  lb_tensor* gx = nullptr;
  lb_tensor* gy = nullptr;
  lb_tensor* gw = nullptr;
  match_soft_grads(s, grads, num_grads, gx, gy, gw);
  const SoftKernels fk = soft_fast(s, k);
  if (fk.fused == nullptr || !soft_rows_write(s, gx, gy, gw)) return false;
  const std::int64_t n = s.samples();
  const std::vector<double> g = upstreams(s.c, grad_output, s.out_shape, n);
  const double C = static_cast<double>(s.classes);
  std::vector<double> loss(static_cast<std::size_t>(n)), loss_lo(loss.size());
  const formulas::Params none;
#pragma omp parallel for num_threads(threads) schedule(static) if (n > 64)
  for (std::int64_t o = 0; o < n; ++o) {
    DenseIO io = soft_row(s, o);
    io.g_constant = g[static_cast<std::size_t>(o)] / C;  // as soft_backward
    if (gx) io.grad[0] = element_at(*gx, o * s.classes);
    if (gy) io.grad[1] = element_at(*gy, o * s.classes);
    double hi, lo;
    fk.fused(io, 0, s.classes, none, &hi, &lo);
    soft_row_loss(hi, lo, C, loss[static_cast<std::size_t>(o)],
                  loss_lo[static_cast<std::size_t>(o)]);
  }
  reduce_store(s.c, loss, s.out_shape, output, &loss_lo);
  return true;
}

std::int32_t forward_backward(const lb_call& call, lb_tensor& output, const lb_tensor* grad_output,
                              lb_tensor* grads, std::int32_t num_grads, int threads, char* error,
                              std::size_t error_size, const KernelTable* k, bool& fused) {
  fused = false;
  return guarded(error, error_size, [&] {
    if (is_margin(call))
      fused = margin_fused(call, output, grad_output, grads, num_grads, threads, k);
    else
      fused = soft_fused(call, output, grad_output, grads, num_grads, threads, k);
  });
}

void check_output(const Common& c, const Shape& none_shape, const lb_tensor& output) {
  if (c.reduction == Common::Reduction::none) {
    if (shape_of(output) != none_shape)
      bad("output: shape " + shape_string(shape_of(output)) + " does not match the result");
    return;
  }
  std::int64_t count = 1;
  for (std::int32_t d = 0; d < output.ndim; ++d) count *= output.shape[d];
  if (count != 1) bad("output: the result is a scalar");
}

void check_grad_output(const Common& c, const lb_tensor* go, const Shape& none_shape) {
  if (go == nullptr) return;
  const Shape gs = shape_of(*go);
  const bool each = c.reduction == Common::Reduction::none && !gs.empty();
  if (each ? gs != none_shape : numel(gs) != 1) bad("grad_output has the wrong shape");
}

lb_tensor* match_margin_grads(const Margin& m, lb_tensor* grads, std::int32_t num_grads) {
  lb_tensor* gx = nullptr;
  for (std::int32_t k = 0; k < num_grads; ++k) {
    const std::string_view name = grads[k].name ? grads[k].name : "";
    if (name != "input") bad("no gradient for input '" + std::string(name) + "'");
    if (!is_float(grads[k].dtype) || shape_of(grads[k]) != shape_of(*m.c.input))
      bad("gradient 'input': wrong dtype or shape");
    gx = &grads[k];
  }
  return gx;
}

void match_soft_grads(const Soft& s, lb_tensor* grads, std::int32_t num_grads, lb_tensor*& gx,
                      lb_tensor*& gy, lb_tensor*& gw) {
  gx = gy = gw = nullptr;
  for (std::int32_t k = 0; k < num_grads; ++k) {
    const std::string_view name = grads[k].name ? grads[k].name : "";
    const lb_tensor* src = nullptr;
    if (name == "input") {
      gx = &grads[k];
      src = s.c.input;
    } else if (name == "target") {
      gy = &grads[k];
      src = s.c.target;
    } else if (name == "weight" && s.c.weight) {
      gw = &grads[k];
      src = s.c.weight;
    } else {
      bad("no gradient for input '" + std::string(name) + "'");
    }
    if (!is_float(grads[k].dtype) || shape_of(grads[k]) != shape_of(*src))
      bad("gradient '" + std::string(name) + "': wrong dtype or shape");
  }
}

void build(const lb_call& call, Margin& m) {
  build_margin(call, m, omp_get_max_threads(), nullptr);
}
void build(const lb_call& call, Soft& s) { build_soft(call, s); }

}  // namespace lossbench::opt::multilabel
