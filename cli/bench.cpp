#include "bench.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

namespace lossbench::cli {

namespace fs = std::filesystem;

namespace {

constexpr int kBadInput = 2;

int fail(const std::string& message) {
  std::cerr << "lossbench bench: " << message << "\n";
  return kBadInput;
}

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// The benchmark binary: $LOSSBENCH_BENCH_BIN, else next to this program in the build tree
// (build/release/benchmarks/lossbench_bench beside build/release/lossbench).
std::string find_bench_binary(std::string& error) {
  if (const char* e = std::getenv("LOSSBENCH_BENCH_BIN"); e != nullptr && *e != '\0') {
    if (executable(e)) return e;
    error = "LOSSBENCH_BENCH_BIN='" + std::string(e) + "' is not an executable file";
    return "";
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
  std::string looked;
  for (const fs::path& p : {self / "benchmarks" / "lossbench_bench", self / "lossbench_bench"}) {
    if (executable(p)) return p.string();
    looked += (looked.empty() ? "" : ", ") + p.string();
  }
  error = "the benchmark binary is not built (looked at " + looked +
          "): cmake --build build/release --target lossbench_bench, or set LOSSBENCH_BENCH_BIN";
  return "";
}

std::string run_git(const std::string& args) {
  const std::string cmd =
      "git -C '" LOSSBENCH_SOURCE_DIR "' " + args + " 2>/dev/null";  // the source tree
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f) != nullptr) out += buf;
    if (::pclose(f) != 0) return "";
  }
  return out;
}

// HEAD of the source tree, with -dirty when tracked files are modified (stamped on the results).
std::string git_commit() {
  std::string c = run_git("rev-parse --short=12 HEAD");
  while (!c.empty() && (c.back() == '\n' || c.back() == '\r')) c.pop_back();
  if (c.empty()) return "unknown";
  if (!run_git("status --porcelain --untracked-files=no").empty()) c += "-dirty";
  return c;
}

// A result file the gate can read: exists, is JSON, has a "benchmarks" array.
bool check_result_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open the file";
    return false;
  }
  // Google Benchmark writes NaN and Infinity (e.g. the coefficient of variation of a constant
  // counter), which Python reads and strict JSON does not: they become null for this check.
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const std::string tok : {"-Infinity", "Infinity", "-NaN", "NaN"})
    for (std::size_t at = text.find(tok); at != std::string::npos; at = text.find(tok, at))
      text.replace(at, tok.size(), "null");
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    error = path + ": not a JSON file";
    return false;
  }
  if (!doc.is_object() || !doc.contains("benchmarks") || !doc["benchmarks"].is_array()) {
    error = path + ": not a benchmark result (no \"benchmarks\" array; write one with " +
            "lossbench bench --json FILE)";
    return false;
  }
  return true;
}

[[noreturn]] void exec_or_die(const std::vector<std::string>& argv, bool search_path) {
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  std::cout.flush();
  if (search_path)
    ::execvp(a[0], a.data());
  else
    ::execv(a[0], a.data());
  std::cerr << "lossbench bench: cannot run " << argv[0] << ": " << std::strerror(errno) << "\n";
  std::_Exit(kBadInput);
}

int run_compare(const BenchCommands& b) {
  std::string error;
  for (const std::string* f : {&b.base, &b.next})
    if (!check_result_file(*f, error)) return fail(error);
  std::string script = LOSSBENCH_SOURCE_DIR "/benchmarks/compare.py";
  if (const char* e = std::getenv("LOSSBENCH_COMPARE_PY"); e != nullptr && *e != '\0') script = e;
  if (!fs::is_regular_file(script))
    return fail("the gate script " + script +
                " is missing (set LOSSBENCH_COMPARE_PY to benchmarks/compare.py)");
  std::vector<std::string> argv = {"python3",     script,
                                   b.base,        b.next,
                                   "--threshold", std::to_string(b.threshold),
                                   "--alpha",     std::to_string(b.alpha),
                                   "--metric",    b.metric};
  if (b.quiet) argv.push_back("--quiet");
  if (!b.regressions_out.empty()) {
    argv.push_back("--regressions-out");
    argv.push_back(b.regressions_out);
  }
  exec_or_die(argv, true);
}

}  // namespace

std::string glob_to_regex(const std::string& glob) {
  std::string out;
  for (char c : glob) {
    switch (c) {
      case '*': out += ".*"; break;
      case '?': out += '.'; break;
      case '.':
      case '+':
      case '(':
      case ')':
      case '[':
      case ']':
      case '{':
      case '}':
      case '^':
      case '$':
      case '|':
      case '\\':
        out += '\\';
        out += c;
        break;
      default: out += c;
    }
  }
  return out;
}

std::unique_ptr<BenchCommands> add_bench_commands(CLI::App& app) {
  auto b = std::make_unique<BenchCommands>();
  BenchCommands& o = *b;
  o.bench = app.add_subcommand(
      "bench",
      "Run the benchmarks (percent of the speed of light measured in the same run); "
      "`bench compare BASE NEW` is the regression gate (benchmarks/README.md)");
  o.bench->require_subcommand(0, 1);
  o.bench->add_flag("--quick", o.quick, "Sizes 64 KiB and 4 MiB, min time 0.02 s");
  o.bench->add_option("--filter", o.filter,
                      "Only benchmarks whose name matches this glob, e.g. "
                      "'loss/*/cpu/float32/*' (names: loss/LOSS/IMPL/DTYPE/SIZE/fwd|fwdbwd)");
  o.bench->add_option("--json", o.json, "Write the results (Google Benchmark JSON) here");
  o.bench->add_option("--repetitions", o.repetitions, "Repetitions, interleaved (default 5)")
      ->check(CLI::Range(1, 1000));
  o.bench
      ->add_option("--threads", o.threads,
                   "Threads of the backend and of the roof (default LOSSBENCH_CPU_THREADS or "
                   "all cores)")
      ->check(CLI::Range(1, 4096));
  o.bench
      ->add_option("--min-time", o.min_time,
                   "Minimum seconds per repetition (default 0.02 quick, 0.2 full)")
      ->check(CLI::Range(0.001, 100.0));
  o.bench->add_option("--size", o.size, "The large size, bytes of the main input tensor")
      ->check(CLI::PositiveNumber);
  o.bench->add_option("gbench_flags", o.extra,
                      "After --: flags passed to Google Benchmark as they are");

  o.compare = o.bench->add_subcommand(
      "compare",
      "Regression gate on pct_sol: exit 1 when a median drops by THRESHOLD or more with "
      "p < ALPHA (Mann-Whitney), or a benchmark erred; 2 on unreadable files");
  o.compare->add_option("base", o.base, "Baseline result file (JSON)")->required();
  o.compare->add_option("new", o.next, "New result file (JSON)")->required();
  o.compare->add_option("--threshold", o.threshold, "Relative drop that fails (default 0.25)")
      ->check(CLI::Range(0.001, 1.0));
  o.compare->add_option("--alpha", o.alpha, "Significance level (default 0.05)")
      ->check(CLI::Range(1e-6, 1.0));
  o.compare->add_option("--metric", o.metric, "Counter to compare (default pct_sol)");
  o.compare->add_flag("--quiet", o.quiet, "Print only regressions and the summary");
  o.compare->add_option("--regressions-out", o.regressions_out,
                        "Write the names of the regressed or erred benchmarks here");
  return b;
}

int run_bench_commands(const BenchCommands& b) {
  if (*b.compare) return run_compare(b);
  std::string error;
  const std::string bin = find_bench_binary(error);
  if (bin.empty()) return fail(error);
  for (const auto& f : b.extra)
    if (f.rfind("--benchmark_", 0) != 0 && f.rfind("--v", 0) != 0)
      return fail("'" + f + "' after -- is not a Google Benchmark flag (--benchmark_...)");
  if (!b.filter.empty() && b.filter.find('/') == std::string::npos && b.filter != "*")
    std::cerr << "lossbench bench: note: --filter '" << b.filter
              << "' has no '/': names are loss/LOSS/IMPL/DTYPE/SIZE/DIRECTION\n";
  if (!b.json.empty()) {
    const fs::path dir = fs::absolute(b.json).parent_path();
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      return fail("--json " + b.json + ": the folder " + dir.string() + " does not exist");
  }

  std::vector<std::string> argv = {bin};
  if (!b.size.empty()) {
    for (char c : b.size)
      if (c < '0' || c > '9') return fail("--size '" + b.size + "' is not a number of bytes");
    argv.push_back("--size=" + b.size);
  }
  if (b.quick) argv.push_back("--quick");
  const int reps = b.repetitions > 0 ? b.repetitions : 5;
  const double min_time = b.min_time > 0 ? b.min_time : (b.quick ? 0.02 : 0.2);
  char mt[32];
  std::snprintf(mt, sizeof mt, "%g", min_time);
  argv.push_back("--benchmark_repetitions=" + std::to_string(reps));
  argv.push_back(std::string("--benchmark_min_time=") + mt);
  argv.push_back("--benchmark_enable_random_interleaving=true");
  argv.push_back("--benchmark_counters_tabular=true");
  if (reps > 1) argv.push_back("--benchmark_display_aggregates_only=true");
  // The speed-of-light roofs always run.
  if (!b.filter.empty())
    argv.push_back("--benchmark_filter=^(sol/.*|" + glob_to_regex(b.filter) + "(/real_time)?)$");
  if (!b.json.empty()) {
    argv.push_back("--benchmark_out=" + b.json);
    argv.push_back("--benchmark_out_format=json");
  }
  argv.insert(argv.end(), b.extra.begin(), b.extra.end());
  if (b.threads > 0) ::setenv("LOSSBENCH_CPU_THREADS", std::to_string(b.threads).c_str(), 1);
  if (const char* c = std::getenv("LOSSBENCH_GIT_COMMIT"); c == nullptr || *c == '\0')
    ::setenv("LOSSBENCH_GIT_COMMIT", git_commit().c_str(), 1);
  exec_or_die(argv, false);
}

}  // namespace lossbench::cli
