// The golden corpus: the generator is deterministic, the committed corpus covers the catalog,
// and on float64 the reference and PyTorch 2.2 agree or the difference is listed with a reason.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "corpus.hpp"

namespace lg = lossbench::golden;
namespace fs = std::filesystem;

namespace {

const std::string kCorpus = std::string(LOSSBENCH_SOURCE_DIR) + "/golden/corpus";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() /
                     ("lossbench-golden-" + name + "-" +
                      std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::remove_all(p);
  return p;
}

}  // namespace

TEST(GoldenRng, IsTheStandardMersenneTwister) {
  // The C++ standard fixes the 10000th output of a default-seeded mt19937_64.
  lg::Rng rng(5489u);
  std::uint64_t x = 0;
  for (int i = 0; i < 10000; ++i) x = rng.bits();
  EXPECT_EQ(x, 9981545732273789042ULL);
}

TEST(GoldenGenerate, IsDeterministic) {
  std::string first;
  for (const char* run : {"a", "b"}) {
    lg::GenerateOptions o;
    o.out_dir = temp_dir(run).string();
    o.group = lg::Group::smoke;
    o.loss = "mse_loss";
    std::ostringstream log;
    const auto summary = lg::generate(o, log);
    ASSERT_GT(summary.cases, 0u) << log.str();
    const std::string text =
        slurp(fs::path(o.out_dir) / "smoke.jsonl") + slurp(fs::path(o.out_dir) / "manifest.json");
    if (first.empty())
      first = text;
    else
      EXPECT_EQ(first, text) << "two generations of mse_loss/smoke differ";
    fs::remove_all(o.out_dir);
  }
}

TEST(GoldenGenerate, ReproducesTheCommittedCorpus) {
  if (!fs::exists(fs::path(kCorpus) / "manifest.json")) GTEST_SKIP() << "no committed corpus";
  lg::GenerateOptions o;
  o.out_dir = temp_dir("repro").string();
  o.group = lg::Group::smoke;
  o.loss = "l1_loss";
  std::ostringstream log;
  lg::generate(o, log);
  std::istringstream fresh(slurp(fs::path(o.out_dir) / "smoke.jsonl"));
  std::istringstream committed(slurp(fs::path(kCorpus) / "smoke.jsonl"));
  std::vector<std::string> want, got;
  std::string line;
  while (std::getline(committed, line))
    if (line.rfind("{\"id\":\"l1_loss/", 0) == 0) want.push_back(line);
  while (std::getline(fresh, line)) got.push_back(line);
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(want, got) << "the committed l1_loss smoke cases are not what generate makes now; "
                          "regenerate with `lossbench golden generate`";
  fs::remove_all(o.out_dir);
}

TEST(GoldenCoverage, EveryLossWithAReferenceIsCovered) {
  if (!fs::exists(fs::path(kCorpus) / "manifest.json")) GTEST_SKIP() << "no committed corpus";
  const std::string md = lg::coverage_markdown(kCorpus);
  for (const auto& loss : lossbench::catalog()) {
    if (!lg::reference_available(loss)) continue;  // skipped by generate until it lands
    const std::string row = "| " + std::string(loss.name) + " |";
    const auto at = md.find(row);
    ASSERT_NE(at, std::string::npos) << loss.name;
    const std::string line = md.substr(at, md.find('\n', at) - at);
    EXPECT_EQ(line.find("MISSING"), std::string::npos) << line;
  }
}

TEST(GoldenParity, Float64AgreesWithPyTorchOrIsListed) {
  const std::string torch = kCorpus + "/torch-2.2.2.jsonl";
  if (!fs::exists(torch)) GTEST_SKIP() << "no PyTorch outputs (tools/torch_golden.py)";
  const auto r = lg::parity(kCorpus, torch,
                            std::string(LOSSBENCH_SOURCE_DIR) + "/golden/parity-exceptions.json");
  EXPECT_GT(r.compared, 0u);
  for (const auto& d : r.unexplained)
    ADD_FAILURE() << d.id << " " << d.what << ": " << d.detail
                  << " (list it in golden/parity-exceptions.json with its reason, or fix it)";
}

TEST(GoldenUlp, MeasuresAgainstTheDoubleDouble) {
  using lossbench::DType;
  EXPECT_EQ(lg::ulp_error(1.0, 1.0, 0.0, DType::float64), 0.0);
  EXPECT_EQ(lg::ulp_error(1.0 + 0x1p-52, 1.0, 0.0, DType::float64), 1.0);
  EXPECT_EQ(lg::ulp_error(1.0, 1.0, 0x1p-54, DType::float64), 0.25);
  // Below a power of two the ULP is the lower binade's.
  EXPECT_EQ(lg::ulp_error(1.0 - 0x1p-53, 1.0, -0x1p-60, DType::float64), 1.0 - 0x1p-7);
  EXPECT_EQ(lg::ulp_error(1.0 + 0x1p-23, 1.0, 0.0, DType::float32), 1.0);
  EXPECT_EQ(lg::ulp_error(NAN, NAN, 0.0, DType::float32), 0.0);
  EXPECT_TRUE(std::isinf(lg::ulp_error(1.0, NAN, 0.0, DType::float32)));
  EXPECT_EQ(lg::ulp_error(-0.0, 0.0, 0.0, DType::float64), 0.0);  // signed zeros are not errors
}
