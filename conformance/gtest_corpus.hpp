#pragma once
// GoogleTest suites registered at run time from the golden corpus: one test per loss x dtype x
// group for an implementation, each running that subset's cases through the scorer (as `check`
// does) and failing with the ids, reasons and reproducers of the cases that fail. A backend's
// test program:
//
//   int main(int argc, char** argv) {
//     testing::InitGoogleTest(&argc, argv);
//     lossbench::conformance::CorpusTestOptions o;
//     o.impl = "cpu";  o.golden = ".../golden/corpus";  o.budgets = ".../cpu.budgets";
//     lossbench::conformance::register_corpus_tests(o);
//     return RUN_ALL_TESTS();
//   }
//
// with gtest_discover_tests(...) in CMake: ctest then names what failed
// ("Corpus_cpu.cross_entropy/bfloat16/special"). See docs/scorer.md.
#include <cstddef>
#include <string>

namespace lossbench::conformance {

struct CorpusTestOptions {
  std::string impl = "reference";  // a registered name or a plugin path
  std::string golden;              // corpus directory
  std::string budgets;             // budgets file (empty: the defaults)
  std::string xfail;               // expected failures (empty: none)
  std::string torch;  // PyTorch's outputs, for "torch" budgets (default GOLDEN/torch-2.2.2.jsonl
                      // when a budgets file is given)
  std::string repro_dir;  // reproducers of failing cases (empty: the system's temp directory)
  bool isolate = false;
  double timeout = 60;
  // A gtest filter: only the corpus lines some test it selects needs are read (empty: gtest's
  // own filter, from --gtest_filter or GTEST_FILTER, so call after InitGoogleTest).
  std::string filter;
};

// The suite name of an implementation: "Corpus_" and its name with every character but
// [A-Za-z0-9_] replaced by '_' (gtest filters give '-', ':' and '.' meanings).
std::string corpus_suite_name(const std::string& impl);

// Registers the tests; returns how many. An unreadable corpus or an implementation that cannot
// be loaded registers one failing test, "<suite>.Setup", that says why.
std::size_t register_corpus_tests(const CorpusTestOptions& options);

}  // namespace lossbench::conformance
