// `check`: score an implementation against the golden corpus.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <thread>

#include "conformance.hpp"
#include "lossbench/error.hpp"

namespace lossbench::conformance {

namespace fs = std::filesystem;

namespace {

// Where and when the scores were measured, for reports: the date (UTC), the commit
// (LOSSBENCH_GIT_COMMIT, as benchmarks/run.sh and scripts/publish-report.sh set it), the CPU, its
// vector extensions, the thread count a backend would use and the compiler.
ojson run_context() {
  char date[32] = "unknown";
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  if (gmtime_r(&now, &utc)) std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::string cpu = "unknown", isa;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (line.rfind("model name", 0) == 0 && cpu == "unknown") cpu = line.substr(colon + 2);
    if (line.rfind("flags", 0) == 0 && isa.empty()) {
      const std::string flags = line.substr(colon) + " ";
      for (const char* f : {"avx512f", "avx2", "fma", "f16c"})
        if (flags.find(" " + std::string(f) + " ") != std::string::npos)
          isa += (isa.empty() ? "" : " ") + std::string(f);
    }
  }
  const char* commit = std::getenv("LOSSBENCH_GIT_COMMIT");
  const char* threads = std::getenv("LOSSBENCH_CPU_THREADS");
  const char* isa_cap = std::getenv("LOSSBENCH_CPU_ISA");
  ojson c;
  c["date"] = date;
  c["git_commit"] = commit ? commit : "unknown";
  c["cpu_model"] = cpu;
  c["cpu_flags"] = isa.empty() ? "none of avx512f avx2 fma f16c" : isa;
  if (isa_cap) c["isa_cap"] = isa_cap;
  c["threads"] = threads ? std::string(threads)
                         : std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  c["compiler"] = __VERSION__;
  return c;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

struct CaseReport : CaseScore {
  const CorpusCase* c = nullptr;
  std::string repro;
};

std::string fmt_ulp(double v) {
  if (std::isinf(v)) return "inf";
  if (std::isnan(v)) return "nan";
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

ojson json_number(double v) {
  if (std::isinf(v)) return "inf";
  if (std::isnan(v)) return "nan";
  return v;
}

// Worst error of PyTorch's record on the same tensor, if it has one.
std::optional<double> torch_error(const std::map<std::string, ojson>* torch, const CorpusCase& c,
                                  const std::string& what, const ojson& expected) {
  if (torch == nullptr) return std::nullopt;
  auto it = torch->find(c.id);
  if (it == torch->end() || it->second.value("status", "") != "ok") return std::nullopt;
  const ojson& rec = it->second;
  const ojson* got = nullptr;
  if (what == "output" && rec.contains("output")) got = &rec["output"];
  if (what.rfind("grad.", 0) == 0 && rec.contains("grad") && rec["grad"].contains(what.substr(5)))
    got = &rec["grad"][what.substr(5)];
  if (got == nullptr) return std::nullopt;
  const TensorScore s = score_tensor(*got, expected, c.doc());
  return s.max_ulp;
}

bool rejected(const std::string& status) {
  return status == "bad_arguments" || status == "error";  // "error": an external adapter's raise
}

}  // namespace

double CaseScore::worst_ulp() const {
  double w = 0;
  for (const auto& d : dirs) w = std::max(w, d.score.problem.empty() ? d.score.max_ulp : kInf);
  return w;
}

CaseScore score_case(const CorpusCase& c, const ojson& rec, const std::string& impl,
                     const Budgets& budgets, const std::map<std::string, ojson>* torch) {
  CaseScore r;
  r.status = rec.value("status", "internal_error");
  const std::string message =
      rec.contains("error") && rec["error"].is_object() ? rec["error"].value("message", "") : "";
  if (r.status == "unsupported") {
    r.verdict = "unsupported";
    r.reason = message;
    return r;
  }
  if (r.status == "crashed" || r.status == "timeout" || r.status == "internal_error" ||
      r.status == "missing") {
    r.verdict = "error";
    r.reason = r.status + (message.empty() ? "" : ": " + message);
    return r;
  }
  if (c.is_error()) {
    const std::string cls = c.line["expected_error"].value("class", "");
    if (rejected(r.status)) {
      r.verdict = "pass";
      r.reason = "rejected (" + cls + " expected): " + message;
    } else {
      r.verdict = "fail";
      r.reason = "accepted an input PyTorch rejects (" + cls + ": " +
                 c.line["expected_error"].value("message", "") + ")";
    }
    return r;
  }
  if (rejected(r.status)) {
    r.verdict = "fail";
    r.reason = "rejected a valid case: " + message;
    return r;
  }
  if (r.status != "ok") {
    r.verdict = "error";
    r.reason = "unknown status '" + r.status + "'";
    return r;
  }
  if (!c.line.contains("expected")) {
    r.verdict = "error";
    r.reason = "corpus line has neither expected nor expected_error";
    return r;
  }
  const ojson& expected = c.line["expected"];
  // `as`: the name PyTorch's record has for this tensor (the fused results are the same tensors).
  auto add = [&](const std::string& what, const std::string& direction, const ojson& got,
                 const ojson& exp, const std::string& as = "") {
    DirectionScore d;
    d.what = what;
    d.score = score_tensor(got, exp, c.doc());
    d.budget = budgets.resolve({impl, c.loss, c.dtype, c.reduction, direction});
    d.torch_ulp = torch_error(torch, c, as.empty() ? what : as, exp);
    d.allowed = d.budget.ulp;
    if (d.budget.torch && d.torch_ulp)
      d.allowed = std::max(d.allowed, d.budget.torch_factor * *d.torch_ulp);
    if (d.allowed < 0) d.allowed = 0;  // "torch" with no PyTorch record: exact only
    d.ok = d.score.problem.empty() && d.score.max_ulp <= d.allowed;
    r.dirs.push_back(std::move(d));
  };
  add("output", "forward", rec.contains("output") ? rec["output"] : ojson(), expected["output"]);
  if (expected.contains("grad") && !expected["grad"].empty()) {
    const std::string bstatus = rec.contains("backward")
                                    ? rec["backward"].value("status", "ok")
                                    : (rec.contains("grad") ? "ok" : "unsupported");
    if (bstatus == "ok") {
      for (const auto& [name, exp] : expected["grad"].items())
        add("grad." + name, "backward",
            rec.contains("grad") && rec["grad"].contains(name) ? rec["grad"][name] : ojson(), exp);
    } else if (bstatus == "unsupported") {
      r.backward_note = "backward not scored (unsupported)";
    } else {
      r.verdict = rejected(bstatus) ? "fail" : "error";
      const std::string bm =
          rec["backward"].contains("error") ? rec["backward"]["error"].value("message", "") : "";
      r.reason = "backward " + bstatus + (bm.empty() ? "" : ": " + bm);
    }
  }
  // forward_backward (one call), when the implementation has it: scored as the two calls are.
  if (r.verdict.empty() && rec.contains("fused")) {
    const ojson& f = rec["fused"];
    const std::string fstatus = f.value("status", "ok");
    if (fstatus == "ok") {
      add("fused.output", "forward", f.contains("output") ? f["output"] : ojson(),
          expected["output"], "output");
      for (const auto& [name, exp] : expected["grad"].items())
        add("fused.grad." + name, "backward",
            f.contains("grad") && f["grad"].contains(name) ? f["grad"][name] : ojson(), exp,
            "grad." + name);
    } else if (fstatus != "unsupported") {
      r.verdict = rejected(fstatus) ? "fail" : "error";
      const std::string fm = f.contains("error") ? f["error"].value("message", "") : "";
      r.reason = "forward_backward " + fstatus + (fm.empty() ? "" : ": " + fm);
    }
  }
  if (r.verdict.empty()) {
    r.verdict = "pass";
    for (const auto& d : r.dirs)
      if (!d.ok) {
        r.verdict = "fail";
        if (!r.reason.empty()) r.reason += "; ";
        r.reason +=
            d.what + ": " +
            (d.score.problem.empty() ? fmt_ulp(d.score.max_ulp) + " ULP > " + fmt_ulp(d.allowed)
                                     : d.score.problem);
      }
  }
  return r;
}

std::string reproducer_file_name(const std::string& id) {
  std::string s = id;
  for (char& ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
      ch = '_';
  return s + ".json";
}

ojson direction_json(const DirectionScore& d) {
  ojson j;
  j["max_ulp"] = json_number(d.score.max_ulp);
  j["rms_ulp"] = json_number(d.score.rms_ulp);
  j["budget"] = json_number(d.allowed);
  j["budget_rule"] = d.budget.rule;
  if (d.torch_ulp) j["torch_ulp"] = json_number(*d.torch_ulp);
  j["ok"] = d.ok;
  if (!d.score.problem.empty()) j["problem"] = d.score.problem;
  if (d.score.signed_zero_mismatches) j["signed_zero_mismatches"] = d.score.signed_zero_mismatches;
  if (!d.score.worst_detail.is_null()) j["worst"] = d.score.worst_detail;
  return j;
}

ojson reproducer_doc(const CorpusCase& c, const CaseScore& s, const std::string& impl_name,
                     const std::string& note, const ojson& extra_meta) {
  ojson doc = c.doc();
  doc["id"] = c.id;
  doc["note"] = note;
  ojson meta;
  meta["impl"] = impl_name;
  bool any_failed = false;
  for (const auto& d : s.dirs) any_failed = any_failed || !d.ok;
  for (const auto& d : s.dirs)
    if (!d.ok || !any_failed) meta[d.what] = direction_json(d);
  for (const auto& [k, v] : extra_meta.items()) meta[k] = v;
  doc["meta"] = std::move(meta);
  return doc;
}

namespace {

ojson report_json(const CaseReport& r) {
  ojson j;
  j["id"] = r.c->id;
  j["loss"] = r.c->loss;
  j["group"] = r.c->group;
  j["dtype"] = r.c->dtype;
  j["reduction"] = r.c->reduction;
  j["verdict"] = r.verdict;
  j["status"] = r.status;
  if (!r.reason.empty()) j["reason"] = r.reason;
  if (!r.backward_note.empty()) j["note"] = r.backward_note;
  for (const auto& d : r.dirs) j["scores"][d.what] = direction_json(d);
  if (!r.repro.empty()) j["reproducer"] = r.repro;
  return j;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t')
          o += ' ';
        else
          o += ch;
    }
  }
  return o;
}

std::string case_line(const CaseReport& r) {
  std::string line = r.verdict;
  for (auto& ch : line) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  line += " " + r.c->id + " [" + r.c->dtype + " " + r.c->reduction + "]";
  for (const auto& d : r.dirs) line += " " + d.what + "=" + fmt_ulp(d.score.max_ulp) + "ulp";
  if (!r.reason.empty()) line += "  " + r.reason;
  if (!r.repro.empty()) line += "  (reproducer: " + r.repro + ")";
  return line;
}

}  // namespace

int run_check(const CheckOptions& o, std::ostream& out, std::ostream& err) {
  std::vector<CorpusCase> corpus;
  Budgets budgets;
  Xfails xfails;
  std::map<std::string, ojson> torch, results;
  try {
    corpus = read_corpus(o.golden);
    if (!o.budgets.empty()) budgets.load(o.budgets);
    if (!o.xfail.empty()) xfails.load(o.xfail);
    const std::string torch_path =
        o.torch.empty() ? (fs::path(o.golden) / "torch-2.2.2.jsonl").string() : o.torch;
    if (fs::exists(torch_path)) torch = read_results(torch_path);
    if (!o.results.empty()) results = read_results(o.results);
  } catch (const std::exception& e) {
    err << "lossbench check: " << e.what() << "\n";
    return 2;
  }
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count) {
    err << "lossbench check: bad shard " << o.shard_index << "/" << o.shard_count << "\n";
    return 2;
  }

  // The implementation.
  std::string impl_name = o.impl;
  std::string impl_version;
  std::unique_ptr<ImplRunner> runner;
  if (o.results.empty()) {
    try {
      runner = std::make_unique<ImplRunner>(o.impl, o.isolate, o.timeout);
      impl_name = runner->name();
      impl_version = runner->version();
    } catch (const std::exception& e) {
      err << "lossbench check: " << e.what() << "\n";
      return 2;
    }
  }
  // A results file's header line says what wrote it (tools/torch_golden.py: torch_version, ...).
  ojson results_header;
  if (!o.results.empty()) {
    std::ifstream in(o.results);
    std::string first;
    std::getline(in, first);
    const ojson j = ojson::parse(first, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("header") && j["header"].is_object()) {
      results_header = j["header"];
      if (results_header.contains("version") && results_header["version"].is_string())
        impl_version = results_header["version"].get<std::string>();
      else if (results_header.contains("torch_version") &&
               results_header["torch_version"].is_string())
        impl_version = "torch " + results_header["torch_version"].get<std::string>();
    }
  }

  if (!o.repro_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.repro_dir, ec);
  }

  std::ofstream raw;
  if (!o.write_results.empty()) {
    raw.open(o.write_results);
    if (!raw) {
      err << "lossbench check: cannot write " << o.write_results << "\n";
      return 2;
    }
    raw << ojson{{"header", {{"impl", impl_name}, {"version", impl_version}}}}.dump() << "\n";
  }
  std::map<std::string, std::size_t> counts;
  for (const char* v : {"pass", "fail", "error", "unsupported", "xfail", "xpass"}) counts[v] = 0;
  std::vector<CaseReport> reports;
  std::size_t selected = 0;
  for (const auto& c : corpus) {
    if (!o.filter.empty() && !glob_match(o.filter, c.id)) continue;
    if (selected++ % static_cast<std::size_t>(o.shard_count) !=
        static_cast<std::size_t>(o.shard_index))
      continue;
    ojson rec;
    if (!o.results.empty()) {
      auto it = results.find(c.id);
      rec = it != results.end() ? it->second
                                : ojson{{"id", c.id},
                                        {"status", "missing"},
                                        {"error", {{"message", "no record in " + o.results}}}};
    } else {
      rec = runner->run(c);
    }
    if (raw.is_open()) raw << rec.dump() << "\n";
    CaseReport r;
    static_cast<CaseScore&>(r) =
        score_case(c, rec, impl_name, budgets, torch.empty() ? nullptr : &torch);
    r.c = &c;
    if (auto reason = xfails.match(impl_name, c.id)) {
      if (r.verdict == "fail" || r.verdict == "error") {
        r.reason = "expected failure (" + *reason + "): " + r.reason;
        r.verdict = "xfail";
      } else if (r.verdict == "pass") {
        r.verdict = "xpass";
        r.reason = "unexpected pass (listed as expected failure: " + *reason + ")";
      }
    }
    if ((r.verdict == "fail" || r.verdict == "error") && !o.repro_dir.empty()) {
      ojson doc = c.doc();
      doc["id"] = c.id;
      doc["note"] = "lossbench check --impl " + o.impl + ": " + r.verdict + ": " + r.reason;
      ojson meta;
      meta["impl"] = impl_name;
      for (const auto& d : r.dirs)
        if (!d.ok) meta[d.what] = direction_json(d);
      doc["meta"] = std::move(meta);
      const std::string path = (fs::path(o.repro_dir) / reproducer_file_name(c.id)).string();
      std::ofstream f(path);
      if (f) {
        f << doc.dump(1) << "\n";
        r.repro = path;
      }
    }
    ++counts[r.verdict];
    if (o.verbose || (r.verdict != "pass" && r.verdict != "unsupported"))
      out << case_line(r) << "\n";
    reports.push_back(std::move(r));
  }

  const bool ok = counts["fail"] == 0 && counts["error"] == 0 && counts["xpass"] == 0;
  out << "lossbench check: " << impl_name << (impl_version.empty() ? "" : " (" + impl_version + ")")
      << ": " << reports.size() << " cases: " << counts["pass"] << " pass, " << counts["fail"]
      << " fail, " << counts["error"] << " error, " << counts["unsupported"] << " unsupported, "
      << counts["xfail"] << " xfail, " << counts["xpass"] << " unexpected pass";
  if (runner && runner->restarts() > 0) out << " (worker restarted " << runner->restarts() << "x)";
  out << (ok ? "  OK" : "  FAILED") << "\n";

  if (!o.json_out.empty()) {
    ojson j;
    j["impl"] = impl_name;
    j["impl_spec"] = o.impl;
    j["version"] = impl_version;
    j["corpus"] = o.golden;
    j["shard"] = std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count);
    j["context"] = run_context();
    if (!results_header.is_null()) j["results_header"] = results_header;
    j["summary"] = counts;
    j["ok"] = ok;
    auto cases = ojson::array();
    for (const auto& r : reports) cases.push_back(report_json(r));
    j["cases"] = std::move(cases);
    std::ofstream f(o.json_out);
    if (!f) {
      err << "lossbench check: cannot write " << o.json_out << "\n";
      return 2;
    }
    f << j.dump(1) << "\n";
  }
  if (!o.junit_out.empty()) {
    std::ofstream f(o.junit_out);
    if (!f) {
      err << "lossbench check: cannot write " << o.junit_out << "\n";
      return 2;
    }
    f << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"lossbench."
      << xml_escape(impl_name) << "\" tests=\"" << reports.size() << "\" failures=\""
      << counts["fail"] + counts["xpass"] << "\" errors=\"" << counts["error"] << "\" skipped=\""
      << counts["unsupported"] + counts["xfail"] << "\">\n";
    for (const auto& r : reports) {
      f << "<testcase classname=\"" << xml_escape(r.c->loss + "." + r.c->dtype) << "\" name=\""
        << xml_escape(r.c->id) << "\">";
      if (r.verdict == "fail" || r.verdict == "xpass")
        f << "<failure message=\"" << xml_escape(r.reason) << "\"/>";
      else if (r.verdict == "error")
        f << "<error message=\"" << xml_escape(r.reason) << "\"/>";
      else if (r.verdict == "unsupported" || r.verdict == "xfail")
        f << "<skipped message=\"" << xml_escape(r.verdict + ": " + r.reason) << "\"/>";
      f << "</testcase>\n";
    }
    f << "</testsuite>\n</testsuites>\n";
  }
  return ok ? 0 : 1;
}

}  // namespace lossbench::conformance
