// test_corpus_conformance: the golden corpus as GoogleTest tests, one per loss x dtype x group,
// for the built-in implementations (gtest_corpus.hpp). Which implementations: --impl=NAME
// (repeatable), else LOSSBENCH_CONFORMANCE_IMPLS (comma list), else "reference". Also
// --golden=DIR (or LOSSBENCH_GOLDEN), --budgets=FILE, --xfail=FILE, --repro-dir=DIR, --isolate.
// gtest's own flags (--gtest_filter, sharding through GTEST_SHARD_INDEX/GTEST_TOTAL_SHARDS) work
// as usual.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest_corpus.hpp"

#ifndef LOSSBENCH_SOURCE_DIR
#define LOSSBENCH_SOURCE_DIR "."
#endif

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::vector<std::string> impls;
  lossbench::conformance::CorpusTestOptions base;
  base.golden = std::string(LOSSBENCH_SOURCE_DIR) + "/golden/corpus";
  if (const char* g = std::getenv("LOSSBENCH_GOLDEN"); g != nullptr && *g) base.golden = g;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      const std::string f = std::string(flag) + "=";
      return a.rfind(f, 0) == 0 ? argv[i] + f.size() : nullptr;
    };
    if (const char* v = value("--impl"))
      impls.emplace_back(v);
    else if (const char* g = value("--golden"))
      base.golden = g;
    else if (const char* b = value("--budgets"))
      base.budgets = b;
    else if (const char* x = value("--xfail"))
      base.xfail = x;
    else if (const char* r = value("--repro-dir"))
      base.repro_dir = r;
    else if (a == "--isolate")
      base.isolate = true;
    else {
      std::cerr << argv[0] << ": unknown argument '" << a
                << "' (--impl=NAME --golden=DIR --budgets=FILE --xfail=FILE --repro-dir=DIR "
                   "--isolate, and gtest's flags)\n";
      return 2;
    }
  }
  if (impls.empty()) {
    const char* env = std::getenv("LOSSBENCH_CONFORMANCE_IMPLS");
    std::stringstream ss(env != nullptr && *env ? env : "reference");
    std::string name;
    while (std::getline(ss, name, ','))
      if (!name.empty()) impls.push_back(name);
  }
  for (const auto& impl : impls) {
    lossbench::conformance::CorpusTestOptions o = base;
    o.impl = impl;
    lossbench::conformance::register_corpus_tests(o);
  }
  return RUN_ALL_TESTS();
}
