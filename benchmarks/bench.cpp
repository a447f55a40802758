// lossbench_bench: Google Benchmark suites generated from the catalog (benchmarks/README.md).
//
//   loss x implementation (cpu, cpu-scalar, cpu-avx2, cpu-avx512, cpu-fast (float32 only); the
//   reference at a tiny size)
//   x dtype (float32, float64) x size (bytes of the main input tensor) x direction (fwd, fwdbwd)
//
// Each benchmark first checks its implementation against the reference on a small input
// (SkipWithError beyond the budget), then times the ABI calls. Counters: bytes/s, items/s,
// pct_sol (percent of the speed of light measured in the same run), max_ulp (of the check).
// Extra flags (before Google Benchmark's): --quick (small sizes), --size=BYTES (the large size).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "conformance.hpp"
#include "cpu.hpp"
#include "hwy/highway.h"
#include "inputs.hpp"
#include "lossbench/catalog.hpp"
#include "transc.hpp"

namespace lb = lossbench;
namespace bench = lossbench::bench;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------- settings

int bench_threads() {
  if (const char* e = std::getenv("LOSSBENCH_CPU_THREADS")) {
    const int t = std::atoi(e);
    if (t > 0) return t;
  }
  return omp_get_max_threads();
}

// LOSSBENCH_BENCH_SLOWDOWN=F (F > 1): every timed iteration spins until it has taken F times
// as long. Only for the test that shows the regression gate fires.
double slowdown() {
  const char* e = std::getenv("LOSSBENCH_BENCH_SLOWDOWN");
  if (e == nullptr) return 1;
  const double f = std::atof(e);
  return f > 1 ? f : 1;
}

std::string size_label(std::size_t bytes) {
  if (bytes % (1u << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

// ---------------------------------------------------------------- read bandwidth (the roof)

__attribute__((target("avx512f"))) double sum_avx512(const double* p, std::size_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    a0 = _mm512_add_pd(a0, _mm512_load_pd(p + i));
    a1 = _mm512_add_pd(a1, _mm512_load_pd(p + i + 8));
    a2 = _mm512_add_pd(a2, _mm512_load_pd(p + i + 16));
    a3 = _mm512_add_pd(a3, _mm512_load_pd(p + i + 24));
    a4 = _mm512_add_pd(a4, _mm512_load_pd(p + i + 32));
    a5 = _mm512_add_pd(a5, _mm512_load_pd(p + i + 40));
    a6 = _mm512_add_pd(a6, _mm512_load_pd(p + i + 48));
    a7 = _mm512_add_pd(a7, _mm512_load_pd(p + i + 56));
  }
  // Not _mm512_reduce_add_pd: GCC 12's version trips -Wuninitialized at -O3.
  const __m512d s8 = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)),
                                   _mm512_add_pd(_mm512_add_pd(a4, a5), _mm512_add_pd(a6, a7)));
  alignas(64) double t[8];
  _mm512_store_pd(t, s8);
  double s = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  for (; i < n; ++i) s += p[i];
  return s;
}

__attribute__((target("avx2"))) double sum_avx2(const double* p, std::size_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_pd(a0, _mm256_load_pd(p + i));
    a1 = _mm256_add_pd(a1, _mm256_load_pd(p + i + 4));
    a2 = _mm256_add_pd(a2, _mm256_load_pd(p + i + 8));
    a3 = _mm256_add_pd(a3, _mm256_load_pd(p + i + 12));
    a4 = _mm256_add_pd(a4, _mm256_load_pd(p + i + 16));
    a5 = _mm256_add_pd(a5, _mm256_load_pd(p + i + 20));
    a6 = _mm256_add_pd(a6, _mm256_load_pd(p + i + 24));
    a7 = _mm256_add_pd(a7, _mm256_load_pd(p + i + 28));
  }
  __m256d s4 = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)),
                             _mm256_add_pd(_mm256_add_pd(a4, a5), _mm256_add_pd(a6, a7)));
  alignas(32) double t[4];
  _mm256_store_pd(t, s4);
  double s = t[0] + t[1] + t[2] + t[3];
  for (; i < n; ++i) s += p[i];
  return s;
}

double sum_chunk(const double* p, std::size_t n) {
  if (__builtin_cpu_supports("avx512f")) return sum_avx512(p, n);
  if (__builtin_cpu_supports("avx2")) return sum_avx2(p, n);
  double s[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += p[i + static_cast<std::size_t>(k)];
  for (; i < n; ++i) s[0] += p[i];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// One pass over the buffer with `threads` threads, each over a contiguous 64-byte aligned chunk.
double read_pass(const double* p, std::size_t n, int threads) {
  double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t per = (n / nt + 7) / 8 * 8;
    const std::size_t lo = std::min(n, t * per), hi = std::min(n, lo + per);
    total += sum_chunk(p + lo, hi - lo);
  }
  return total;
}

struct ReadBuffer {
  bench::Buffer buf;
  std::size_t n;
  ReadBuffer(std::size_t bytes, int threads)
      : buf("bw", LB_FLOAT64, {static_cast<std::int64_t>(std::max<std::size_t>(bytes / 8, 8))}),
        n(static_cast<std::size_t>(buf.n)) {
    double* p = static_cast<double*>(buf.data.get());
    // First touch by the threads that read it.
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t i = 0; i < buf.n; ++i) p[i] = 1.0 / static_cast<double>(i + 1);
  }
  double pass(int threads) const {
    return read_pass(static_cast<const double*>(buf.data.get()), n, threads);
  }
};

std::mutex g_bw_mutex;
std::map<std::pair<std::size_t, int>, double> g_bw;  // (bytes, threads) -> best bytes/s

// The read bandwidth (best pass) for this size and thread count, measured once per run: here,
// when no sol/ benchmark has measured it yet.
double bandwidth(std::size_t bytes, int threads) {
  {
    std::lock_guard<std::mutex> lock(g_bw_mutex);
    auto it = g_bw.find({bytes, threads});
    if (it != g_bw.end()) return it->second;
  }
  ReadBuffer rb(bytes, threads);
  double best = 0, spent = 0;
  benchmark::DoNotOptimize(rb.pass(threads));
  for (int rep = 0; rep < 5 || (spent < 0.25 && rep < 100000); ++rep) {
    const auto t0 = Clock::now();
    benchmark::DoNotOptimize(rb.pass(threads));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    spent += s;
    best = std::max(best, static_cast<double>(rb.n * 8) / s);
  }
  std::lock_guard<std::mutex> lock(g_bw_mutex);
  return g_bw.emplace(std::make_pair(bytes, threads), best).first->second;
}

// The roof next to each timed repetition: best pass over >= 3 passes and >= 10 ms, on a buffer of
// the size the benchmark moves, same threads. On a shared VM the roof moves within a run (up to
// 2x, performance anchors §1.1); measuring it beside each repetition keeps the ratio of a
// repetition to its own machine state. One buffer is kept (the last size).
double roof_now(std::size_t bytes, int threads) {
  static std::unique_ptr<ReadBuffer> rb;
  static std::pair<std::size_t, int> key{0, 0};
  if (!rb || key != std::make_pair(bytes, threads)) {
    rb.reset();
    rb = std::make_unique<ReadBuffer>(bytes, threads);
    key = {bytes, threads};
  }
  benchmark::DoNotOptimize(rb->pass(threads));
  double best = 0, spent = 0;
  for (int rep = 0; rep < 3 || (spent < 0.01 && rep < 100000); ++rep) {
    const auto t0 = Clock::now();
    benchmark::DoNotOptimize(rb->pass(threads));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    spent += s;
    best = std::max(best, static_cast<double>(rb->n * 8) / s);
  }
  return best;
}

void BM_read_bandwidth(benchmark::State& state, std::size_t bytes) {
  const int threads = bench_threads();
  ReadBuffer rb(bytes, threads);
  benchmark::DoNotOptimize(rb.pass(threads));
  double best = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    benchmark::DoNotOptimize(rb.pass(threads));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, static_cast<double>(rb.n * 8) / s);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(rb.n * 8));
  state.counters["best_GBps"] = best * 1e-9;
  // The run's roof for this size: best pass over >= 0.25 s, measured once (context for the
  // per-repetition roofs of the loss benchmarks).
  state.counters["roof_GBps"] = bandwidth(bytes, threads) * 1e-9;
  state.counters["threads"] = threads;
}

// ---------------------------------------------------------------- correctness check

double ulp_of(double r, std::int32_t dtype) {
  const double a = std::fabs(r);
  if (dtype == LB_FLOAT32) {
    const float f = static_cast<float>(a);
    return static_cast<double>(std::nextafter(f, std::numeric_limits<float>::infinity())) -
           static_cast<double>(f);
  }
  return std::nextafter(a, std::numeric_limits<double>::infinity()) - a;
}

double ulp_err(double got, double ref, std::int32_t dtype) {
  if (std::isnan(got) && std::isnan(ref)) return 0;
  if (std::isnan(got) || std::isnan(ref)) return std::numeric_limits<double>::infinity();
  if (got == ref) return 0;
  if (std::isinf(ref) || std::isinf(got)) return std::numeric_limits<double>::infinity();
  return std::fabs(got - ref) / ulp_of(ref, dtype);
}

// The first floating input PyTorch differentiates: the gradient the benchmarks time.
std::string grad_input(const std::string& loss) {
  const auto* info = lb::find_loss(loss);
  for (const auto& in : info->inputs)
    if (in.differentiable && !in.optional) return std::string(in.name);
  return "input";
}

struct CallArgs {
  std::vector<lb_tensor> tensors;
  lb_call call{};
  CallArgs(const std::string& loss, const char* reduction, const std::vector<bench::Buffer>& in) {
    for (const auto& b : in) tensors.push_back(b.tensor());
    call.struct_size = sizeof(lb_call);
    call.loss = loss.c_str();
    call.reduction = reduction;
    call.inputs = tensors.data();
    call.num_inputs = static_cast<std::int32_t>(tensors.size());
    call.params = nullptr;
    call.num_params = 0;
    call.device = {LB_DEVICE_CPU, 0};
  }
};

// The output (scalar when reduced, the loss's "none" shape otherwise), the upstream gradient
// (ones) and the gradient of the problem's differentiable input.
struct Outputs {
  bench::Buffer out, gout, grad;
  Outputs(const bench::Problem& p, std::int32_t dtype, bool reduced)
      : out("output", dtype, reduced ? std::vector<std::int64_t>{1} : p.none_shape),
        gout("grad_output", dtype, reduced ? std::vector<std::int64_t>{1} : p.none_shape),
        grad(p.inputs[p.grad_index].name, dtype, grad_dims(p.inputs[p.grad_index])) {
    for (std::int64_t i = 0; i < gout.n; ++i) gout.set(i, 1.0);
  }
  static std::vector<std::int64_t> grad_dims(const bench::Buffer& b) {
    return std::vector<std::int64_t>(b.shape, b.shape + b.ndim);
  }
  lb_tensor t(const bench::Buffer& b, bool reduced) const {
    lb_tensor r = b.tensor();
    if (reduced) {
      r.ndim = 0;
      r.shape = nullptr;
      r.strides = nullptr;
    }
    return r;
  }
};

// Runs forward (+ backward) of `impl`; returns "" or the error.
std::string run_once(const lb_impl& impl, const CallArgs& args, Outputs& o, bool reduced,
                     bool backward) {
  char err[512] = {};
  lb_tensor out = o.t(o.out, reduced);
  // forward+backward through the one-call entry when the implementation has it.
  if (const lb_forward_backward_fn fused = lb_forward_backward_of(&impl); backward && fused) {
    const lb_tensor g = o.t(o.gout, reduced);
    lb_tensor gr = o.grad.tensor();
    const std::int32_t s = fused(&args.call, &out, &g, &gr, 1, err, sizeof err);
    if (s != LB_OK) return std::string("forward_backward status ") + std::to_string(s) + ": " + err;
    return "";
  }
  std::int32_t s = impl.forward(&args.call, &out, err, sizeof err);
  if (s != LB_OK) return std::string("forward status ") + std::to_string(s) + ": " + err;
  if (backward) {
    const lb_tensor g = o.t(o.gout, reduced);
    lb_tensor gr = o.grad.tensor();
    s = impl.backward(&args.call, &g, &gr, 1, err, sizeof err);
    if (s != LB_OK) return std::string("backward status ") + std::to_string(s) + ": " + err;
  }
  return "";
}

struct CheckResult {
  double max_ulp = 0;
  double budget = 0;
  std::string error;
};

// The implementation against the reference on a small input (reduction none: every element;
// and mean), forward and the timed gradient. Cached per (impl, loss, dtype).
const CheckResult& check(const std::string& impl_name, const lb_impl& impl, const std::string& loss,
                         std::int32_t dtype) {
  static std::map<std::tuple<std::string, std::string, std::int32_t>, CheckResult> cache;
  static lb::conformance::Budgets budgets = [] {
    lb::conformance::Budgets b;
    b.load(LOSSBENCH_SOURCE_DIR "/optimized/budgets.txt");
    return b;
  }();
  auto key = std::make_tuple(impl_name, loss, dtype);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  CheckResult r;
  const lb_impl* ref = lb::conformance::reference_implementation();
  // About 257 elements: not a multiple of any vector width (small rows for the row losses).
  const bench::Problem in = bench::make_problem(loss, dtype, 257, 7);
  if (const std::string g = grad_input(loss); g != in.inputs[in.grad_index].name) {
    r.error = "the builder differentiates '" + in.inputs[in.grad_index].name +
              "', the catalog's first differentiable input is '" + g + "'";
    return cache.emplace(key, r).first->second;
  }
  for (const char* red : {"none", "mean"}) {
    const bool reduced = std::strcmp(red, "none") != 0;
    CallArgs args(loss, red, in.inputs);
    Outputs mine(in, dtype, reduced), exact(in, dtype, reduced);
    // Poisoned: an element the implementation does not write stays NaN and fails the check.
    for (std::int64_t i = 0; i < mine.grad.n; ++i) mine.grad.set(i, std::nan(""));
    for (std::int64_t i = 0; i < mine.out.n; ++i) mine.out.set(i, std::nan(""));
    const bool bwd = impl.backward != nullptr;
    if (std::string e = run_once(*ref, args, exact, reduced, bwd); !e.empty()) {
      r.error = "reference: " + e;
      break;
    }
    if (std::string e = run_once(impl, args, mine, reduced, bwd); !e.empty()) {
      r.error = e;
      break;
    }
    for (const char* dir : {"forward", "backward"}) {
      const bool fwd = std::strcmp(dir, "forward") == 0;
      if (!fwd && !bwd) continue;
      const auto b = budgets.resolve({impl_name, loss, bench::dtype_label(dtype), red, dir});
      // A "torch" allowance needs PyTorch's error on the same case, which the benchmark does
      // not have: 1024 x factor ULP stands in for it (float64 cancellation, budgets.txt; the
      // check is there to catch a broken kernel, the scorer certifies accuracy).
      double allowed = b.ulp >= 0 ? b.ulp : 0;
      if (b.torch) allowed = std::max(allowed, 1024 * b.torch_factor);
      r.budget = std::max(r.budget, allowed);
      const bench::Buffer& g = fwd ? mine.out : mine.grad;
      const bench::Buffer& e = fwd ? exact.out : exact.grad;
      // Where the budget allows cancellation (a torch allowance), an element that cancels is
      // measured against the tensor's largest magnitude (normwise): a broken kernel is off by
      // the values themselves, a cancelling difference only relative to itself.
      double scale = 0;
      if (b.torch)
        for (std::int64_t i = 0; i < e.n; ++i)
          if (std::isfinite(e.get(i))) scale = std::max(scale, std::fabs(e.get(i)));
      double worst = 0;
      for (std::int64_t i = 0; i < g.n; ++i) {
        double err = ulp_err(g.get(i), e.get(i), dtype);
        if (b.torch && scale > 0 && std::isfinite(err))
          err = std::min(err, std::fabs(g.get(i) - e.get(i)) / ulp_of(scale, dtype));
        worst = std::max(worst, err);
      }
      r.max_ulp = std::max(r.max_ulp, worst);
      if (worst > allowed && r.error.empty())
        r.error = std::string("mismatch: ") + dir + " reduction=" + red + " max " +
                  std::to_string(worst) + " ULP > budget " + std::to_string(allowed);
    }
    if (!r.error.empty()) break;
  }
  return cache.emplace(key, r).first->second;
}

// ---------------------------------------------------------------- the loss benchmarks

struct Spec {
  std::string loss, impl;
  std::int32_t dtype;
  std::int64_t n;  // elements of the main floating tensor (inputs.hpp: the shape rules)
  bool backward;
};

void BM_loss(benchmark::State& state, const Spec& spec) {
  const lb_impl* impl = lb::conformance::find_implementation(spec.impl);
  const bool is_ref = spec.impl == "reference";
  double max_ulp = 0;
  if (!is_ref) {
    const CheckResult& c = check(spec.impl, *impl, spec.loss, spec.dtype);
    if (!c.error.empty()) {
      state.SkipWithError(c.error.c_str());
      return;
    }
    max_ulp = c.max_ulp;
  }
  const int threads = bench_threads();
  const bench::Problem in = bench::make_problem(spec.loss, spec.dtype, spec.n, 1);
  CallArgs args(spec.loss, "mean", in.inputs);
  Outputs o(in, spec.dtype, true);
  // The byte model (inputs.hpp): what one fused pass must read, plus the gradient it writes.
  const std::size_t bytes = in.fwd_bytes + (spec.backward ? in.grad_bytes : 0);
  // The reference runs at 64 elements: no roof (a 1 KiB read is all overhead), no pct_sol. The
  // roof is measured on at least 64 KiB: nll_loss's few gathered bytes would time the clock.
  const double bw = is_ref ? 0 : roof_now(std::max<std::size_t>(bytes, 64u << 10), threads);
  const double floor_ns = bench::floor_ns(
      spec.backward ? in.floor_fwd + in.floor_bwd : in.floor_fwd, bench::transc_costs().ns);
  const double sol_s = std::max(is_ref ? 0 : static_cast<double>(bytes) / bw,
                                floor_ns * 1e-9 / static_cast<double>(threads));
  state.SetLabel(in.shape);
  const double slow = slowdown();

  if (std::string e = run_once(*impl, args, o, true, spec.backward); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  double spent = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    if (std::string e = run_once(*impl, args, o, true, spec.backward); !e.empty()) {
      state.SkipWithError(e.c_str());
      break;
    }
    if (slow > 1) {
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      while (std::chrono::duration<double>(Clock::now() - t0).count() < slow * dt) {
      }
    }
    spent += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  const auto iters = static_cast<std::int64_t>(state.iterations());
  state.SetBytesProcessed(iters * static_cast<std::int64_t>(bytes));
  state.SetItemsProcessed(iters * in.elements);
  const double per_iter = iters > 0 ? spent / static_cast<double>(iters) : 0;
  if (!is_ref) {
    state.counters["pct_sol"] = per_iter > 0 ? 100.0 * sol_s / per_iter : 0;
    state.counters["sol_us"] = sol_s * 1e6;
    state.counters["roof_GBps"] = bw * 1e-9;
  }
  state.counters["max_ulp"] = max_ulp;
  state.counters["threads"] = threads;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::size_t large = 256u << 20;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
      continue;
    }
    if (std::strncmp(argv[i], "--size=", 7) == 0) {
      large = static_cast<std::size_t>(std::strtoull(argv[i] + 7, nullptr, 10));
      continue;
    }
    args.push_back(argv[i]);
  }
  if (quick) large = std::min<std::size_t>(large, 4u << 20);
  const std::vector<std::size_t> sizes = {64u << 10, large};  // bytes per input tensor
  const int threads = bench_threads();

  // Context stamped on every result file.
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("isa", lb::opt::isa_name(lb::opt::detected_isa()));
  benchmark::AddCustomContext("threads", std::to_string(threads));
  const char* commit = std::getenv("LOSSBENCH_GIT_COMMIT");
  benchmark::AddCustomContext("git_commit", commit ? commit : LOSSBENCH_GIT_COMMIT_CONFIGURED);
  benchmark::AddCustomContext("lossbench_cpu_version", lb::opt::cpu_impl()->version);
  benchmark::AddCustomContext("highway", std::to_string(HWY_MAJOR) + "." +
                                             std::to_string(HWY_MINOR) + "." +
                                             std::to_string(HWY_PATCH));
  benchmark::AddCustomContext("google_benchmark", LOSSBENCH_GBENCH_VERSION);
  benchmark::AddCustomContext("compiler", __VERSION__);
  benchmark::AddCustomContext("sizes", quick ? "quick" : "full");
  if (slowdown() > 1) benchmark::AddCustomContext("slowdown", std::to_string(slowdown()));
  // The transcendental floor's unit costs, measured here before any benchmark runs.
  benchmark::AddCustomContext("transcendental_cost", bench::transc_costs().describe());

  // The roofs first (2, 3 and 4 tensors of each size: the byte totals the losses move).
  for (std::size_t s : sizes)
    for (std::size_t k : {2u, 3u, 4u}) {
      const std::size_t bytes = s * k;
      benchmark::RegisterBenchmark(
          ("sol/read/" + size_label(bytes) + "/threads:" + std::to_string(threads)).c_str(),
          BM_read_bandwidth, bytes)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }

  // cpu-fast differs from cpu-avx512 only in float32 (optimized/cpu.hpp): float32 rows only.
  const char* impls[] = {"cpu", "cpu-scalar", "cpu-avx2", "cpu-avx512", "cpu-fast", "reference"};
  for (const auto& info : lb::catalog()) {
    const std::string loss(info.name);
    if (!bench::has_builder(loss)) continue;
    for (const char* impl_name : impls) {
      const lb_impl* impl = lb::conformance::find_implementation(impl_name);
      if (impl == nullptr) continue;
      const bool is_ref = std::strcmp(impl_name, "reference") == 0;
      const bool is_fast = std::strcmp(impl_name, "cpu-fast") == 0;
      for (std::int32_t dtype : {LB_FLOAT32, LB_FLOAT64}) {
        if (!impl->supports(loss.c_str(), dtype, {LB_DEVICE_CPU, 0}, "mean")) continue;
        if (is_fast && dtype != LB_FLOAT32) continue;
        std::vector<std::pair<std::string, std::int64_t>> ns;
        if (is_ref)
          ns.push_back({"64el", 64});
        else
          for (std::size_t s : sizes)
            ns.push_back({size_label(s), static_cast<std::int64_t>(s / bench::dtype_size(dtype))});
        for (const auto& [label, n] : ns)
          for (bool bwd : {false, true}) {
            if (bwd && impl->backward == nullptr) continue;
            const std::string name = "loss/" + loss + "/" + impl_name + "/" +
                                     bench::dtype_label(dtype) + "/" + label + "/" +
                                     (bwd ? "fwdbwd" : "fwd");
            benchmark::RegisterBenchmark(name.c_str(), BM_loss,
                                         Spec{loss, impl_name, dtype, n, bwd})
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
      }
    }
  }

  int bargc = static_cast<int>(args.size());
  benchmark::Initialize(&bargc, args.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, args.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
