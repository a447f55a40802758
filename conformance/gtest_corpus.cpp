// GoogleTest suites from the golden corpus (gtest_corpus.hpp).
#include "gtest_corpus.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "conformance.hpp"

namespace lossbench::conformance {

namespace fs = std::filesystem;

namespace {

// What the tests of one implementation share: the corpus subset they need, the budgets, the
// implementation (loaded by the first test that runs).
struct Shared {
  CorpusTestOptions options;
  std::string suite;
  std::vector<CorpusCase> cases;
  Budgets budgets;
  Xfails xfails;
  std::map<std::string, ojson> torch;
  std::unique_ptr<ImplRunner> runner;
  std::string load_error;
};

constexpr std::size_t kMaxReported = 20;  // failures described one by one, per test

class CorpusSubsetTest : public testing::Test {
 public:
  CorpusSubsetTest(std::shared_ptr<Shared> shared, std::vector<std::size_t> cases)
      : shared_(std::move(shared)), cases_(std::move(cases)) {}

  void TestBody() override {
    Shared& sh = *shared_;
    if (!sh.runner && sh.load_error.empty()) {
      try {
        sh.runner =
            std::make_unique<ImplRunner>(sh.options.impl, sh.options.isolate, sh.options.timeout);
      } catch (const std::exception& e) {
        sh.load_error = e.what();
      }
    }
    if (!sh.runner)
      FAIL() << "cannot load implementation '" << sh.options.impl << "': " << sh.load_error;
    const std::string impl_name = sh.runner->name();
    const fs::path repro_dir = sh.options.repro_dir.empty()
                                   ? fs::temp_directory_path() / "lossbench-corpus-repro" /
                                         corpus_suite_name(sh.options.impl)
                                   : fs::path(sh.options.repro_dir);
    std::map<std::string, std::size_t> counts;
    std::size_t reported = 0, bad = 0;
    std::ostringstream more;
    for (std::size_t i : cases_) {
      const CorpusCase& c = sh.cases[i];
      const ojson rec = sh.runner->run(c);
      CaseScore s =
          score_case(c, rec, impl_name, sh.budgets, sh.torch.empty() ? nullptr : &sh.torch);
      if (auto reason = sh.xfails.match(impl_name, c.id)) {
        if (s.verdict == "fail" || s.verdict == "error") {
          s.verdict = "xfail";
        } else if (s.verdict == "pass") {
          s.verdict = "xpass";
          s.reason = "unexpected pass (listed as expected failure: " + *reason + ")";
        }
      }
      ++counts[s.verdict];
      if (s.verdict != "fail" && s.verdict != "error" && s.verdict != "xpass") continue;
      ++bad;
      std::string repro;
      if (s.verdict != "xpass") {
        std::error_code ec;
        fs::create_directories(repro_dir, ec);
        const std::string path = (repro_dir / reproducer_file_name(c.id)).string();
        std::ofstream f(path);
        if (f) {
          f << reproducer_doc(c, s, impl_name,
                              "corpus test " + sh.suite + ": " + s.verdict + ": " + s.reason)
                   .dump(1)
            << "\n";
          repro = path;
        }
      }
      std::ostringstream msg;
      msg << s.verdict << " " << c.id << " [" << c.dtype << " " << c.reduction << "]";
      for (const auto& d : s.dirs)
        if (!d.ok)
          msg << " " << d.what << "=" << d.score.max_ulp << " ULP (budget " << d.allowed << ", "
              << d.budget.rule << ")";
      if (!s.reason.empty()) msg << "\n  " << s.reason;
      if (!repro.empty())
        msg << "\n  reproducer: " << repro << "\n  replay: lossbench eval " << repro << " --impl "
            << sh.options.impl << " --grad";
      if (reported++ < kMaxReported)
        ADD_FAILURE() << msg.str();
      else
        more << "  " << c.id << "\n";
    }
    if (reported > kMaxReported)
      ADD_FAILURE() << (reported - kMaxReported) << " more failing cases:\n" << more.str();
    for (const auto& [verdict, n] : counts) RecordProperty(verdict, static_cast<int>(n));
    if (bad == 0 && counts["unsupported"] == cases_.size())
      GTEST_SKIP() << "all " << cases_.size() << " cases unsupported by " << impl_name;
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::vector<std::size_t> cases_;
};

class SetupFailure : public testing::Test {
 public:
  explicit SetupFailure(std::string why) : why_(std::move(why)) {}
  void TestBody() override { FAIL() << why_; }

 private:
  std::string why_;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::stringstream ss(s);
  while (std::getline(ss, part, sep)) out.push_back(part);
  return out;
}

// The positive patterns of a gtest filter ("A:B-C:D" -> A, B).
std::vector<std::string> positive_patterns(const std::string& filter) {
  const std::string pos = filter.substr(0, filter.find('-'));
  std::vector<std::string> out;
  for (const auto& p : split(pos, ':'))
    if (!p.empty()) out.push_back(p);
  if (out.empty()) out.push_back("*");
  return out;
}

}  // namespace

std::string corpus_suite_name(const std::string& impl) {
  std::string s = impl;
  for (char& ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_')) ch = '_';
  return "Corpus_" + s;
}

std::size_t register_corpus_tests(const CorpusTestOptions& options) {
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  shared->suite = corpus_suite_name(options.impl);
  const std::string& suite = shared->suite;
  auto setup_failure = [&](const std::string& why) -> std::size_t {
    testing::RegisterTest(suite.c_str(), "Setup", nullptr, nullptr, __FILE__, __LINE__,
                          [why]() -> SetupFailure* { return new SetupFailure(why); });
    return 1;
  };

  // Only the lines a selected test needs: ids are "<loss>/<group>/<n>", the dtype is not in the
  // id, so a line is read when the filter selects its loss and group with any dtype.
  const std::vector<std::string> patterns = positive_patterns(
      options.filter.empty() ? std::string(GTEST_FLAG_GET(filter)) : options.filter);
  const bool all = patterns.size() == 1 && patterns[0] == "*";
  IdFilter keep;
  if (!all)
    keep = [&patterns, &suite](std::string_view id) {
      const auto parts = split(std::string(id), '/');
      if (parts.size() < 2) return true;
      for (const auto& p : patterns)
        for (const char* dtype : {"float64", "float32", "float16", "bfloat16", "int64"})
          if (glob_match(p, suite + "." + parts[0] + "/" + dtype + "/" + parts[1])) return true;
      return false;
    };
  try {
    shared->cases = read_corpus(options.golden, keep);
    if (!options.budgets.empty()) {
      shared->budgets.load(options.budgets);
      const std::string torch_path = options.torch.empty()
                                         ? (fs::path(options.golden) / "torch-2.2.2.jsonl").string()
                                         : options.torch;
      if (fs::exists(torch_path)) shared->torch = read_results(torch_path, keep);
    }
    if (!options.xfail.empty()) shared->xfails.load(options.xfail);
  } catch (const std::exception& e) {
    return setup_failure(std::string("corpus ") + options.golden + ": " + e.what());
  }

  // loss/dtype/group -> the indices of its cases, in corpus order.
  std::vector<std::string> names;
  std::map<std::string, std::vector<std::size_t>> subsets;
  for (std::size_t i = 0; i < shared->cases.size(); ++i) {
    const CorpusCase& c = shared->cases[i];
    const std::string name = c.loss + "/" + c.dtype + "/" + c.group;
    auto [it, inserted] = subsets.try_emplace(name);
    if (inserted) names.push_back(name);
    it->second.push_back(i);
  }
  for (const auto& name : names) {
    std::vector<std::size_t> idx = subsets[name];
    testing::RegisterTest(
        suite.c_str(), name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
        [shared, idx]() -> CorpusSubsetTest* { return new CorpusSubsetTest(shared, idx); });
  }
  return names.size();
}

}  // namespace lossbench::conformance
