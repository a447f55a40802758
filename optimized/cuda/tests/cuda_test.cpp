// The CUDA backend ("cuda"): the losses of my_losses() (the elementwise ones, cross_entropy,
// nll_loss, multi_margin_loss, ctc_loss, multilabel_margin_loss, multilabel_soft_margin_loss).
// With a GPU: the committed golden corpus through the scorer within
// optimized/budgets.txt, 16-bit results correctly rounded in at least 99.9 % of elements, and
// reductions bitwise reproducible. Without one these skip ("no CUDA device"), and what runs is:
// the backend registers, reports itself unavailable and every case unsupported; and the formula
// headers compiled by nvcc give bit for bit the host compiler's values.
#include "cuda.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "conformance.hpp"
#include "cpu.hpp"
#include "formulas_nvcc.hpp"
#include "kernels.hpp"
#include "row_formulas.hpp"

namespace lossbench::opt {
namespace {

using conformance::ojson;

// The source tree: where the test was built, or $LOSSBENCH_SOURCE_DIR (a test binary carried
// to another machine, scripts/gpu-pack.sh).
std::string source_dir() {
  const char* s = std::getenv("LOSSBENCH_SOURCE_DIR");
  return s != nullptr && *s != '\0' ? s : LOSSBENCH_SOURCE_DIR;
}
const std::string kGolden = source_dir() + "/golden/corpus";
const std::string kBudgets = source_dir() + "/optimized/budgets.txt";

const std::set<std::string>& my_losses() {
  static const std::set<std::string> s = {
#define LOSSBENCH_CUDA_TEST_ID(id, F) #id,
      LOSSBENCH_OPT_LOSSES(LOSSBENCH_CUDA_TEST_ID)
          LOSSBENCH_OPT_CLASSIFICATION_LOSSES(LOSSBENCH_CUDA_TEST_ID)
#undef LOSSBENCH_CUDA_TEST_ID
              "ctc_loss",
      "multilabel_margin_loss",
      "multilabel_soft_margin_loss",
  };
  return s;
}

#define LOSSBENCH_NEED_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

// Runs the scorer over the corpus; verdict counts over this backend's losses, and the ids of the
// cases it refused (unsupported).
int check(std::map<std::string, int>& counts, std::string& summary,
          std::set<std::string>* refused = nullptr) {
  conformance::CheckOptions o;
  o.impl = "cuda";
  o.golden = kGolden;
  o.budgets = kBudgets;
  // Per process: ctest runs the tests that call this (CorpusWithinBudgets,
  // SixteenBitCorrectlyRounded) at once, in one TMPDIR.
  const std::string scratch = ::testing::TempDir() + "/lossbench-" + std::to_string(::getpid());
  o.json_out = scratch + "-cuda.json";
  o.repro_dir = scratch + "-repro-cuda";
  std::ostringstream out, err;
  const int rc = conformance::run_check(o, out, err);
  std::ifstream in(o.json_out);
  const ojson j = ojson::parse(in);
  in.close();
  if (rc == 0) {  // kept for inspection when the check fails
    std::error_code ec;
    std::filesystem::remove(o.json_out, ec);
    std::filesystem::remove_all(o.repro_dir, ec);
  }
  std::map<std::string, double> worst;
  for (const auto& c : j["cases"]) {
    const std::string loss = c["loss"].get<std::string>();
    if (!my_losses().count(loss)) continue;
    counts[c["verdict"].get<std::string>()]++;
    if (refused != nullptr && c["verdict"] == "unsupported")
      refused->insert(c["id"].get<std::string>());
    if (!c.contains("scores")) continue;
    for (const auto& [name, s] : c["scores"].items()) {
      const std::string key = loss + " " + c["dtype"].get<std::string>() + " " +
                              (name == "output" ? "forward" : "backward");
      const double u = s["max_ulp"].is_string() ? HUGE_VAL : s["max_ulp"].get<double>();
      worst[key] = std::max(worst[key], u);
    }
  }
  for (const auto& [k, u] : worst) std::printf("[cuda] %-52s max %.3f ULP\n", k.c_str(), u);
  summary = out.str();
  if (rc != 0) std::printf("%s\n", summary.c_str());
  return rc;
}

TEST(Cuda, RegisteredAndReportsItsDevice) {
  const lb_impl* impl = conformance::find_implementation("cuda");
  ASSERT_NE(impl, nullptr);
  EXPECT_STREQ(impl->name, "cuda");
  EXPECT_EQ(impl->native_device.type, LB_DEVICE_CUDA);
  std::printf("[cuda] version: %s\n", impl->version);
  const lb_device gpu{LB_DEVICE_CUDA, 0};
  EXPECT_EQ(impl->supports("no_such_loss", LB_FLOAT32, gpu, "mean"), 0);
  EXPECT_EQ(impl->supports("mse_loss", LB_FLOAT32, {LB_DEVICE_CPU, 0}, "mean"), 0);
  if (!cuda_available()) {
    EXPECT_NE(std::string(impl->version).find("no CUDA device"), std::string::npos);
    for (const auto& loss : my_losses())
      EXPECT_EQ(impl->supports(loss.c_str(), LB_FLOAT32, gpu, "mean"), 0) << loss;
  } else {
    for (const auto& loss : my_losses())
      for (std::int32_t dt : {LB_FLOAT64, LB_FLOAT32, LB_FLOAT16, LB_BFLOAT16})
        EXPECT_NE(impl->supports(loss.c_str(), dt, gpu, "mean"), 0) << loss << " " << dt;
  }
}

// `lossbench check --impl cuda` on a machine without a GPU: every case unsupported, nothing
// failed, and the summary names the reason.
TEST(Cuda, WithoutDeviceEverythingUnsupported) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  std::map<std::string, int> counts;
  std::string summary;
  EXPECT_EQ(check(counts, summary), 0);
  EXPECT_GT(counts["unsupported"], 0);
  EXPECT_EQ(counts.size(), 1u) << "only unsupported verdicts expected";
  EXPECT_NE(summary.find("no CUDA device"), std::string::npos) << summary;
}

TEST(Cuda, CorpusWithinBudgets) {
  LOSSBENCH_NEED_GPU();
  std::map<std::string, int> counts;
  std::string summary;
  std::set<std::string> refused;
  EXPECT_EQ(check(counts, summary, &refused), 0);
  std::printf("[cuda] verdicts:");
  for (const auto& [v, n] : counts) std::printf(" %s=%d", v.c_str(), n);
  std::printf("\n");
  EXPECT_GT(counts["pass"], 0);
  // Refusals only where the CPU backend refuses the same case (the checks are shared: the
  // cosine losses' extreme magnitudes, a registered distance function).
  for (const auto& c : conformance::read_corpus(kGolden)) {
    if (!refused.count(c.id)) continue;
    const ojson r = conformance::run_case(*cpu_impl(), c);
    EXPECT_EQ(r.value("status", ""), "unsupported") << c.id << ": refused by cuda only";
  }
  EXPECT_EQ(counts["fail"], 0);
  EXPECT_EQ(counts["error"], 0);
}

// float16 / bfloat16: double inside, rounded once on the device: correctly rounded in at least
// 99.9 % of the elements (outputs and gradients), as on the CPU.
TEST(Cuda, SixteenBitCorrectlyRounded) {
  LOSSBENCH_NEED_GPU();
  const lb_impl* impl = conformance::find_implementation("cuda");
  ASSERT_NE(impl, nullptr);
  std::int64_t total = 0, exact = 0;
  for (const auto& c : conformance::read_corpus(kGolden)) {
    if (!my_losses().count(c.loss) || c.is_error()) continue;
    if (c.dtype != "float16" && c.dtype != "bfloat16") continue;
    const ojson r = conformance::run_case(*impl, c);
    if (r["status"] == "unsupported" &&
        conformance::run_case(*cpu_impl(), c).value("status", "") == "unsupported")
      continue;  // refused by the shared checks (as on the CPU)
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
  std::printf("[cuda] 16-bit: %lld of %lld elements correctly rounded\n",
              static_cast<long long>(exact), static_cast<long long>(total));
  ASSERT_GT(total, 0);
  EXPECT_GE(static_cast<double>(exact), 0.999 * static_cast<double>(total));
}

// Reductions (and sum-back of broadcast gradients) are bitwise the same run after run.
TEST(Cuda, ReductionsReproducible) {
  LOSSBENCH_NEED_GPU();
  const lb_impl* impl = conformance::find_implementation("cuda");
  int n = 0;
  for (const auto& c : conformance::read_corpus(kGolden)) {
    if (!my_losses().count(c.loss) || c.is_error() || c.reduction == "none") continue;
    const ojson a = conformance::run_case(*impl, c);
    const ojson b = conformance::run_case(*impl, c);
    EXPECT_EQ(a.dump(), b.dump()) << c.id;
    ++n;
  }
  EXPECT_GT(n, 0);
}

// The formula headers under nvcc (host side) against the host compiler, bit for bit, on a grid
// of special and ordinary values. Needs no GPU.
TEST(NvccFormulas, SameValuesAsHostCompiler) {
  const double v[] = {-30.0, -2.0, -1.0, -0.5, -0.0,  0.0,      0x1p-30,   0.25, 0.5,
                      0.75,  1.0,  2.0,  30.0, 1e300, HUGE_VAL, -HUGE_VAL, NAN};
  const int nv = static_cast<int>(sizeof v / sizeof v[0]);
  auto same = [](double a, double b) {
    return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
  };
  std::int64_t compared = 0;
  for (int variant = 0; variant < 2; ++variant) {
    formulas::Params p;
    p.s0 = variant ? 0.5 : 1e-8;
    p.s1 = variant ? 0.9189385332046727 : 1.0;
    p.f0 = variant != 0;
    p.f1 = variant == 0;
    for (int loss = 0; loss < kLossCount; ++loss) {
      int inputs = 0;
      switch (static_cast<Loss>(loss)) {
#define LOSSBENCH_CUDA_TEST_INPUTS(id, F) \
  case Loss::id: inputs = formulas::F::kInputs; break;
        LOSSBENCH_OPT_LOSSES(LOSSBENCH_CUDA_TEST_INPUTS)
#undef LOSSBENCH_CUDA_TEST_INPUTS
        default: break;
      }
      int total = 1;
      for (int k = 0; k < inputs; ++k) total *= nv;
      for (int t = 0; t < total; ++t) {
        double in[kMaxInputs] = {};
        for (int k = 0, r = t; k < inputs; ++k, r /= nv) in[k] = v[r % nv];
        double host = 0, host_g[kMaxInputs] = {}, dev_g[kMaxInputs] = {};
        switch (static_cast<Loss>(loss)) {
#define LOSSBENCH_CUDA_TEST_EVAL(id, F)                 \
  case Loss::id:                                        \
    host = formulas::F::forward<double>(in, p);         \
    formulas::F::backward<double>(in, 0.75, p, host_g); \
    break;
          LOSSBENCH_OPT_LOSSES(LOSSBENCH_CUDA_TEST_EVAL)
#undef LOSSBENCH_CUDA_TEST_EVAL
          default: break;
        }
        const double nv_value = cuda_test::nvcc_forward(loss, in, p);
        cuda_test::nvcc_backward(loss, in, 0.75, p, dev_g);
        ASSERT_TRUE(same(host, nv_value)) << "loss " << loss << " input " << t;
        for (int k = 0; k < inputs; ++k)
          ASSERT_TRUE(same(host_g[k], dev_g[k]))
              << "loss " << loss << " input " << t << " grad " << k;
        ++compared;
      }
    }
  }
  std::printf("[nvcc] %lld evaluations identical\n", static_cast<long long>(compared));
}

// The row losses' formula pieces (row_formulas.hpp) under nvcc against the host compiler.
TEST(NvccFormulas, RowFormulasSameAsHostCompiler) {
  const double v[] = {-30.0, -2.0, -1.0, -0.5, -0.0,  0.0,      0x1p-30,   0.25, 0.5,
                      0.75,  1.0,  2.0,  30.0, 1e300, HUGE_VAL, -HUGE_VAL, NAN};
  const int nv = static_cast<int>(sizeof v / sizeof v[0]);
  std::int64_t compared = 0;
  for (int t = 0; t < nv * nv * nv; ++t) {
    const double in[3] = {v[t % nv], v[t / nv % nv], v[t / (nv * nv)]};
    double host[formulas::kRowFormulaOutputs] = {}, dev[formulas::kRowFormulaOutputs] = {};
    formulas::row_formulas(in, host);
    cuda_test::nvcc_row_formulas(in, dev);
    for (int k = 0; k < formulas::kRowFormulaOutputs; ++k) {
      const bool same = (std::isnan(host[k]) && std::isnan(dev[k])) ||
                        std::memcmp(&host[k], &dev[k], sizeof(double)) == 0;
      ASSERT_TRUE(same) << "piece " << k << " inputs " << in[0] << " " << in[1] << " " << in[2];
      ++compared;
    }
  }
  std::printf("[nvcc] %lld row-formula evaluations identical\n", static_cast<long long>(compared));
}

}  // namespace
}  // namespace lossbench::opt
