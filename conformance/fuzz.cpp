// `fuzz`: random cases from the golden generators, exact values on the fly, scored like `check`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "conformance.hpp"
#include "corpus.hpp"
#include "lossbench/catalog.hpp"
#include "lossbench/error.hpp"

namespace lossbench::conformance {

namespace fs = std::filesystem;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::uint64_t mix64(std::uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string fmt_ulp(double v) {
  if (std::isinf(v)) return "inf";
  if (std::isnan(v)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

std::string hex64(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%016llx", static_cast<unsigned long long>(v));
  return b;
}

// The losses `spec` names: ids or globs, comma separated ("" or "*": all), in catalog order.
std::vector<const LossInfo*> select_losses(const std::string& spec) {
  std::vector<std::string> patterns;
  std::stringstream ss(spec.empty() ? std::string("*") : spec);
  std::string p;
  while (std::getline(ss, p, ','))
    if (!p.empty()) patterns.push_back(p);
  std::vector<const LossInfo*> out;
  for (const auto& loss : catalog())
    for (const auto& pat : patterns)
      if (glob_match(pat, loss.name)) {
        out.push_back(&loss);
        break;
      }
  return out;
}

// Max and RMS over every element of the tensors of one direction.
struct Stats {
  double max = 0;
  double sum_sq = 0;
  std::int64_t elements = 0;
  std::string worst_id;
  void add(const TensorScore& s, const std::string& id) {
    const double m = s.problem.empty() ? s.max_ulp : kInf;
    if (worst_id.empty() || m > max) {
      max = m;
      worst_id = id;
    }
    sum_sq += s.rms_ulp * s.rms_ulp * static_cast<double>(s.elements);
    elements += s.elements;
  }
  double rms() const {
    return elements > 0 ? std::sqrt(sum_sq / static_cast<double>(elements)) : 0.0;
  }
  std::string text() const {
    if (elements == 0 && worst_id.empty()) return "none scored";
    return "max " + fmt_ulp(max) + " ULP (" + worst_id + "), RMS " + fmt_ulp(rms()) + " ULP";
  }
};

struct Kept {
  CorpusCase c;
  CaseScore s;
  std::uint64_t index = 0;
  std::uint64_t case_seed = 0;
  int rank() const { return s.verdict == "fail" || s.verdict == "error" ? 1 : 0; }
  double badness() const { return s.verdict == "error" ? kInf : s.worst_ulp(); }
};

// Is a worse than b? Failures first, then the larger error, then the earlier case.
bool worse(const Kept& a, const Kept& b) {
  if (a.rank() != b.rank()) return a.rank() > b.rank();
  if (a.badness() != b.badness()) return a.badness() > b.badness();
  return a.index < b.index;
}

std::string case_line(const CorpusCase& c, const CaseScore& s) {
  std::string line = s.verdict;
  for (auto& ch : line) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  line += " " + c.id + " [" + c.group + " " + c.dtype + " " + c.reduction + "]";
  for (const auto& d : s.dirs) line += " " + d.what + "=" + fmt_ulp(d.score.max_ulp) + "ulp";
  if (!s.reason.empty()) line += "  " + s.reason;
  return line;
}

}  // namespace

std::uint64_t fuzz_case_seed(std::uint64_t seed, std::uint64_t index) {
  return mix64(mix64(seed) + (index + 1) * 0x9e3779b97f4a7c15ULL);
}

int run_fuzz(const FuzzOptions& o, std::ostream& out, std::ostream& err) {
  const std::vector<const LossInfo*> losses = select_losses(o.loss);
  if (losses.empty()) {
    err << "lossbench fuzz: no loss of the catalog matches '" << o.loss << "'\n";
    return 2;
  }
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count) {
    err << "lossbench fuzz: bad shard " << o.shard_index << "/" << o.shard_count << "\n";
    return 2;
  }
  if (!(o.seconds >= 0) || o.keep_worst < 0) {
    err << "lossbench fuzz: --seconds and --keep-worst must not be negative\n";
    return 2;
  }
  Budgets budgets;
  std::unique_ptr<ImplRunner> runner;
  try {
    if (!o.budgets.empty()) budgets.load(o.budgets);
    runner = std::make_unique<ImplRunner>(o.impl, o.isolate, o.timeout);
  } catch (const std::exception& e) {
    err << "lossbench fuzz: " << e.what() << "\n";
    return 2;
  }

  std::map<std::string, std::size_t> counts;
  for (const char* v : {"pass", "fail", "error", "unsupported"}) counts[v] = 0;
  std::size_t drawn = 0, dropped = 0;
  Stats forward, backward;
  std::vector<Kept> kept;  // the worst, worst first
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  for (std::uint64_t k = static_cast<std::uint64_t>(o.shard_index);;
       k += static_cast<std::uint64_t>(o.shard_count)) {
    if (o.cases > 0 && drawn >= o.cases) break;
    if (elapsed() >= o.seconds) break;
    ++drawn;
    const std::uint64_t case_seed = fuzz_case_seed(o.seed, k);
    const LossInfo& loss = *losses[mix64(case_seed) % losses.size()];
    golden::RandomCase rc;
    try {
      rc = golden::random_case(loss, case_seed);
    } catch (const std::exception& e) {
      rc.dropped = std::string("generator or reference failed: ") + e.what();
    }
    if (!rc.line) {
      ++dropped;
      if (o.verbose)
        out << "DROPPED " << loss.name << " case " << k << " (seed " << hex64(case_seed)
            << "): " << rc.dropped << "\n";
      continue;
    }
    CorpusCase c = corpus_case_from_line(std::move(*rc.line));
    const ojson rec = runner->run(c);
    CaseScore s = score_case(c, rec, runner->name(), budgets, nullptr);
    ++counts[s.verdict];
    for (const auto& d : s.dirs)
      (d.what == "output" || d.what == "fused.output" ? forward : backward).add(d.score, c.id);
    if (o.verbose || s.verdict == "fail" || s.verdict == "error")
      out << case_line(c, s) << "  (case " << k << ")\n";
    if (o.keep_worst > 0) {
      Kept cand{std::move(c), std::move(s), k, case_seed};
      if (kept.size() < static_cast<std::size_t>(o.keep_worst) || worse(cand, kept.back())) {
        auto at = std::upper_bound(kept.begin(), kept.end(), cand,
                                   [](const Kept& a, const Kept& b) { return worse(a, b); });
        kept.insert(at, std::move(cand));
        if (kept.size() > static_cast<std::size_t>(o.keep_worst)) kept.pop_back();
      }
    }
  }
  const double seconds = elapsed();

  // The worst cases: one reproducer each, and their corpus lines (exact values included) in
  // worst.jsonl, which `check --golden DIR` reads.
  if (!o.keep_dir.empty() && !kept.empty()) {
    std::error_code ec;
    fs::create_directories(o.keep_dir, ec);
    std::ofstream lines(fs::path(o.keep_dir) / "worst.jsonl");
    if (!lines) {
      err << "lossbench fuzz: cannot write " << o.keep_dir << "/worst.jsonl\n";
      return 2;
    }
    int rank = 0;
    for (const auto& w : kept) {
      ++rank;
      ojson extra;
      extra["fuzz"] = {{"impl", o.impl},     {"seed", o.seed},
                       {"index", w.index},   {"case_seed", hex64(w.case_seed)},
                       {"group", w.c.group}, {"rank", rank}};
      const std::string note = "lossbench fuzz --impl " + o.impl + " --seed " +
                               std::to_string(o.seed) + ": case " + std::to_string(w.index) + ": " +
                               w.s.verdict + (w.s.reason.empty() ? "" : ": " + w.s.reason);
      const std::string path = (fs::path(o.keep_dir) / reproducer_file_name(w.c.id)).string();
      std::ofstream f(path);
      if (!f) {
        err << "lossbench fuzz: cannot write " << path << "\n";
        return 2;
      }
      f << reproducer_doc(w.c, w.s, runner->name(), note, extra).dump(1) << "\n";
      lines << w.c.line.dump() << "\n";
      out << "kept #" << rank << ": " << path << "  " << w.s.verdict << ", "
          << fmt_ulp(w.s.worst_ulp()) << " ULP\n";
    }
  }

  const bool ok = counts["fail"] == 0 && counts["error"] == 0;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", seconds);
  out << "lossbench fuzz: " << runner->name()
      << (runner->version().empty() ? "" : " (" + runner->version() + ")") << ": seed " << o.seed
      << ", shard " << o.shard_index << "/" << o.shard_count << ", " << secs << " s: " << drawn
      << " cases (" << dropped << " dropped by the generator): " << counts["pass"] << " pass, "
      << counts["fail"] << " fail, " << counts["error"] << " error, " << counts["unsupported"]
      << " unsupported; output " << forward.text() << "; gradients " << backward.text();
  if (runner->restarts() > 0) out << " (worker restarted " << runner->restarts() << "x)";
  out << (ok ? "  OK" : "  FAILED") << "\n";
  return ok ? 0 : 1;
}

}  // namespace lossbench::conformance
