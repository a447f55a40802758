#pragma once
// lossbench bench: runs the benchmark binary (benchmarks/lossbench_bench) with the flags of
// benchmarks/README.md, and `lossbench bench compare BASE NEW`, the regression gate
// (benchmarks/compare.py).
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

namespace lossbench::cli {

struct BenchCommands {
  CLI::App* bench = nullptr;
  CLI::App* compare = nullptr;
  // lossbench bench
  bool quick = false;
  std::string filter, json, size;
  int repetitions = 0;             // 0: the default (5)
  int threads = 0;                 // 0: LOSSBENCH_CPU_THREADS or all cores
  double min_time = 0;             // 0: the default (0.02 s quick, 0.2 s full)
  std::vector<std::string> extra;  // after --: Google Benchmark's own flags
  // lossbench bench compare
  std::string base, next, regressions_out, metric = "pct_sol";
  double threshold = 0.25, alpha = 0.05;
  bool quiet = false;
};

std::unique_ptr<BenchCommands> add_bench_commands(CLI::App& app);

// Runs the parsed command (it replaces the process with the benchmark binary or the gate);
// returns an exit status only when that could not be done (2, with a message on stderr).
int run_bench_commands(const BenchCommands& b);

// A glob (`*`, `?`) as an anchored-free regular expression, the form Google Benchmark filters
// take. Exposed for the tests.
std::string glob_to_regex(const std::string& glob);

}  // namespace lossbench::cli
