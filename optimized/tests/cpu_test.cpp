// The optimized CPU backend against the committed golden corpus, through the scorer: every ISA
// path this machine has (scalar, AVX2, AVX-512, selected by the ISA-specific implementations and
// by "cpu" under LOSSBENCH_CPU_ISA), within optimized/budgets.txt; 16-bit results correctly
// rounded in at least 99.9 % of elements; reductions bitwise identical for every thread count.
#include "cpu.hpp"

#include <gtest/gtest.h>
#include <mpfr.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "conformance.hpp"
#include "elements.hpp"
#include "kernels.hpp"

namespace lossbench::opt {
namespace {

using conformance::ojson;

const std::set<std::string>& my_losses() {
  static const std::set<std::string> s = {"l1_loss",
                                          "mse_loss",
                                          "huber_loss",
                                          "smooth_l1_loss",
                                          "soft_margin_loss",
                                          "binary_cross_entropy",
                                          "binary_cross_entropy_with_logits",
                                          "margin_ranking_loss",
                                          "hinge_embedding_loss",
                                          "poisson_nll_loss",
                                          "gaussian_nll_loss",
                                          "kl_div",
                                          "cross_entropy",
                                          "nll_loss",
                                          "multi_margin_loss",
                                          "multilabel_margin_loss",
                                          "multilabel_soft_margin_loss",
                                          "cosine_embedding_loss",
                                          "triplet_margin_loss",
                                          "triplet_margin_with_distance_loss",
                                          "ctc_loss"};
  return s;
}

const std::string kGolden = LOSSBENCH_SOURCE_DIR "/golden/corpus";
const std::string kBudgets = LOSSBENCH_OPTIMIZED_DIR "/budgets.txt";

// A scratch path that belongs to the running test alone: ctest runs each test in its own process,
// several at once (-j) and sharing one TMPDIR, so a fixed name written by two tests at once is a
// race (two tests writing "eval-case.json" once made one read a truncated file). The process id
// and the test's full name keep them apart. The paths are removed when the process's tests all
// pass, and kept for inspection when one fails.
std::vector<std::string>& scratch_paths() {
  static std::vector<std::string> paths;
  return paths;
}

std::string test_temp(const std::string& leaf) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = t ? std::string(t->test_suite_name()) + "." + t->name() : "no-test";
  for (char& ch : name)
    if (ch == '/') ch = '_';
  scratch_paths().push_back(::testing::TempDir() + "/lossbench-" + std::to_string(::getpid()) +
                            "-" + name + "-" + leaf);
  return scratch_paths().back();
}

class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->Failed()) return;
    std::error_code ec;
    for (const std::string& p : scratch_paths()) std::filesystem::remove_all(p, ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kScratchCleanup =
    ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

struct EnvGuard {
  std::string name;
  std::string old;
  bool had;
  EnvGuard(const char* n, const std::string& value) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    setenv(n, value.c_str(), 1);
  }
  ~EnvGuard() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

// An lb_call on the CPU for loss and reduction over the given inputs and parameters.
lb_call cpu_call(const char* loss, const char* reduction, const lb_tensor* in,
                 std::int32_t num_inputs, const lb_param* params = nullptr,
                 std::int32_t num_params = 0) {
  lb_call call{};
  call.struct_size = sizeof call;
  call.loss = loss;
  call.reduction = reduction;
  call.inputs = in;
  call.num_inputs = num_inputs;
  call.params = params;
  call.num_params = num_params;
  call.device = {LB_DEVICE_CPU, 0};
  return call;
}

// Runs the scorer (lossbench check) over the corpus; prints the max ULP per loss, dtype and
// direction; returns the exit code.
int check(const std::string& impl, const std::string& json_path) {
  conformance::CheckOptions o;
  o.impl = impl;
  o.golden = kGolden;
  o.budgets = kBudgets;
  o.json_out = json_path;
  o.repro_dir = test_temp("repro-" + impl);
  std::ostringstream out, err;
  const int rc = conformance::run_check(o, out, err);
  std::ifstream in(json_path);
  const ojson j = ojson::parse(in);
  std::map<std::string, double> worst;
  std::map<std::string, int> counts;
  for (const auto& c : j["cases"]) {
    const std::string loss = c["loss"].get<std::string>();
    if (!my_losses().count(loss)) continue;
    counts[c["verdict"].get<std::string>()]++;
    if (!c.contains("scores")) continue;
    for (const auto& [name, s] : c["scores"].items()) {
      const std::string key = loss + " " + c["dtype"].get<std::string>() + " " +
                              (name == "output" ? "forward" : "backward");
      const double u = s["max_ulp"].is_string() ? HUGE_VAL : s["max_ulp"].get<double>();
      worst[key] = std::max(worst[key], u);
    }
  }
  std::printf("[%s] verdicts:", impl.c_str());
  for (const auto& [v, n] : counts) std::printf(" %s=%d", v.c_str(), n);
  std::printf("\n");
  for (const auto& [k, u] : worst)
    std::printf("[%s] %-52s max %.3f ULP\n", impl.c_str(), k.c_str(), u);
  if (rc != 0) std::printf("%s\n", out.str().c_str());
  return rc;
}

TEST(OptimizedCpu, RegisteredAndDispatched) {
  for (const char* n : {"cpu", "cpu-scalar", "cpu-avx2", "cpu-avx512"})
    EXPECT_NE(conformance::find_implementation(n), nullptr) << n;
  EnvGuard g("LOSSBENCH_CPU_ISA", "scalar");
  EXPECT_EQ(detected_isa(), Isa::scalar);
  setenv("LOSSBENCH_CPU_ISA", "avx2", 1);
  if (machine_has(Isa::avx2)) {
    EXPECT_EQ(detected_isa(), Isa::avx2);
  }
  EXPECT_NE(cpu_impl()->supports("multilabel_margin_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "mean"),
            0);
  EXPECT_NE(
      cpu_impl()->supports("multilabel_soft_margin_loss", LB_BFLOAT16, {LB_DEVICE_CPU, 0}, "none"),
      0);
  EXPECT_EQ(cpu_impl()->supports("no_such_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "mean"), 0);
  EXPECT_NE(cpu_impl()->supports("cross_entropy", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "mean"), 0);
  EXPECT_EQ(cpu_impl()->supports("mse_loss", LB_FLOAT32, {LB_DEVICE_CUDA, 0}, "mean"), 0);
  EXPECT_NE(cpu_impl()->supports("mse_loss", LB_BFLOAT16, {LB_DEVICE_CPU, 0}, "mean"), 0);
}

class PerIsa : public ::testing::TestWithParam<Isa> {};

TEST_P(PerIsa, CorpusWithinBudgets) {
  const Isa isa = GetParam();
  if (!machine_has(isa)) GTEST_SKIP() << isa_name(isa) << " is not available on this machine";
  const std::string name = std::string("cpu-") + isa_name(isa);
  EXPECT_EQ(check(name, test_temp(name + ".json")), 0);
}

TEST_P(PerIsa, DispatchCappedByEnvironment) {
  const Isa isa = GetParam();
  if (!machine_has(isa)) GTEST_SKIP() << isa_name(isa) << " is not available on this machine";
  EnvGuard g("LOSSBENCH_CPU_ISA", isa_name(isa));
  ASSERT_EQ(detected_isa(), isa);
  EXPECT_EQ(check("cpu", test_temp(std::string("cpu-cap-") + isa_name(isa) + ".json")), 0);
}

// float16 / bfloat16: computed in double, rounded once: the correctly rounded value in at least
// 99.9 % of the elements (outputs and gradients).
TEST_P(PerIsa, SixteenBitCorrectlyRounded) {
  const Isa isa = GetParam();
  if (!machine_has(isa)) GTEST_SKIP();
  const lb_impl* impl = conformance::find_implementation(std::string("cpu-") + isa_name(isa));
  ASSERT_NE(impl, nullptr);
  std::int64_t total = 0, exact = 0;
  for (const auto& c : conformance::read_corpus(kGolden)) {
    if (!my_losses().count(c.loss) || c.is_error()) continue;
    if (c.dtype != "float16" && c.dtype != "bfloat16") continue;
    const ojson r = conformance::run_case(*impl, c);
    if (r["status"] == "unsupported") continue;  // a skipped case (e.g. extreme cosine rows)
    ASSERT_EQ(r["status"], "ok") << c.id << " " << r.dump();
    const ojson& e = c.line["expected"];
    auto compare = [&](const ojson& got, const ojson& want) {
      for (std::size_t i = 0; i < want["rounded"].size(); ++i) {
        const double a = conformance::parse_hex(got["data"][i]);
        const double b = conformance::parse_hex(want["rounded"][i]);
        ++total;
        if (a == b || (std::isnan(a) && std::isnan(b))) ++exact;
      }
    };
    compare(r["output"], e["output"]);
    if (e.contains("grad") && r.contains("grad"))
      for (const auto& [n, g] : e["grad"].items()) compare(r["grad"][n], g);
  }
  std::printf("[cpu-%s] 16-bit: %lld of %lld elements correctly rounded\n", isa_name(isa),
              static_cast<long long>(exact), static_cast<long long>(total));
  ASSERT_GT(total, 0);
  EXPECT_GE(static_cast<double>(exact), 0.999 * static_cast<double>(total));
}

INSTANTIATE_TEST_SUITE_P(Isas, PerIsa, ::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                         [](const auto& param_info) {
                           return std::string(isa_name(param_info.param));
                         });

// ---------------------------------------------------------------- thread-count determinism

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape, strides;
  std::vector<double> data;
  lb_tensor view() {
    strides.assign(shape.size(), 1);
    for (std::size_t d = shape.size(); d > 1; --d) strides[d - 2] = strides[d - 1] * shape[d - 1];
    return lb_tensor{
        name.c_str(), data.data(),    LB_FLOAT64,        static_cast<std::int32_t>(shape.size()),
        shape.data(), strides.data(), {LB_DEVICE_CPU, 0}};
  }
};

// Output and gradients of one call, as raw bytes, with `threads` threads.
std::vector<double> run_with_threads(const char* impl_name, const char* loss, const char* reduction,
                                     std::vector<Tensor> inputs, int threads) {
  EnvGuard g("LOSSBENCH_CPU_THREADS", std::to_string(threads));
  const lb_impl* impl = conformance::find_implementation(impl_name);
  std::vector<lb_tensor> views;
  for (auto& t : inputs) views.push_back(t.view());
  lb_call call = cpu_call(loss, reduction, views.data(), static_cast<std::int32_t>(views.size()));
  const bool none = std::strcmp(reduction, "none") == 0;
  std::vector<double> result(none ? inputs[0].data.size() : 1);
  lb_tensor o = views[0];  // 'none': the input's shape (these cases do not broadcast)
  o.name = "output";
  o.data = result.data();
  if (!none) o.ndim = 0;
  char err[256] = {};
  EXPECT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << err;
  double one = 1.0;
  lb_tensor ones = o;
  std::vector<double> ones_data(result.size(), 1.0);
  ones.name = "grad_output";
  ones.data = none ? ones_data.data() : &one;
  std::vector<std::vector<double>> gdata;
  std::vector<lb_tensor> grads;
  for (auto& t : inputs) gdata.emplace_back(t.data.size());
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    lb_tensor gt = views[k];
    gt.data = gdata[k].data();
    grads.push_back(gt);
  }
  EXPECT_EQ(impl->backward(&call, &ones, grads.data(), static_cast<std::int32_t>(grads.size()), err,
                           sizeof err),
            LB_OK)
      << err;
  for (auto& gd : gdata) result.insert(result.end(), gd.begin(), gd.end());
  return result;
}

TEST(OptimizedCpu, ReductionsBitwiseIdenticalForAnyThreadCount) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit(0.001, 0.999);
  const std::int64_t n = 3 * 4096 * 7 + 123;  // many blocks and a tail
  auto randn = [&](const char* name, std::vector<std::int64_t> shape, bool probability) {
    Tensor t{name, shape, {}, {}};
    std::int64_t m = 1;
    for (auto d : shape) m *= d;
    for (std::int64_t i = 0; i < m; ++i) t.data.push_back(probability ? unit(rng) : normal(rng));
    return t;
  };
  struct Case {
    const char* loss;
    const char* reduction;
    std::vector<Tensor> in;
  };
  std::vector<Case> cases = {
      {"mse_loss", "sum", {randn("input", {n}, false), randn("target", {n}, false)}},
      {"binary_cross_entropy_with_logits",
       "mean",
       {randn("input", {n}, false), randn("target", {n}, true)}},
      {"binary_cross_entropy", "mean", {randn("input", {n}, true), randn("target", {n}, true)}},
      {"kl_div",
       "batchmean",
       {randn("input", {n / 7, 7}, false), randn("target", {n / 7, 7}, true)}},
      {"gaussian_nll_loss",
       "mean",
       {randn("input", {n / 7, 7}, false), randn("target", {n / 7, 7}, false),
        randn("var", {n / 7, 1}, true)}},
      {"soft_margin_loss", "none", {randn("input", {n}, false), randn("target", {n}, false)}},
      {"cross_entropy",
       "mean",
       {randn("input", {n / 7, 7}, false), randn("target", {n / 7, 7}, true)}},
      {"multilabel_soft_margin_loss",
       "mean",
       {randn("input", {n / 7, 7}, false), randn("target", {n / 7, 7}, true),
        randn("weight", {7}, true)}},
      {"triplet_margin_loss",
       "mean",
       {randn("anchor", {n / 7, 7}, false), randn("positive", {n / 7, 7}, false),
        randn("negative", {n / 7, 7}, false)}},
      {"triplet_margin_with_distance_loss",
       "sum",
       {randn("anchor", {n / 7, 7}, false), randn("positive", {1, 7}, false),
        randn("negative", {n / 7, 7}, false)}},
  };
  for (const char* impl : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    if (conformance::find_implementation(impl)->supports("mse_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0},
                                                         "sum") == 0)
      continue;
    for (const auto& c : cases) {
      const auto one = run_with_threads(impl, c.loss, c.reduction, c.in, 1);
      for (int threads : {2, 3, 8}) {
        const auto many = run_with_threads(impl, c.loss, c.reduction, c.in, threads);
        ASSERT_EQ(one.size(), many.size());
        EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(double)), 0)
            << impl << " " << c.loss << " " << c.reduction << " threads " << threads;
      }
    }
  }
}

// ---------------------------------------------------------------- dense and gathered paths

// Two float32 results of the same call through two paths: equal, or one float32 ULP (of b)
// apart; NaN matches NaN only where the test's inputs hold NaN (nan_matches).
bool within_one_ulp(float a, float b, bool nan_matches) {
  if (a == b || (nan_matches && std::isnan(a) && std::isnan(b))) return true;
  return std::fabs(a - b) <= std::nextafter(std::fabs(b), HUGE_VALF) - std::fabs(b);
}

// One elementwise call with every tensor either contiguous (the driver's dense fast path: the
// kernel reads the tensors directly) or laid out with stride 2 (the gather path: converted into
// block buffers first). Outputs, gradients and grad_output are contiguous, as the ABI has them.
// Returns the output followed by the requested gradients, as double.
template <class E>
std::vector<double> run_layout(const char* impl_name, const char* loss, const char* reduction,
                               const std::vector<std::vector<double>>& values,
                               const std::vector<const char*>& names, bool strided,
                               bool fused = false) {
  const std::int32_t dtype = sizeof(E) == 4 ? LB_FLOAT32 : LB_FLOAT64;
  const auto n = static_cast<std::int64_t>(values[0].size());
  const std::int64_t step = strided ? 2 : 1;
  std::int64_t shape[1] = {n}, strides[1] = {step}, unit[1] = {1};
  const std::int64_t zero[1] = {0};
  std::vector<std::vector<E>> data;
  std::vector<lb_tensor> views;
  for (std::size_t k = 0; k < values.size(); ++k) {
    data.emplace_back(static_cast<std::size_t>(n * step), E(0));
    for (std::int64_t i = 0; i < n; ++i) data[k][i * step] = static_cast<E>(values[k][i]);
  }
  for (std::size_t k = 0; k < values.size(); ++k)
    views.push_back({names[k], data[k].data(), dtype, 1, shape, strides, {LB_DEVICE_CPU, 0}});
  lb_call call = cpu_call(loss, reduction, views.data(), static_cast<std::int32_t>(views.size()));
  const lb_impl* impl = conformance::find_implementation(impl_name);
  const bool none = std::strcmp(reduction, "none") == 0;
  std::vector<E> out(static_cast<std::size_t>(none ? n : 1));
  lb_tensor o{"output", out.data(), dtype, none ? 1 : 0, shape, unit, {LB_DEVICE_CPU, 0}};
  char err[256] = {};
  if (!fused) {
    EXPECT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << err;
  }
  std::vector<E> gout(static_cast<std::size_t>(none ? n * step : 1), E(0));
  for (std::int64_t i = 0; i < (none ? n : 1); ++i) gout[i * (none ? step : 1)] = E(0.75);
  lb_tensor go{"grad_output",         gout.data(),       dtype, none ? 1 : 0, shape,
               none ? strides : zero, {LB_DEVICE_CPU, 0}};
  std::vector<std::vector<E>> gdata;
  std::vector<lb_tensor> grads;
  for (std::size_t k = 0; k < 2; ++k) gdata.emplace_back(static_cast<std::size_t>(n), E(0));
  for (std::size_t k = 0; k < 2; ++k)
    grads.push_back({names[k], gdata[k].data(), dtype, 1, shape, unit, {LB_DEVICE_CPU, 0}});
  // The first input's gradient is always defined; the second (a target) only for some losses:
  // ask for both where the loss differentiates both, else for the first only.
  const bool both = std::strcmp(loss, "mse_loss") == 0 || std::strcmp(loss, "l1_loss") == 0 ||
                    std::strcmp(loss, "kl_div") == 0;
  if (fused) {
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    EXPECT_NE(fb, nullptr) << impl_name;
    if (fb == nullptr) return {};
    EXPECT_EQ(fb(&call, &o, &go, grads.data(), both ? 2 : 1, err, sizeof err), LB_OK) << err;
  } else {
    EXPECT_EQ(impl->backward(&call, &go, grads.data(), both ? 2 : 1, err, sizeof err), LB_OK)
        << err;
  }
  std::vector<double> result;
  for (const E v : out) result.push_back(static_cast<double>(v));
  for (std::size_t k = 0; k < (both ? 2u : 1u); ++k)
    for (const E v : gdata[k]) result.push_back(static_cast<double>(v));
  return result;
}

// The elementwise losses the layout tests run: the inputs' names and, per input, whether it is
// drawn in (0, 1) (probabilities, variances) or from a normal distribution.
struct ElementwiseCase {
  const char* loss;
  std::vector<const char*> names;
  std::vector<bool> probability;
};

const std::vector<ElementwiseCase>& elementwise_cases() {
  static const std::vector<ElementwiseCase> cases = {
      {"mse_loss", {"input", "target"}, {false, false}},
      {"l1_loss", {"input", "target"}, {false, false}},
      {"binary_cross_entropy_with_logits", {"input", "target"}, {false, true}},
      {"binary_cross_entropy", {"input", "target"}, {true, true}},
      {"soft_margin_loss", {"input", "target"}, {false, false}},
      {"kl_div", {"input", "target"}, {false, true}},
      {"huber_loss", {"input", "target"}, {false, false}},
      {"smooth_l1_loss", {"input", "target"}, {false, false}},
      {"hinge_embedding_loss", {"input", "target"}, {false, false}},
      {"poisson_nll_loss", {"input", "target"}, {false, true}},
      {"margin_ranking_loss", {"input1", "input2", "target"}, {false, false, false}},
      {"gaussian_nll_loss", {"input", "target", "var"}, {false, false, true}},
  };
  return cases;
}

// n values of E (as double) for each input of c: blocks, a partial block, a partial vector.
template <class E>
std::vector<std::vector<double>> draw_inputs(std::mt19937_64& rng, const ElementwiseCase& c) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit(0.001, 0.999);
  const std::int64_t n = 2 * 4096 + 4096 / 2 + 5;
  std::vector<std::vector<double>> values;
  for (bool probability : c.probability) {
    std::vector<double> v;
    for (std::int64_t i = 0; i < n; ++i)
      v.push_back(static_cast<double>(static_cast<E>(probability ? unit(rng) : normal(rng))));
    values.push_back(std::move(v));
  }
  return values;
}

template <class E>
void expect_dense_matches_gathered() {
  std::mt19937_64 rng(7);
  for (const char* impl : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    if (conformance::find_implementation(impl)->supports("mse_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0},
                                                         "sum") == 0)
      continue;
    for (const auto& c : elementwise_cases()) {
      const auto values = draw_inputs<E>(rng, c);
      // 'none': the same formula, rounded once, on the same values: bitwise equal.
      const auto dense = run_layout<E>(impl, c.loss, "none", values, c.names, false);
      const auto gathered = run_layout<E>(impl, c.loss, "none", values, c.names, true);
      ASSERT_EQ(dense.size(), gathered.size());
      EXPECT_EQ(std::memcmp(dense.data(), gathered.data(), dense.size() * sizeof(double)), 0)
          << impl << " " << c.loss << " none";
      // 'sum': both sum double-doubles, in a different order; the results (rounded to E) agree
      // to within one unit of E's last place.
      const auto ds = run_layout<E>(impl, c.loss, "sum", values, c.names, false);
      const auto gs = run_layout<E>(impl, c.loss, "sum", values, c.names, true);
      const double ulp = std::ldexp(std::fabs(gs[0]), sizeof(E) == 4 ? -23 : -52);
      EXPECT_LE(std::fabs(ds[0] - gs[0]), ulp) << impl << " " << c.loss << " sum";
      for (std::size_t i = 1; i < ds.size(); ++i)
        ASSERT_EQ(ds[i], gs[i]) << impl << " " << c.loss << " sum gradient element " << i - 1;
    }
  }
}

TEST(OptimizedCpu, DensePathMatchesGatheredPathFloat32) { expect_dense_matches_gathered<float>(); }
TEST(OptimizedCpu, DensePathMatchesGatheredPathFloat64) { expect_dense_matches_gathered<double>(); }

// forward_backward (one pass over the inputs on the dense path, two calls on the gathered one)
// gives bitwise the results of forward followed by backward: the same formulas on the same lanes,
// the same sums.
template <class E>
void expect_fused_matches_two_calls() {
  std::mt19937_64 rng(11);
  for (const char* impl : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    if (conformance::find_implementation(impl)->supports("mse_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0},
                                                         "sum") == 0)
      continue;
    for (const auto& c : elementwise_cases()) {
      const auto values = draw_inputs<E>(rng, c);
      for (const char* reduction : {"none", "mean", "sum"})
        for (bool strided : {false, true}) {
          const auto two = run_layout<E>(impl, c.loss, reduction, values, c.names, strided);
          const auto one = run_layout<E>(impl, c.loss, reduction, values, c.names, strided, true);
          ASSERT_EQ(two.size(), one.size());
          EXPECT_EQ(std::memcmp(two.data(), one.data(), two.size() * sizeof(double)), 0)
              << impl << " " << c.loss << " " << reduction << (strided ? " strided" : " dense");
        }
    }
  }
}

TEST(OptimizedCpu, FusedMatchesTwoCallsFloat32) { expect_fused_matches_two_calls<float>(); }
TEST(OptimizedCpu, FusedMatchesTwoCallsFloat64) { expect_fused_matches_two_calls<double>(); }

// ---------------------------------------------------------------- vector math

// Each ISA's exp, log, log1p and expm1 against glibc's (under 1 ULP) on random and edge inputs:
// within 2^-49 relatively (what float32 and 16-bit results need is 2^-24; float64 losses with
// transcendentals run glibc's own), special values exactly as IEEE 754 has them.
// Random and edge inputs for exp (and expm1), log and log1p.
struct MathInputs {
  std::vector<double> exp_in, log_in, log1p_in;
};
MathInputs math_inputs() {
  MathInputs m;
  auto& [exp_in, log_in, log1p_in] = m;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto random_positive = [&] {  // any positive finite double, subnormals included
    std::uint64_t bits = rng() & 0x7fffffffffffffffULL;
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return std::isfinite(v) && v > 0 ? v : 1.5;
  };
  for (int i = 0; i < 20000; ++i) {
    exp_in.push_back(-745.2 + unit(rng) * (709.9 + 745.2));
    exp_in.push_back((unit(rng) - 0.5) * std::ldexp(1.0, -static_cast<int>(unit(rng) * 60)));
    log_in.push_back(random_positive());
    log_in.push_back(1.0 + (unit(rng) - 0.5) * std::ldexp(1.0, -static_cast<int>(unit(rng) * 53)));
    log1p_in.push_back(-1.0 + std::ldexp(unit(rng), -static_cast<int>(unit(rng) * 40)));
    log1p_in.push_back((unit(rng) - 0.5) * std::ldexp(1.0, -static_cast<int>(unit(rng) * 60)));
    log1p_in.push_back(std::ldexp(unit(rng), static_cast<int>(unit(rng) * 80) - 20));
  }
  const double inf = HUGE_VAL, nan = std::nan("");
  for (double v : {0.0, -0.0, inf, -inf, nan, 709.78, 709.79, -708.4, -744.0, -745.1, -746.0, 1e300,
                   -1e300, 1e-300})
    exp_in.push_back(v);
  for (double v : {0.0, -0.0, inf, -inf, nan, -1.0, 1.0, 4.9e-324, 2.2e-308, 1.7e308, 0.75, 1.5,
                   0.984375, 1.03125, 2.0, 0.5})
    log_in.push_back(v);
  for (double v : {0.0, -0.0, inf, -inf, nan, -1.0, -2.0, 1e-300, -1e-300, 1e300, 0x1p-53, 0x1p-52,
                   -0x1p-54, 1.0, -0.5})
    log1p_in.push_back(v);
  return m;
}

TEST(OptimizedCpu, VectorMath) {
  const auto [exp_in, log_in, log1p_in] = math_inputs();
  const auto check = [](const char* isa, const char* fn, const std::vector<double>& in,
                        const std::vector<double>& got, double (*ref)(double)) {
    int bad = 0;
    for (std::size_t i = 0; i < in.size() && bad < 5; ++i) {
      const double want = ref(in[i]);
      bool ok;
      if (std::isnan(want))
        ok = std::isnan(got[i]);
      else if (std::isinf(want) || want == 0.0)
        ok = got[i] == want || (want == 0.0 && std::fabs(got[i]) <= 0x1p-1073);
      else
        ok = std::fabs(got[i] - want) <= std::max(std::ldexp(std::fabs(want), -49), 0x1p-1073);
      if (!ok) {
        ++bad;
        ADD_FAILURE() << isa << " " << fn << "(" << std::hexfloat << in[i] << ") = " << got[i]
                      << ", glibc " << want << std::defaultfloat;
      }
    }
  };
  const std::pair<Isa, const KernelTable*> tables[] = {
      {Isa::scalar, &scalar_kernels()}, {Isa::avx2, nullptr}, {Isa::avx512, nullptr}};
  for (auto [isa, table] : tables) {
    if (!machine_has(isa)) continue;
    const KernelTable& k = table != nullptr   ? *table
                           : isa == Isa::avx2 ? avx2_kernels()
                                              : avx512_kernels();
    const struct {
      int fn;
      const char* name;
      const std::vector<double>* in;
      double (*ref)(double);
    } fns[] = {{0, "exp", &exp_in, [](double x) { return std::exp(x); }},
               {1, "log", &log_in, [](double x) { return std::log(x); }},
               {2, "log1p", &log1p_in, [](double x) { return std::log1p(x); }},
               {3, "expm1", &exp_in, [](double x) { return std::expm1(x); }}};
    for (const auto& f : fns) {
      std::vector<double> in = *f.in;
      in.resize((in.size() + kPad - 1) / kPad * kPad, 1.0);
      std::vector<double> out(in.size());
      k.math(f.fn, in.data(), out.data(), in.size());
      check(isa_name(isa), f.name, in, out, f.ref);
    }
  }
}

// The float64 table's vector math (isa/avx512_f64.cpp: float64 soft_margin_loss and
// cross_entropy on AVX-512) against MPFR: exp, log, log1p and softplus's tail log1p(exp(-|t|))
// within 0.55 ULP of double where the result is normal (about 0.52 by design); 1 ULP where it is
// subnormal (the result is rounded to double before scalef scales it into the subnormal range:
// two roundings); IEEE's special values exactly.
TEST(OptimizedCpu, Float64VectorMathHalfUlp) {
  if (!machine_has(Isa::avx512)) GTEST_SKIP() << "no AVX-512 here";
  const auto [exp_in, log_in, log1p_in] = math_inputs();
  mpfr_t x, y;
  mpfr_inits2(200, x, y, static_cast<mpfr_ptr>(nullptr));
  const struct {
    int fn;
    const char* name;
    const std::vector<double>* in;
  } fns[] = {{0, "exp", &exp_in},
             {1, "log", &log_in},
             {2, "log1p", &log1p_in},
             {4, "softplus_tail", &exp_in}};
  for (const auto& f : fns) {
    std::vector<double> in = *f.in;
    in.resize((in.size() + kPad - 1) / kPad * kPad, 1.0);
    std::vector<double> out(in.size());
    avx512_f64_kernels().math(f.fn, in.data(), out.data(), in.size());
    double worst = 0.0;
    int bad = 0;
    for (std::size_t i = 0; i < in.size() && bad < 5; ++i) {
      mpfr_set_d(x, in[i], MPFR_RNDN);
      switch (f.fn) {
        case 0: mpfr_exp(y, x, MPFR_RNDN); break;
        case 1: mpfr_log(y, x, MPFR_RNDN); break;
        case 2: mpfr_log1p(y, x, MPFR_RNDN); break;
        default:
          mpfr_abs(x, x, MPFR_RNDN);
          mpfr_neg(x, x, MPFR_RNDN);
          mpfr_exp(x, x, MPFR_RNDN);
          mpfr_log1p(y, x, MPFR_RNDN);
      }
      const double want = mpfr_get_d(y, MPFR_RNDN);
      double err = 0.0;
      bool ok;
      if (std::isnan(want) || std::isinf(want) || want == 0.0) {
        ok = std::isnan(want) ? std::isnan(out[i]) : out[i] == want;
      } else {
        const bool subnormal = std::fabs(want) < 0x1p-1022;
        int e;
        std::frexp(want, &e);
        const double ulp = std::max(std::ldexp(1.0, e - 53), 0x1p-1074);
        mpfr_sub_d(y, y, out[i], MPFR_RNDN);
        err = std::fabs(mpfr_get_d(y, MPFR_RNDN)) / ulp;
        ok = err <= (subnormal ? 1.0 : 0.55);
        if (!subnormal) worst = std::max(worst, err);
      }
      if (!ok) {
        ++bad;
        ADD_FAILURE() << f.name << "(" << std::hexfloat << in[i] << ") = " << out[i] << ", exact "
                      << want << std::defaultfloat << " (" << err << " ULP)";
      }
    }
    EXPECT_LE(worst, 0.55) << f.name;
  }
  mpfr_clears(x, y, static_cast<mpfr_ptr>(nullptr));
}

// Each ISA's softplus tail log1p(exp(-|t|)) and reciprocal (vdiv_pos, for u in [1, 4]: what
// the sigmoid formulas divide by) against MPFR: within 2^-50 relatively, NaN kept, 0 at +-inf.
// The tail's inputs cover every entry of AVX-512's table (exp(-|t|) near k/16 and (k + 1/2)/16,
// where the table index changes), tiny and huge |t|, and t whose exp underflows.
TEST(OptimizedCpu, SoftplusTailAndReciprocal) {
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> tail_in, recip_in;
  for (int i = 0; i < 20000; ++i) {
    tail_in.push_back((unit(rng) - 0.5) * 100.0);
    tail_in.push_back((unit(rng) - 0.5) * std::ldexp(1.0, -static_cast<int>(unit(rng) * 60)));
    tail_in.push_back(-std::log((i % 33 + unit(rng) * 1e-6) / 32.0));  // e near k / 32
    recip_in.push_back(1.0 + 3.0 * unit(rng));
  }
  const double inf = HUGE_VAL, nan = std::nan("");
  for (double v : {0.0, -0.0, inf, -inf, nan, 745.0, -745.0, 1e300, -1e300, 0x1p-1074, 36.7, 37.5})
    tail_in.push_back(v);
  for (double v : {1.0, 2.0, 4.0, std::nextafter(1.0, 2.0), std::nextafter(2.0, 1.0)})
    recip_in.push_back(v);
  mpfr_t x, y;
  mpfr_inits2(256, x, y, static_cast<mpfr_ptr>(nullptr));
  const auto want_of = [&](int fn, double v) {
    if (std::isnan(v)) return v;
    mpfr_set_d(x, fn == 4 ? -std::fabs(v) : v, MPFR_RNDN);
    if (fn == 4) {
      mpfr_exp(y, x, MPFR_RNDN);
      mpfr_log1p(y, y, MPFR_RNDN);
    } else {
      mpfr_ui_div(y, 1, x, MPFR_RNDN);
    }
    return mpfr_get_d(y, MPFR_RNDN);
  };
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!machine_has(isa)) continue;
    const KernelTable& k = isa == Isa::scalar ? scalar_kernels()
                           : isa == Isa::avx2 ? avx2_kernels()
                                              : avx512_kernels();
    for (int fn : {4, 5}) {
      std::vector<double> in = fn == 4 ? tail_in : recip_in;
      in.resize((in.size() + kPad - 1) / kPad * kPad, 1.0);
      std::vector<double> out(in.size());
      k.math(fn, in.data(), out.data(), in.size());
      int bad = 0;
      for (std::size_t i = 0; i < in.size() && bad < 5; ++i) {
        const double want = want_of(fn, in[i]);
        const bool ok =
            std::isnan(want) ? std::isnan(out[i])
            : want == 0.0    ? std::fabs(out[i]) <= 0x1p-1073
                          : std::fabs(out[i] - want) <= std::max(std::ldexp(want, -50), 0x1p-1073);
        if (!ok) {
          ++bad;
          ADD_FAILURE() << isa_name(isa) << (fn == 4 ? " softplus_tail(" : " 1 / (")
                        << std::hexfloat << in[i] << ") = " << out[i] << ", MPFR " << want
                        << std::defaultfloat;
        }
      }
    }
  }
  mpfr_clears(x, y, static_cast<mpfr_ptr>(nullptr));
}

// The double-double exp, log, log1p and expm1 of the float64 kernels (isa/exact64*.cpp) against
// MPFR at 256 bits: hi + lo within 2^-70 relatively (what the formulas need: their cancellations
// take at most ~20 of those bits from a float64 result), and special values as IEEE 754 has them.
TEST(OptimizedCpu, DoubleDoubleMath) {
  const auto [exp_in, log_in, log1p_in] = math_inputs();
  mpfr_t x, y, hl;
  mpfr_inits2(256, x, y, hl, static_cast<mpfr_ptr>(nullptr));
  const auto check = [&](const char* isa, int fn, const std::vector<double>& in,
                         const std::vector<double>& hi, const std::vector<double>& lo) {
    static const char* const names[] = {"exp", "log", "log1p", "expm1"};
    int bad = 0;
    for (std::size_t i = 0; i < in.size() && bad < 5; ++i) {
      mpfr_set_d(x, in[i], MPFR_RNDN);
      if (fn == 0) mpfr_exp(y, x, MPFR_RNDN);
      if (fn == 1) mpfr_log(y, x, MPFR_RNDN);
      if (fn == 2) mpfr_log1p(y, x, MPFR_RNDN);
      if (fn == 3) mpfr_expm1(y, x, MPFR_RNDN);
      const double want = mpfr_get_d(y, MPFR_RNDN);
      bool ok;
      if (std::isnan(want) || std::isinf(want) || want == 0.0 || std::isinf(hi[i])) {
        ok = std::isnan(want) ? std::isnan(hi[i]) : hi[i] == want;
      } else if (std::fabs(want) < 0x1p-1000) {  // below the normal range: as double
        ok = std::fabs(hi[i] - want) <= std::max(std::ldexp(std::fabs(want), -52), 0x1p-1074);
      } else {
        mpfr_set_d(hl, hi[i], MPFR_RNDN);
        mpfr_add_d(hl, hl, lo[i], MPFR_RNDN);
        mpfr_sub(hl, hl, y, MPFR_RNDN);
        mpfr_div(hl, hl, y, MPFR_RNDN);
        ok = std::fabs(mpfr_get_d(hl, MPFR_RNDN)) <= 0x1p-70;
      }
      if (!ok) {
        ++bad;
        ADD_FAILURE() << isa << " dd " << names[fn] << "(" << std::hexfloat << in[i]
                      << ") = " << hi[i] << " + " << lo[i] << ", MPFR " << want
                      << std::defaultfloat;
      }
    }
  };
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!machine_has(isa)) continue;
    const KernelTable& k = isa == Isa::scalar ? exact64_kernels()
                           : isa == Isa::avx2 ? exact64_fma_kernels()
                                              : exact64_avx512_kernels();
    for (int fn = 0; fn < 4; ++fn) {
      std::vector<double> in = fn == 1 ? log_in : fn == 2 ? log1p_in : exp_in;
      in.resize((in.size() + kPad - 1) / kPad * kPad, 1.0);
      std::vector<double> hi(in.size()), lo(in.size());
      k.dd_math(fn, in.data(), hi.data(), lo.data(), in.size());
      check(isa_name(isa), fn, in, hi, lo);
    }
  }
  mpfr_clears(x, y, hl, static_cast<mpfr_ptr>(nullptr));
}

// cross_entropy's float32 fast path (contiguous classes) against the general path (the same
// logits with a class stride of 2), for many classes (whole vectors and a tail), every ISA:
// losses and gradients within one float32 ULP of each other (both are within 0.5 ULP of the
// exact value on the corpus; they differ in how the row's exps are summed).
TEST(OptimizedCpu, CrossEntropyFastPathMatchesGeneralPath) {
  const std::int64_t N = 37, C = 1003;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> dense(static_cast<std::size_t>(N * C)), strided(dense.size() * 2, 0.0f);
  for (std::size_t i = 0; i < dense.size(); ++i) strided[2 * i] = dense[i] = normal(rng);
  std::vector<std::int64_t> target(static_cast<std::size_t>(N));
  for (auto& t : target) t = static_cast<std::int64_t>(rng() % C);
  target[3] = -100;  // ignored
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cross_entropy", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    const auto run = [&](const float* x, std::int64_t class_stride, std::vector<float>& loss,
                         std::vector<float>& grad) {
      std::int64_t xs[2] = {N, C}, xst[2] = {C * class_stride, class_stride}, ts[1] = {N},
                   tst[1] = {1}, gst[2] = {C, 1};
      lb_tensor in[2] = {
          {"input", const_cast<float*>(x), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}},
          {"target", target.data(), LB_INT64, 1, ts, tst, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("cross_entropy", "none", in, 2);
      loss.assign(static_cast<std::size_t>(N), 0.0f);
      grad.assign(static_cast<std::size_t>(N * C), 0.0f);
      std::vector<float> ones(static_cast<std::size_t>(N), 0.5f);
      lb_tensor out{"output", loss.data(), LB_FLOAT32, 1, ts, tst, {LB_DEVICE_CPU, 0}};
      lb_tensor go{"grad_output", ones.data(), LB_FLOAT32, 1, ts, tst, {LB_DEVICE_CPU, 0}};
      lb_tensor g{"input", grad.data(), LB_FLOAT32, 2, xs, gst, {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
      ASSERT_EQ(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK) << err;
    };
    std::vector<float> loss_fast, grad_fast, loss_general, grad_general;
    run(dense.data(), 1, loss_fast, grad_fast);
    run(strided.data(), 2, loss_general, grad_general);
    const auto close = [](float a, float b) { return within_one_ulp(a, b, false); };
    for (std::int64_t i = 0; i < N; ++i)
      EXPECT_TRUE(close(loss_fast[i], loss_general[i]))
          << impl_name << " row " << i << ": " << loss_fast[i] << " vs " << loss_general[i];
    int bad = 0;
    for (std::size_t i = 0; i < grad_fast.size() && bad < 5; ++i)
      if (!close(grad_fast[i], grad_general[i])) {
        ++bad;
        ADD_FAILURE() << impl_name << " grad " << i << ": " << grad_fast[i] << " vs "
                      << grad_general[i];
      }
    EXPECT_EQ(loss_fast[3], 0.0f);
  }
}

// cross_entropy's forward_backward (one read of the logits) against forward then backward:
// bitwise equal, for each reduction, with every target valid (the fused pass) and with an
// ignored one (the fused pass gives up and makes the two calls); float32, and float64 (on
// AVX-512 the double-double rows, isa/ce_dd.hpp).
template <class T>
void check_ce_fused(std::int32_t dtype) {
  const std::int64_t N = 37, C = 1003;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<T> x(static_cast<std::size_t>(N * C));
  for (auto& v : x) v = static_cast<T>(normal(rng)) * T(1.0 + 0x1p-30);  // (float64: all bits)
  std::vector<std::int64_t> target(static_cast<std::size_t>(N));
  for (auto& t : target) t = static_cast<std::int64_t>(rng() % C);
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cross_entropy", dtype, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    ASSERT_NE(fb, nullptr);
    for (const char* reduction : {"none", "mean", "sum"})
      for (bool ignored : {false, true}) {
        std::vector<std::int64_t> t = target;
        if (ignored) t[5] = -100;
        const bool none = std::strcmp(reduction, "none") == 0;
        const auto run = [&](bool fused, std::vector<T>& loss, std::vector<T>& grad) {
          std::int64_t xs[2] = {N, C}, xst[2] = {C, 1}, ts[1] = {N}, tst[1] = {1};
          lb_tensor in[2] = {{"input", x.data(), dtype, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                             {"target", t.data(), LB_INT64, 1, ts, tst, {LB_DEVICE_CPU, 0}}};
          lb_call call = cpu_call("cross_entropy", reduction, in, 2);
          loss.assign(static_cast<std::size_t>(none ? N : 1), T(0));
          grad.assign(static_cast<std::size_t>(N * C), T(0));
          std::vector<T> up(static_cast<std::size_t>(none ? N : 1), T(0.5));
          lb_tensor out{"output", loss.data(), dtype, none ? 1 : 0, ts, tst, {LB_DEVICE_CPU, 0}};
          lb_tensor go{"grad_output", up.data(), dtype, none ? 1 : 0, ts, tst, {LB_DEVICE_CPU, 0}};
          lb_tensor g{"input", grad.data(), dtype, 2, xs, xst, {LB_DEVICE_CPU, 0}};
          char err[256] = {};
          if (fused) {
            ASSERT_EQ(fb(&call, &out, &go, &g, 1, err, sizeof err), LB_OK) << err;
          } else {
            ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
            ASSERT_EQ(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK) << err;
          }
        };
        std::vector<T> l2, g2, l1, g1;
        run(false, l2, g2);
        run(true, l1, g1);
        const std::string what =
            std::string(impl_name) + " " + reduction + (ignored ? " (an ignored target)" : "");
        EXPECT_EQ(std::memcmp(l2.data(), l1.data(), l2.size() * sizeof(T)), 0) << what;
        EXPECT_EQ(std::memcmp(g2.data(), g1.data(), g2.size() * sizeof(T)), 0) << what;
      }
  }
}

TEST(OptimizedCpu, CrossEntropyFusedMatchesTwoCalls) { check_ce_fused<float>(LB_FLOAT32); }
TEST(OptimizedCpu, CrossEntropyFloat64FusedMatchesTwoCalls) { check_ce_fused<double>(LB_FLOAT64); }

// float64 triplet_margin_loss whose hinge d(a, p) - d(a, n) cancels about 30 bits of the
// distances (n is p moved 2^-30 of the way towards a): the cpu forward takes the p-norms and the
// hinge in double-double, so each row's loss is within 1 ULP of MPFR's (in double only about 23
// bits would survive the cancellation), every ISA.
TEST(OptimizedCpu, TripletFloat64HingeCancellation) {
  const std::int64_t N = 16, D = 200;
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> a(static_cast<std::size_t>(N * D)), pos(a.size()), neg(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = normal(rng);
    pos[i] = normal(rng);
    neg[i] = pos[i] + (a[i] - pos[i]) * 0x1p-30;  // a little nearer to a
  }
  // Exact: margin 0, eps 1e-6 (PyTorch's defaults here, margin passed as 0).
  const double eps = 1e-6;
  std::vector<double> exact(static_cast<std::size_t>(N));
  mpfr_t s1, s2, t;
  mpfr_inits2(400, s1, s2, t, static_cast<mpfr_ptr>(nullptr));
  for (std::int64_t r = 0; r < N; ++r) {
    mpfr_set_zero(s1, 1);
    mpfr_set_zero(s2, 1);
    for (std::int64_t j = 0; j < D; ++j) {
      const auto k = static_cast<std::size_t>(r * D + j);
      for (auto [acc, other] : {std::pair{s1, pos[k]}, std::pair{s2, neg[k]}}) {
        mpfr_set_d(t, a[k], MPFR_RNDN);
        mpfr_sub_d(t, t, other, MPFR_RNDN);
        mpfr_add_d(t, t, eps, MPFR_RNDN);
        mpfr_sqr(t, t, MPFR_RNDN);
        mpfr_add(acc, acc, t, MPFR_RNDN);
      }
    }
    mpfr_sqrt(s1, s1, MPFR_RNDN);
    mpfr_sqrt(s2, s2, MPFR_RNDN);
    mpfr_sub(t, s1, s2, MPFR_RNDN);
    exact[static_cast<std::size_t>(r)] = std::max(mpfr_get_d(t, MPFR_RNDN), 0.0);
  }
  mpfr_clears(s1, s2, t, static_cast<mpfr_ptr>(nullptr));
  int positive = 0;
  for (double e : exact) positive += e > 0.0 ? 1 : 0;
  ASSERT_GT(positive, N / 4);  // the test needs rows where the hinge is active
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("triplet_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    std::int64_t xs[2] = {N, D}, xst[2] = {D, 1}, ns[1] = {N}, one[1] = {1};
    lb_tensor in[3] = {{"anchor", a.data(), LB_FLOAT64, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                       {"positive", pos.data(), LB_FLOAT64, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                       {"negative", neg.data(), LB_FLOAT64, 2, xs, xst, {LB_DEVICE_CPU, 0}}};
    lb_param margin{};
    margin.name = "margin";
    margin.type = LB_PARAM_FLOAT;
    margin.f = 0.0;
    lb_call call = cpu_call("triplet_margin_loss", "none", in, 3, &margin, 1);
    std::vector<double> got(static_cast<std::size_t>(N));
    lb_tensor out{"output", got.data(), LB_FLOAT64, 1, ns, one, {LB_DEVICE_CPU, 0}};
    char err[256] = {};
    ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
    for (std::size_t r = 0; r < got.size(); ++r) {
      const double ulp = exact[r] == 0.0 ? 0x1p-1074 : std::ldexp(1.0, std::ilogb(exact[r]) - 52);
      EXPECT_LE(std::fabs(got[r] - exact[r]), ulp)
          << impl_name << " row " << r << ": " << std::hexfloat << got[r] << " exact " << exact[r]
          << std::defaultfloat;
    }
  }
}

// cosine_embedding_loss's float32 fast gradient rows (contiguous rows of more than 64 features:
// KernelTable::cos_grad_row_f32, a scale per row) against the general path (the same rows with an
// element stride of 2, which divides per element), every ISA, whole vectors and a tail, targets
// +-1 and a margin: the gradients within one float32 ULP of each other (the two round the
// quotient differently in double), and none of them NaN.
TEST(OptimizedCpu, CosineFastGradientsMatchGeneralPath) {
  const std::int64_t N = 29, D = 203;
  std::mt19937_64 rng(43);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x1(static_cast<std::size_t>(N * D)), x2(x1.size());
  std::vector<float> s1(x1.size() * 2, 0.0f), s2(s1.size(), 0.0f);
  for (std::size_t i = 0; i < x1.size(); ++i) {
    x1[i] = normal(rng);
    x2[i] = i % 7 == 0 ? x1[i] : normal(rng);
    s1[2 * i] = x1[i];
    s2[2 * i] = x2[i];
  }
  std::vector<float> y(static_cast<std::size_t>(N));
  for (std::size_t r = 0; r < y.size(); ++r) y[r] = r % 2 == 0 ? 1.0f : -1.0f;
  const lb_device cpu{LB_DEVICE_CPU, 0};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cosine_embedding_loss", LB_FLOAT32, cpu, "sum") == 0) continue;
    std::vector<float> got[2][2];  // [fast, general][input]
    for (int general = 0; general < 2; ++general) {
      std::int64_t xs[2] = {N, D}, xst[2] = {general ? 2 * D : D, general ? 2 : 1};
      std::int64_t gst[2] = {D, 1}, ys[1] = {N}, yst[1] = {1};
      lb_tensor in[3] = {{"input1", general ? s1.data() : x1.data(), LB_FLOAT32, 2, xs, xst, cpu},
                         {"input2", general ? s2.data() : x2.data(), LB_FLOAT32, 2, xs, xst, cpu},
                         {"target", y.data(), LB_FLOAT32, 1, ys, yst, cpu}};
      lb_param margin{};
      margin.name = "margin";
      margin.type = LB_PARAM_FLOAT;
      margin.f = -0.05;
      lb_call call = cpu_call("cosine_embedding_loss", "sum", in, 3, &margin, 1);
      got[general][0].assign(x1.size(), NAN);
      got[general][1].assign(x1.size(), NAN);
      float one = 1.0f;
      lb_tensor go{"grad_output", &one, LB_FLOAT32, 0, nullptr, nullptr, cpu};
      lb_tensor gt[2] = {{"input1", got[general][0].data(), LB_FLOAT32, 2, xs, gst, cpu},
                         {"input2", got[general][1].data(), LB_FLOAT32, 2, xs, gst, cpu}};
      char err[256] = {};
      ASSERT_EQ(impl->backward(&call, &go, gt, 2, err, sizeof err), LB_OK) << err;
    }
    int bad = 0;
    std::size_t nonzero = 0;
    for (int k = 0; k < 2; ++k)
      for (std::size_t i = 0; i < x1.size() && bad < 5; ++i) {
        const float f = got[0][k][i], g = got[1][k][i];
        nonzero += f != 0.0f ? 1 : 0;
        const bool ok = !std::isnan(f) && (f == g || std::nextafter(f, g) == g);
        if (!ok) {
          ++bad;
          ADD_FAILURE() << impl_name << " input" << k + 1 << "[" << i << "]: fast " << f
                        << ", general " << g;
        }
      }
    EXPECT_GT(nonzero, x1.size());  // most rows pass the hinge: the test compares values
  }
}

// cosine_embedding_loss, target 1, float32 rows whose 1 - cos is EPS's alone: one element (or
// two, exactly parallel) of large magnitude, where x.x exceeds EPS by more than double-double's
// 2^106, so that (x.x + EPS)(y.y + EPS) - p^2 would round EPS away. 1 - cos = (EPS (x.x + y.y)
// + EPS^2) / den (den + p) here: within 1 ULP of MPFR's value, every ISA.
TEST(OptimizedCpu, CosineOneMinusKeepsEpsOnLargeRows) {
  const std::vector<std::vector<float>> r1 = {{-0x1.d85d54p+38f}, {3.0e9f},  {1.0e15f},
                                              {2.5e6f},           {7.0e20f}, {1.5e12f, -3.25e11f}};
  const std::vector<std::vector<float>> r2 = {{-0x1.493928p+28f}, {4.0e12f}, {2.0e3f},
                                              {2.5e6f},           {1.0e18f}, {6.0e12f, -1.3e12f}};
  const double eps = static_cast<float>(1e-12);
  mpfr_t p, m1, m2, t;
  mpfr_inits2(600, p, m1, m2, t, static_cast<mpfr_ptr>(nullptr));
  for (std::size_t r = 0; r < r1.size(); ++r) {
    const auto D = static_cast<std::int64_t>(r1[r].size());
    mpfr_set_zero(p, 1);
    mpfr_set_d(m1, eps, MPFR_RNDN);
    mpfr_set_d(m2, eps, MPFR_RNDN);
    for (std::size_t j = 0; j < r1[r].size(); ++j) {
      mpfr_set_d(t, r1[r][j], MPFR_RNDN);
      mpfr_mul_d(t, t, r2[r][j], MPFR_RNDN);
      mpfr_add(p, p, t, MPFR_RNDN);
      mpfr_set_d(t, r1[r][j], MPFR_RNDN);
      mpfr_sqr(t, t, MPFR_RNDN);
      mpfr_add(m1, m1, t, MPFR_RNDN);
      mpfr_set_d(t, r2[r][j], MPFR_RNDN);
      mpfr_sqr(t, t, MPFR_RNDN);
      mpfr_add(m2, m2, t, MPFR_RNDN);
    }
    mpfr_mul(t, m1, m2, MPFR_RNDN);
    mpfr_sqrt(t, t, MPFR_RNDN);
    mpfr_div(t, p, t, MPFR_RNDN);
    mpfr_ui_sub(t, 1, t, MPFR_RNDN);
    const double exact = mpfr_get_d(t, MPFR_RNDN);
    ASSERT_GT(exact, 0.0);
    ASSERT_LT(exact, 1e-17);  // below double's resolution of 1 - cos
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("cosine_embedding_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0)
        continue;
      std::vector<float> a = r1[r], b = r2[r], y = {1.0f}, got = {NAN};
      std::int64_t xs[2] = {1, D}, xst[2] = {D, 1}, ns[1] = {1}, one[1] = {1};
      lb_tensor in[3] = {{"input1", a.data(), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                         {"input2", b.data(), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                         {"target", y.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("cosine_embedding_loss", "none", in, 3);
      lb_tensor out{"output", got.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
      const double ulp = std::max(std::ldexp(1.0, std::ilogb(exact) - 23), 0x1p-149);
      EXPECT_LE(std::fabs(got[0] - exact), ulp)
          << impl_name << " row " << r << ": " << got[0] << ", exact " << exact;
    }
  }
  mpfr_clears(p, m1, m2, t, static_cast<mpfr_ptr>(nullptr));
}

// cosine_embedding_loss on nearly parallel rows (x2 = x1 scaled by a power of two, or nudged by
// one ULP in one element): 1 - cos there is about EPS / |x|^2 (EPS = float(1e-12)), so the row
// sums must carry far more than double's 53 bits. Each row's loss (target 1: 1 - cos; target -1:
// cos - margin with the margin just below cos) within 1 ULP of MPFR's, float32 (the SIMD row
// kernels) and float64 (the element-by-element path), every ISA.
TEST(OptimizedCpu, CosineNearlyParallelRows) {
  const std::int64_t N = 12, D = 300;
  std::mt19937_64 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x1(static_cast<std::size_t>(N * D)), x2(x1.size());
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t j = 0; j < D; ++j) {
      const auto k = static_cast<std::size_t>(r * D + j);
      x1[k] = normal(rng);
      x2[k] = r % 3 == 0 ? x1[k] : r % 3 == 1 ? 4.0f * x1[k] : x1[k];
    }
  for (std::int64_t r = 2; r < N; r += 3) {
    float& v = x2[static_cast<std::size_t>(r * D + r)];
    v = std::nextafter(v, HUGE_VALF);
  }
  const double eps = static_cast<float>(1e-12);
  std::vector<double> one_minus(static_cast<std::size_t>(N)), cosv(one_minus.size());
  mpfr_t p, m1, m2, t;
  mpfr_inits2(400, p, m1, m2, t, static_cast<mpfr_ptr>(nullptr));
  for (std::int64_t r = 0; r < N; ++r) {
    mpfr_set_zero(p, 1);
    mpfr_set_d(m1, eps, MPFR_RNDN);
    mpfr_set_d(m2, eps, MPFR_RNDN);
    for (std::int64_t j = 0; j < D; ++j) {
      const auto k = static_cast<std::size_t>(r * D + j);
      mpfr_set_d(t, x1[k], MPFR_RNDN);
      mpfr_mul_d(t, t, x2[k], MPFR_RNDN);
      mpfr_add(p, p, t, MPFR_RNDN);
      mpfr_set_d(t, x1[k], MPFR_RNDN);
      mpfr_sqr(t, t, MPFR_RNDN);
      mpfr_add(m1, m1, t, MPFR_RNDN);
      mpfr_set_d(t, x2[k], MPFR_RNDN);
      mpfr_sqr(t, t, MPFR_RNDN);
      mpfr_add(m2, m2, t, MPFR_RNDN);
    }
    mpfr_mul(t, m1, m2, MPFR_RNDN);
    mpfr_sqrt(t, t, MPFR_RNDN);
    mpfr_div(t, p, t, MPFR_RNDN);  // cos
    cosv[static_cast<std::size_t>(r)] = mpfr_get_d(t, MPFR_RNDN);
    mpfr_ui_sub(t, 1, t, MPFR_RNDN);
    one_minus[static_cast<std::size_t>(r)] = mpfr_get_d(t, MPFR_RNDN);
  }
  mpfr_clears(p, m1, m2, t, static_cast<mpfr_ptr>(nullptr));
  for (double v : one_minus) ASSERT_LT(v, 1e-9);  // the rows are nearly parallel
  const auto ulp_of = [](double v, int mant) {
    return v == 0.0 ? 0x1p-1074 : std::ldexp(1.0, std::ilogb(v) - mant);
  };
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cosine_embedding_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    for (const bool f64 : {false, true}) {
      for (const double y : {1.0, -1.0}) {
        // target -1: margin = cos rounded down to the dtype, so cos - margin is a few ULPs of cos.
        std::vector<double> exact(static_cast<std::size_t>(N));
        std::vector<double> margins(exact.size());
        for (std::size_t r = 0; r < exact.size(); ++r) {
          if (y == 1.0) {
            exact[r] = one_minus[r];
            continue;
          }
          margins[r] = f64 ? std::nextafter(cosv[r], -1.0)
                           : std::nextafter(static_cast<float>(cosv[r]), -1.0f);
        }
        for (std::int64_t r = 0; r < (y == 1.0 ? 1 : N); ++r) {
          // one call per row for target -1 (the margin is a parameter), all rows for target 1
          const std::int64_t rows = y == 1.0 ? N : 1;
          const std::size_t off = static_cast<std::size_t>(y == 1.0 ? 0 : r * D);
          std::vector<double> d1(x1.begin() + static_cast<std::ptrdiff_t>(off),
                                 x1.begin() + static_cast<std::ptrdiff_t>(off + rows * D));
          std::vector<double> d2(x2.begin() + static_cast<std::ptrdiff_t>(off),
                                 x2.begin() + static_cast<std::ptrdiff_t>(off + rows * D));
          std::vector<float> f1(d1.begin(), d1.end()), f2(d2.begin(), d2.end());
          std::vector<double> yd(static_cast<std::size_t>(rows), y);
          std::vector<float> yf(yd.begin(), yd.end());
          const std::int32_t dt = f64 ? LB_FLOAT64 : LB_FLOAT32;
          std::int64_t xs[2] = {rows, D}, xst[2] = {D, 1}, ns[1] = {rows}, one[1] = {1};
          lb_tensor in[3] = {{"input1",
                              f64 ? static_cast<void*>(d1.data()) : f1.data(),
                              dt,
                              2,
                              xs,
                              xst,
                              {LB_DEVICE_CPU, 0}},
                             {"input2",
                              f64 ? static_cast<void*>(d2.data()) : f2.data(),
                              dt,
                              2,
                              xs,
                              xst,
                              {LB_DEVICE_CPU, 0}},
                             {"target",
                              f64 ? static_cast<void*>(yd.data()) : yf.data(),
                              dt,
                              1,
                              ns,
                              one,
                              {LB_DEVICE_CPU, 0}}};
          lb_param margin{};
          margin.name = "margin";
          margin.type = LB_PARAM_FLOAT;
          margin.f = y == 1.0 ? 0.0 : margins[static_cast<std::size_t>(r)];
          lb_call call = cpu_call("cosine_embedding_loss", "none", in, 3, &margin, 1);
          std::vector<double> gd(static_cast<std::size_t>(rows));
          std::vector<float> gf(gd.size());
          lb_tensor out{
              "output",          f64 ? static_cast<void*>(gd.data()) : gf.data(), dt, 1, ns, one,
              {LB_DEVICE_CPU, 0}};
          char err[256] = {};
          ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
          for (std::int64_t k = 0; k < rows; ++k) {
            const auto i = static_cast<std::size_t>(y == 1.0 ? k : r);
            const double want = y == 1.0 ? exact[i] : cosv[i] - margins[i];
            const double got =
                f64 ? gd[static_cast<std::size_t>(k)] : gf[static_cast<std::size_t>(k)];
            // cos - margin: cosv is cos rounded to double, so `want` is good to 2^-53 of cos only
            // (float32: far below its ULP; float64: the reference of this branch is approximate,
            // hence the relative bound below instead of an ULP count).
            const double tol = y == 1.0 || !f64 ? ulp_of(want, f64 ? 52 : 23)
                                                : std::ldexp(std::fabs(cosv[i]), -51);
            EXPECT_LE(std::fabs(got - want), tol)
                << impl_name << (f64 ? " float64" : " float32") << " target " << y << " row " << i
                << ": " << std::hexfloat << got << " exact " << want << std::defaultfloat;
          }
        }
      }
    }
  }
}

// poisson_nll_loss's input gradient where it cancels, float32 'none': log_input (exp(x) - y) with
// y = exp(x) rounded to float32, with y = 0 and x far below 0 (exp(x) tiny: an expm1 form would
// cancel there), and y = 1 with x near 0; without log_input (1 - y / (x + eps)), x = y and y one
// ULP off x, from 2^-3 to 2^40 (eps / x far below 2^-24), and y = eps with x tiny (the result is
// about x / eps). Each within 1 ULP of MPFR's value rounded to float32, every ISA.
TEST(OptimizedCpu, PoissonGradientCancellation) {
  std::mt19937_64 rng(29);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (const bool log_input : {true, false}) {
    std::vector<float> x, y;
    for (int i = 0; i < 600; ++i) {
      const int kind = i % 3;
      if (log_input) {
        const float xv = kind == 0   ? static_cast<float>(unit(rng) * 60.0 - 40.0)
                         : kind == 1 ? static_cast<float>(-30.0 - unit(rng) * 60.0)
                                     : static_cast<float>(std::ldexp(unit(rng) - 0.5, -(i % 40)));
        x.push_back(xv);
        y.push_back(kind == 0   ? static_cast<float>(std::exp(static_cast<double>(xv)))
                    : kind == 1 ? 0.0f
                                : 1.0f);
      } else if (i % 10 == 9) {
        x.push_back(static_cast<float>(std::ldexp(1.0 + unit(rng), -(i % 100) - 30)));
        y.push_back(static_cast<float>(1e-8));
      } else {
        const float xv = static_cast<float>(std::ldexp(1.0 + unit(rng), (i % 44) - 3));
        x.push_back(xv);
        y.push_back(kind == 0 ? xv : std::nextafter(xv, kind == 1 ? HUGE_VALF : 0.0f));
      }
    }
    const double eps = static_cast<float>(1e-8);
    const auto n = static_cast<std::int64_t>(x.size());
    std::vector<float> exact(x.size());
    mpfr_t a, b;
    mpfr_inits2(300, a, b, static_cast<mpfr_ptr>(nullptr));
    for (std::size_t i = 0; i < x.size(); ++i) {
      mpfr_set_d(a, x[i], MPFR_RNDN);
      if (log_input) {
        mpfr_exp(a, a, MPFR_RNDN);
        mpfr_sub_d(a, a, y[i], MPFR_RNDN);
      } else {  // 1 - y / (x + eps)
        mpfr_add_d(a, a, eps, MPFR_RNDN);
        mpfr_set_d(b, y[i], MPFR_RNDN);
        mpfr_div(a, b, a, MPFR_RNDN);
        mpfr_ui_sub(a, 1, a, MPFR_RNDN);
      }
      exact[i] = mpfr_get_flt(a, MPFR_RNDN);
    }
    mpfr_clears(a, b, static_cast<mpfr_ptr>(nullptr));
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("poisson_nll_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
      std::int64_t shape[1] = {n}, unit_stride[1] = {1};
      lb_tensor in[2] = {
          {"input", x.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}},
          {"target", y.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}}};
      lb_param params[2] = {};
      params[0].name = "log_input";
      params[0].type = LB_PARAM_BOOL;
      params[0].b = log_input ? 1 : 0;
      params[1].name = "eps";
      params[1].type = LB_PARAM_FLOAT;
      params[1].f = 1e-8;
      lb_call call = cpu_call("poisson_nll_loss", "none", in, 2, params, 2);
      std::vector<float> up(x.size(), 1.0f), gx(x.size(), NAN);
      lb_tensor go{"grad_output", up.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}};
      lb_tensor g{"input", gx.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      ASSERT_EQ(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK) << err;
      for (std::size_t i = 0; i < x.size(); ++i)
        EXPECT_TRUE(within_one_ulp(gx[i], exact[i], false))
            << impl_name << (log_input ? " log_input" : " no log_input") << " x " << std::hexfloat
            << x[i] << " y " << y[i] << ": " << gx[i] << " exact " << exact[i] << std::defaultfloat;
    }
  }
}

// binary_cross_entropy_with_logits' target gradient with pos_weight, pw sp(-x) - sp(x): for pw
// near 1 and small x the two softplus values (near log 2) cancel down to about x. float32 'none',
// x from 2^-126 to 2^-1, pw in {1, 1 + 2^-23, 1 - 2^-24, 1.5}; each within 1 ULP of MPFR's value,
// every ISA.
TEST(OptimizedCpu, BceWithLogitsTargetGradientPosWeight) {
  std::mt19937_64 rng(31);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const float pws[4] = {1.0f, 1.0f + 0x1p-23f, 1.0f - 0x1p-24f, 1.5f};
  std::vector<float> x, y, w, pw;
  for (int i = 0; i < 512; ++i) {
    const double mag = std::ldexp(1.0 + unit(rng), -1 - (i * 7) % 126);
    x.push_back(static_cast<float>(i % 2 == 0 ? mag : -mag));
    y.push_back(static_cast<float>(unit(rng)));
  }
  const auto n = static_cast<std::int64_t>(x.size());
  for (const float p : pws) {
    std::vector<float> exact(x.size());
    mpfr_t a, b;
    mpfr_inits2(300, a, b, static_cast<mpfr_ptr>(nullptr));
    for (std::size_t i = 0; i < x.size(); ++i) {
      // p sp(-x) - sp(x), sp(t) = log1p(exp(t))
      mpfr_set_d(a, -static_cast<double>(x[i]), MPFR_RNDN);
      mpfr_exp(a, a, MPFR_RNDN);
      mpfr_log1p(a, a, MPFR_RNDN);
      mpfr_mul_d(a, a, p, MPFR_RNDN);
      mpfr_set_d(b, x[i], MPFR_RNDN);
      mpfr_exp(b, b, MPFR_RNDN);
      mpfr_log1p(b, b, MPFR_RNDN);
      mpfr_sub(a, a, b, MPFR_RNDN);
      exact[i] = mpfr_get_flt(a, MPFR_RNDN);
    }
    mpfr_clears(a, b, static_cast<mpfr_ptr>(nullptr));
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("binary_cross_entropy_with_logits", LB_FLOAT32, {LB_DEVICE_CPU, 0},
                         "none") == 0)
        continue;
      std::int64_t shape[1] = {n}, unit_stride[1] = {1}, one[1] = {1}, zero[1] = {0};
      float pw_value = p;
      lb_tensor in[3] = {
          {"input", x.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}},
          {"target", y.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}},
          {"pos_weight", &pw_value, LB_FLOAT32, 1, one, zero, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("binary_cross_entropy_with_logits", "none", in, 3);
      std::vector<float> up(x.size(), 1.0f), gx(x.size(), NAN), gy(x.size(), NAN);
      lb_tensor go{"grad_output", up.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}};
      lb_tensor g[2] = {
          {"input", gx.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}},
          {"target", gy.data(), LB_FLOAT32, 1, shape, unit_stride, {LB_DEVICE_CPU, 0}}};
      char err[256] = {};
      ASSERT_EQ(impl->backward(&call, &go, g, 2, err, sizeof err), LB_OK) << err;
      for (std::size_t i = 0; i < x.size(); ++i)
        EXPECT_TRUE(within_one_ulp(gy[i], exact[i], false))
            << impl_name << " pos_weight " << p << " x " << std::hexfloat << x[i] << ": " << gy[i]
            << " exact " << exact[i] << std::defaultfloat;
    }
  }
}

// forward and backward ('none', upstream 1) of a triplet loss over (N, D) contiguous rows of T
// (anchor, positive, negative) on one implementation: the losses and the three gradients.
template <class T>
void triplet_none_call(const lb_impl* impl, const char* loss, std::int64_t N, std::int64_t D,
                       const std::vector<T>* const (&x)[3], const lb_param* params,
                       std::int32_t num_params, std::vector<T>& got, std::vector<T> (&g)[3]) {
  constexpr std::int32_t dt = std::is_same_v<T, float> ? LB_FLOAT32 : LB_FLOAT64;
  const lb_device cpu{LB_DEVICE_CPU, 0};
  std::int64_t xs[2] = {N, D}, xst[2] = {D, 1}, ns[1] = {N}, one[1] = {1};
  const char* names[3] = {"anchor", "positive", "negative"};
  lb_tensor in[3], gt[3];
  for (int k = 0; k < 3; ++k) {
    g[k].assign(x[k]->size(), static_cast<T>(NAN));
    in[k] = {names[k], const_cast<T*>(x[k]->data()), dt, 2, xs, xst, cpu};
    gt[k] = {names[k], g[k].data(), dt, 2, xs, xst, cpu};
  }
  lb_call call = cpu_call(loss, "none", in, 3, params, num_params);
  got.assign(static_cast<std::size_t>(N), static_cast<T>(NAN));
  std::vector<T> up(got.size(), static_cast<T>(1));
  lb_tensor out{"output", got.data(), dt, 1, ns, one, cpu};
  lb_tensor go{"grad_output", up.data(), dt, 1, ns, one, cpu};
  char err[256] = {};
  ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
  ASSERT_EQ(impl->backward(&call, &go, gt, 3, err, sizeof err), LB_OK) << err;
}

// float64, p = 1.5 (the general p-norm): the negative row holds the positive row's differences
// in another order, so that the two distances are equal exactly and the exact hinge is the margin
// itself, +-2^-40 or 0, while each distance is near 1. A hinge in double would carry the
// distances' rounding (~2^-52, 2^40 ULPs of the result); the double-double distances give the
// margin to the last bit, and its sign to the gradient.
TEST(OptimizedCpu, TripletFloat64GeneralNormHingeCancellation) {
  constexpr std::int64_t D = 7;
  std::mt19937_64 rng(41);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  for (const double m : {0x1p-40, -0x1p-40, 0x1.8p-45}) {
    const std::int64_t N = 24;
    std::vector<double> a(static_cast<std::size_t>(N * D)), p(a.size()), n(a.size());
    for (std::int64_t r = 0; r < N; ++r) {
      const double A = unit(rng);
      std::vector<double> pr(static_cast<std::size_t>(D));
      for (auto& v : pr) v = unit(rng) * std::ldexp(1.0, -static_cast<int>(r % 3));
      for (std::int64_t j = 0; j < D; ++j) {
        const auto at = static_cast<std::size_t>(r * D + j);
        a[at] = A;
        p[at] = pr[static_cast<std::size_t>(j)];
        n[at] = pr[static_cast<std::size_t>((j * 3 + 1) % D)];  // a permutation (gcd(3, 7) = 1)
      }
    }
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("triplet_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0)
        continue;
      lb_param params[2] = {};
      params[0].name = "margin";
      params[0].type = LB_PARAM_FLOAT;
      params[0].f = m;
      params[1].name = "p";
      params[1].type = LB_PARAM_FLOAT;
      params[1].f = 1.5;
      std::vector<double> got, g[3];
      ASSERT_NO_FATAL_FAILURE(triplet_none_call<double>(impl, "triplet_margin_loss", N, D,
                                                        {&a, &p, &n}, params, 2, got, g));
      for (std::size_t r = 0; r < got.size(); ++r) {
        const std::string where =
            std::string(impl_name) + " margin " + std::to_string(m) + " row " + std::to_string(r);
        EXPECT_EQ(got[r], std::max(0.0, m)) << where;
        // Where the hinge does not pass, every gradient is 0.
        if (m < 0) {
          for (int k = 0; k < 3; ++k)
            for (std::int64_t j = 0; j < D; ++j) {
              EXPECT_EQ(g[k][r * D + static_cast<std::size_t>(j)], 0.0) << where;
            }
        }
      }
    }
  }
}

// float32 triplet hinges that cancel: one-feature rows with a near -2^36 and p, n small, margin
// 1/2: a - p + eps and a - n + eps are negative, so the exact hinge is 1/2 + p - n (exact in
// double here; 0 among the values), whatever eps is, while each double distance near 2^36 is
// rounded on a grid of 2^-16. The loss is max(0, 1/2 + p - n), and the gradients pass (p: +g,
// n: -g, a: 0) where the hinge is >= 0, exactly; both triplet losses, every ISA.
TEST(OptimizedCpu, TripletFloat32HingeCancellation) {
  std::mt19937_64 rng(37);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<float> a, p, n;
  std::vector<double> hinge;
  for (int i = 0; i < 60; ++i) {
    const float av = -static_cast<float>(std::ldexp(1.0 + unit(rng), 36));
    const float pv = i % 6 == 0 ? 0.0f : static_cast<float>(std::ldexp(unit(rng) - 0.5, -20));
    const int k = i % 5 - 2;  // the hinge's sign
    const float nv = i % 6 == 0 ? 0.5f : static_cast<float>(0.5 + pv + k * 0x1p-12);
    a.push_back(av);
    p.push_back(pv);
    n.push_back(nv);
    hinge.push_back((0.5 + pv) - nv);  // exact: pv is a multiple of 2^-45, nv of 2^-25
  }
  const auto N = static_cast<std::int64_t>(a.size());
  for (const char* loss : {"triplet_margin_loss", "triplet_margin_with_distance_loss"})
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports(loss, LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
      lb_param margin{};
      margin.name = "margin";
      margin.type = LB_PARAM_FLOAT;
      margin.f = 0.5;
      std::vector<float> got, g[3];
      ASSERT_NO_FATAL_FAILURE(
          triplet_none_call<float>(impl, loss, N, 1, {&a, &p, &n}, &margin, 1, got, g));
      for (std::size_t r = 0; r < a.size(); ++r) {
        const std::string where = std::string(impl_name) + " " + loss + " row " +
                                  std::to_string(r) + " (exact hinge " + std::to_string(hinge[r]) +
                                  ")";
        EXPECT_EQ(got[r], static_cast<float>(std::max(0.0, hinge[r]))) << where;
        const float pass = hinge[r] >= 0.0 ? 1.0f : 0.0f;
        EXPECT_EQ(g[0][r], 0.0f) << where << " anchor gradient";
        EXPECT_EQ(g[1][r], pass) << where << " positive gradient";
        EXPECT_EQ(g[2][r], -pass) << where << " negative gradient";
      }
    }
}

// The pairwise fast paths' forward_backward (the rows read once for both) against forward then
// backward: bitwise equal, triplet_margin_loss (p = 2) and cosine_embedding_loss (rows longer
// than the Lagrange-identity bound), each reduction, every input's gradient.
TEST(OptimizedCpu, PairwiseFusedMatchesTwoCalls) {
  const std::int64_t N = 29, D = 101;
  std::mt19937_64 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> v(3, std::vector<float>(static_cast<std::size_t>(N * D)));
  for (auto& t : v)
    for (auto& x : t) x = normal(rng);
  std::vector<float> y(static_cast<std::size_t>(N));
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = i % 3 == 0 ? -1.0f : 1.0f;
  struct Case {
    const char* loss;
    std::vector<const char*> names;
  };
  const Case cases[] = {{"triplet_margin_loss", {"anchor", "positive", "negative"}},
                        {"cosine_embedding_loss", {"input1", "input2"}}};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("triplet_margin_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    ASSERT_NE(fb, nullptr);
    for (const Case& c : cases)
      for (const char* reduction : {"none", "mean", "sum"}) {
        const bool none = std::strcmp(reduction, "none") == 0;
        const auto run = [&](bool fused) {
          std::int64_t xs[2] = {N, D}, xst[2] = {D, 1}, ns[1] = {N}, one[1] = {1};
          std::vector<lb_tensor> in;
          for (std::size_t k = 0; k < c.names.size(); ++k)
            in.push_back({c.names[k], v[k].data(), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}});
          if (c.names.size() == 2)
            in.push_back({"target", y.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}});
          lb_call call =
              cpu_call(c.loss, reduction, in.data(), static_cast<std::int32_t>(in.size()));
          std::vector<float> result(static_cast<std::size_t>(none ? N : 1));
          std::vector<float> up(result.size(), 0.75f);
          lb_tensor out{"output", result.data(), LB_FLOAT32,        none ? 1 : 0,
                        ns,       one,           {LB_DEVICE_CPU, 0}};
          lb_tensor go{"grad_output", up.data(),         LB_FLOAT32, none ? 1 : 0, ns,
                       one,           {LB_DEVICE_CPU, 0}};
          std::vector<std::vector<float>> gd(c.names.size(), std::vector<float>(v[0].size()));
          std::vector<lb_tensor> grads;
          for (std::size_t k = 0; k < c.names.size(); ++k)
            grads.push_back({c.names[k], gd[k].data(), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}});
          char err[256] = {};
          const auto n = static_cast<std::int32_t>(grads.size());
          if (fused) {
            EXPECT_EQ(fb(&call, &out, &go, grads.data(), n, err, sizeof err), LB_OK) << err;
          } else {
            EXPECT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
            EXPECT_EQ(impl->backward(&call, &go, grads.data(), n, err, sizeof err), LB_OK) << err;
          }
          for (const auto& g : gd) result.insert(result.end(), g.begin(), g.end());
          return result;
        };
        const auto two = run(false), one = run(true);
        ASSERT_EQ(two.size(), one.size());
        EXPECT_EQ(std::memcmp(two.data(), one.data(), two.size() * sizeof(float)), 0)
            << impl_name << " " << c.loss << " " << reduction;
      }
  }
}

// multilabel_soft_margin_loss's float32 fast path (contiguous samples, dense row kernels) against
// the general path (the same values with a class stride of 2), with and without a weight: losses
// and gradients within one float32 ULP of each other.
TEST(OptimizedCpu, MultilabelSoftMarginFastPathMatchesGeneralPath) {
  const std::int64_t N = 29, C = 1003;
  std::mt19937_64 rng(9);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(N * C)), y(x.size()),
      w(static_cast<std::size_t>(C));
  for (auto& v : x) v = normal(rng);
  for (auto& v : y) v = unit(rng);
  for (auto& v : w) v = unit(rng);
  std::vector<float> xs2(x.size() * 2), ys2(y.size() * 2);
  for (std::size_t i = 0; i < x.size(); ++i) {
    xs2[2 * i] = x[i];
    ys2[2 * i] = y[i];
  }
  const auto close = [](float a, float b) { return within_one_ulp(a, b, false); };
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("multilabel_soft_margin_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    for (bool weighted : {false, true}) {
      const auto run = [&](float* xd, float* yd, std::int64_t stride, std::vector<float>& loss,
                           std::vector<float>& gx, std::vector<float>& gy) {
        std::int64_t shape[2] = {N, C}, st[2] = {C * stride, stride}, cst[2] = {C, 1}, ns[1] = {N},
                     one[1] = {1}, wsh[1] = {C};
        lb_tensor in[3] = {{"input", xd, LB_FLOAT32, 2, shape, st, {LB_DEVICE_CPU, 0}},
                           {"target", yd, LB_FLOAT32, 2, shape, st, {LB_DEVICE_CPU, 0}},
                           {"weight", w.data(), LB_FLOAT32, 1, wsh, one, {LB_DEVICE_CPU, 0}}};
        lb_call call = cpu_call("multilabel_soft_margin_loss", "none", in, weighted ? 3 : 2);
        loss.assign(static_cast<std::size_t>(N), 0.0f);
        gx.assign(static_cast<std::size_t>(N * C), 0.0f);
        gy.assign(gx.size(), 0.0f);
        std::vector<float> up(static_cast<std::size_t>(N), 0.25f);
        lb_tensor out{"output", loss.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
        lb_tensor go{"grad_output", up.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
        lb_tensor g[2] = {{"input", gx.data(), LB_FLOAT32, 2, shape, cst, {LB_DEVICE_CPU, 0}},
                          {"target", gy.data(), LB_FLOAT32, 2, shape, cst, {LB_DEVICE_CPU, 0}}};
        char err[256] = {};
        ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
        ASSERT_EQ(impl->backward(&call, &go, g, 2, err, sizeof err), LB_OK) << err;
      };
      std::vector<float> l1, gx1, gy1, l2, gx2, gy2;
      run(x.data(), y.data(), 1, l1, gx1, gy1);
      run(xs2.data(), ys2.data(), 2, l2, gx2, gy2);
      for (std::int64_t i = 0; i < N; ++i)
        EXPECT_TRUE(close(l1[i], l2[i])) << impl_name << " weighted " << weighted << " row " << i
                                         << ": " << l1[i] << " vs " << l2[i];
      int bad = 0;
      for (std::size_t i = 0; i < gx1.size() && bad < 5; ++i)
        if (!close(gx1[i], gx2[i]) || !close(gy1[i], gy2[i])) {
          ++bad;
          ADD_FAILURE() << impl_name << " weighted " << weighted << " element " << i << ": "
                        << gx1[i] << " vs " << gx2[i] << ", " << gy1[i] << " vs " << gy2[i];
        }
    }
  }
}

// multilabel_soft_margin_loss's forward_backward on the fast path's rows (one pass, the row
// kernels' fused mode): bitwise the results of forward then backward, for every reduction, both
// dtypes, with and without a weight, on every implementation.
template <class E>
void check_soft_fused() {
  const std::int64_t N = 37, C = 45;  // a partial vector per row
  constexpr std::int32_t dtype = sizeof(E) == 4 ? LB_FLOAT32 : LB_FLOAT64;
  std::mt19937_64 rng(41);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<E> x(static_cast<std::size_t>(N * C)), y(x.size()), w(static_cast<std::size_t>(C));
  for (auto& v : x) v = static_cast<E>(normal(rng));
  for (auto& v : y) v = static_cast<E>(unit(rng));
  for (auto& v : w) v = static_cast<E>(unit(rng));
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512", "cpu-fast"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("multilabel_soft_margin_loss", dtype, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    ASSERT_NE(fb, nullptr);
    for (const char* reduction : {"none", "mean", "sum"})
      for (bool weighted : {false, true}) {
        const bool none = std::strcmp(reduction, "none") == 0;
        const auto run = [&](bool fused) {
          std::int64_t shape[2] = {N, C}, st[2] = {C, 1}, ns[1] = {N}, one[1] = {1}, wsh[1] = {C};
          lb_tensor in[3] = {{"input", x.data(), dtype, 2, shape, st, {LB_DEVICE_CPU, 0}},
                             {"target", y.data(), dtype, 2, shape, st, {LB_DEVICE_CPU, 0}},
                             {"weight", w.data(), dtype, 1, wsh, one, {LB_DEVICE_CPU, 0}}};
          lb_call call = cpu_call("multilabel_soft_margin_loss", reduction, in, weighted ? 3 : 2);
          std::vector<E> loss(static_cast<std::size_t>(none ? N : 1)), gx(x.size()), gy(x.size());
          std::vector<E> up(loss.size(), static_cast<E>(0.75));
          lb_tensor out{"output", loss.data(), dtype, none ? 1 : 0, ns, one, {LB_DEVICE_CPU, 0}};
          lb_tensor go{"grad_output", up.data(), dtype, none ? 1 : 0, ns, one, {LB_DEVICE_CPU, 0}};
          lb_tensor g[2] = {{"input", gx.data(), dtype, 2, shape, st, {LB_DEVICE_CPU, 0}},
                            {"target", gy.data(), dtype, 2, shape, st, {LB_DEVICE_CPU, 0}}};
          char err[256] = {};
          if (fused) {
            EXPECT_EQ(fb(&call, &out, &go, g, 2, err, sizeof err), LB_OK) << err;
          } else {
            EXPECT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
            EXPECT_EQ(impl->backward(&call, &go, g, 2, err, sizeof err), LB_OK) << err;
          }
          loss.insert(loss.end(), gx.begin(), gx.end());
          loss.insert(loss.end(), gy.begin(), gy.end());
          return loss;
        };
        const auto two = run(false), fused = run(true);
        ASSERT_EQ(two.size(), fused.size());
        EXPECT_EQ(std::memcmp(two.data(), fused.data(), two.size() * sizeof(E)), 0)
            << impl_name << " " << reduction << (weighted ? " weighted" : "");
      }
  }
}
TEST(OptimizedCpu, MultilabelSoftMarginFusedMatchesTwoCalls) {
  check_soft_fused<float>();
  check_soft_fused<double>();
}

// The pairwise float32 fast paths (row sums over SIMD lanes) against the general path (the same
// values with a row stride of 2): triplet_margin_loss (p = 2) and cosine_embedding_loss, losses
// and gradients within one float32 ULP of each other.
TEST(OptimizedCpu, PairwiseFastPathsMatchGeneralPath) {
  const std::int64_t N = 23, D = 517;
  std::mt19937_64 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto close = [](float a, float b) { return within_one_ulp(a, b, false); };
  std::vector<float> y(static_cast<std::size_t>(N));
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = i % 3 == 0 ? -1.0f : 1.0f;
  struct Loss {
    const char* id;
    std::vector<const char*> names;
  };
  for (const Loss& loss : {Loss{"triplet_margin_loss", {"anchor", "positive", "negative"}},
                           Loss{"cosine_embedding_loss", {"input1", "input2"}}}) {
    const std::size_t k = loss.names.size();
    std::vector<std::vector<float>> dense(k), strided(k);
    for (std::size_t j = 0; j < k; ++j) {
      dense[j].resize(static_cast<std::size_t>(N * D));
      strided[j].assign(dense[j].size() * 2, 0.0f);
      for (std::size_t i = 0; i < dense[j].size(); ++i)
        strided[j][2 * i] = dense[j][i] = normal(rng);
    }
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports(loss.id, LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
      const auto run = [&](std::vector<std::vector<float>>& data, std::int64_t stride,
                           std::vector<float>& out, std::vector<float>& grads) {
        std::int64_t shape[2] = {N, D}, st[2] = {D * stride, stride}, cst[2] = {D, 1}, ns[1] = {N},
                     one[1] = {1};
        std::vector<lb_tensor> in;
        for (std::size_t j = 0; j < k; ++j)
          in.push_back(
              {loss.names[j], data[j].data(), LB_FLOAT32, 2, shape, st, {LB_DEVICE_CPU, 0}});
        if (k == 2) in.push_back({"target", y.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}});
        lb_call call = cpu_call(loss.id, "none", in.data(), static_cast<std::int32_t>(in.size()));
        out.assign(static_cast<std::size_t>(N), 0.0f);
        grads.assign(static_cast<std::size_t>(N * D) * k, 0.0f);
        std::vector<float> up(static_cast<std::size_t>(N), 0.5f);
        lb_tensor o{"output", out.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
        lb_tensor go{"grad_output", up.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
        std::vector<lb_tensor> g;
        for (std::size_t j = 0; j < k; ++j)
          g.push_back({loss.names[j],
                       grads.data() + j * static_cast<std::size_t>(N * D),
                       LB_FLOAT32,
                       2,
                       shape,
                       cst,
                       {LB_DEVICE_CPU, 0}});
        char err[256] = {};
        ASSERT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << err;
        ASSERT_EQ(
            impl->backward(&call, &go, g.data(), static_cast<std::int32_t>(k), err, sizeof err),
            LB_OK)
            << err;
      };
      std::vector<float> o1, g1, o2, g2;
      run(dense, 1, o1, g1);
      run(strided, 2, o2, g2);
      for (std::int64_t i = 0; i < N; ++i)
        EXPECT_TRUE(close(o1[i], o2[i]))
            << impl_name << " " << loss.id << " row " << i << ": " << o1[i] << " vs " << o2[i];
      int bad = 0;
      for (std::size_t i = 0; i < g1.size() && bad < 5; ++i)
        if (!close(g1[i], g2[i])) {
          ++bad;
          ADD_FAILURE() << impl_name << " " << loss.id << " grad " << i << ": " << g1[i] << " vs "
                        << g2[i];
        }
    }
  }
}

// multi_margin_loss's float32 forward fast path (contiguous classes) against the general path
// (class stride 2), p = 1 and 2, with infinities and NaN in some rows: within one float32 ULP.
// A float64 poisson_nll_loss sum whose 12 terms (about 3 each) cancel to 0.17: the double-double
// terms must reach the sum with their low parts, on the dense path (8 lanes and a tail of 4 on
// AVX-512: the tail once went through a double store, 18.5 ULP) and on the gathered path (stride
// 2: the terms once were stored as doubles before the block sum). Within 1 ULP of MPFR's sum,
// every ISA.
TEST(OptimizedCpu, Float64CancellingSumKeepsLowParts) {
  const double x[12] = {0x1.81e5e92289365p+1, 0x1.d246b24109538p+0, 0x1.e2ed0e1943de8p+1,
                        0x1.8c3165311014dp+1, 0x1.90fb402fbe5fp+1,  0x1.600d16192fe7p+1,
                        0x1.3500072707259p+1, 0x1.ce16c3fda2bbdp+1, 0x1.8a6824f23c24bp+1,
                        0x1.b24077ab8492ap+1, 0x1.b75e63c49bf49p+1, 0x1.d4f5a268f57cp-4};
  const double y[12] = {0x1p+0,
                        0x1.01a484c6c8a8p-7,
                        0x1.f44f43c6d7d9bp+0,
                        0x1.08c55911246c4p+1,
                        0x1.5c081113d2dccp-1,
                        0x1.8p+2,
                        0x1.8p+2,
                        0x1.67450f79a55cep+1,
                        0x1.6676fbd0f57ecp+2,
                        0x1.37b49e3d50cb5p+2,
                        0x0p+0,
                        0x1.8605d0179e158p+1};
  const double eps = 0.25;
  mpfr_t acc, a, b;
  mpfr_inits2(400, acc, a, b, static_cast<mpfr_ptr>(nullptr));
  mpfr_set_zero(acc, 1);
  for (int i = 0; i < 12; ++i) {  // x - y log(x + eps)
    mpfr_set_d(a, x[i], MPFR_RNDN);
    mpfr_add_d(a, a, eps, MPFR_RNDN);
    mpfr_log(a, a, MPFR_RNDN);
    mpfr_mul_d(a, a, y[i], MPFR_RNDN);
    mpfr_set_d(b, x[i], MPFR_RNDN);
    mpfr_sub(b, b, a, MPFR_RNDN);
    mpfr_add(acc, acc, b, MPFR_RNDN);
  }
  const double exact = mpfr_get_d(acc, MPFR_RNDN);
  mpfr_clears(acc, a, b, static_cast<mpfr_ptr>(nullptr));
  const double ulp = std::nextafter(std::fabs(exact), HUGE_VAL) - std::fabs(exact);
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("poisson_nll_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    for (const std::int64_t step : {1, 2}) {
      std::vector<double> xs(static_cast<std::size_t>(12 * step), 0.0), ys(xs.size(), 0.0);
      for (std::size_t i = 0; i < 12; ++i) {
        xs[i * static_cast<std::size_t>(step)] = x[i];
        ys[i * static_cast<std::size_t>(step)] = y[i];
      }
      std::int64_t shape[1] = {12}, stride[1] = {step};
      lb_tensor in[2] = {{"input", xs.data(), LB_FLOAT64, 1, shape, stride, {LB_DEVICE_CPU, 0}},
                         {"target", ys.data(), LB_FLOAT64, 1, shape, stride, {LB_DEVICE_CPU, 0}}};
      lb_param params[2] = {};
      params[0].name = "log_input";
      params[0].type = LB_PARAM_BOOL;
      params[0].b = 0;
      params[1].name = "eps";
      params[1].type = LB_PARAM_FLOAT;
      params[1].f = eps;
      lb_call call = cpu_call("poisson_nll_loss", "sum", in, 2, params, 2);
      double out = NAN;
      std::int64_t oshape[1] = {1}, ostride[1] = {1};
      lb_tensor o{"output", &out, LB_FLOAT64, 0, oshape, ostride, {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      ASSERT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << impl_name << ": " << err;
      EXPECT_LE(std::fabs(out - exact), ulp)
          << impl_name << (step == 1 ? " dense" : " gathered") << std::hexfloat << ": " << out
          << " exact " << exact << std::defaultfloat;
    }
  }
}

// gaussian_nll_loss float64 with var broadcast (shape (1)): var's gradient is the sum of the 5
// elements' 0.5 (1/v - d^2/v^2), which cancel from about 0.3 to 0.007 for these inputs (a fuzz
// case); the double-double terms reach the sum unrounded (they once were rounded first: 34.6
// ULP). Within 1 ULP of MPFR, every ISA.
// lossbench eval's JSON report of implementation `impl` on the case document `doc` (with `grad`:
// the gradients too), and the output's (and every gradient's) largest ULP error in it (exact
// values from the reference).
ojson eval_json(const char* impl, const std::string& doc, bool grad = false) {
  const std::string path = test_temp("eval-case.json");
  {
    std::ofstream f(path);
    f << doc;
  }
  conformance::EvalOptions o;
  o.case_path = path;
  o.impl = impl;
  o.json = true;
  o.grad = grad;
  std::ostringstream out, err;
  EXPECT_EQ(conformance::run_eval(o, out, err), 0) << err.str();
  return ojson::parse(out.str());
}
double eval_output_ulp(const char* impl, const std::string& doc, bool grad = false) {
  const ojson j = eval_json(impl, doc, grad);
  const auto ulp = [](const ojson& u) { return u.is_string() ? HUGE_VAL : u.get<double>(); };
  double worst = ulp(j["output"]["max_ulp"]);
  if (grad) {
    EXPECT_TRUE(j.contains("grad")) << j.dump();
    if (j.contains("grad"))
      for (const auto& [name, g] : j["grad"].items()) worst = std::max(worst, ulp(g["max_ulp"]));
  }
  return worst;
}

// float64 binary_cross_entropy, reduction 'none', with a weight and an upstream gradient: every
// loss and both gradients within 0.51 ULP, every ISA (AVX-512: the float64 table's double-double
// formula, isa/f64_dd.hpp bce_forward_split/bce_backward; the others: the exact64 kernels). Inputs
// near 0, 1 and 1/2 (the logit's two forms), tiny ones, 0 and 1 themselves (logs clamped at -100),
// targets 0, 1 and between, weights of both signs. The double formula is off by up to about 2
// ULP on such values (its logs, 1 - y, the products). (Not x = 2^-1074: g (x - y) underflows
// there before the division by eps, in every path and in PyTorch's formula alike.)
TEST(OptimizedCpu, Float64BinaryCrossEntropyWithinHalfUlp) {
  std::mt19937_64 rng(20261130);
  std::uniform_real_distribution<double> u01(0.0, 1.0), uw(-2.0, 2.0);
  std::vector<double> x, y;
  for (const double v : {0.0, 1.0, 0.5, 0.25, 0.75, 1e-300, 1e-17, 1.0 - 0x1p-53, 0.5 + 0x1p-40,
                         0.5 - 0x1p-30, 0.2499999, 0.7500001})
    for (const double t : {0.0, 1.0, 0.3}) {
      x.push_back(v);
      y.push_back(t);
    }
  for (int k = 0; k < 200; ++k) {
    const int kind = k % 4;
    x.push_back(kind == 0   ? u01(rng)
                : kind == 1 ? std::ldexp(u01(rng), -static_cast<int>(rng() % 60))
                : kind == 2 ? 1.0 - std::ldexp(u01(rng), -static_cast<int>(rng() % 50))
                            : 0.5 + std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 40)));
    y.push_back(k % 5 == 0 ? 0.0 : k % 5 == 1 ? 1.0 : u01(rng));
  }
  const auto hex = [](const std::vector<double>& v) {
    std::string d;
    char buf[64];
    for (std::size_t k = 0; k < v.size(); ++k) {
      std::snprintf(buf, sizeof buf, "%s\"%a\"", k ? ", " : "", v[k]);
      d += buf;
    }
    return d;
  };
  std::vector<double> w(x.size()), g(x.size());
  for (auto& v : w) v = uw(rng);
  for (auto& v : g) v = uw(rng);
  const std::string n = std::to_string(x.size());
  const std::string doc =
      R"({"loss": "binary_cross_entropy", "reduction": "none", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": [)" +
      n + R"(], "data": [)" + hex(x) + R"(]}, "target": {"dtype": "float64", "shape": [)" + n +
      R"(], "data": [)" + hex(y) + R"(]}, "weight": {"dtype": "float64", "shape": [)" + n +
      R"(], "data": [)" + hex(w) + R"(]}}, "grad_output": {"dtype": "float64", "shape": [)" + n +
      R"(], "data": [)" + hex(g) + R"(]}})";
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("binary_cross_entropy", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    EXPECT_LE(eval_output_ulp(impl_name, doc, true), 0.51) << impl_name;
  }
}

// An elementwise case document: reduction 'none', the given params (a JSON object) and float64
// inputs, with an upstream gradient g; one-dimensional unless `shapes` gives an input's (or
// "grad_output"'s) shape as JSON.
std::string float64_case(
    const std::string& loss, const std::string& params,
    const std::vector<std::pair<std::string, std::vector<double>>>& inputs,
    const std::vector<double>& g, const std::map<std::string, std::string>& shapes = {},
    const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& int_inputs = {}) {
  const auto tensor = [&](const std::string& name, const std::vector<double>& v) {
    const auto shape = shapes.find(name);
    std::string d = R"({"dtype": "float64", "shape": )" +
                    (shape != shapes.end() ? shape->second : "[" + std::to_string(v.size()) + "]") +
                    R"(, "data": [)";
    char buf[64];
    for (std::size_t k = 0; k < v.size(); ++k) {
      std::snprintf(buf, sizeof buf, "%s\"%a\"", k ? ", " : "", v[k]);
      d += buf;
    }
    return d + "]}";
  };
  std::string doc = R"({"loss": ")" + loss + R"(", "reduction": "none", "params": )" + params +
                    R"(, "inputs": {)";
  for (std::size_t k = 0; k < inputs.size(); ++k)
    doc +=
        (k ? ", \"" : "\"") + inputs[k].first + "\": " + tensor(inputs[k].first, inputs[k].second);
  for (const auto& [name, v] : int_inputs) {
    doc += ", \"" + name + R"(": {"dtype": "int64", "shape": [)" + std::to_string(v.size()) +
           R"(], "data": [)";
    for (std::size_t k = 0; k < v.size(); ++k) doc += (k ? ", " : "") + std::to_string(v[k]);
    doc += "]}";
  }
  return doc + R"(}, "grad_output": )" + tensor("grad_output", g) + "}";
}

// float64 cross_entropy, class-index targets, reduction 'none' with an upstream gradient, on
// AVX-512 (the float64 table's double-double rows, isa/ce_dd.hpp): every gradient element within
// 0.51 ULP (each exp a double-double, z, -g / z and z - e_t too, each element rounded once; the
// general path rounds exp, a product and a division: 2.46 ULP on the corpus), losses within the
// general path's 1 ULP (log1p of the row's sum, as PyTorch). Rows of C = 203 (whole vectors and
// a tail): logits N(0, 4) (x - m inexact in double: the TwoSum's low part matters), a row from
// -700 to 0 (exps down to 2^-1010), a tie at the max with the target on the second, the target
// at the max with the rest 40-50 below (z - e_t = S tiny), a row of equal logits.
TEST(OptimizedCpu, Float64CrossEntropyWithinHalfUlp) {
  const lb_impl* impl = conformance::find_implementation("cpu-avx512");
  if (impl->supports("cross_entropy", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0)
    GTEST_SKIP() << "no AVX-512 here";
  const std::int64_t N = 24, C = 203;
  std::mt19937_64 rng(20261205);
  std::normal_distribution<double> normal(0.0, 4.0);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::vector<double> x(static_cast<std::size_t>(N * C)), g(static_cast<std::size_t>(N));
  std::vector<std::int64_t> t(static_cast<std::size_t>(N));
  for (std::int64_t r = 0; r < N; ++r) {
    double* row = x.data() + r * C;
    for (std::int64_t k = 0; k < C; ++k)
      row[k] = r == 16   ? -700.0 * u01(rng)
               : r == 18 ? -40.0 - 10.0 * u01(rng)
               : r == 19 ? 1.25
                         : normal(rng);
    t[static_cast<std::size_t>(r)] = static_cast<std::int64_t>(rng() % C);
    g[static_cast<std::size_t>(r)] = 0.5 + 1.5 * u01(rng);
  }
  x[17 * C + 11] = x[17 * C + 150] = 30.0;  // a tie at the max; the target the second
  t[17] = 150;
  x[18 * C + 77] = 0.0;  // the target alone at the max
  t[18] = 77;
  const std::string doc = float64_case("cross_entropy", "{}", {{"input", x}}, g,
                                       {{"input", "[24, 203]"}}, {{"target", t}});
  const ojson j = eval_json("cpu-avx512", doc, true);
  EXPECT_LE(j["grad"]["input"]["max_ulp"].get<double>(), 0.51) << j["grad"]["input"].dump();
  EXPECT_LE(j["output"]["max_ulp"].get<double>(), 1.0) << j["output"].dump();
}

// float64 kl_div, reduction 'none', with an upstream gradient: outputs and both gradients within
// 0.51 ULP, every ISA (AVX-512: the float64 table's double-double formula, isa/f64_dd.hpp, with
// its redone lanes; the others: the exact64 kernels). Inputs where log y - x (and log y + 1 - x)
// cancel to 2^-k of log y for k up to 12 (condition numbers up to 2^12), so that both the
// double-double formula and the lanes it redoes are taken; y near 1, tiny, subnormal and 0;
// log_target with y from -705 to 30 (exp(y) normal; -700 and below is redone) and x where
// y - x + 1 cancels. (Deeper cancellation exceeds even the exact64 kernels' 2^-75, and
// subnormal results their relative accuracy.) The double formula is off by up to thousands of
// ULPs on the cancelling ones.
TEST(OptimizedCpu, Float64KlDivWithinHalfUlp) {
  std::mt19937_64 rng(20261201);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  std::vector<double> x, y, xt, yt;
  for (int k = 0; k < 240; ++k) {
    const int kind = k % 4;
    const double yv = kind == 0   ? 4.0 * u01(rng)
                      : kind == 1 ? 1.0 + std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 40))
                      : kind == 2 ? std::ldexp(u01(rng), -static_cast<int>(rng() % 1070))
                                  : 1e6 * u01(rng);
    const double shift = std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 12));
    // Two elements in three: x = log y (+1 for the gradient's zero) less a shift of 2^-k log y.
    const double base = std::log(yv) + ((k / 4) % 3 == 1 ? 1.0 : 0.0);
    x.push_back((k / 4) % 3 == 2 ? 6.0 * ug(rng) : base - shift * std::log(yv));
    y.push_back(yv);
    yt.push_back(-705.0 + 735.0 * u01(rng));
    xt.push_back(k % 2 && yt.back() > -650.0
                     ? yt.back() + 1.0 + std::ldexp(ug(rng), -static_cast<int>(rng() % 30))
                     : 40.0 * ug(rng));
  }
  std::vector<double> g(x.size()), gt(xt.size());
  for (auto& v : g) v = ug(rng);
  for (auto& v : gt) v = ug(rng);
  const std::vector<std::string> docs = {
      float64_case("kl_div", "{}", {{"input", x}, {"target", y}}, g),
      float64_case("kl_div", R"({"log_target": true})", {{"input", xt}, {"target", yt}}, gt)};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("kl_div", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    for (std::size_t k = 0; k < docs.size(); ++k)
      EXPECT_LE(eval_output_ulp(impl_name, docs[k], true), 0.51) << impl_name << " case " << k;
  }
}

// float64 poisson_nll_loss, reduction 'none', with an upstream gradient, each of log_input and
// full: outputs and both gradients within 0.51 ULP, every ISA (as Float64KlDivWithinHalfUlp).
// A third of the elements at random, a third where the loss cancels to 2^-k of its largest term
// and a third where a gradient does (exp(x) - y, x - y + eps, log y + 1/(2y) - x or
// - log(x + eps)), k up to 12; y from 0 to 1e6 (0, and y <= 1 where full adds nothing).
TEST(OptimizedCpu, Float64PoissonNllWithinHalfUlp) {
  std::mt19937_64 rng(20261202);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  const auto shifted = [&](double v) {
    return v * (1.0 + std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 13)));
  };
  std::vector<std::string> docs;
  for (const bool log_input : {true, false})
    for (const bool full : {false, true}) {
      std::vector<double> x, y, g;
      for (int k = 0; k < 240; ++k) {
        const double yv = k % 7 == 0   ? 0.0
                          : k % 3 == 0 ? 1e6 * u01(rng)
                                       : std::ldexp(u01(rng), static_cast<int>(rng() % 8));
        double xv = log_input ? 30.0 * ug(rng) : 8.0 * u01(rng);
        const double stir =
            full && yv > 1.0 ? yv * std::log(yv) - yv + 0.5 * std::log(2 * M_PI * yv) : 0.0;
        if (k % 3 == 1) {  // the loss cancels: exp(x) + stir = y x, or x + stir = y log(x + eps)
          xv = log_input ? std::log1p(u01(rng)) : 0.5 + 4.0 * u01(rng);
          const double t =
              log_input ? (std::exp(xv) + stir) / xv : (xv + stir) / std::log(xv + 1e-8);
          y.push_back(shifted(t));
          x.push_back(xv);
        } else if (k % 3 == 2) {  // a gradient cancels
          const double yy = yv > 0.0 ? yv : 2.0;
          if (log_input)
            xv = full && k % 2 ? shifted(std::log(yy) + 0.5 / yy) : shifted(std::log(yy));
          else
            xv = full && k % 2 ? shifted(yy) : shifted(yy) - 1e-8;
          x.push_back(xv);
          y.push_back(yy);
        } else {
          x.push_back(xv);
          y.push_back(yv);
        }
        g.push_back(ug(rng));
      }
      const std::string params = std::string(R"({"log_input": )") + (log_input ? "true" : "false") +
                                 R"(, "full": )" + (full ? "true" : "false") + "}";
      docs.push_back(float64_case("poisson_nll_loss", params, {{"input", x}, {"target", y}}, g));
    }
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("poisson_nll_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    for (std::size_t k = 0; k < docs.size(); ++k)
      EXPECT_LE(eval_output_ulp(impl_name, docs[k], true), 0.51) << impl_name << " case " << k;
  }
}

// float64 binary_cross_entropy_with_logits, reduction 'none', with a weight and an upstream
// gradient, without and with pos_weight: outputs and both gradients within 0.51 ULP, every ISA
// (as Float64KlDivWithinHalfUlp). Logits from -40 to 40, |x| > 700 and infinite ones (redone:
// PyTorch's literal formula there cancels too: 128 ULP where pos_weight is given, fuzz seed
// 20261704); targets in [0, 1] and targets outside it that make the loss cancel to 2^-k of its
// larger term, targets near sigmoid(x) (or its pos_weight form) that make the input's gradient
// cancel, pos_weight near 1 + x / sp(-x) that makes the target's cancel; k up to 12.
TEST(OptimizedCpu, Float64BceWithLogitsWithinHalfUlp) {
  std::mt19937_64 rng(20261203);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  const auto shifted = [&](double v) {
    return v * (1.0 + std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 13)));
  };
  const auto sp = [](double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); };
  const auto sig = [](double t) { return 1.0 / (1.0 + std::exp(-t)); };
  std::vector<std::string> docs;
  for (const bool with_pw : {false, true}) {
    std::vector<double> x, y, w, pw, g;
    for (int k = 0; k < 240; ++k) {
      double xv = 40.0 * ug(rng) / 2.0, yv = u01(rng);
      double pv = with_pw ? 4.0 * u01(rng) : 1.0;
      switch (k % 5) {
        case 1:  // the loss cancels: (1 - y) sp(x) + p y sp(-x) = 0
          xv = 6.0 * ug(rng);
          yv = shifted(sp(xv) / (sp(xv) - pv * sp(-xv)));
          break;
        case 2:  // the input's gradient cancels: (1 - y) sig(x) = p y sig(-x)
          yv = shifted(sig(xv) / (sig(xv) + pv * sig(-xv)));
          break;
        case 3:  // the target's: (p - 1) sp(-x) = x
          if (with_pw) {
            xv = 3.0 * ug(rng);
            pv = shifted(1.0 + xv / sp(-xv));
          }
          break;
        case 4:
          xv = k % 3 == 0   ? 710.0 + 100.0 * u01(rng)
               : k % 3 == 1 ? -710.0 - 100.0 * u01(rng)
                            : (k % 2 ? HUGE_VAL : -HUGE_VAL);
          break;
        default: break;
      }
      x.push_back(xv);
      y.push_back(yv);
      pw.push_back(pv);
      w.push_back(ug(rng));
      g.push_back(ug(rng));
    }
    std::vector<std::pair<std::string, std::vector<double>>> inputs = {
        {"input", x}, {"target", y}, {"weight", w}};
    if (with_pw) inputs.push_back({"pos_weight", pw});
    docs.push_back(float64_case("binary_cross_entropy_with_logits", "{}", inputs, g));
  }
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("binary_cross_entropy_with_logits", LB_FLOAT64, {LB_DEVICE_CPU, 0},
                       "none") == 0)
      continue;
    for (std::size_t k = 0; k < docs.size(); ++k)
      EXPECT_LE(eval_output_ulp(impl_name, docs[k], true), 0.51) << impl_name << " case " << k;
  }
}

// The lanes the float64 table's double-double formulas redo (isa/f64_dd.hpp: redo_lanes, where a
// result cancels below 2^-8 of its terms) come out of formulas::DD, as the exact64 kernels' do:
// on inputs where every element cancels to 2^-9 .. 2^-40 of its terms, cpu-avx512's values equal
// cpu-avx2's (isa/exact64_fma.cpp, the same DD code with FMA products) bit for bit. kl_div's
// log y - x (the loss) and log y + 1 - x (the target's gradient), poisson_nll_loss's exp(x) - y x
// and exp(x) - y, binary_cross_entropy_with_logits's (1 - y) sp(x) + y sp(-x) with y outside
// [0, 1] and (1 - y) sigmoid(x) - y sigmoid(-x) near y = sigmoid(x).
TEST(OptimizedCpu, Float64RedoneLanesMatchExact64) {
  if (!machine_has(Isa::avx512)) GTEST_SKIP() << "no AVX-512 here";
  std::mt19937_64 rng(20261204);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  const auto shifted = [&](double v) {
    return v * (1.0 + std::ldexp(u01(rng) + 0.5, -9 - static_cast<int>(rng() % 32)));
  };
  const auto sp = [](double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); };
  struct Doc {
    std::string doc;
    bool grads;  // compare the gradients (else the output)
  };
  std::vector<Doc> docs;
  for (int kind = 0; kind < 6; ++kind) {
    std::vector<double> x, y, g;
    for (int k = 0; k < 64; ++k) {
      double xv = 0.0, yv = 0.0;
      switch (kind) {
        case 0:  // kl_div: x = log y (1 - 2^-k)
        case 1:  // x = (log y + 1) (1 - 2^-k)
          yv = std::ldexp(0.5 + u01(rng), static_cast<int>(rng() % 40) - 20);
          xv = shifted(std::log(yv) + (kind == 1 ? 1.0 : 0.0));
          break;
        case 2:  // poisson_nll_loss: y x = exp(x) (1 + 2^-k)
          xv = 0.1 + 3.0 * u01(rng);
          yv = shifted(std::exp(xv) / xv);
          break;
        case 3:  // y = exp(x) (1 + 2^-k)
          xv = 20.0 * ug(rng);
          yv = shifted(std::exp(xv));
          break;
        case 4:  // binary_cross_entropy_with_logits: y = sp(x) / (sp(x) - sp(-x)) (1 + 2^-k)
          xv = 6.0 * ug(rng);
          if (std::fabs(xv) < 0.1) xv = 0.5;
          yv = shifted(sp(xv) / (sp(xv) - sp(-xv)));
          break;
        default:  // y = sigmoid(x) (1 + 2^-k)
          xv = 6.0 * ug(rng);
          yv = shifted(1.0 / (1.0 + std::exp(-xv)));
          break;
      }
      x.push_back(xv);
      y.push_back(yv);
      g.push_back(ug(rng));
    }
    const char* loss = kind < 2   ? "kl_div"
                       : kind < 4 ? "poisson_nll_loss"
                                  : "binary_cross_entropy_with_logits";
    docs.push_back({float64_case(loss, "{}", {{"input", x}, {"target", y}}, g), kind % 2 == 1});
  }
  for (std::size_t k = 0; k < docs.size(); ++k) {
    const ojson a = eval_json("cpu-avx512", docs[k].doc, docs[k].grads);
    const ojson b = eval_json("cpu-avx2", docs[k].doc, docs[k].grads);
    if (docs[k].grads) {
      ASSERT_TRUE(a.contains("grad") && b.contains("grad")) << "case " << k;
      for (const auto& [name, t] : a["grad"].items())
        EXPECT_EQ(t["got"], b["grad"][name]["got"]) << "case " << k << " grad " << name;
    } else {
      EXPECT_EQ(a["output"]["got"], b["output"]["got"]) << "case " << k;
    }
  }
}

// float64 gaussian_nll_loss, reduction 'none', with an upstream gradient, without and with full:
// outputs and the three gradients within 0.51 ULP, every ISA (AVX-512: the float64 table's
// double-double formula, isa/f64_dd.hpp, with its redone lanes; the others: the exact64
// kernels). A quarter of the elements at random, a quarter where log v and d^2 / v (and the
// full constant) cancel to 2^-k of log v, a quarter where var's gradient (v - d^2) cancels to
// 2^-k of v, k up to 12, and a quarter of subnormal x, y and var (var clamped to eps, 1e-6 and
// 1e-300: (g / v) d then rounds its subnormal product once, where g d / v amplified the
// product's rounding 1e6 times). A result below 2^-969 may be 1 ULP off: its double-double
// value's low part is in the subnormal range (rounded there, then hi + lo), on every path; and
// cpu-scalar's, where an input is subnormal, are held to the float64 budget of 2 ULP only
// (Dekker's product, without an fma, splits a subnormal operand inexactly: up to 1.04 ULP here).
TEST(OptimizedCpu, Float64GaussianNllWithinHalfUlp) {
  std::mt19937_64 rng(20261206);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  const auto shifted = [&](double v) {
    return v * (1.0 + std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 13)));
  };
  const double c = std::log(2.0 * M_PI);  // full adds c / 2
  std::vector<std::string> docs;
  for (const bool full : {false, true})
    for (const double eps : {1e-6, 1e-300}) {
      std::vector<double> x, y, v, g;
      for (int k = 0; k < 240; ++k) {
        double xv = 4.0 * ug(rng), yv = 4.0 * ug(rng), vv = 0.01 + 4.0 * u01(rng);
        switch (k % 4) {
          case 1: {  // the loss cancels: d^2 / v = -(log v + full c)
            vv = (full ? 0.15 : 0.9) * u01(rng) + 1e-3;
            const double d2 = -vv * (std::log(vv) + (full ? c : 0.0));
            xv = yv + std::sqrt(shifted(d2));
            break;
          }
          case 2:  // var's gradient cancels: d^2 = v
            xv = yv + std::sqrt(shifted(vv));
            break;
          case 3:  // subnormal values
            xv = std::ldexp(ug(rng), -1030 - static_cast<int>(rng() % 40));
            yv = std::ldexp(ug(rng), -1030 - static_cast<int>(rng() % 40));
            vv = std::ldexp(u01(rng), -1030 - static_cast<int>(rng() % 40));
            break;
          default: break;
        }
        x.push_back(xv);
        y.push_back(yv);
        v.push_back(vv);
        g.push_back(ug(rng));
      }
      char params[96];
      std::snprintf(params, sizeof params, R"({"full": %s, "eps": %.17g})", full ? "true" : "false",
                    eps);
      docs.push_back(
          float64_case("gaussian_nll_loss", params, {{"input", x}, {"target", y}, {"var", v}}, g));
    }
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("gaussian_nll_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    for (std::size_t k = 0; k < docs.size(); ++k) {
      const ojson j = eval_json(impl_name, docs[k], true);
      std::vector<const ojson*> scores = {&j["output"]};
      for (const auto& [name, gj] : j["grad"].items()) scores.push_back(&gj);
      int bad = 0;
      for (const ojson* sc : scores)
        for (std::size_t e = 0; e < (*sc)["ulp"].size() && bad < 5; ++e) {
          const ojson& u = (*sc)["ulp"][e];
          const double ulp = u.is_string() ? HUGE_VAL : u.get<double>();
          const double want = std::strtod((*sc)["expected"][e].get<std::string>().c_str(), nullptr);
          const bool scalar_subnormal_input =
              std::strcmp(impl_name, "cpu-scalar") == 0 && e % 4 == 3;
          const double bound =
              scalar_subnormal_input ? 2.0 : (std::fabs(want) < 0x1p-969 ? 1.0 : 0.51);
          if (ulp <= bound) continue;
          ++bad;
          ADD_FAILURE() << impl_name << " case " << k << " element " << e << ": " << ulp
                        << " ULP, got " << (*sc)["got"][e] << ", exact " << want;
        }
    }
  }
}

// float64 multilabel_soft_margin_loss, reduction 'none', rows of 32 classes (g / C exact: the
// row kernels take the upstream g / C as one double, which for other C is rounded, as in the
// scalar path and PyTorch's mean), with an upstream gradient, on AVX-512 (the float64 table's
// double-double rows, isa/f64_dd.hpp mlsm_row_forward_split / mlsm_row_backward): each row's loss
// and every gradient element within 0.51 ULP. Logits from -40 to 40, a quarter with targets
// outside [0, 1] where an element's loss cancels to 2^-k of its terms (y = sp(x) / x), a quarter
// with y near sigmoid(x) where the input's gradient does, k up to 12, and logits beyond 680
// (exp(-|x|) subnormal: redone). No weight: a weight's gradient, which eval asks for, takes the
// scalar path. The scalar double path (the other ISAs) is 1.3-4.6 ULP off on the corpus there,
// and is not held to this.
TEST(OptimizedCpu, Float64MultilabelSoftMarginWithinHalfUlp) {
  const lb_impl* impl = conformance::find_implementation("cpu-avx512");
  if (impl->supports("multilabel_soft_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0)
    GTEST_SKIP() << "no AVX-512 here";
  std::mt19937_64 rng(20261207);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  const auto shifted = [&](double v) {
    return v * (1.0 + std::ldexp(u01(rng) - 0.5, -static_cast<int>(rng() % 13)));
  };
  const auto sp = [](double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); };
  constexpr int kN = 40, kC = 32;
  std::vector<double> x, y, g;
  for (int n = 0; n < kN; ++n) {
    g.push_back(ug(rng));
    for (int c = 0; c < kC; ++c) {
      const int kind = (n * kC + c) % 4;
      double xv = 20.0 * ug(rng), yv = u01(rng);
      if (kind == 1) {  // the element's loss cancels: (1 - y) sp(x) + y sp(-x) = 0
        xv = 6.0 * ug(rng);
        yv = shifted(sp(xv) / xv);
      } else if (kind == 2) {  // the input's gradient cancels: y = sigmoid(x)
        xv = 6.0 * ug(rng);
        yv = shifted(1.0 / (1.0 + std::exp(-xv)));
      } else if (kind == 3 && c % 8 == 3) {
        xv = (c % 16 == 3 ? 1.0 : -1.0) * (681.0 + 30.0 * u01(rng));
      }
      x.push_back(xv);
      y.push_back(yv);
    }
  }
  const std::string doc =
      float64_case("multilabel_soft_margin_loss", "{}", {{"input", x}, {"target", y}}, g,
                   {{"input", "[40, 32]"}, {"target", "[40, 32]"}, {"grad_output", "[40]"}});
  EXPECT_LE(eval_output_ulp("cpu-avx512", doc, true), 0.51);
}

// A broadcast input's float64 gradient is the sum of the elements' terms; the float64 table's
// double-double formulas give each term's low part too (backward_split, isa/f64_dd.hpp), so the
// sum is not of rounded terms: kl_div's and poisson_nll_loss's target (4 values) broadcast over
// 256 rows of input, and gaussian_nll_loss's var (one per row of 4), with an upstream gradient,
// the terms of both signs (the binary cross-entropies take no broadcast target). Every gradient
// within 0.51 ULP, every ISA (the others: the exact64 kernels' own split). Summed from rounded
// terms, kl_div's and poisson_nll_loss's were 1.22 and 0.53 ULP off here.
TEST(OptimizedCpu, Float64BroadcastGradientsSumLowParts) {
  std::mt19937_64 rng(20261205);
  std::uniform_real_distribution<double> u01(0.0, 1.0), ug(-2.0, 2.0);
  constexpr int kN = 256, kC = 4;
  const std::map<std::string, std::string> shapes = {
      {"input", "[256, 4]"}, {"target", "[4]"}, {"grad_output", "[256, 4]"}};
  std::vector<std::string> docs;
  for (int kind = 0; kind < 2; ++kind) {
    std::vector<double> x, y(kC), g;
    for (auto& v : y) v = kind == 1 ? 4.0 * u01(rng) : 0.05 + 0.9 * u01(rng);
    for (int n = 0; n < kN; ++n)
      for (int c = 0; c < kC; ++c) {
        const double yc = y[static_cast<std::size_t>(c)];
        x.push_back(kind == 0 ? std::log(yc) + 1.0 + 0.5 * ug(rng)  // kl_div: log y + 1 - x
                              : 2.0 * ug(rng));
        g.push_back(ug(rng));
      }
    docs.push_back(float64_case(kind == 0 ? "kl_div" : "poisson_nll_loss", "{}",
                                {{"input", x}, {"target", y}}, g, shapes));
  }
  {
    // gaussian_nll_loss's var (256, 1) broadcast over each row's 4 elements, d^2 on both sides
    // of v (the terms (v - d^2) / v^2 of both signs).
    std::vector<double> x, y, v, g;
    for (int n = 0; n < kN; ++n) {
      v.push_back(0.5 + u01(rng));
      for (int c = 0; c < kC; ++c) {
        y.push_back(ug(rng));
        x.push_back(y.back() + std::sqrt(v.back()) * (1.0 + 0.3 * ug(rng)));
        g.push_back(ug(rng));
      }
    }
    docs.push_back(float64_case("gaussian_nll_loss", "{}",
                                {{"input", x}, {"target", y}, {"var", v}}, g,
                                {{"input", "[256, 4]"},
                                 {"target", "[256, 4]"},
                                 {"var", "[256, 1]"},
                                 {"grad_output", "[256, 4]"}}));
  }
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("kl_div", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    for (std::size_t k = 0; k < docs.size(); ++k)
      EXPECT_LE(eval_output_ulp(impl_name, docs[k], true), 0.51) << impl_name << " case " << k;
  }
}

// float64 outputs of condition number below 2^10 that lossbench fuzz (seed 20261301) found
// several ULPs off, every ISA within 1 ULP:
// - cosine_embedding_loss of one-element rows (and exactly parallel two-element ones), whose
//   1 - cos is EPS's contribution alone: a b - p^2 must come out exactly 0, which the
//   double-double product a * b - p * p missed by 2^-104 a b (193 ULP);
// - triplet_margin_with_distance_loss, "cosine" distance with swap, reduction 'none' (one row
//   of the fuzz case), where the hinge cancels a few bits: it was taken from the double
//   distances (5.1 ULP), now from their double-double values;
// - binary_cross_entropy_with_logits of one element (condition number 30), 2.4 ULP from the
//   double formula's roundings (softplus, products, sum, weight), now in double-double;
// - margin_ranking_loss of one element whose hinge -y (a - b) + margin cancels (condition number
//   714, seed 20261305), 32 ULP from the rounded products' sum, now summed exactly.
TEST(OptimizedCpu, Float64FuzzCasesWithinOneUlp) {
  const auto cosine = [](const char* x1, const char* x2, int d) {
    return std::string(R"({"loss": "cosine_embedding_loss", "reduction": "none", "params": {},
      "inputs": {"input1": {"dtype": "float64", "shape": [1, )") +
           std::to_string(d) + R"(], "data": [)" + x1 +
           R"(]}, "input2": {"dtype": "float64", "shape": [1, )" + std::to_string(d) +
           R"(], "data": [)" + x2 +
           R"(]}, "target": {"dtype": "float64", "shape": [1], "data": ["0x1p+0"]}}})";
  };
  const std::vector<std::string> cases = {
      cosine(R"("0x1.705e0ba0cb768p+10")", R"("0x1.98fdd1b6d541cp+52")", 1), cosine(R"("0x1.8p+1")", R"("0x1.6345785d8ap+40")", 1), cosine(R"("0x1.8p+1", "0x1p+2")", R"("0x1.8p+51", "0x1p+52")", 2), R"({"loss": "margin_ranking_loss", "reduction": "none", "params": {"margin": 0.5}, "inputs": {"input1": {"dtype": "float64", "shape": [1], "data": ["-0x1.0139f8b9ed37p-1"]}, "input2": {"dtype": "float64", "shape": [1], "data": ["-0x1.f27dd0a6bdd9p-9"]}, "target": {"dtype": "float64", "shape": [1], "data": ["-0x1p+0"]}}})", R"({"loss": "binary_cross_entropy_with_logits", "reduction": "none", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": [1], "data": ["-0x1.d56c04e1f40b4p-3"]}, "target": {"dtype": "float64", "shape": [1], "data": ["0x1.5f68c69193d9p-4"]}, "weight": {"dtype": "float64", "shape": [1], "data": ["0x1.a74967f29d97cp+0"]}}})", R"({"loss": "triplet_margin_with_distance_loss", "reduction": "none", "params": {"distance_function": "cosine", "swap": true}, "inputs": {"anchor": {"dtype": "float64", "shape": [1, 10], "data": ["0x1.22b3016a99ff8p+0", "-0x1.826817631c0b8p+0", "0x1.a5f876271184p-3", "0x1.eafaf24a64c2p+0", "0x1.b139607cfd74p-2", "-0x1.42f89c35a407cp+0", "-0x1.b0503c8ccd6b8p-1", "0x1.73c6cb60c15fp-2", "0x1.c1021b80ebcc8p+0", "-0x1.79d0d6b2d1c3p-2"]}, "positive": {"dtype": "float64", "shape": [1, 10], "data": ["-0x1.131e9d1a4d2d4p+0", "-0x1.a81a61e8b087p-1", "0x1.ab73ffb893cep-2", "-0x1.101f32c1fa96p-1", "0x1.97342c10da534p+0", "-0x1.003988041e4e8p+0", "0x1.a9dd2cf40251p-2", "0x1.c1ab0c15420ep-1", "0x1.0e6e706d10fb8p+1", "-0x1.b6143a4498cap-2"]}, "negative": {"dtype": "float64", "shape": [1, 10], "data": ["-0x1.0888207cf254p-3", "0x1.ea3fd09a777ap-2", "-0x1.743fc378bf04p-1", "-0x1.009b7038ab554p+0", "-0x1.77aaa37626d4cp+0", "-0x1.84554da3c370cp+0", "0x1.c81ed8f1a86p-4", "-0x1.67dd95df3b3a8p+0", "-0x1.d9f169867be48p-1", "0x1.524fca2ed33ep-3"]}}})"};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cosine_embedding_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    for (std::size_t k = 0; k < cases.size(); ++k)
      EXPECT_LE(eval_output_ulp(impl_name, cases[k]), 1.0) << impl_name << " case " << k;
  }
}

// margin_ranking_loss float32 and bfloat16 whose hinge y b - y a + margin cancels past double's
// reach: inputs 2^60 (float32) and 2^133 (bfloat16) apart, so that the plain sum in double loses
// the result whole (sign included). The fuzz case (seed 20261201, case 45765): bfloat16 margin
// 0.5, a = -0.5, b = 2^-133, y = -1, exact hinge -2^-133: the plain sum gave 0, whose clamp
// passed the gradient (+-1 where the exact one is 0); with b = -2^-133 the loss is 2^-133 (plain:
// 0). Each element among ordinary ones (16, a whole vector on every ISA, and tails of 3):
// outputs and gradients within 1 ULP (rounded once from the exact sum), every implementation.
TEST(OptimizedCpu, MarginRankingHingeCancelsExactly) {
  struct Row {
    const char *a, *b, *y;
  };
  const auto doc = [](const char* dtype, const char* margin, const std::vector<Row>& rows) {
    std::string in1, in2, tg;
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::string sep = k ? ", " : "";
      in1 += sep + "\"" + rows[k].a + "\"";
      in2 += sep + "\"" + rows[k].b + "\"";
      tg += sep + "\"" + rows[k].y + "\"";
    }
    const std::string head = std::string(R"({"dtype": ")") + dtype + R"(", "shape": [)" +
                             std::to_string(rows.size()) + R"(], "data": [)";
    return std::string(
               R"({"loss": "margin_ranking_loss", "reduction": "none", "params": {"margin": )") +
           margin + R"(}, "inputs": {"input1": )" + head + in1 + R"(]}, "input2": )" + head + in2 +
           R"(]}, "target": )" + head + tg + "]}}}";
  };
  const std::vector<Row> ordinary = {{"0x1.8p-1", "-0x1p-2", "0x1p+0"},
                                     {"-0x1.4p+0", "0x1p-1", "-0x1p+0"},
                                     {"0x1p-3", "0x1.cp-2", "0x1p+0"}};
  const auto rows = [&](std::vector<Row> special, std::size_t n) {
    std::vector<Row> r;
    for (std::size_t k = 0; k < n; ++k)
      r.push_back(k % 4 == 1 ? special[(k / 4) % special.size()] : ordinary[k % ordinary.size()]);
    return r;
  };
  const std::vector<Row> bf16 = {{"-0x1p-1", "0x1p-133", "-0x1p+0"},
                                 {"-0x1p-1", "-0x1p-133", "-0x1p+0"}};
  const std::vector<Row> f32 = {{"0x1p+0", "0x1p-60", "0x1p+0"},     // hinge 2^-60
                                {"0x1p+0", "-0x1p-60", "0x1p+0"},    // hinge -2^-60
                                {"-0x1p-149", "0x1p+0", "-0x1p+0"},  // hinge -2^-149
                                {"0x1p-149", "0x1p+0", "-0x1p+0"}};  // hinge 2^-149
  const std::vector<std::pair<std::string, std::int32_t>> docs = {
      {doc("bfloat16", "0.5", rows(bf16, 16)), LB_BFLOAT16},
      {doc("bfloat16", "0.5", rows(bf16, 3)), LB_BFLOAT16},
      {doc("float32", "1.0", rows(f32, 16)), LB_FLOAT32},
      {doc("float32", "1.0", rows(f32, 3)), LB_FLOAT32}};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512", "cpu-fast"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    for (std::size_t k = 0; k < docs.size(); ++k) {
      if (impl->supports("margin_ranking_loss", docs[k].second, {LB_DEVICE_CPU, 0}, "none") == 0)
        continue;
      EXPECT_LE(eval_output_ulp(impl_name, docs[k].first, true), 1.0) << impl_name << " case " << k;
    }
  }
}

// triplet_margin_with_distance_loss, "cosine" distance, float32: a row (lossbench fuzz seed
// 20261201, case 17094) whose anchor element 1.8e9 dominates the anchor, while 3.5e9 and 2^22.8
// dominate the positive and the negative in the same column: the anchor's two pairs' gradients
// agree to 2^-37 there, and their double values (added in double) left 21.3 ULP. Each pair's
// gradient is now a double-double added in double-double, every dtype: within 1 ULP, every
// implementation (the general path).
TEST(OptimizedCpu, TripletCosineFloat32AnchorTermsCancel) {
  const std::string doc =
      R"({"loss": "triplet_margin_with_distance_loss", "reduction": "none", "params": {"distance_function": "cosine", "margin": 0.25}, "inputs": {"anchor": {"dtype": "float32", "shape": [1, 8], "data": ["-0x1.acc216p-7", "-0x1.712886p+5", "0x1.c1a426p+32", "0x1.61266cp+1", "-0x1.071cdcp+15", "0x1.396cd4p-25", "-0x1.3e006p+10", "-0x1.9af574p-13"]}, "positive": {"dtype": "float32", "shape": [1, 8], "data": ["-0x1.972bc2p-35", "-0x1.c8adbcp-32", "-0x1.29e9aap+10", "-0x1.bb0f5ep+15", "0x1.0cbc88p+10", "0x1.1082fp-35", "0x1.a64096p+31", "-0x1.b8390ep-7"]}, "negative": {"dtype": "float32", "shape": [1, 8], "data": ["0x1.6c32f4p-24", "0x1.22a724p-24", "-0x1.2dc7ap-3", "-0x1.8f1e1p-24", "-0x1.12ca92p+1", "0x1.d365aap-38", "0x1.b4bb42p+22", "0x1.44b516p-9"]}}})";
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512", "cpu-fast"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("triplet_margin_with_distance_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0},
                       "none") == 0)
      continue;
    EXPECT_LE(eval_output_ulp(impl_name, doc, true), 1.0) << impl_name;
  }
}

// cross_entropy float64 gradients on the general path (ce_grad_row_dd in
// drivers/classification.cpp), every ISA. Two rows of fuzz cases (seed 20261203) where
// dl_c - p_c sum_k dl_k cancels: case 369, probability targets (a target near its class's
// probability: the double formula was 453 ULP off), and case 19, label smoothing 0.25 with -inf
// logits (35.3 ULP); both now come from double-double values rounded once (0.45 ULP). And case
// 1536, class indices with a weight over (N, C, d1, d2), no cancellation: the double formula's
// four roundings gave 2.16 ULP (budget 2); q = dl_t / z in double-double leaves the exp's own
// rounding and the last one (0.92 ULP; bound 1.5 for that one rounding more than half an ULP).
TEST(OptimizedCpu, Float64CrossEntropyGeneralPathGradients) {
  const std::string prob =
      R"({"loss": "cross_entropy", "reduction": "sum", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": [1, 16], "data": ["-0x1.6228f82d8f028p+1", "-0x1.7fa3f48112a8p-2", "-0x1.a5f3b8440b7p-4", "-0x1.5c13516135e1cp+1", "-0x1.e63454e76b88p-1", "-0x1.88e4d0065d5dp-1", "0x1.c7b7128ab66dp-1", "0x1.01f03bebc556p-2", "0x1.5fab72b93126p+0", "-0x1.c9d2ee6812b18p+0", "-0x1.28becbb87c08p-1", "-0x1.79ebb3f16b62p-2", "-0x1.587b441e38b0cp+1", "0x1.97cda3a638afp-1", "0x1.509ac7f342198p+2", "0x1.8aaa81f677c28p+0"]}, "target": {"dtype": "float64", "shape": [1, 16], "data": ["0x1.cfb2b9d378391p-9", "0x1.a9d64d277dc64p-5", "0x1.3e589d4b5857dp-4", "0x1.2afa62925ac1dp-3", "0x1.0dd6722364a0fp-3", "0x1.4a5bad242125bp-5", "0x1.a1ff609bc38dap-5", "0x1.9013325a44f1ap-8", "0x1.1638c6314aacap-4", "0x1.7a650b88d3b1ap-6", "0x1.0d56bff35ea97p-3", "0x1.678ef3203d982p-8", "0x1.509cb923939d8p-7", "0x1.3df443e94d682p-5", "0x1.b336657f0502dp-3", "0x1.fed1a774e88d6p-10"]}}})";
  const std::string smooth =
      R"({"loss": "cross_entropy", "reduction": "sum", "params": {"label_smoothing": 0.25}, "inputs": {"input": {"dtype": "float64", "shape": [1, 10], "data": ["0x1.277bd7470cde8p+0", "0x1.2c27855184ap-1", "-inf", "0x1.0c2c324614be4p+2", "0x1.d0c97012a5eep+0", "0x1.f576f21b7eddp-1", "-0x1.9p+7", "0x1.7a9de04064c5cp+1", "-0x1.388p+13", "0x1.0f7c29f59183p+1"]}, "target": {"dtype": "int64", "shape": [1], "data": [0]}}})";
  const std::string plain =
      R"({"loss": "cross_entropy", "reduction": "mean", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": [2, 3, 2, 2], "data": ["-0x1.4deee3dd0eb6p+1", "-0x1.2e55683fd65e7p+2", "-0x1.863fe2fffb36p-1", "-0x1.049b2fb598328p+1", "0x1.02a98f7f2eae8p+1", "0x1.f1921ee55028p-1", "0x1.f40810ba8d2p-4", "-0x1.c091c7d8b17b4p+1", "0x1.4341e56a6eecp-1", "-0x1.b12cc27fa842p-2", "0x1.0befe52b3774p-1", "-0x1.fcea1e627a164p+1", "0x1.c9c14b96bb6fp+0", "0x1.fa205a00c271p+0", "0x1.98ce3fdeb7afcp+1", "-0x1.daeb12395084p-2", "-0x1.e4e39f5b8e99p+0", "-0x1.692a8f5d8e57p+1", "-0x1.a6a54504becp-3", "-0x1.7c8c5b03b1eep-2", "-0x1.7270ea140b0fcp+1", "0x1.bfc39b8910f68p+0", "-0x1.96caadfc683ap-2", "0x1.572ebf4d3faap+0"]}, "target": {"dtype": "int64", "shape": [2, 2, 2], "data": [1, 1, 2, 1, 2, 1, 2, 2]}, "weight": {"dtype": "float64", "shape": [3], "data": ["0x1.a647e674e154ap+0", "0x1.a6470fd4627d2p+0", "0x1.ed0afff7742e9p+0"]}}, "grad_output": {"dtype": "float64", "shape": [], "data": ["0x1.2c2f11d79ccf2p+0"]}})";
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cross_entropy", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    for (const auto& [doc, bound] : {std::pair{&prob, 0.51}, {&smooth, 0.51}, {&plain, 1.5}}) {
      const ojson j = eval_json(impl_name, *doc, true);
      ASSERT_TRUE(j.contains("grad")) << j.dump();
      EXPECT_LE(j["grad"]["input"]["max_ulp"].get<double>(), bound) << impl_name << " " << *doc;
    }
  }
  // Fuzz case 2538: probability targets with label smoothing and a weight over (N, C, d1, d2),
  // reduction 'none': the target's and the weight's gradients -s w_c log p_c and -s t'_c log p_c
  // (summed over positions) from DD log p_c, rounded once (the double chain: 0.96 and 2.52 ULP).
  const std::string prob_grads =
      R"({"loss": "cross_entropy", "reduction": "none", "params": {"label_smoothing": 0.2}, "inputs": {"input": {"dtype": "float64", "shape": [2, 3, 2, 2], "data": ["-0x1.db471c7f60fep-1", "-0x1.67d0db413476p-1", "-0x1.080a91df0a31p-1", "0x1.4d2e1ad3b5868p+0", "0x1.8c9ff7b52fd8p-2", "0x1.4d08cc8f4038cp+1", "-0x1.a49706a6a07p-1", "-0x1.785bd6ffe1a9p-1", "-0x1.fb815253109ep-1", "-0x1.54878ed63878p+1", "0x1.557e836e8717cp+1", "0x1.2c4896bf7accp+0", "0x1.4624db9e9f374p+1", "-0x1.25d38abf0f7f6p+2", "-0x1.e5d9d57cf50fcp+1", "-0x1.8cb39b1c1fbcp-1", "0x1.122893084b2ap+1", "-0x1.0acec5ab5f8f8p+1", "-0x1.149f470931e5p+0", "0x1.58b1a6f0250ap-2", "-0x1.1e1b22262a9ep-1", "-0x1.f791a246fa62p-1", "-0x1.7faabd1b2432p+0", "-0x1.e8db80737d87p+0"]}, "target": {"dtype": "float64", "shape": [2, 3, 2, 2], "data": ["0x1.7789eea377bcdp-4", "0x1.b32f863fa4e72p-3", "0x1.71008b1597a4bp-4", "0x1.a984c9906a4bcp-4", "0x1.84c52e0aa55fcp-1", "0x1.7dc5416a3d843p-1", "0x1.608550b27ec13p-2", "0x1.d931dd6939c17p-2", "0x1.31265083aea2ap-3", "0x1.56edd05d9420dp-5", "0x1.219d46440daadp-1", "0x1.bc6cf032abab9p-2", "0x1.cde8bc110244ap-5", "0x1.7e6e3c5edbdc5p-8", "0x1.c399b8df7e031p-1", "0x1.07c4db1997fe3p-4", "0x1.d152fc7487c7dp-3", "0x1.9f694b5b4c0e4p-1", "0x1.f891c94d49dd8p-8", "0x1.52c7317abfa11p-2", "0x1.6eccb521cde9cp-1", "0x1.766760afd8e83p-3", "0x1.c3a91c6f3b49ap-4", "0x1.35a3cbdf6d2fbp-1"]}, "weight": {"dtype": "float64", "shape": [3], "data": ["0x1.8a693760a9d8cp-2", "0x1.23ffe86cddb7cp-2", "0x1.c5df8f243c553p-1"]}}, "grad_output": {"dtype": "float64", "shape": [2, 2, 2], "data": ["0x1.003aa292e07p-3", "-0x1.3482c6fef14cp-4", "-0x1.d8fea79c7107p-1", "-0x1.7098233f00db8p+0", "0x1.caeea8a3087p-6", "0x1.1d29c6448e4cp+0", "-0x1.d92731cff3648p-1", "-0x1.499236863a74p-4"]}})";
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cross_entropy", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    const ojson j = eval_json(impl_name, prob_grads, true);
    ASSERT_TRUE(j.contains("grad")) << j.dump();
    for (const char* g : {"input", "target", "weight"})
      EXPECT_LE(j["grad"][g]["max_ulp"].get<double>(), 0.51) << impl_name << " " << g;
  }
}

// multilabel_soft_margin_loss float64 gradients on the scalar path (a weight gradient sends the
// call there; drivers/multilabel.cpp, soft_backward), every ISA: a sample of the fuzz case seed
// 20261203 case 24 whose third target is within 2^-8 of sigma(x), so sigma(x) - y cancels (the
// double formula: 445 ULP on the input's gradient, 1.01 and 1.03 on the target's and the
// weight's). From double-double values rounded once: each within 0.51 ULP (measured 0.44-0.50).
// And the broadcast weight's gradient, summed from the terms' DD values (below).
TEST(OptimizedCpu, Float64MultilabelSoftMarginScalarPathGradients) {
  const std::string sample =
      R"({"loss": "multilabel_soft_margin_loss", "reduction": "none", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": [1, 10], "data": ["0x1.906269509badp+0", "-0x1.10081dd34583cp+1", "-0x1.803bdf37a51ep+0", "0x1.ac3b2f06e92p-4", "-0x1.1adf94b568125p+2", "0x1.4db0e66d83aep-1", "-0x1.83ec45bea047cp+1", "-0x1.794995b2058dp+0", "-0x1.31a847dc001cp-3", "0x1.1d55295b8efdcp+1"]}, "target": {"dtype": "float64", "shape": [1, 10], "data": ["0x1.fd5cc0446f6cep-1", "0x1.131e99d42536bp-1", "0x1.763e3e7bdb054p-3", "0x1.cb661f8839676p-2", "0x1.08f65dd3f872fp-1", "0x1.1bc35028b1ce9p-1", "0x1.8e7facee6bce3p-1", "0x1.18357a79ab258p-4", "0x1.b3bf397f40273p-1", "0x1.a5d06a1ec0f1bp-1"]}, "weight": {"dtype": "float64", "shape": [10], "data": ["0x1.ba24bbcbb4d8ap+0", "0x1.58cf13fc1f337p+0", "0x1.45f2d325d7586p+0", "0x1.b824e7f59864ep-2", "0x1.b952891936f65p+0", "0x1.8b99c451a34d5p-1", "0x1.f668767df3368p+0", "0x1.5a71adf141509p-1", "0x1.2f659cc345de4p+0", "0x1.3c02410406252p-1"]}}})";
  // Fuzz case 9618: four samples, upstreams of both signs, so the weight's gradient (summed over
  // the samples) cancels: from rounded terms 7.45 ULP, from their DD values (sum_back) 0.45.
  const std::string signs =
      R"({"loss": "multilabel_soft_margin_loss", "reduction": "none", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": [4, 6], "data": ["-0x1.12360dbb52944p+1", "-0x1.fe2a8006117ep-2", "-0x1.2a2e578b9856p-1", "-0x1.a49b83f769178p+1", "0x1.1135d0e30b468p+2", "0x1.50db75d37bdbp+1", "-0x1.0891795854fp-2", "0x1.477a753e5c19p+1", "0x1.2fa56657fd54p-1", "-0x1.5ce59342b74fcp+1", "-0x1.ac7d48ead431p-1", "0x1.2f2c4586d8e64p+1", "0x1.487f211ab275p+2", "0x1.d66abc36ac8ep-1", "-0x1.4be83d1e73p-3", "0x1.d13561f31946p-2", "-0x1.cd46f0e6f2d3p+0", "-0x1.951f8b827a318p+0", "-0x1.987a97aec41c4p+1", "0x1.1fea3c6203908p+1", "-0x1.5e9d8c7bf38p-3", "-0x1.748924de20e58p+0", "0x1.2b8a3f2c76ep-1", "-0x1.b697e9571fcep-1"]}, "target": {"dtype": "float64", "shape": [4, 6], "data": ["0x1p+0", "0x0p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x0p+0", "0x0p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x0p+0", "0x0p+0", "0x0p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x0p+0", "0x1p+0", "0x1p+0", "0x1p+0", "0x1p+0"]}, "weight": {"dtype": "float64", "shape": [6], "data": ["0x1.ce8f842733e4ap+0", "0x1.d5e6dd7ca34f3p+0", "0x1.6278d523b6573p+0", "0x1.d49137b72ccd6p-1", "0x1.51920a86e82eap+0", "0x1.786788273ffc2p+0"]}}, "grad_output": {"dtype": "float64", "shape": [4], "data": ["0x1.96f8121cc67p-3", "0x1.22d12d256be58p-1", "0x1.19ac8d73f6348p-1", "-0x1.2ecf28c4298ep+0"]}})";
  for (const std::string* doc : {&sample, &signs})
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("multilabel_soft_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") ==
          0)
        continue;
      const ojson j = eval_json(impl_name, *doc, true);
      ASSERT_TRUE(j.contains("grad")) << j.dump();
      for (const char* g : {"input", "target", "weight"})
        EXPECT_LE(j["grad"][g]["max_ulp"].get<double>(), 0.51) << impl_name << " " << g;
    }
}

// triplet_margin_loss float64 gradients with a general p (the general path's norm_backward_dd in
// drivers/pairwise.cpp), every ISA: two fuzz cases (seed 20261203): case 478, p = 3 with swap,
// where the anchor's and the positive's pair terms partly cancel (the double formula's pow
// roundings: 19.4 ULP), and case 4668, p = 1.5, margin 2 (53.1 ULP). Each term in double-double,
// the terms added in DD and rounded once: every gradient within 0.51 ULP (measured 0.29-0.49).
TEST(OptimizedCpu, Float64TripletGeneralPGradients) {
  for (
      const std::string& doc :
      {std::string(
           R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"p": 3.0, "swap": true}, "inputs": {"anchor": {"dtype": "float64", "shape": [2, 3], "data": ["-0x1.36fec9cf8f88cp+0", "0x1.642d3697fce1p-2", "0x1.6fd86e399b8acp+0", "-0x1.1814fe2c2a8dp+1", "0x1.08c33a9ec803cp+0", "0x1.8e091acd0cebp-2"]}, "positive": {"dtype": "float64", "shape": [2, 3], "data": ["0x1.7ef707a110a4p-2", "-0x1.7e20115d54a08p-1", "-0x1.38b2cbcba4298p-1", "-0x1.65835274c948p-4", "-0x1.fd1e6e46f4628p-1", "0x1.3ef9ae52189ap-3"]}, "negative": {"dtype": "float64", "shape": [2, 3], "data": ["0x1.2e93a2d1871p-2", "-0x1.5bbcea9d6252p-2", "0x1.f39c907a95a3p-1", "0x1.791431d2ebf98p+0", "0x1.535c1c062f6ccp+0", "-0x1.906d34c3678ep-2"]}}})"),
       std::string(
           R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"p": 1.5, "margin": 2.0}, "inputs": {"anchor": {"dtype": "float64", "shape": [2, 3], "data": ["-0x1.366d589c91fc8p-1", "0x1.d5c37cffbb7dcp+0", "0x1.1a299500b944p-1", "0x1.ac86467286c58p+0", "0x1.2215f43baeb7cp+0", "0x1.1f67eff614bcp-1"]}, "positive": {"dtype": "float64", "shape": [2, 3], "data": ["-0x1.2c0aa45bb04cp-2", "0x1.3bf0b77115cbp+0", "-0x1.7d846c8fe5fcp-1", "-0x1.172571d511004p+0", "0x1.2a48e99be9218p-1", "0x1.050fb0c01cbb4p+1"]}, "negative": {"dtype": "float64", "shape": [2, 3], "data": ["-0x1.172f196cd13d8p-1", "-0x1.0f18c60260118p-1", "0x1.8a308bbcdd3p-2", "-0x1.f00c623ecbf78p-1", "-0x1.0cb4992a8d5cp-4", "-0x1.bf256a7e1e07p-2"]}}})")})
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("triplet_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0)
        continue;
      const ojson j = eval_json(impl_name, doc, true);
      ASSERT_TRUE(j.contains("grad")) << j.dump();
      for (const char* g : {"anchor", "positive", "negative"})
        EXPECT_LE(j["grad"][g]["max_ulp"].get<double>(), 0.51) << impl_name << " " << g;
    }
}

// Triplet gradients whose two terms cancel (p = 2): the anchor's (a - p)/d(a, p) - (a - n)/d(a, n)
// where one anchor element dominates both distances (a row of the fuzz case seed 20261302, case
// 11413: the quotients agree to 2^-38; float32 740 ULP, float64 4e11 ULP), and, under swap, the
// positive's (a - p)/d(a, p) - (n - p)/d(p, n) with d(a, p) and d(p, n) equal to 2^-31 (float64
// 1.7e9 ULP). Then two float32 fuzz cases (seed 20261305) and their float64 copies: a row where
// one anchor element of 1.4e12 dominates both distances, which differ by 2^-16, and the leading
// terms still cancel to 2^-33 (3.55 ULP; the trigger is the cancelled element, kTripletCancelF32,
// no longer close distances); the "cosine" distance of one-element rows with |anchor| < eps,
// whose two anchor terms are equal (exact gradient 0, was -1.5 2^-26). Outputs and every gradient
// within the dtype's target, every ISA: 1 ULP for float32 (the fused row kernels, triplet_fast;
// the general path for "cosine"), 2 ULP for float64 (the general path; the negative's gradient,
// a single term G r / d in double, has 1.28 ULP on the first case). Last, a bfloat16 fuzz row
// (seed 20261401, case 1331) and its float32 copy: p = 1.5, one anchor element of 2^128
// dominates both distances, whose difference (about 2) is below double-double's resolution of
// them (2^22), so the hinge's sign was noise and the gradients +-1 where they are 0;
// hinge_dominant takes the hinge from the dominant element's input difference instead. And a
// float64 one-element row (fuzz seed 20261403): its two anchor terms are sgn(r) G exactly and
// cancel to 0; the float64 row kernel's double-double products left 2^-104 G there (1e291 ULP
// against the exact 0) until it took sgn(r) G where |r| is the whole distance.
// The float32 triplet row kernels (kernels.hpp), every ISA. sq_diff3_row_f32 gives the bits of
// sq_diff_row_f32 pair by pair (the forward and the gradients' distances come from it). In
// triplet2_grad_row_f32, an element whose |u| is the pair's whole distance takes sgn(u) G
// exactly (the second pass over the row): here G = 1.5 + 2^-24, a float32 midpoint that rounds
// to 1.5 (ties to even), while u (G / u) is 2^-52 above it and rounds up to 1.5 + 2^-23.
TEST(OptimizedCpu, Float32TripletRowKernels) {
  std::mt19937_64 rng(20261130);
  std::uniform_real_distribution<float> u(-2.0F, 2.0F);
  const double G = 1.5 + 0x1p-24, d = 0x1.1cb6dep+0;
  ASSERT_NE(static_cast<float>(d * (G / d)), static_cast<float>(G));  // the case is a real one
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!machine_has(isa)) continue;
    const KernelTable& k = isa == Isa::scalar ? scalar_kernels()
                           : isa == Isa::avx2 ? avx2_kernels()
                                              : avx512_kernels();
    for (const std::int64_t D : {1, 7, 16, 17, 40, 1000}) {
      std::vector<float> a(static_cast<std::size_t>(D)), p(a.size()), q(a.size());
      for (std::size_t j = 0; j < a.size(); ++j) {
        a[j] = u(rng);
        p[j] = u(rng);
        q[j] = u(rng);
      }
      for (const bool three : {false, true}) {
        double s[3] = {-1, -1, -1};
        k.sq_diff3_row_f32(a.data(), p.data(), q.data(), D, 1e-6, three, s);
        EXPECT_EQ(s[0], k.sq_diff_row_f32(a.data(), p.data(), D, 1e-6)) << D;
        EXPECT_EQ(s[1], k.sq_diff_row_f32(a.data(), q.data(), D, 1e-6)) << D;
        if (three) {
          EXPECT_EQ(s[2], k.sq_diff_row_f32(p.data(), q.data(), D, 1e-6)) << D;
        }
      }
      // One non-zero element in a - p, at the first and at the last index; a - q = 0.
      for (const std::int64_t at : {std::int64_t{0}, D - 1}) {
        std::fill(a.begin(), a.end(), 0.0F);
        std::fill(p.begin(), p.end(), 0.0F);
        a[static_cast<std::size_t>(at)] = static_cast<float>(d);
        const double sc[9] = {G / d, 0, 0, G, 0, 0, d, -1, -1};
        std::vector<float> ga(a.size(), -1.0F);
        float* const out[3] = {ga.data(), nullptr, nullptr};
        k.triplet2_grad_row_f32(a.data(), p.data(), a.data(), D, 0.0, sc, false, out, false);
        for (std::int64_t j = 0; j < D; ++j)
          EXPECT_EQ(ga[static_cast<std::size_t>(j)], j == at ? 1.5F : 0.0F)
              << isa_name(isa) << " D = " << D << " at " << at << " j = " << j;
      }
    }
  }
}

TEST(OptimizedCpu, TripletCancellingGradientsWithinOneUlp) {
  const std::vector<std::string> cases = {R"({"loss": "triplet_margin_with_distance_loss", "reduction": "mean", "params": {"distance_function": "pairwise_distance"}, "inputs": {"anchor": {"dtype": "float32", "shape": [1, 8], "data": ["0x1.84efe2p-31", "-0x1.419524p+11", "-0x1.1f9c82p+37", "-0x1.f6398ep-33", "0x1.535d52p-10", "-0x1.6291f2p+16", "-0x1.f332eep-20", "-0x1.bb7fd2p+23"]}, "positive": {"dtype": "float32", "shape": [1, 8], "data": ["-0x1.720a08p-37", "-0x1.0d383ap-35", "-0x1.c99a08p-36", "0x1.7a2efep+16", "0x1.02671ep-23", "0x1.58e80ap-38", "0x1.9abb9ap+18", "-0x1.24043ep-16"]}, "negative": {"dtype": "float32", "shape": [1, 8], "data": ["0x1.b4485cp-9", "-0x1.87d5cep-32", "-0x1.550398p-38", "0x1.32f158p-5", "-0x1.614d8ep-38", "0x1.9d5cbcp-27", "0x1.84cc6cp-34", "0x1.4d90c8p-22"]}}})", R"({"loss": "triplet_margin_with_distance_loss", "reduction": "mean", "params": {"distance_function": "pairwise_distance"}, "inputs": {"anchor": {"dtype": "float64", "shape": [1, 8], "data": ["0x1.84efe2p-31", "-0x1.419524p+11", "-0x1.1f9c82p+37", "-0x1.f6398ep-33", "0x1.535d52p-10", "-0x1.6291f2p+16", "-0x1.f332eep-20", "-0x1.bb7fd2p+23"]}, "positive": {"dtype": "float64", "shape": [1, 8], "data": ["-0x1.720a08p-37", "-0x1.0d383ap-35", "-0x1.c99a08p-36", "0x1.7a2efep+16", "0x1.02671ep-23", "0x1.58e80ap-38", "0x1.9abb9ap+18", "-0x1.24043ep-16"]}, "negative": {"dtype": "float64", "shape": [1, 8], "data": ["0x1.b4485cp-9", "-0x1.87d5cep-32", "-0x1.550398p-38", "0x1.32f158p-5", "-0x1.614d8ep-38", "0x1.9d5cbcp-27", "0x1.84cc6cp-34", "0x1.4d90c8p-22"]}}})",
                                          R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"swap": true, "eps": 0.0}, "inputs": {"anchor": {"dtype": "float32", "shape": [1, 2], "data": ["0x0p+0", "0x1p+0"]}, "positive": {"dtype": "float32", "shape": [1, 2], "data": ["0x1p+0", "0x0p+0"]}, "negative": {"dtype": "float32", "shape": [1, 2], "data": ["0x1p-30", "-0x1p+0"]}}})",
                                          R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"swap": true, "eps": 0.0}, "inputs": {"anchor": {"dtype": "float64", "shape": [1, 2], "data": ["0x0p+0", "0x1p+0"]}, "positive": {"dtype": "float64", "shape": [1, 2], "data": ["0x1p+0", "0x0p+0"]}, "negative": {"dtype": "float64", "shape": [1, 2], "data": ["0x1p-30", "-0x1p+0"]}}})", R"({"loss": "triplet_margin_with_distance_loss", "reduction": "mean", "params": {"distance_function": "pairwise_distance"}, "inputs": {"anchor": {"dtype": "float32", "shape": [1, 8], "data": ["0x1.6d3ba6p+40", "-0x1.6a219ep+28", "-0x1.c7e7aep+7", "0x1.e263eap-5", "-0x1.00d9e4p-39", "0x1.ff47bep+8", "0x1.33c4bcp-26", "-0x1.b3fa5p+30"]}, "positive": {"dtype": "float32", "shape": [1, 8], "data": ["-0x1.6615bp+3", "-0x1.614582p+8", "0x1.da6fc6p+5", "0x1.f7bbbep+23", "-0x1.34e32ep-11", "-0x1.d6d158p+25", "0x1.1d5a3p+6", "0x1.02329ep-20"]}, "negative": {"dtype": "float32", "shape": [1, 8], "data": ["0x1.77532cp+24", "0x1.58e75p-17", "0x1.b210d6p+0", "0x1.9fa7dp-38", "0x1.90006ep-29", "-0x1.4eaac4p+4", "0x1.ac3532p-11", "0x1.3ed52cp+7"]}}})", R"({"loss": "triplet_margin_with_distance_loss", "reduction": "mean", "params": {"distance_function": "pairwise_distance"}, "inputs": {"anchor": {"dtype": "float64", "shape": [1, 8], "data": ["0x1.6d3ba6p+40", "-0x1.6a219ep+28", "-0x1.c7e7aep+7", "0x1.e263eap-5", "-0x1.00d9e4p-39", "0x1.ff47bep+8", "0x1.33c4bcp-26", "-0x1.b3fa5p+30"]}, "positive": {"dtype": "float64", "shape": [1, 8], "data": ["-0x1.6615bp+3", "-0x1.614582p+8", "0x1.da6fc6p+5", "0x1.f7bbbep+23", "-0x1.34e32ep-11", "-0x1.d6d158p+25", "0x1.1d5a3p+6", "0x1.02329ep-20"]}, "negative": {"dtype": "float64", "shape": [1, 8], "data": ["0x1.77532cp+24", "0x1.58e75p-17", "0x1.b210d6p+0", "0x1.9fa7dp-38", "0x1.90006ep-29", "-0x1.4eaac4p+4", "0x1.ac3532p-11", "0x1.3ed52cp+7"]}}})", R"({"loss": "triplet_margin_with_distance_loss", "reduction": "sum", "params": {"distance_function": "cosine", "margin": 0.25}, "inputs": {"anchor": {"dtype": "float32", "shape": [1, 1], "data": ["0x1.917cdp-28"]}, "positive": {"dtype": "float32", "shape": [1, 1], "data": ["-0x1.d6727ep+21"]}, "negative": {"dtype": "float32", "shape": [1, 1], "data": ["-0x1.e0fb3p+36"]}}})", R"({"loss": "triplet_margin_with_distance_loss", "reduction": "sum", "params": {"distance_function": "cosine", "margin": 0.25}, "inputs": {"anchor": {"dtype": "float64", "shape": [1, 1], "data": ["0x1.917cdp-28"]}, "positive": {"dtype": "float64", "shape": [1, 1], "data": ["-0x1.d6727ep+21"]}, "negative": {"dtype": "float64", "shape": [1, 1], "data": ["-0x1.e0fb3p+36"]}}})", R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"p": 1.5, "margin": 2.0}, "inputs": {"anchor": {"dtype": "bfloat16", "shape": [1, 10], "data": ["0x0p+0", "-0x1.42p-2", "-0x1.cp-3", "-0x1.34p+1", "0x1.fep+127", "-0x1.8p+0", "-0x1.a6p+0", "0x1.dp-2", "-0x1p-133", "-0x0p+0"]}, "positive": {"dtype": "bfloat16", "shape": [1, 10], "data": ["0x1.cp-3", "-0x1.4ap+0", "0x0p+0", "0x1.dcp+0", "0x1.1cp+1", "0x1.1p-1", "0x1.42p-15", "-0x1.f2p-1", "-0x1.f6p-2", "0x1.0ep+0"]}, "negative": {"dtype": "bfloat16", "shape": [1, 10], "data": ["0x1.54p-2", "0x1.0cp+0", "-0x1.84p-2", "-0x1.4p+1", "0x1.4cp-3", "0x1.bep-3", "-0x1.1ep-1", "-0x1.cep-3", "-0x1.06p-6", "0x1.d2p-3"]}}})", R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"p": 1.5, "margin": 2.0}, "inputs": {"anchor": {"dtype": "float32", "shape": [1, 10], "data": ["0x0p+0", "-0x1.42p-2", "-0x1.cp-3", "-0x1.34p+1", "0x1.fep+127", "-0x1.8p+0", "-0x1.a6p+0", "0x1.dp-2", "-0x1p-133", "-0x0p+0"]}, "positive": {"dtype": "float32", "shape": [1, 10], "data": ["0x1.cp-3", "-0x1.4ap+0", "0x0p+0", "0x1.dcp+0", "0x1.1cp+1", "0x1.1p-1", "0x1.42p-15", "-0x1.f2p-1", "-0x1.f6p-2", "0x1.0ep+0"]}, "negative": {"dtype": "float32", "shape": [1, 10], "data": ["0x1.54p-2", "0x1.0cp+0", "-0x1.84p-2", "-0x1.4p+1", "0x1.4cp-3", "0x1.bep-3", "-0x1.1ep-1", "-0x1.cep-3", "-0x1.06p-6", "0x1.d2p-3"]}}})",
                                          // A one-feature bfloat16 row (fuzz seed 20261601, case
                                          // 9522): the anchor's two terms are -g and g exactly, 0
                                          // (g r / n gave -g (1 + 2^-53) for one of them: -2^-55).
                                          R"({"loss": "triplet_margin_with_distance_loss", "reduction": "none", "params": {"margin": 0.5}, "inputs": {"anchor": {"dtype": "bfloat16", "shape": [1, 1], "data": ["0x1.68p-33"]}, "positive": {"dtype": "bfloat16", "shape": [1, 1], "data": ["0x1.d4p+8"]}, "negative": {"dtype": "bfloat16", "shape": [1, 1], "data": ["0x1.4cp-4"]}}, "grad_output": {"dtype": "bfloat16", "shape": [1], "data": ["-0x1.dcp-3"]}})",
                                          R"({"loss": "triplet_margin_with_distance_loss", "reduction": "none", "params": {}, "inputs": {"anchor": {"dtype": "float64", "shape": [1, 1], "data": ["0x1.5750cc2d8979ep+58"]}, "positive": {"dtype": "float64", "shape": [1, 1], "data": ["0x1.9ffab3e86f884p-32"]}, "negative": {"dtype": "float64", "shape": [1, 1], "data": ["0x1.9f714056f3dd4p-34"]}}, "grad_output": {"dtype": "float64", "shape": [1], "data": ["-0x1.d3aff7bdfbad4p+0"]}})"};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("triplet_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    for (std::size_t k = 0; k < cases.size(); ++k) {
      const double bound = cases[k].find("float64") != std::string::npos ? 2.0 : 1.0;
      EXPECT_LE(eval_output_ulp(impl_name, cases[k], true), bound) << impl_name << " case " << k;
    }
  }
}

// float64 cosine_embedding_loss gradients (fuzz seed 20261402): the numerator y_j M - P x_j
// cancels by chance in random rows, and Lagrange's identity (rows up to 64 features) still lost
// bits to its terms' cancellation (63.3, 15.0 and 25.4 ULP); from the double-double row sums
// (dd_numerator) and a DD scale, rounded once, every gradient within 1 ULP, every ISA.
TEST(OptimizedCpu, Float64CosineGradientsWithinOneUlp) {
  const std::vector<std::string> cases = {
      R"({"loss": "cosine_embedding_loss", "reduction": "none", "params": {"margin": 0.5}, "inputs": {"input1": {"dtype": "float64", "shape": [3, 4], "data": ["-0x1.663fe8d421cc8p+0", "-0x1.26e369b53134p+0", "-0x1.020d099c5e264p+0", "0x1.9ce3aee9364e8p-1", "-0x1.09e7562c52abp-2", "0x1.badee9876804p-4", "0x1.6c66012e63f3p-2", "0x1.81efb2ca04c2p-3", "-0x1.6aed35bffc854p+0", "-0x1.24ff3eca1dbdep+1", "0x1.215f97f4f9e78p-1", "0x1.c5ce74453d168p-1"]}, "input2": {"dtype": "float64", "shape": [3, 4], "data": ["-0x1.c32d5e95a96bcp+0", "-0x1.02ec01cf7ea6p-2", "-0x1.b6adaff7572bp+0", "-0x1.537d0c0e0321p-2", "-0x1.9049def86a8bcp+0", "0x1.1a62b1af6c3p-2", "0x1.403333124c8ap-1", "0x1.6cae8155f01f8p-1", "-0x1.9e2caad0af65p-2", "-0x1.0a89f65309aep-1", "0x1.925d464b842bp-2", "-0x1.84564a28419cp-4"]}, "target": {"dtype": "float64", "shape": [3], "data": ["-0x1p+0", "0x1p+0", "0x1p+0"]}}})",
      R"({"loss": "cosine_embedding_loss", "reduction": "sum", "params": {}, "inputs": {"input1": {"dtype": "float64", "shape": [5], "data": ["0x1.67a686ee07f8p-1", "0x1.fda46e4b39068p+0", "0x1.79727259fd2cp+0", "-0x1.1f072dbf393cep+1", "0x1.52f8a410405p-3"]}, "input2": {"dtype": "float64", "shape": [5], "data": ["0x1.e9c495c17c1ap-2", "0x1.fa382156c6c8p+0", "0x1.2ad522d7335bp+0", "-0x1.4a6b2e752bb5p-1", "-0x1.c19dd5a856d8p-4"]}, "target": {"dtype": "float64", "shape": [], "data": ["0x1p+0"]}}})", R"({"loss": "cosine_embedding_loss", "reduction": "sum", "params": {"margin": -0.5}, "inputs": {"input1": {"dtype": "float64", "shape": [3, 4], "data": ["0x1.0f2e016fcddp-2", "-0x1.a22a675bf6aep-3", "-0x1.07ec5e4310d88p-1", "0x1.dff54a302315p-2", "0x1.ef25e407cdp-9", "-0x1.7be2a749a7418p-1", "-0x1.fa4cd924bf75p-2", "0x1.092232880214p-2", "0x1.e700756de4ap-4", "-0x1.3b89d3e9a6e7cp+0", "0x1.9e07e97cfde78p-1", "0x1.7b861c187f848p-1"]}, "input2": {"dtype": "float64", "shape": [3, 4], "data": ["0x1.c9471184c77cp-4", "-0x1.8b48611649ab8p-1", "-0x1.c47c9472cbbbp-1", "0x1.06a0761ee9dd4p+0", "0x1.aec6f0c6136b4p+0", "0x1.26101dcfa006p+0", "-0x1.201a7f3e6687p+0", "0x1.421a51d506ebcp+0", "0x1.3e0762e7abb8p-3", "-0x1.1c0b743588608p+0", "0x1.40f2a6844034p-2", "-0x1.5885dd7e412p-4"]}, "target": {"dtype": "float64", "shape": [3], "data": ["-0x1p+0", "-0x1p+0", "-0x1p+0"]}}})"};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("cosine_embedding_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0)
      continue;
    for (std::size_t k = 0; k < cases.size(); ++k)
      EXPECT_LE(eval_output_ulp(impl_name, cases[k], true), 1.0) << impl_name << " case " << k;
  }
}

// n doubles uniform in [-2, 2) from rng as a case document's "data" list (hex, quoted).
std::string uniform_hex_data(std::mt19937_64& rng, int n) {
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::string d;
  char buf[64];
  for (int k = 0; k < n; ++k) {
    std::snprintf(buf, sizeof buf, "%s\"%a\"", k ? ", " : "", u(rng));
    d += buf;
  }
  return d;
}

// float64 cosine_embedding_loss on rows of 4096 features (the float64 row kernels dot3_row_f64
// and cos_grad_row_f64) and of 40 (the general path): random rows, targets 1 and -1, every
// gradient within 1 ULP, every ISA. The double chain of the general path (row sums and
// numerators in double) is off by several ULPs on such rows.
TEST(OptimizedCpu, Float64CosineRowKernelsWithinOneUlp) {
  std::mt19937_64 rng(20261130);
  const auto data = [&](int n) { return uniform_hex_data(rng, n); };
  for (const int D : {4096, 40}) {
    const std::string shape = "[2, " + std::to_string(D) + "]";
    const std::string doc =
        R"({"loss": "cosine_embedding_loss", "reduction": "sum", "params": {"margin": -0.5},
        "inputs": {"input1": {"dtype": "float64", "shape": )" +
        shape + R"(, "data": [)" + data(2 * D) + R"(]}, "input2": {"dtype": "float64", "shape": )" +
        shape + R"(, "data": [)" + data(2 * D) +
        R"(]}, "target": {"dtype": "float64", "shape": [2], "data": ["0x1p+0", "-0x1p+0"]}}})";
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("cosine_embedding_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0)
        continue;
      EXPECT_LE(eval_output_ulp(impl_name, doc, true), 1.0) << impl_name << " D = " << D;
    }
  }
}

// float64 triplet_margin_loss (p = 2) on random rows of 4096 and 40 features, with and without
// swap: the float64 row kernels (sq_diff_row_f64_dd, triplet2_grad_row_f64) take the distances
// and every gradient in double-double, within 1 ULP, every ISA. The double path was off by up to
// 1.3e5 ULP on the anchor (its two terms cancel by chance) and 7.7 on single terms (the
// distances' own rounding over 4096 squares).
TEST(OptimizedCpu, Float64TripletRowKernelsWithinOneUlp) {
  std::mt19937_64 rng(20261131);
  const auto data = [&](int n) { return uniform_hex_data(rng, n); };
  for (const int D : {4096, 40})
    for (const bool swap : {false, true}) {
      const std::string shape = "[2, " + std::to_string(D) + "]";
      std::string doc =
          R"({"loss": "triplet_margin_loss", "reduction": "sum", "params": {"swap": )" +
          std::string(swap ? "true" : "false") + R"(}, "inputs": {)";
      const char* names[3] = {"anchor", "positive", "negative"};
      for (int k = 0; k < 3; ++k)
        doc += std::string(k ? ", " : "") + "\"" + names[k] +
               R"(": {"dtype": "float64", "shape": )" + shape + R"(, "data": [)" + data(2 * D) +
               "]}";
      doc += "}}";
      for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
        const lb_impl* impl = conformance::find_implementation(impl_name);
        if (impl->supports("triplet_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0)
          continue;
        EXPECT_LE(eval_output_ulp(impl_name, doc, true), 1.0)
            << impl_name << " D = " << D << " swap " << swap;
      }
    }
}

// float64 multi_margin_loss on rows of 4096 and 37 classes (the double-double row kernel
// mm_row_f64): random scores, p = 1 and 2, margin 0.75, a class weight, 'mean' and 'none'. The
// loss and every gradient are double-double values rounded once, so within half an ULP plus the
// double-double's own error (about 2^-100 relative: the 0.501), every ISA. The general path (a
// double per term, the factors applied one rounding at a time) is up to 1.5 ULP off on such rows.
TEST(OptimizedCpu, Float64MultiMarginRowKernelWithinHalfUlp) {
  std::mt19937_64 rng(20261501);
  for (const int C : {4096, 37})
    for (const int P : {1, 2})
      for (const char* reduction : {"mean", "none"}) {
        std::string targets;
        for (int n = 0; n < 3; ++n)
          targets += (n ? ", " : "") + std::to_string(static_cast<int>(rng() % C));
        const std::string doc =
            std::string(R"({"loss": "multi_margin_loss", "reduction": ")") + reduction +
            R"(", "params": {"p": )" + std::to_string(P) +
            R"(, "margin": 0.75}, "inputs": {"input": {"dtype": "float64", "shape": [3, )" +
            std::to_string(C) + R"(], "data": [)" + uniform_hex_data(rng, 3 * C) +
            R"(]}, "target": {"dtype": "int64", "shape": [3], "data": [)" + targets +
            R"(]}, "weight": {"dtype": "float64", "shape": [)" + std::to_string(C) +
            R"(], "data": [)" + uniform_hex_data(rng, C) + "]}}}";
        for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
          const lb_impl* impl = conformance::find_implementation(impl_name);
          if (impl->supports("multi_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, reduction) == 0)
            continue;
          EXPECT_LE(eval_output_ulp(impl_name, doc, true), 0.501)
              << impl_name << " C = " << C << " p = " << P << " " << reduction;
        }
      }
}

// float64 multilabel_margin_loss on rows of 4096 and 37 classes (the grouped passes of
// mlm_group_f64): lists of 3 (one pass, the gradient written by it) and 6 classes (two passes,
// the pair counts first), 'mean' and 'none', every ISA. Each hinge is the exact z rounded once
// and summed in double-double, then divided by C: within 1 ULP (the rounded terms' 2^-53 and the
// division's), as the general path.
TEST(OptimizedCpu, Float64MultilabelMarginGroupedPassesWithinOneUlp) {
  std::mt19937_64 rng(20261502);
  for (const int C : {4096, 37})
    for (const int listed : {3, 6})
      for (const char* reduction : {"mean", "none"}) {
        std::string targets;
        for (int n = 0; n < 3; ++n) {
          std::vector<int> classes(static_cast<std::size_t>(C));
          for (int c = 0; c < C; ++c) classes[static_cast<std::size_t>(c)] = c;
          std::shuffle(classes.begin(), classes.end(), rng);
          for (int c = 0; c < C; ++c)
            targets += std::string(n + c ? ", " : "") +
                       std::to_string(c < listed ? classes[static_cast<std::size_t>(c)] : -1);
        }
        const std::string shape = "[3, " + std::to_string(C) + "]";
        const std::string doc =
            std::string(R"({"loss": "multilabel_margin_loss", "reduction": ")") + reduction +
            R"(", "params": {}, "inputs": {"input": {"dtype": "float64", "shape": )" + shape +
            R"(, "data": [)" + uniform_hex_data(rng, 3 * C) +
            R"(]}, "target": {"dtype": "int64", "shape": )" + shape + R"(, "data": [)" + targets +
            "]}}}";
        for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
          const lb_impl* impl = conformance::find_implementation(impl_name);
          if (impl->supports("multilabel_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, reduction) ==
              0)
            continue;
          EXPECT_LE(eval_output_ulp(impl_name, doc, true), 1.0)
              << impl_name << " C = " << C << " listed " << listed << " " << reduction;
        }
      }
}

TEST(OptimizedCpu, Float64BroadcastGradientKeepsLowParts) {
  const double x[5] = {-0x1.48c6b6b435afcp+0, -0x1.a8af58121a968p-1, 0x1.78bb2bbbd0c0cp+0,
                       0x1.76e538e2d74p-1, 0x1.8cc31da25f564p+0};
  const double y[5] = {-0x1.25badd30a624p-1, -0x1.41dd1efd0fb7p-1, -0x1.a0a09e243ccp+0,
                       -0x1.8beb7101a5bfp-2, 0x1.14b7a0a93b9p-6};
  double v = 0x1.62d8e1a280681p+1;
  const double g[5] = {1.0, 1.0, 1.0, 1.0, 1.0};  // grad_output
  mpfr_t acc, a, b;
  mpfr_inits2(400, acc, a, b, static_cast<mpfr_ptr>(nullptr));
  mpfr_set_zero(acc, 1);
  for (int i = 0; i < 5; ++i) {  // g 0.5 (1/v - d^2/v^2)
    mpfr_set_d(a, x[i], MPFR_RNDN);
    mpfr_sub_d(a, a, y[i], MPFR_RNDN);
    mpfr_sqr(a, a, MPFR_RNDN);
    mpfr_div_d(a, a, v, MPFR_RNDN);
    mpfr_div_d(a, a, v, MPFR_RNDN);
    mpfr_set_d(b, 1.0, MPFR_RNDN);
    mpfr_div_d(b, b, v, MPFR_RNDN);
    mpfr_sub(b, b, a, MPFR_RNDN);
    mpfr_mul_d(b, b, 0.5 * g[i], MPFR_RNDN);
    mpfr_add(acc, acc, b, MPFR_RNDN);
  }
  const double exact = mpfr_get_d(acc, MPFR_RNDN);
  mpfr_clears(acc, a, b, static_cast<mpfr_ptr>(nullptr));
  const double ulp = std::nextafter(std::fabs(exact), HUGE_VAL) - std::fabs(exact);
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("gaussian_nll_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    std::int64_t shape[1] = {5}, stride[1] = {1}, vshape[1] = {1};
    lb_tensor in[3] = {
        {"input", const_cast<double*>(x), LB_FLOAT64, 1, shape, stride, {LB_DEVICE_CPU, 0}},
        {"target", const_cast<double*>(y), LB_FLOAT64, 1, shape, stride, {LB_DEVICE_CPU, 0}},
        {"var", &v, LB_FLOAT64, 1, vshape, stride, {LB_DEVICE_CPU, 0}}};
    lb_call call = cpu_call("gaussian_nll_loss", "none", in, 3);
    double gv = NAN;
    lb_tensor go{"grad_output", const_cast<double*>(g), LB_FLOAT64, 1, shape,
                 stride,        {LB_DEVICE_CPU, 0}};
    lb_tensor gr{"var", &gv, LB_FLOAT64, 1, vshape, stride, {LB_DEVICE_CPU, 0}};
    char err[256] = {};
    ASSERT_EQ(impl->backward(&call, &go, &gr, 1, err, sizeof err), LB_OK) << impl_name << err;
    EXPECT_LE(std::fabs(gv - exact), ulp)
        << impl_name << std::hexfloat << ": " << gv << " exact " << exact << std::defaultfloat;
  }
}

// poisson_nll_loss (log_input) where exp(x) and y x both overflow float64: exp(x) - y x is +inf
// for every finite x >= 718 and finite y (exp(x) > DBL_MAX x there), not inf - inf = NaN; and
// where only y x overflows, -inf. 'none', every ISA.
TEST(OptimizedCpu, PoissonFloat64OverflowingTerms) {
  const double big = std::numeric_limits<double>::max();
  const std::vector<double> x = {big, 718.0, 1e300, big, 1.5, 2.0};
  const std::vector<double> y = {4.0, big, big, -3.0, big, 0.5};
  const std::vector<double> want = {HUGE_VAL, HUGE_VAL,  HUGE_VAL,
                                    HUGE_VAL, -HUGE_VAL, std::exp(2.0) - 1.0};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("poisson_nll_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    std::int64_t shape[1] = {static_cast<std::int64_t>(x.size())}, stride[1] = {1};
    lb_tensor in[2] = {
        {"input", const_cast<double*>(x.data()), LB_FLOAT64, 1, shape, stride, {LB_DEVICE_CPU, 0}},
        {"target",
         const_cast<double*>(y.data()),
         LB_FLOAT64,
         1,
         shape,
         stride,
         {LB_DEVICE_CPU, 0}}};
    lb_call call = cpu_call("poisson_nll_loss", "none", in, 2);
    std::vector<double> out(x.size(), NAN);
    lb_tensor o{"output", out.data(), LB_FLOAT64, 1, shape, stride, {LB_DEVICE_CPU, 0}};
    char err[256] = {};
    ASSERT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << impl_name << ": " << err;
    for (std::size_t i = 0; i < x.size(); ++i)
      EXPECT_TRUE(std::isinf(want[i]) ? out[i] == want[i] : std::fabs(out[i] - want[i]) < 1e-15)
          << impl_name << " x " << x[i] << " y " << y[i] << ": " << out[i];
  }
}

// nll_loss reads contiguous int64 targets in place and keeps a thread's vector of unit weights
// from one call to the next (optimized/drivers/classification.cpp): a sequence of calls on one
// thread that changes C, switches a weight on and off and mixes contiguous, strided and 0-d
// targets must give, for each call, the sum or mean of -w[t] x[i, t] computed here (small
// integers: exact in double).
TEST(OptimizedCpu, NllLossCallsDoNotLeakTargetsOrWeights) {
  struct Step {
    std::int64_t n, c;  // n = 0: unbatched input (C) with a 0-d target
    bool weighted, strided;
    const char* reduction;
  };
  const Step steps[] = {{5, 4, false, false, "sum"},  {7, 3, true, true, "mean"},
                        {6, 6, false, false, "mean"}, {3, 2, false, true, "sum"},
                        {0, 5, true, false, "sum"},   {9, 6, false, false, "sum"},
                        {4, 3, true, false, "mean"},  {8, 6, false, false, "mean"}};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("nll_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    int k = 0;
    for (const Step& st : steps) {
      ++k;
      const std::int64_t rows = st.n == 0 ? 1 : st.n;
      std::vector<double> x(static_cast<std::size_t>(rows * st.c)),
          w(static_cast<std::size_t>(st.c));
      for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>((i * 7 + k) % 13) - 6;
      for (std::size_t c = 0; c < w.size(); ++c) w[c] = static_cast<double>(c + k % 3 + 2);
      // Targets: one of them ignored (-100) where there are several rows.
      const std::int64_t step = st.strided ? 2 : 1;
      std::vector<std::int64_t> t(static_cast<std::size_t>(rows * step), 99);
      for (std::int64_t i = 0; i < rows; ++i)
        t[static_cast<std::size_t>(i * step)] = rows > 1 && i == 1 ? -100 : (i * 5 + k) % st.c;
      double total = 0.0, wsum = 0.0;
      for (std::int64_t i = 0; i < rows; ++i) {
        const std::int64_t c = t[static_cast<std::size_t>(i * step)];
        if (c == -100) continue;
        const double wc = st.weighted ? w[static_cast<std::size_t>(c)] : 1.0;
        total += -wc * x[static_cast<std::size_t>(i * st.c + c)];
        wsum += wc;
      }
      const double expected = std::strcmp(st.reduction, "mean") == 0 ? total / wsum : total;
      std::int64_t xshape[2] = {rows, st.c}, xstride[2] = {st.c, 1};
      std::int64_t cshape[1] = {st.c}, cstride[1] = {1};
      std::int64_t tshape[1] = {rows}, tstride[1] = {step};
      lb_tensor in[3] = {
          st.n == 0
              ? lb_tensor{"input", x.data(), LB_FLOAT64, 1, cshape, cstride, {LB_DEVICE_CPU, 0}}
              : lb_tensor{"input", x.data(), LB_FLOAT64, 2, xshape, xstride, {LB_DEVICE_CPU, 0}},
          {"target", t.data(), LB_INT64, st.n == 0 ? 0 : 1, tshape, tstride, {LB_DEVICE_CPU, 0}},
          {"weight", w.data(), LB_FLOAT64, 1, cshape, cstride, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("nll_loss", st.reduction, in, st.weighted ? 3 : 2);
      double out = NAN;
      std::int64_t oshape[1] = {1}, ostride[1] = {1};
      lb_tensor o{"output", &out, LB_FLOAT64, 0, oshape, ostride, {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      ASSERT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK)
          << impl_name << " step " << k << ": " << err;
      EXPECT_EQ(out, expected) << impl_name << " step " << k << " (C " << st.c
                               << (st.weighted ? ", weighted" : "") << ")";
    }
  }
}

TEST(OptimizedCpu, MultiMarginFastPathMatchesGeneralPath) {  // forward and gradient
  const std::int64_t N = 31, C = 777;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.7f);
  std::vector<float> dense(static_cast<std::size_t>(N * C)), strided(dense.size() * 2, 0.0f);
  for (auto& v : dense) v = normal(rng);
  dense[5 * C + 3] = HUGE_VALF;
  dense[7 * C + 9] = -HUGE_VALF;
  dense[11 * C + 100] = std::nanf("");
  std::vector<std::int64_t> target(static_cast<std::size_t>(N));
  for (auto& t : target) t = static_cast<std::int64_t>(rng() % C);
  target[7] = 9;  // the target's own logit is -inf
  // Row 13, x_y = 1, the others -1 but one at 3e-15: with margin 1 that one is the only active
  // class (z = 3e-15), the row's sum a single tiny term. The kernels leave the target's own term
  // (margin^p = 1) out of their plain double sums: adding it and subtracting it again would keep
  // only a few of z's bits (and none of z^2's). With margin 0.7 no class is active.
  target[13] = 4;
  for (std::int64_t c = 0; c < C; ++c) dense[static_cast<std::size_t>(13 * C + c)] = -1.0f;
  dense[13 * C + 4] = 1.0f;
  dense[13 * C + 600] = 3e-15f;
  for (std::size_t i = 0; i < dense.size(); ++i) strided[2 * i] = dense[i];
  const auto close = [](float a, float b) { return within_one_ulp(a, b, true); };
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("multi_margin_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    // margin 0.7: margin - x_y is rarely exact in double (the compensated z); 1: mostly exact.
    for (const auto& [p, margin] :
         {std::pair<std::int64_t, double>{1, 1.0}, {2, 1.0}, {1, 0.7}, {2, 0.7}}) {
      const auto run = [&](float* x, std::int64_t stride, bool fused) {
        std::int64_t xs[2] = {N, C}, xst[2] = {C * stride, stride}, ts[1] = {N}, tst[1] = {1};
        lb_tensor in[2] = {{"input", x, LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                           {"target", target.data(), LB_INT64, 1, ts, tst, {LB_DEVICE_CPU, 0}}};
        lb_param params[2] = {};
        params[0].name = "p";
        params[0].type = LB_PARAM_INT;
        params[0].i = p;
        params[1].name = "margin";
        params[1].type = LB_PARAM_FLOAT;
        params[1].f = margin;
        lb_call call = cpu_call("multi_margin_loss", "none", in, 2, params, 2);
        std::vector<float> loss(static_cast<std::size_t>(N));
        lb_tensor out{"output", loss.data(), LB_FLOAT32, 1, ts, tst, {LB_DEVICE_CPU, 0}};
        char err[256] = {};
        // The gradient (contiguous, as the ABI has it) for an upstream of 0.75 per row.
        std::vector<float> up(static_cast<std::size_t>(N), 0.75f), grad(dense.size());
        std::int64_t gst[2] = {C, 1};
        lb_tensor go{"grad_output", up.data(), LB_FLOAT32, 1, ts, tst, {LB_DEVICE_CPU, 0}};
        lb_tensor g{"input", grad.data(), LB_FLOAT32, 2, xs, gst, {LB_DEVICE_CPU, 0}};
        if (fused) {
          EXPECT_EQ(lb_forward_backward_of(impl)(&call, &out, &go, &g, 1, err, sizeof err), LB_OK)
              << err;
        } else {
          EXPECT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
          EXPECT_EQ(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK) << err;
        }
        loss.insert(loss.end(), grad.begin(), grad.end());
        return loss;
      };
      const auto fast = run(dense.data(), 1, false), general = run(strided.data(), 2, false);
      // forward_backward (one pass per row): bitwise the two calls.
      const auto fused = run(dense.data(), 1, true);
      EXPECT_EQ(std::memcmp(fused.data(), fast.data(), fast.size() * sizeof(float)), 0)
          << impl_name << " p " << p << " margin " << margin << ": forward_backward";
      ASSERT_EQ(fast.size(), general.size());
      int bad = 0;
      for (std::size_t i = 0; i < fast.size() && bad < 5; ++i)
        if (!close(fast[i], general[i])) {
          ++bad;
          ADD_FAILURE() << impl_name << " p " << p << " margin " << margin
                        << (i < N ? " loss " : " gradient ") << (i < N ? i : i - N) << ": "
                        << fast[i] << " vs " << general[i];
        }
    }
  }
}

// multilabel_margin_loss's float32 forward fast path (contiguous rows, each listed class against
// the row through the dense kernel) against the general path (class stride 2), with an infinity
// and a NaN in some rows: within one float32 ULP.
TEST(OptimizedCpu, MultilabelMarginFastPathMatchesGeneralPath) {  // forward and gradient
  const std::int64_t N = 19, C = 301;
  std::mt19937_64 rng(21);
  std::normal_distribution<float> normal(0.0f, 0.8f);
  std::vector<float> dense(static_cast<std::size_t>(N * C)), strided(dense.size() * 2, 0.0f);
  for (auto& v : dense) v = normal(rng);
  dense[2 * C + 5] = HUGE_VALF;
  dense[4 * C + 7] = std::nanf("");
  std::vector<std::int64_t> target(dense.size(), -1);
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t k = 0; k < r % 7; ++k)
      target[static_cast<std::size_t>(r * C + k)] = static_cast<std::int64_t>(rng() % C);
  const auto at = [&](std::int64_t r, std::int64_t c) -> float& {
    return dense[static_cast<std::size_t>(r * C + c)];
  };
  const auto list = [&](std::int64_t r, std::initializer_list<std::int64_t> classes) {
    std::int64_t k = 0;
    for (const std::int64_t c : classes) target[static_cast<std::size_t>(r * C + k++)] = c;
    target[static_cast<std::size_t>(r * C + k)] = -1;
  };
  // The grouped pass's cases (KernelTable::mlm_group_f32): pairs exactly at the hinge (z = 0)
  // and just inside it, a class listed three times among nine entries (three groups), a listed
  // class far above the others (its own pairs are skipped, not subtracted).
  list(8, {3, 3, 40, 3, 41, 42, 43, 44, 45});
  at(8, 3) = 1.5f;
  at(8, 10) = 0.5f;                        // z = 0: inactive
  at(8, 11) = std::nextafter(0.5f, 1.0f);  // z = 2^-24: active
  at(8, 40) = 3.0e30f;
  at(8, 41) = -2.0f;
  list(9, {100, 200});
  at(9, 100) = 1.0e6f;
  for (std::int64_t c = 0; c < C; ++c)
    if (c != 100 && c != 200) at(9, c) = 1.0e6f - 1.0f + (c % 3 == 0 ? 0.0625f : 0.0f);
  // Listed classes whose 1 - x_j is not exact in double: the per-class kernels take the row.
  list(10, {1, 2});
  at(10, 1) = 1.0e20f;
  at(10, 2) = 3.0e-35f;
  list(12, {7});
  at(12, 7) = 0x1p-29f;  // the smallest magnitude the grouped pass takes
  for (std::size_t i = 0; i < dense.size(); ++i) strided[2 * i] = dense[i];
  const auto close = [](float a, float b) { return within_one_ulp(a, b, true); };
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("multilabel_margin_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "none") == 0)
      continue;
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    ASSERT_NE(fb, nullptr);
    const auto run = [&](float* x, std::int64_t stride, bool fused) {
      std::int64_t xs[2] = {N, C}, xst[2] = {C * stride, stride}, tst[2] = {C, 1}, ns[1] = {N},
                   one[1] = {1};
      lb_tensor in[2] = {{"input", x, LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                         {"target", target.data(), LB_INT64, 2, xs, tst, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("multilabel_margin_loss", "none", in, 2);
      std::vector<float> loss(static_cast<std::size_t>(N));
      lb_tensor out{"output", loss.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      // The gradient (contiguous) for an upstream of 0.75 per sample: the same pair counts on
      // both paths, so bitwise equal.
      std::vector<float> up(static_cast<std::size_t>(N), 0.75f), grad(dense.size());
      lb_tensor go{"grad_output", up.data(), LB_FLOAT32, 1, ns, one, {LB_DEVICE_CPU, 0}};
      lb_tensor g{"input", grad.data(), LB_FLOAT32, 2, xs, tst, {LB_DEVICE_CPU, 0}};
      if (fused) {
        EXPECT_EQ(fb(&call, &out, &go, &g, 1, err, sizeof err), LB_OK) << err;
      } else {
        EXPECT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
        EXPECT_EQ(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK) << err;
      }
      return std::make_pair(loss, grad);
    };
    const auto fast = run(dense.data(), 1, false), general = run(strided.data(), 2, false);
    // forward_backward (one pass per sample where the list is short): bitwise the two calls.
    const auto fused = run(dense.data(), 1, true);
    EXPECT_EQ(std::memcmp(fused.first.data(), fast.first.data(), N * sizeof(float)), 0)
        << impl_name << " forward_backward's loss";
    EXPECT_EQ(std::memcmp(fused.second.data(), fast.second.data(), dense.size() * sizeof(float)), 0)
        << impl_name << " forward_backward's gradient";
    for (std::int64_t i = 0; i < N; ++i)
      EXPECT_TRUE(close(fast.first[i], general.first[i]))
          << impl_name << " row " << i << ": " << fast.first[i] << " vs " << general.first[i];
    EXPECT_EQ(std::memcmp(fast.second.data(), general.second.data(), dense.size() * sizeof(float)),
              0)
        << impl_name << " gradient";
  }
}

// multilabel_margin_loss's range check covers the whole target, past each row's -1 (PyTorch's
// CPU kernel checks a global min and max), on every ISA: its chunks run over the threads
// (KernelTable::int64_in_range), and the error names the first offending value. forward,
// backward and forward_backward all refuse.
TEST(OptimizedCpu, MultilabelMarginRangeCheckCoversWholeTarget) {
  const std::int64_t N = 1200, C = 1000;  // 1.2M entries: more than 16 chunks of 2^16
  std::vector<float> x(static_cast<std::size_t>(N * C), 0.5f), grad(x.size());
  for (const auto& [where, value] :
       {std::pair<std::int64_t, std::int64_t>{N * C - 1, C}, {N * C / 2 + 7, -2}, {3, C + 5}}) {
    std::vector<std::int64_t> target(x.size(), -1);
    target[static_cast<std::size_t>(where)] = value;
    for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
      const lb_impl* impl = conformance::find_implementation(impl_name);
      if (impl->supports("multilabel_margin_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "sum") == 0)
        continue;
      std::int64_t xs[2] = {N, C}, xst[2] = {C, 1}, one[1] = {1};
      lb_tensor in[2] = {{"input", x.data(), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}},
                         {"target", target.data(), LB_INT64, 2, xs, xst, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("multilabel_margin_loss", "sum", in, 2);
      float loss = 0.0f, up = 1.0f;
      lb_tensor out{"output", &loss, LB_FLOAT32, 0, one, one, {LB_DEVICE_CPU, 0}};
      lb_tensor go{"grad_output", &up, LB_FLOAT32, 0, one, one, {LB_DEVICE_CPU, 0}};
      lb_tensor g{"input", grad.data(), LB_FLOAT32, 2, xs, xst, {LB_DEVICE_CPU, 0}};
      const std::string expect = "out of range: " + std::to_string(value) + " ";
      char err[256] = {};
      EXPECT_NE(impl->forward(&call, &out, err, sizeof err), LB_OK);
      EXPECT_NE(std::string(err).find(expect), std::string::npos) << impl_name << ": " << err;
      err[0] = 0;
      EXPECT_NE(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK);
      EXPECT_NE(std::string(err).find(expect), std::string::npos) << impl_name << ": " << err;
      err[0] = 0;
      EXPECT_NE(lb_forward_backward_of(impl)(&call, &out, &go, &g, 1, err, sizeof err), LB_OK);
      EXPECT_NE(std::string(err).find(expect), std::string::npos) << impl_name << ": " << err;
    }
  }
}

// float64 row sums that overflow: two DBL_MAX hinges then an infinite one. The exact loss is
// +inf; a double-double sum whose TwoSum overflows has a NaN error term, which gave NaN (fuzz,
// seed 20261201: multi_margin_loss/fuzz/5e856b29bceebcd6). multi_margin_loss and
// multilabel_margin_loss, every ISA, 'none' and 'sum'.
TEST(OptimizedCpu, Float64RowSumOverflowIsInfinity) {
  const double big = 0x1.fffffffffffffp+1023;
  std::vector<double> x = {big, big, HUGE_VAL, 0.0};
  std::vector<std::int64_t> y = {3}, listed = {3, -1, -1, -1};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("multi_margin_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    for (const char* loss : {"multi_margin_loss", "multilabel_margin_loss"})
      for (const char* reduction : {"none", "sum"}) {
        const bool multilabel = std::strcmp(loss, "multilabel_margin_loss") == 0;
        std::int64_t xs[2] = {1, 4}, xst[2] = {4, 1}, ts[1] = {1}, tst[1] = {1};
        lb_tensor in[2] = {
            {"input", x.data(), LB_FLOAT64, 2, xs, xst, {LB_DEVICE_CPU, 0}},
            multilabel
                ? lb_tensor{"target", listed.data(), LB_INT64, 2, xs, xst, {LB_DEVICE_CPU, 0}}
                : lb_tensor{"target", y.data(), LB_INT64, 1, ts, tst, {LB_DEVICE_CPU, 0}}};
        lb_call call = cpu_call(loss, reduction, in, 2);
        double v = 0.0;
        const bool none = std::strcmp(reduction, "none") == 0;
        lb_tensor out{"output", &v, LB_FLOAT64, none ? 1 : 0, ts, tst, {LB_DEVICE_CPU, 0}};
        char err[256] = {};
        ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
        EXPECT_EQ(v, HUGE_VAL) << impl_name << " " << loss << " " << reduction;
      }
  }
}

// ctc_loss's gradients from the double-double recursions (drivers/ctc.cpp: grad_linear_dd
// and any_cancels' fallback for float32) over the corpus' ctc_loss cases with flat
// budgets and no PyTorch allowance: float64 within 2 ULP (the double recursions were off by up to
// 2.6e4 ULP, within budgets.txt's 4*torch), float32 within 1 (they were at 1.15). Every ISA.
TEST(OptimizedCpu, CtcGradientsWithinFlatBudgets) {
  const std::string budgets = test_temp("ctc-flat-budgets.txt");
  {
    std::ofstream b(budgets);
    b << "cpu*  ctc_loss  float64  *  *  2\ncpu*  ctc_loss  *  *  *  1\n";
  }
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("ctc_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "mean") == 0) continue;
    conformance::CheckOptions o;
    o.impl = impl_name;
    o.golden = kGolden;
    o.filter = "ctc_loss/*";
    o.budgets = budgets;
    o.repro_dir = test_temp(std::string("repro-ctc-") + impl_name);
    std::ostringstream out, err;
    EXPECT_EQ(conformance::run_check(o, out, err), 0) << impl_name << "\n"
                                                      << out.str() << err.str();
  }
}

// ctc_loss float64 where the only path to the end starts e^-2000 below the most likely state of
// t = 0 (lp(1) = -2000.3 at t = 0; at t = 1 the label is impossible, lp = -inf): the
// double-double linear-space recursion keeps each state's own exponent, so the state survives
// (one scale per row would flush it), and nll = 2000.3 + 0.7 exactly as the two lps add. Every
// ISA, reductions 'sum' and 'none'.
TEST(OptimizedCpu, CtcFloat64KeepsStatesFarBelowTheRowMaximum) {
  const std::int64_t T = 2, N = 1, C = 3;
  // (T, N, C): blank 0, label 1, an unused class 2.
  double x[6] = {0.0, -2000.3, -1.0, -0.7, -HUGE_VAL, -2.0};
  std::int64_t tg[1] = {1}, il[1] = {2}, tl[1] = {1};
  std::int64_t xs[3] = {T, N, C}, xst[3] = {N * C, C, 1}, ts[2] = {N, 1}, tst[2] = {1, 1},
               ns[1] = {N}, one[1] = {1};
  const double want = 2000.3 + 0.7;
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("ctc_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    for (const char* reduction : {"sum", "none"}) {
      lb_tensor in[4] = {{"log_probs", x, LB_FLOAT64, 3, xs, xst, {LB_DEVICE_CPU, 0}},
                         {"targets", tg, LB_INT64, 2, ts, tst, {LB_DEVICE_CPU, 0}},
                         {"input_lengths", il, LB_INT64, 1, ns, one, {LB_DEVICE_CPU, 0}},
                         {"target_lengths", tl, LB_INT64, 1, ns, one, {LB_DEVICE_CPU, 0}}};
      lb_call call = cpu_call("ctc_loss", reduction, in, 4);
      double out = NAN;
      lb_tensor o{"output", &out, LB_FLOAT64,        std::strcmp(reduction, "none") == 0 ? 1 : 0,
                  ns,       one,  {LB_DEVICE_CPU, 0}};
      char err[256] = {};
      ASSERT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << impl_name << ": " << err;
      EXPECT_EQ(out, want) << impl_name << " " << reduction;
    }
  }
}

// ctc_loss's fast paths (contiguous classes: the ISA's vector recursion, kernels.hpp CtcSample;
// float64 on AVX-512: the double-double one, isa/ctc_dd.hpp) against the general path (the same
// log_probs with a class stride of 2: the scalar recursion, in double for float32 and in
// double-double for float64), every ISA, both blanks and zero_infinity settings. The samples
// cover repeated labels (consecutive and not), S = 0, L = 1, L = 0, an impossible alignment
// (infinite nll), -inf log_probs (a label's, the blank's, a class outside the target), +inf (the
// blank's with blank 36, else outside the target), a NaN emission and (float64) a label's
// emission below the vector kernels' range (-5e4): samples with a NaN or +inf emission fall back
// to the general path, and so, for float64, does the sample with that emission and the one with
// an infinite log_prob anywhere. Losses within one ULP of the dtype (float32: both run the
// recursion in double, and differ by a few double ULPs of the nll; float64: both in
// double-double). Gradients within one ULP or, where exp(lp) and the posterior cancel, within
// tol exp(lp) |gr| absolute: float32 2^-36 (the posterior's exponent, lcab + nll - lp, is
// rounded in double at the magnitude of nll, here up to about 2^9, so 2^-43 absolute, and a
// few times that after the recursion's steps; the two paths round it differently); float64
// 2^-62 (each path's probabilities are within about 2^-80 per step, over 90 steps; outside the
// target the fast path rounds exp(lp) gr once, the general path twice). The fast path's results
// are also bitwise the same with 1, 2 and 3 threads.
template <class T>
bool within_one_ulp_of(T a, T b) {
  if (a == b || (std::isnan(a) && std::isnan(b))) return true;
  return std::fabs(a - b) <= std::nextafter(std::fabs(b), T(HUGE_VAL)) - std::fabs(b);
}

template <class T>
void check_ctc_fast_path(std::int32_t dtype, double tol) {
  const std::int64_t T_ = 90, N = 8, C = 37, Smax = 40;
  constexpr T kInf = std::numeric_limits<T>::infinity();
  std::mt19937_64 rng(17);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::vector<T> dense(static_cast<std::size_t>(T_ * N * C)), strided(dense.size() * 2, T(0));
  for (std::int64_t r = 0; r < T_ * N; ++r) {
    double z[C], m = -HUGE_VAL, s = 0.0;
    for (auto& v : z) m = std::max(m, v = normal(rng));
    for (double v : z) s += std::exp(v - m);
    for (std::int64_t k = 0; k < C; ++k)
      dense[static_cast<std::size_t>(r * C + k)] = static_cast<T>(z[k] - m - std::log(s));
  }
  const std::int64_t il[N] = {90, 90, 1, 0, 10, 90, 77, 50};
  const std::int64_t tl[N] = {25, 0, 1, 2, 12, 30, 33, 10};
  std::vector<std::int64_t> tg(static_cast<std::size_t>(N * Smax), 1);
  for (std::int64_t b = 0; b < N; ++b)
    for (std::int64_t j = 0; j < tl[b]; ++j)  // labels in [1, 36): b = 0 from 4 labels (repeats)
      tg[static_cast<std::size_t>(b * Smax + j)] =
          1 + static_cast<std::int64_t>(rng() % (b == 0 ? 4 : 35));
  const auto at = [&](std::int64_t t, std::int64_t b, std::int64_t k) -> T& {
    return dense[static_cast<std::size_t>((t * N + b) * C + k)];
  };
  at(40, 5, tg[5 * Smax + 7]) = -kInf;  // a label's emission
  at(41, 5, 0) = -kInf;                 // the blank (blank 0)
  at(42, 5, 36) = -kInf;                // the blank (blank 36)
  at(30, 0, 0) = -kInf;                 // outside sample 0's labels, or its blank
  at(5, 6, 36) = kInf;                  // blank 36, else outside the target
  at(20, 7, tg[7 * Smax + 3]) = std::numeric_limits<T>::quiet_NaN();
  if (dtype == LB_FLOAT64) at(3, 4, tg[4 * Smax + 5]) = T(-5e4);
  for (std::size_t i = 0; i < dense.size(); ++i) strided[2 * i] = dense[i];
  std::vector<T> up(static_cast<std::size_t>(N));
  for (std::int64_t b = 0; b < N; ++b)
    up[static_cast<std::size_t>(b)] = T(0.5) + T(0.25) * static_cast<T>(b);
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("ctc_loss", dtype, {LB_DEVICE_CPU, 0}, "none") == 0) continue;
    for (std::int64_t blank : {0, 36})
      for (bool zero_infinity : {false, true}) {
        const auto run = [&](T* x, std::int64_t stride, std::vector<T>& loss,
                             std::vector<T>& grad) {
          std::int64_t xs[3] = {T_, N, C}, xst[3] = {N * C * stride, C * stride, stride},
                       gst[3] = {N * C, C, 1}, ts[2] = {N, Smax}, tst[2] = {Smax, 1}, ns[1] = {N},
                       one[1] = {1};
          lb_tensor in[4] = {{"log_probs", x, dtype, 3, xs, xst, {LB_DEVICE_CPU, 0}},
                             {"targets", tg.data(), LB_INT64, 2, ts, tst, {LB_DEVICE_CPU, 0}},
                             {"input_lengths",
                              const_cast<std::int64_t*>(il),
                              LB_INT64,
                              1,
                              ns,
                              one,
                              {LB_DEVICE_CPU, 0}},
                             {"target_lengths",
                              const_cast<std::int64_t*>(tl),
                              LB_INT64,
                              1,
                              ns,
                              one,
                              {LB_DEVICE_CPU, 0}}};
          lb_param params[2] = {};
          params[0].name = "blank";
          params[0].type = LB_PARAM_INT;
          params[0].i = blank;
          params[1].name = "zero_infinity";
          params[1].type = LB_PARAM_BOOL;
          params[1].b = zero_infinity ? 1 : 0;
          lb_call call = cpu_call("ctc_loss", "none", in, 4, params, 2);
          loss.assign(static_cast<std::size_t>(N), T(0));
          grad.assign(dense.size(), T(1));
          lb_tensor out{"output", loss.data(), dtype, 1, ns, one, {LB_DEVICE_CPU, 0}};
          lb_tensor go{"grad_output", up.data(), dtype, 1, ns, one, {LB_DEVICE_CPU, 0}};
          lb_tensor g{"log_probs", grad.data(), dtype, 3, xs, gst, {LB_DEVICE_CPU, 0}};
          char err[256] = {};
          ASSERT_EQ(impl->forward(&call, &out, err, sizeof err), LB_OK) << err;
          ASSERT_EQ(impl->backward(&call, &go, &g, 1, err, sizeof err), LB_OK) << err;
        };
        std::vector<T> loss_fast, grad_fast, loss_general, grad_general;
        {
          EnvGuard one_thread("LOSSBENCH_CPU_THREADS", "1");
          run(dense.data(), 1, loss_fast, grad_fast);
        }
        run(strided.data(), 2, loss_general, grad_general);
        const std::string where = std::string(impl_name) + " blank " + std::to_string(blank) +
                                  " zero_infinity " + std::to_string(zero_infinity);
        // The fast path is bitwise the same for any thread count (one sample per iteration).
        for (const char* threads : {"2", "3"}) {
          EnvGuard many("LOSSBENCH_CPU_THREADS", threads);
          std::vector<T> loss_many, grad_many;
          run(dense.data(), 1, loss_many, grad_many);
          EXPECT_EQ(std::memcmp(loss_many.data(), loss_fast.data(), loss_fast.size() * sizeof(T)),
                    0)
              << where << " threads " << threads;
          EXPECT_EQ(std::memcmp(grad_many.data(), grad_fast.data(), grad_fast.size() * sizeof(T)),
                    0)
              << where << " threads " << threads;
        }
        for (std::int64_t b = 0; b < N; ++b)
          EXPECT_TRUE(within_one_ulp_of(loss_fast[b], loss_general[b]))
              << where << " sample " << b << ": " << loss_fast[b] << " vs " << loss_general[b];
        EXPECT_EQ(loss_fast[3], zero_infinity ? T(0) : kInf) << where;  // L = 0, S = 2
        int bad = 0;
        for (std::size_t i = 0; i < grad_fast.size() && bad < 5; ++i) {
          const T a = grad_fast[i], b = grad_general[i];
          const double scale =
              std::exp(static_cast<double>(dense[i])) * static_cast<double>(up[i / C % N]);
          if (within_one_ulp_of(a, b) ||
              std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= tol * scale)
            continue;
          ++bad;
          ADD_FAILURE() << where << " grad " << i << " (t " << i / (N * C) << ", sample "
                        << i / C % N << ", class " << i % C << "): " << a << " vs " << b;
        }
      }
  }
}

TEST(OptimizedCpu, CtcFastPathMatchesGeneralPath) {
  check_ctc_fast_path<float>(LB_FLOAT32, 0x1p-36);
}
TEST(OptimizedCpu, CtcFloat64FastPathMatchesGeneralPath) {
  check_ctc_fast_path<double>(LB_FLOAT64, 0x1p-62);
}

// Tensors written with non-temporal stores (written tensors of 16 MiB or more whose blocks or rows
// start 64-byte aligned) hold bitwise what plain stores write: the same call, once into a 64-byte
// aligned buffer and once into one 4 bytes past it (never streamed), on every ISA. The buffers
// start as NaN, so an element a streamed store missed fails too. Covers the dense elementwise
// forward ('none' output), backward and forward_backward, cross_entropy's fused float32 rows
// (rows of 8200 classes: every other row starts aligned), multi_margin_loss's and
// multilabel_margin_loss's fused rows, triplet_margin_loss's p = 2 gradient rows and nll_loss's
// rows of zeros; float64 cross_entropy's fused rows and nll_loss's rows of zeros.
TEST(OptimizedCpu, StreamedStoresMatchPlainStores) {
  constexpr std::int64_t kElems = 4 * 1024 * 1024 + 4100;  // > 16 MiB of float32
  constexpr std::int64_t N = 520, C = 8200;                // cross_entropy / nll_loss: N * C > 4 Mi
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> a(kElems), b(kElems), x(static_cast<std::size_t>(N * C));
  for (auto& v : a) v = normal(rng);
  for (auto& v : b) v = normal(rng);
  for (auto& v : x) v = normal(rng);
  std::vector<std::int64_t> t(static_cast<std::size_t>(N));
  for (auto& v : t) v = static_cast<std::int64_t>(rng() % C);
  t[3] = -100;                      // ignored: a row of zeros only
  std::vector<std::int64_t> tm(t);  // multi_margin_loss: every target a class
  tm[3] = 7;
  std::vector<std::int64_t> listed(static_cast<std::size_t>(N * C), -1);  // multilabel: 3 each
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t k = 0; k < 3; ++k)
      listed[static_cast<std::size_t>(r * C + k)] = static_cast<std::int64_t>(rng() % C);
  // A NaN-filled destination of n floats, 64-byte aligned or 4 bytes past that.
  struct Dest {
    std::vector<float> storage;
    float* p = nullptr;
    Dest(std::int64_t n, bool aligned) : storage(static_cast<std::size_t>(n + 32), NAN) {
      const auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
      p = storage.data() + (64 - addr % 64) % 64 / sizeof(float) + (aligned ? 0 : 1);
    }
  };
  const lb_device cpu{LB_DEVICE_CPU, 0};
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("mse_loss", LB_FLOAT32, cpu, "none") == 0) continue;
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    ASSERT_NE(fb, nullptr);
    // mode 0: forward 'none'; 1: backward of 'mean'; 2: forward_backward of 'none'.
    for (int mode = 0; mode < 3; ++mode) {
      std::vector<float> results[2];
      for (bool aligned : {true, false}) {
        std::int64_t shape[1] = {kElems}, unit[1] = {1};
        lb_tensor in[2] = {{"input", a.data(), LB_FLOAT32, 1, shape, unit, cpu},
                           {"target", b.data(), LB_FLOAT32, 1, shape, unit, cpu}};
        lb_call call = cpu_call("mse_loss", mode == 1 ? "mean" : "none", in, 2);
        Dest out(kElems, aligned), ga(kElems, aligned), gb(kElems, aligned);
        std::vector<float> up(kElems, 0.75f), scalar_out(1), one(1, 1.0f);
        const bool none = mode != 1;
        lb_tensor o{
            "output", none ? out.p : scalar_out.data(), LB_FLOAT32, none ? 1 : 0, shape, unit, cpu};
        lb_tensor go{"grad_output",
                     none ? up.data() : one.data(),
                     LB_FLOAT32,
                     none ? 1 : 0,
                     shape,
                     unit,
                     cpu};
        lb_tensor g[2] = {{"input", ga.p, LB_FLOAT32, 1, shape, unit, cpu},
                          {"target", gb.p, LB_FLOAT32, 1, shape, unit, cpu}};
        char err[256] = {};
        if (mode == 0) {
          ASSERT_EQ(impl->forward(&call, &o, err, sizeof err), LB_OK) << err;
        } else if (mode == 1) {
          ASSERT_EQ(impl->backward(&call, &go, g, 2, err, sizeof err), LB_OK) << err;
        } else {
          ASSERT_EQ(fb(&call, &o, &go, g, 2, err, sizeof err), LB_OK) << err;
        }
        auto& r = results[aligned ? 0 : 1];
        if (mode != 1) r.insert(r.end(), out.p, out.p + kElems);
        if (mode != 0) {
          r.insert(r.end(), ga.p, ga.p + kElems);
          r.insert(r.end(), gb.p, gb.p + kElems);
        }
      }
      ASSERT_EQ(results[0].size(), results[1].size());
      std::size_t nan = 0;
      for (const float v : results[0]) nan += std::isnan(v) ? 1 : 0;
      EXPECT_EQ(nan, 0u) << impl_name << " mse_loss mode " << mode << ": elements not written";
      EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * 4), 0)
          << impl_name << " mse_loss mode " << mode;
    }
    // cross_entropy, multi_margin_loss and multilabel_margin_loss forward_backward and nll_loss
    // backward, 'mean'.
    for (const char* loss :
         {"cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss"}) {
      const bool multi = std::strcmp(loss, "multi_margin_loss") == 0;
      const bool multilabel = std::strcmp(loss, "multilabel_margin_loss") == 0;
      std::vector<float> results[2];
      float losses[2] = {};
      for (bool aligned : {true, false}) {
        std::int64_t xs[2] = {N, C}, xst[2] = {C, 1}, ts[1] = {N}, tst[1] = {1};
        lb_tensor in[2] = {
            {"input", x.data(), LB_FLOAT32, 2, xs, xst, cpu},
            multilabel
                ? lb_tensor{"target", listed.data(), LB_INT64, 2, xs, xst, cpu}
                : lb_tensor{"target", multi ? tm.data() : t.data(), LB_INT64, 1, ts, tst, cpu}};
        lb_call call = cpu_call(loss, "mean", in, 2);
        Dest g(N * C, aligned);
        float loss_value = 0.0f, one = 1.0f;
        lb_tensor o{"output", &loss_value, LB_FLOAT32, 0, nullptr, nullptr, cpu};
        lb_tensor go{"grad_output", &one, LB_FLOAT32, 0, nullptr, nullptr, cpu};
        lb_tensor gt{"input", g.p, LB_FLOAT32, 2, xs, xst, cpu};
        char err[256] = {};
        if (std::strcmp(loss, "nll_loss") != 0) {
          ASSERT_EQ(fb(&call, &o, &go, &gt, 1, err, sizeof err), LB_OK) << err;
        } else {
          ASSERT_EQ(impl->backward(&call, &go, &gt, 1, err, sizeof err), LB_OK) << err;
        }
        results[aligned ? 0 : 1].assign(g.p, g.p + N * C);
        losses[aligned ? 0 : 1] = loss_value;
      }
      std::size_t nan = 0;
      for (const float v : results[0]) nan += std::isnan(v) ? 1 : 0;
      EXPECT_EQ(nan, 0u) << impl_name << " " << loss << ": gradient elements not written";
      EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * 4), 0)
          << impl_name << " " << loss;
      EXPECT_EQ(std::memcmp(&losses[0], &losses[1], sizeof(float)), 0) << impl_name << " " << loss;
    }
    // The same for float64 cross_entropy forward_backward (on AVX-512 the float64 table's
    // rows, isa/ce_dd.hpp) and nll_loss backward (rows of zeros), 'mean'; the destination 8
    // bytes past 64-byte alignment for the plain stores.
    {
      const std::vector<double> x64(x.begin(), x.end());
      for (const char* loss : {"cross_entropy", "nll_loss"}) {
        std::vector<double> results[2];
        double losses[2] = {};
        for (bool aligned : {true, false}) {
          std::int64_t xs[2] = {N, C}, xst[2] = {C, 1}, ts[1] = {N}, tst[1] = {1};
          lb_tensor in[2] = {
              {"input", const_cast<double*>(x64.data()), LB_FLOAT64, 2, xs, xst, cpu},
              {"target", t.data(), LB_INT64, 1, ts, tst, cpu}};
          lb_call call = cpu_call(loss, "mean", in, 2);
          std::vector<double> storage(static_cast<std::size_t>(N * C + 16), NAN);
          const auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
          double* gp = storage.data() + (64 - addr % 64) % 64 / sizeof(double) + (aligned ? 0 : 1);
          double loss_value = 0.0, one = 1.0;
          lb_tensor o{"output", &loss_value, LB_FLOAT64, 0, nullptr, nullptr, cpu};
          lb_tensor go{"grad_output", &one, LB_FLOAT64, 0, nullptr, nullptr, cpu};
          lb_tensor gt{"input", gp, LB_FLOAT64, 2, xs, xst, cpu};
          char err[256] = {};
          if (std::strcmp(loss, "nll_loss") != 0) {
            ASSERT_EQ(fb(&call, &o, &go, &gt, 1, err, sizeof err), LB_OK) << err;
          } else {
            ASSERT_EQ(impl->backward(&call, &go, &gt, 1, err, sizeof err), LB_OK) << err;
          }
          results[aligned ? 0 : 1].assign(gp, gp + N * C);
          losses[aligned ? 0 : 1] = loss_value;
        }
        std::size_t nan = 0;
        for (const double v : results[0]) nan += std::isnan(v) ? 1 : 0;
        EXPECT_EQ(nan, 0u) << impl_name << " float64 " << loss << ": gradient elements not written";
        EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * 8), 0)
            << impl_name << " float64 " << loss;
        EXPECT_EQ(std::memcmp(&losses[0], &losses[1], sizeof(double)), 0)
            << impl_name << " float64 " << loss;
      }
    }
    // triplet_margin_loss (p = 2, with swap) forward_backward, 'mean': three gradients of rows
    // of 8200 features (KernelTable::triplet2_grad_row_f32).
    {
      std::vector<float> xp(x.size()), xn(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        xp[i] = x[i] + 0.25f * normal(rng);
        xn[i] = normal(rng);
      }
      std::vector<float> results[2];
      for (bool aligned : {true, false}) {
        std::int64_t xs[2] = {N, C}, xst[2] = {C, 1};
        const std::vector<float>* src[3] = {&x, &xp, &xn};
        const char* names[3] = {"anchor", "positive", "negative"};
        lb_tensor in[3];
        for (int k = 0; k < 3; ++k)
          in[k] = {names[k], const_cast<float*>(src[k]->data()), LB_FLOAT32, 2, xs, xst, cpu};
        lb_param swap{};
        swap.name = "swap";
        swap.type = LB_PARAM_BOOL;
        swap.b = 1;
        lb_call call = cpu_call("triplet_margin_loss", "mean", in, 3, &swap, 1);
        Dest g0(N * C, aligned), g1(N * C, aligned), g2(N * C, aligned);
        float loss_value = 0.0f, one = 1.0f;
        lb_tensor o{"output", &loss_value, LB_FLOAT32, 0, nullptr, nullptr, cpu};
        lb_tensor go{"grad_output", &one, LB_FLOAT32, 0, nullptr, nullptr, cpu};
        lb_tensor gt[3] = {{"anchor", g0.p, LB_FLOAT32, 2, xs, xst, cpu},
                           {"positive", g1.p, LB_FLOAT32, 2, xs, xst, cpu},
                           {"negative", g2.p, LB_FLOAT32, 2, xs, xst, cpu}};
        char err[256] = {};
        ASSERT_EQ(fb(&call, &o, &go, gt, 3, err, sizeof err), LB_OK) << err;
        auto& r = results[aligned ? 0 : 1];
        for (const Dest* d : {&g0, &g1, &g2}) r.insert(r.end(), d->p, d->p + N * C);
        r.push_back(loss_value);
      }
      std::size_t nan = 0;
      for (const float v : results[0]) nan += std::isnan(v) ? 1 : 0;
      EXPECT_EQ(nan, 0u) << impl_name << " triplet_margin_loss: gradient elements not written";
      EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * 4), 0)
          << impl_name << " triplet_margin_loss";
    }
    // cosine_embedding_loss forward_backward, 'sum': both gradients of rows of 8200 features
    // (KernelTable::cos_grad_row_f32), targets +-1.
    {
      std::vector<float> x2(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) x2[i] = x[i] + normal(rng);
      std::vector<float> y(static_cast<std::size_t>(N));
      for (std::size_t r = 0; r < y.size(); ++r) y[r] = r % 3 == 0 ? -1.0f : 1.0f;
      std::vector<float> results[2];
      for (bool aligned : {true, false}) {
        std::int64_t xs[2] = {N, C}, xst[2] = {C, 1}, ys[1] = {N}, yst[1] = {1};
        lb_tensor in[3] = {{"input1", x.data(), LB_FLOAT32, 2, xs, xst, cpu},
                           {"input2", x2.data(), LB_FLOAT32, 2, xs, xst, cpu},
                           {"target", y.data(), LB_FLOAT32, 1, ys, yst, cpu}};
        lb_call call = cpu_call("cosine_embedding_loss", "sum", in, 3);
        Dest g0(N * C, aligned), g1(N * C, aligned);
        float loss_value = 0.0f, one = 1.0f;
        lb_tensor o{"output", &loss_value, LB_FLOAT32, 0, nullptr, nullptr, cpu};
        lb_tensor go{"grad_output", &one, LB_FLOAT32, 0, nullptr, nullptr, cpu};
        lb_tensor gt[2] = {{"input1", g0.p, LB_FLOAT32, 2, xs, xst, cpu},
                           {"input2", g1.p, LB_FLOAT32, 2, xs, xst, cpu}};
        char err[256] = {};
        ASSERT_EQ(fb(&call, &o, &go, gt, 2, err, sizeof err), LB_OK) << err;
        auto& r = results[aligned ? 0 : 1];
        for (const Dest* d : {&g0, &g1}) r.insert(r.end(), d->p, d->p + N * C);
        r.push_back(loss_value);
      }
      std::size_t nan = 0;
      for (const float v : results[0]) nan += std::isnan(v) ? 1 : 0;
      EXPECT_EQ(nan, 0u) << impl_name << " cosine_embedding_loss: gradient elements not written";
      EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * 4), 0)
          << impl_name << " cosine_embedding_loss";
    }
  }
}

// ---------------------------------------------------------------- cpu-fast

// The cpu-fast table's float functions (isa/simd_f32.hpp) on float inputs: every 9973rd bit
// pattern (both signs, subnormals, infinities and NaNs among them) and some edges, in float ULPs
// of the result against glibc's double functions (far closer than a float ULP). The bounds are
// those measured over every 7th pattern (exp 0.93, log 1.39, log1p 1.92, softplus's tail 2.14
// ULP) with a small margin; expm1 is Highway's (documented at 4 ULP); 1/x (positive normal x
// only) is rcp14 and one Newton step. Results beyond float's range must be its inf or 0.
TEST(OptimizedCpu, FastFloatMath) {
  if (!machine_has(Isa::avx512)) GTEST_SKIP() << "no AVX-512 here";
  std::vector<double> in;
  for (std::uint64_t b = 0; b < (1ull << 32); b += 9973) {
    const auto bits = static_cast<std::uint32_t>(b);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    in.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 1.0f, -1.0f, 0x1p-149f, 0x1p-126f, 88.72f, 88.73f, -103.9f, -87.4f,
                  HUGE_VALF, -HUGE_VALF, std::nextafter(1.0f, 2.0f), std::nextafter(1.0f, 0.0f),
                  std::nextafter(-1.0f, 0.0f), 0x1p-25f, -0x1p-25f, 0.984375f, 0.9375f})
    in.push_back(f);
  in.resize((in.size() + 15) / 16 * 16, 1.0);
  const struct {
    int fn;
    const char* name;
    double bound;
    double (*ref)(double);
  } fns[] = {
      {0, "exp", 1.0, [](double x) { return std::exp(x); }},
      {1, "log", 1.5, [](double x) { return std::log(x); }},
      {2, "log1p", 2.0, [](double x) { return std::log1p(x); }},
      {3, "expm1", 4.0, [](double x) { return std::expm1(x); }},
      {4, "softplus_tail", 2.25, [](double x) { return std::log1p(std::exp(-std::fabs(x))); }},
      {5, "1/x", 1.0, [](double x) { return 1.0 / x; }}};
  for (const auto& f : fns) {
    std::vector<double> out(in.size());
    avx512_fast_kernels().math(f.fn, in.data(), out.data(), in.size());
    double worst = 0.0;
    int bad = 0;
    for (std::size_t i = 0; i < in.size() && bad < 5; ++i) {
      if (f.fn == 5 && !(in[i] >= 0x1p-126 && in[i] <= 0x1p126)) continue;  // its domain
      const double want = f.ref(in[i]);
      double err;
      if (std::isnan(want)) {
        err = std::isnan(out[i]) ? 0.0 : HUGE_VAL;
      } else if (std::fabs(want) > FLT_MAX) {
        err = out[i] == static_cast<float>(want) ? 0.0 : HUGE_VAL;  // float's inf
      } else {
        const int e = std::max(std::ilogb(static_cast<float>(want)), -126);
        err = std::fabs(out[i] - want) / std::ldexp(1.0, e - 23);  // 0 gives 0 or a subnormal's
      }
      worst = std::max(worst, err);
      if (!(err <= f.bound)) {
        ++bad;
        ADD_FAILURE() << f.name << "(" << std::hexfloat << in[i] << ") = " << out[i] << ", glibc "
                      << want << std::defaultfloat << ": " << err << " ULP > " << f.bound;
      }
    }
    std::printf("[cpu-fast] %-14s max %.3f float ULP\n", f.name, worst);
  }
}

// cpu-fast's float32 kernels on the elementwise losses that have them: every output and gradient
// element within 4 float ULPs of cpu's (which is within 1 of the exact value) on random inputs,
// counted at the scale of the terms where a result cancels below them (float keeps fewer of its
// bits there): at least 8, above the largest such term these inputs make (|log v|, |log y| up to
// 6.9 for v, y >= 0.001, in gaussian_nll_loss's log v + d^2 / v and kl_div's y (log y - x);
// binary_cross_entropy_with_logits's (1 - y) sigmoid(x) - y sigmoid(-x) near its zero).
// forward+backward in one pass bitwise the two calls; the same bits with
// 1, 2 and 3 threads. Where cpu-fast has no kernel of its own (float64; float32 tensors with a
// stride, which take the gather path; the losses without exp/log) it is cpu-avx512, bit for bit.
TEST(OptimizedCpu, FastFloat32Kernels) {
  if (!machine_has(Isa::avx512)) GTEST_SKIP() << "no AVX-512 here";
  const std::set<std::string> fast = {"binary_cross_entropy", "binary_cross_entropy_with_logits",
                                      "soft_margin_loss",     "poisson_nll_loss",
                                      "gaussian_nll_loss",    "kl_div"};
  std::mt19937_64 rng(29);
  std::set<std::string> seen;
  for (const auto& c : elementwise_cases()) {
    const auto values = draw_inputs<float>(rng, c);
    const bool own = fast.count(c.loss) != 0;
    if (own) seen.insert(c.loss);
    for (const char* reduction : {"none", "sum"}) {
      const auto f = run_layout<float>("cpu-fast", c.loss, reduction, values, c.names, false);
      const auto ref = run_layout<float>("cpu-avx512", c.loss, reduction, values, c.names, false);
      ASSERT_EQ(f.size(), ref.size());
      if (!own) {
        EXPECT_EQ(std::memcmp(f.data(), ref.data(), f.size() * sizeof(double)), 0) << c.loss;
      } else {
        int bad = 0;
        std::size_t differ = 0;
        for (std::size_t i = 0; i < f.size() && bad < 5; ++i) {
          const float b = std::max(std::fabs(static_cast<float>(ref[i])), 8.0f);
          const double ulp = std::nextafter(b, HUGE_VALF) - b;
          differ += f[i] != ref[i] ? 1 : 0;
          if (!(std::fabs(f[i] - ref[i]) <= 4 * ulp)) {
            ++bad;
            ADD_FAILURE() << c.loss << " " << reduction << " element " << i << ": cpu-fast "
                          << std::hexfloat << f[i] << ", cpu " << ref[i] << std::defaultfloat;
          }
        }
        // The float evaluation is really taken: some elements differ from cpu's.
        EXPECT_GT(differ, 0u) << c.loss << " " << reduction;
      }
      EXPECT_EQ(run_layout<float>("cpu-fast", c.loss, reduction, values, c.names, false, true), f)
          << c.loss << " " << reduction << ": fused";
      for (const char* threads : {"1", "3"}) {
        EnvGuard g("LOSSBENCH_CPU_THREADS", threads);
        EXPECT_EQ(run_layout<float>("cpu-fast", c.loss, reduction, values, c.names, false), f)
            << c.loss << " " << reduction << " threads " << threads;
      }
      EXPECT_EQ(run_layout<float>("cpu-fast", c.loss, reduction, values, c.names, true),
                run_layout<float>("cpu-avx512", c.loss, reduction, values, c.names, true))
          << c.loss << " " << reduction << " strided";
      EXPECT_EQ(run_layout<double>("cpu-fast", c.loss, reduction, values, c.names, false),
                run_layout<double>("cpu-avx512", c.loss, reduction, values, c.names, false))
          << c.loss << " " << reduction << " float64";
    }
  }
  EXPECT_EQ(seen, fast);
}

// The corpus with cpu-fast's budgets (optimized/budgets.txt: 4 ULP, or 8 times PyTorch's own
// error, on its float32 losses; cpu's budgets elsewhere).
TEST(OptimizedCpu, FastCorpusWithinBudgets) {
  if (!machine_has(Isa::avx512)) GTEST_SKIP() << "no AVX-512 here";
  EXPECT_EQ(check("cpu-fast", test_temp("cpu-fast.json")), 0);
}

// PyTorch's value checks that the dense kernels make as they read the values (DenseIO::invalid;
// binary_cross_entropy's input and target outside [0, 1] or NaN, gaussian_nll_loss's negative
// var; a NaN var is no error): one offending element deep in a tensor of many blocks, on every
// path (forward, backward, forward+backward; reduced or not; float32 and float64; dense and
// strided) and implementation, gives LB_BAD_ARGUMENTS with PyTorch's message; the same tensors
// without it give LB_OK.
TEST(OptimizedCpu, ValueChecksInsideTheKernels) {
  std::mt19937_64 rng(31);
  std::uniform_real_distribution<double> unit(0.001, 0.999);
  const std::int64_t n = 5 * 4096 + 77;
  struct Bad {
    const char* loss;
    std::vector<const char*> names;
    int input;     // the tensor that gets the offending value
    double value;  // the value
    bool error;    // whether PyTorch rejects it
    const char* message;
  };
  const std::vector<Bad> bads = {
      {"binary_cross_entropy",
       {"input", "target"},
       0,
       1.5,
       true,
       "input should be between 0 and 1"},
      {"binary_cross_entropy", {"input", "target"}, 0, std::nan(""), true, "input should be"},
      {"binary_cross_entropy", {"input", "target"}, 1, -0.25, true, "target should be between"},
      {"gaussian_nll_loss", {"input", "target", "var"}, 2, -1.0, true, "var has negative"},
      {"gaussian_nll_loss", {"input", "target", "var"}, 2, std::nan(""), false, ""},
  };
  for (const char* impl_name : {"cpu-scalar", "cpu-avx2", "cpu-avx512", "cpu-fast"}) {
    const lb_impl* impl = conformance::find_implementation(impl_name);
    if (impl->supports("mse_loss", LB_FLOAT64, {LB_DEVICE_CPU, 0}, "sum") == 0) continue;
    const lb_forward_backward_fn fb = lb_forward_backward_of(impl);
    ASSERT_NE(fb, nullptr);
    for (const auto& b : bads)
      for (std::int32_t dtype : {LB_FLOAT32, LB_FLOAT64})
        for (const char* reduction : {"none", "sum"})
          for (bool strided : {false, true})
            for (int call = 0; call < 3; ++call)  // forward, backward, forward+backward
              for (bool offending : {true, false}) {
                const std::int64_t step = strided ? 2 : 1, size = dtype == LB_FLOAT32 ? 4 : 8;
                std::int64_t shape[1] = {n}, strides[1] = {step}, unit_stride[1] = {1};
                std::vector<std::vector<unsigned char>> data;
                std::vector<lb_tensor> in;
                for (std::size_t k = 0; k < b.names.size(); ++k) {
                  data.emplace_back(static_cast<std::size_t>(n * step * size));
                  for (std::int64_t i = 0; i < n; ++i) {
                    double v = unit(rng);
                    if (offending && static_cast<int>(k) == b.input && i == n - 4096 - 3)
                      v = b.value;
                    conformance::store_float(data[k].data(), dtype, i * step, v);
                  }
                }
                for (std::size_t k = 0; k < b.names.size(); ++k)
                  in.push_back(
                      {b.names[k], data[k].data(), dtype, 1, shape, strides, {LB_DEVICE_CPU, 0}});
                lb_call c =
                    cpu_call(b.loss, reduction, in.data(), static_cast<std::int32_t>(in.size()));
                const bool none = std::strcmp(reduction, "none") == 0;
                std::vector<double> out(static_cast<std::size_t>(n)), gout(out.size(), 0.5);
                std::vector<std::vector<double>> g(1, std::vector<double>(out.size()));
                const std::int32_t rank = none ? 1 : 0;
                lb_tensor o{"output", out.data(),  LB_FLOAT64,        rank,
                            shape,    unit_stride, {LB_DEVICE_CPU, 0}};
                lb_tensor go{"grad_output", gout.data(), LB_FLOAT64,        rank,
                             shape,         unit_stride, {LB_DEVICE_CPU, 0}};
                o.dtype = go.dtype = dtype;
                std::vector<unsigned char> gbytes(static_cast<std::size_t>(n * size));
                lb_tensor gt{"input",     gbytes.data(),     dtype, 1, shape,
                             unit_stride, {LB_DEVICE_CPU, 0}};
                char err[256] = {};
                const std::int32_t status = call == 0 ? impl->forward(&c, &o, err, sizeof err)
                                            : call == 1
                                                ? impl->backward(&c, &go, &gt, 1, err, sizeof err)
                                                : fb(&c, &o, &go, &gt, 1, err, sizeof err);
                const std::string where = std::string(impl_name) + " " + b.loss + " " +
                                          (dtype == LB_FLOAT32 ? "float32 " : "float64 ") +
                                          reduction + (strided ? " strided" : " dense") + " call " +
                                          std::to_string(call) + (offending ? " offending" : "");
                if (offending && b.error) {
                  EXPECT_EQ(status, LB_BAD_ARGUMENTS) << where;
                  EXPECT_NE(std::string(err).find(b.message), std::string::npos)
                      << where << ": " << err;
                } else {
                  EXPECT_EQ(status, LB_OK) << where << ": " << err;
                }
              }
  }
}

}  // namespace
}  // namespace lossbench::opt
