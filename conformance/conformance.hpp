#pragma once
// The scorer: implementations (registry, plugins, the reference as one), the corpus reader,
// running one case through the ABI, ULP scoring, budgets, expected failures, isolation.
// See docs/scorer.md.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lossbench/abi.h"
#include "lossbench/dtype.hpp"

namespace lossbench::conformance {

using ojson = nlohmann::ordered_json;

// ---------------------------------------------------------------- implementations

using ImplFactory = const lb_impl* (*)();

// Registers a built-in implementation under `name` ("cpu", "cpu-avx2", "cuda"...). The
// reference is registered as "reference" from the start.
void register_implementation(const std::string& name, ImplFactory factory);
std::vector<std::string> registered_implementations();
// nullptr when no implementation has that name.
const lb_impl* find_implementation(std::string_view name);
// The exact reference behind the ABI (certify, then round to the output dtype).
const lb_impl* reference_implementation();

// Does `spec` name a plugin file (ends in ".so" or contains a '/') rather than a registered name?
bool names_plugin(std::string_view spec);
// dlopen + lossbench_impl_v1 + version checks. nullptr and `error` set on failure. The library
// stays loaded for the life of the process.
const lb_impl* load_plugin(const std::string& path, std::string& error);
// A registered name or a plugin path.
const lb_impl* load_implementation(const std::string& spec, std::string& error);

// ---------------------------------------------------------------- corpus

struct CorpusCase {
  std::string id;
  std::string group;
  std::string loss;
  std::string dtype;      // of the floating inputs ("int64" when there is none)
  std::string reduction;  // as the case says ("mean" when absent)
  ojson line;             // the whole corpus line: id, group, case, expected | expected_error...
  const ojson& doc() const { return line.at("case"); }
  bool is_error() const { return line.contains("expected_error"); }
};

CorpusCase corpus_case_from_line(ojson line);
// Reads DIR/manifest.json and the files it lists, or, without a manifest, every DIR/*.jsonl
// except torch-*.jsonl (in name order). Throws Error(Format) on a malformed line.
std::vector<CorpusCase> read_corpus(const std::string& dir);
// A results file (JSON lines keyed by "id", see docs/scorer.md); a {"header": ...} line is
// skipped.
std::map<std::string, ojson> read_results(const std::string& path);

// The same, keeping only the lines whose id `keep` accepts. A line that starts with its id
// ({"id": "...", as the corpus and results files write them) is skipped without being parsed:
// reading a few cases of a large corpus is fast.
using IdFilter = std::function<bool(std::string_view id)>;
std::vector<CorpusCase> read_corpus(const std::string& dir, const IdFilter& keep);
std::map<std::string, ojson> read_results(const std::string& path, const IdFilter& keep);

// ---------------------------------------------------------------- running one case

// Runs one case through an implementation: supports(), forward, then backward for the
// gradients the corpus expects. Returns a results record (docs/scorer.md): {"id", "status":
// "ok" | "unsupported" | "bad_arguments" | "internal_error", "error": {...}, "output": {...},
// "backward": {"status", "error"}, "grad": {...}}. Never throws for an implementation's failure.
ojson run_case(const lb_impl& impl, const CorpusCase& c);

// Runs cases in a child process (fork), one at a time. A child that crashes or runs past the
// timeout is killed and replaced; the case gets {"status": "crashed" | "timeout", ...}.
class IsolatedRunner {
 public:
  // `loader` runs in the child: it returns the implementation or sets its error.
  using Loader = std::function<const lb_impl*(std::string& error)>;
  IsolatedRunner(Loader loader, double timeout_seconds);
  ~IsolatedRunner();
  IsolatedRunner(const IsolatedRunner&) = delete;
  IsolatedRunner& operator=(const IsolatedRunner&) = delete;

  // Starts the child if needed and returns its hello ({"name","version","abi_version"});
  // throws Error(Format) when the implementation cannot be loaded.
  ojson hello();
  ojson run(const CorpusCase& c);
  int restarts() const { return restarts_; }

 private:
  void start();
  void stop(bool kill_child);
  std::string death_reason();
  Loader loader_;
  double timeout_;
  int pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  int restarts_ = 0;
  ojson hello_;
};

// An implementation as `check` runs it: a plugin (a path) always in a child process, a
// registered name in process unless `isolate`. The constructor throws Error(Format) when the
// implementation cannot be loaded.
class ImplRunner {
 public:
  ImplRunner(const std::string& spec, bool isolate, double timeout_seconds);
  ojson run(const CorpusCase& c);
  const std::string& spec() const { return spec_; }
  const std::string& name() const { return name_; }  // as the implementation reports it
  const std::string& version() const { return version_; }
  bool isolated() const { return isolated_ != nullptr; }
  int restarts() const { return isolated_ ? isolated_->restarts() : 0; }

 private:
  std::string spec_, name_, version_;
  const lb_impl* in_process_ = nullptr;
  std::unique_ptr<IsolatedRunner> isolated_;
};

// ---------------------------------------------------------------- ULP scoring

// Error of `got` against the exact value hi + lo in ULPs of `dtype` at the exact value
// (subnormal-aware: below the smallest normal the ULP is the subnormal spacing; above the
// largest finite value, the ULP of the top binade). `rounded` is the exact value correctly
// rounded to dtype: it decides overflow (got equal to an infinite `rounded` is exact). NaN
// against NaN is 0; NaN against a number, an infinity of the wrong sign or a finite value
// against an infinity is +inf.
double ulp_error(double got, double hi, double lo, double rounded, DType dtype);

struct TensorScore {
  bool present = false;
  std::string problem;  // "shape [2] but expected [3]", "missing"... (then max_ulp = inf)
  double max_ulp = 0;
  double rms_ulp = 0;
  std::int64_t worst = -1;  // flat index of the worst element
  std::int64_t signed_zero_mismatches = 0;
  std::int64_t elements = 0;
  ojson worst_detail;  // got, expected, exact, index, inputs at that index
};

// `got` is a results tensor {"dtype","shape","data":[hex]}, `expected` a corpus tensor
// {"dtype","shape","rounded","hi","lo"}; `doc` is the case (for the inputs of the worst element).
TensorScore score_tensor(const ojson& got, const ojson& expected, const ojson& doc);

double parse_hex(const ojson& v);  // "0x1.8p+1", "nan", "inf", "-inf"

// ---------------------------------------------------------------- budgets, expected failures

struct BudgetKey {
  std::string impl, loss, dtype, reduction, direction;  // direction: "forward" | "backward"
};

struct Budget {
  double ulp = 1.0;         // fixed allowance (max ULP), negative when the rule has none
  bool torch = false;       // also allowed: PyTorch 2.2's own error on the same case
  double torch_factor = 1;  // ... times this
  std::string rule;         // the matching line, or "default"
};

// Rules "IMPL LOSS DTYPE REDUCTION DIRECTION BUDGET" (globs; BUDGET like "0.5", "torch",
// "2*torch", "1,torch"), first match wins; built-in defaults after the file's rules:
// "reference * * * * 0.5" and "* * * * * 1".
class Budgets {
 public:
  void load(const std::string& path);  // text (# comments) or JSON [{"impl":..,"budget":..}]
  void add_rule(const std::string& line);
  Budget resolve(const BudgetKey& key) const;

 private:
  struct Rule {
    std::string impl, loss, dtype, reduction, direction;
    Budget budget;
  };
  std::vector<Rule> rules_;
};

// Lines "IMPL_GLOB CASE_ID_GLOB [reason...]".
class Xfails {
 public:
  void load(const std::string& path);
  std::optional<std::string> match(std::string_view impl, std::string_view case_id) const;

 private:
  struct Entry {
    std::string impl, id, reason;
  };
  std::vector<Entry> entries_;
};

bool glob_match(std::string_view pattern, std::string_view text);  // '*' and '?'

// ---------------------------------------------------------------- scoring one case

struct DirectionScore {
  std::string what;  // "output" or "grad.<name>"
  TensorScore score;
  Budget budget;
  double allowed = 0;  // the budget in ULPs for this case (after "torch")
  std::optional<double> torch_ulp;
  bool ok = true;
};

struct CaseScore {
  std::string verdict;  // pass fail unsupported error (xfail, xpass: after Xfails)
  std::string reason;
  std::string status;  // the record's status
  std::vector<DirectionScore> dirs;
  std::string backward_note;
  // The largest max_ulp of the scored tensors (+inf for a tensor with a problem, 0 when none).
  double worst_ulp() const;
};

// The verdict of one results record `rec` (run_case's, IsolatedRunner's or a results file's)
// on a corpus case, against the budgets of implementation `impl`. `torch`: PyTorch's records
// by id, for "torch" budgets (nullptr: none).
CaseScore score_case(const CorpusCase& c, const ojson& rec, const std::string& impl,
                     const Budgets& budgets, const std::map<std::string, ojson>* torch);

// {"max_ulp", "rms_ulp", "budget", "budget_rule", "torch_ulp", "ok", "problem", "worst"...}
ojson direction_json(const DirectionScore& d);
// A one-file reproducer: the case document plus "id", "note" and "meta" (the scores of the
// tensors that failed, or of all when none did, and `extra_meta`'s keys).
ojson reproducer_doc(const CorpusCase& c, const CaseScore& s, const std::string& impl_name,
                     const std::string& note, const ojson& extra_meta = ojson::object());
// "<id with every character but [A-Za-z0-9._-] replaced by _>.json"
std::string reproducer_file_name(const std::string& id);

// ---------------------------------------------------------------- check

struct CheckOptions {
  std::string impl = "reference";
  std::string golden = "golden/corpus";
  std::string filter;  // glob over case ids
  std::string budgets;
  std::string xfail;
  std::string json_out;
  std::string junit_out;
  std::string results;        // score a results file instead of running the implementation
  std::string write_results;  // write the implementation's raw outputs (results format) here
  std::string torch;  // PyTorch's outputs for "torch" budgets (default: GOLDEN/torch-2.2.2.jsonl)
  std::string repro_dir = "lossbench-repro";
  double timeout = 60;
  int shard_index = 0;
  int shard_count = 1;
  bool isolate = false;  // run built-in implementations in a child process too
  bool verbose = false;  // a line for every case, not only the ones that do not pass
};

// Runs the check; returns the exit code (0: nothing failed, erred or passed unexpectedly;
// 1: some did; 2: bad usage, unreadable corpus or implementation).
int run_check(const CheckOptions& options, std::ostream& out, std::ostream& err);

// ---------------------------------------------------------------- fuzz

struct FuzzOptions {
  std::string impl = "reference";
  std::string loss;         // a loss id, a glob over ids ("*": all), or a comma list
  double seconds = 10;      // stop drawing new cases after this long
  std::uint64_t seed = 1;   // case k is drawn from a seed derived from (seed, k)
  std::uint64_t cases = 0;  // at most this many cases (this shard's); 0: only the time bounds
  std::string keep_dir = "lossbench-fuzz";  // the worst cases go here (empty: nowhere)
  int keep_worst = 5;
  int shard_index = 0;  // shard i of n draws the cases k with k % n == i
  int shard_count = 1;
  std::string budgets;
  double timeout = 60;
  bool isolate = false;
  bool verbose = false;  // a line for every case
};

// The seed of case `index` of a fuzz run (splitmix64 of the run's seed and the index).
std::uint64_t fuzz_case_seed(std::uint64_t seed, std::uint64_t index);

// `fuzz`: random cases from the golden generators (golden::random_case), exact values computed
// on the fly, run through the implementation as `check` runs it and scored with the same
// budgets. Returns the exit code (0: no case failed or erred; 1: some did; 2: bad usage).
int run_fuzz(const FuzzOptions& options, std::ostream& out, std::ostream& err);

}  // namespace lossbench::conformance

namespace lossbench::conformance {

// The corpus line of a case document, computed with the reference (certify with gradients):
// {"id", "group", "case", "expected": {"output", "grad"}} or {"expected_error": {"class",
// "message"}}; hi = exact rounded to float64, lo = (exact - hi) rounded to float64.
ojson expected_line(const ojson& doc, const std::string& id, const std::string& group);

struct EvalOptions {
  std::string case_path;
  std::string impl = "reference";
  bool grad = false;
  bool json = false;
  double timeout = 60;
};
// `eval CASE --impl X`: the implementation's outputs beside the exact values and ULP errors.
int run_eval(const EvalOptions& options, std::ostream& out, std::ostream& err);

}  // namespace lossbench::conformance
