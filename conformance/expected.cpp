// Expected values of a case (the corpus line format of docs/golden.md) and `eval --impl`.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "conformance.hpp"
#include "corpus.hpp"
#include "lossbench/case.hpp"
#include "lossbench/error.hpp"
#include "reference.hpp"

namespace lossbench::conformance {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ojson expected_line(const ojson& doc_in, const std::string& id, const std::string& group) {
  ojson doc = doc_in;
  for (const char* k : {"id", "note", "meta"}) doc.erase(k);
  ojson line;
  line["id"] = id;
  line["group"] = group;
  line["case"] = doc;
  // The corpus's own computation of expected values, so a scored case file and a corpus line
  // can never disagree.
  const ojson expected = golden::compute_expected(doc);
  for (const auto& [k, v] : expected.items()) line[k] = v;
  line["notes"] = ojson::array();
  return line;
}

int run_eval(const EvalOptions& o, std::ostream& out, std::ostream& err) {
  ojson line;
  try {
    ojson doc = ojson::parse(read_text(o.case_path), nullptr, false);
    if (doc.is_discarded()) throw Error(ErrorKind::Format, o.case_path + ": not valid JSON");
    line = expected_line(doc, doc.value("id", "eval/case/0000"), "eval");
    if (!o.grad && line.contains("expected")) line["expected"]["grad"] = ojson::object();
  } catch (const Error& e) {
    err << "lossbench eval: error [" << to_string(e.kind()) << "]: " << e.what() << "\n";
    return e.kind() == ErrorKind::Precision ? 3 : 2;
  }
  const CorpusCase c = corpus_case_from_line(line);
  ojson rec;
  std::string impl_name = o.impl;
  try {
    if (names_plugin(o.impl)) {
      const std::string spec = o.impl;
      IsolatedRunner runner([spec](std::string& e) { return load_implementation(spec, e); },
                            o.timeout);
      impl_name = runner.hello().value("name", o.impl);
      rec = runner.run(c);
    } else {
      std::string e;
      const lb_impl* impl = load_implementation(o.impl, e);
      if (impl == nullptr) throw Error(ErrorKind::Format, e);
      rec = run_case(*impl, c);
    }
  } catch (const std::exception& e) {
    err << "lossbench eval: " << e.what() << "\n";
    return 2;
  }
  ojson j;
  j["impl"] = impl_name;
  j["status"] = rec.value("status", "internal_error");
  if (rec.contains("error")) j["error"] = rec["error"];
  if (c.is_error()) j["expected_error"] = line["expected_error"];
  int code = 0;
  if (line.contains("expected") && j["status"] == "ok") {
    auto one = [&](const std::string& what, const ojson& got, const ojson& exp) {
      const TensorScore s = score_tensor(got, exp, c.doc());
      ojson t;
      t["dtype"] = exp["dtype"];
      t["shape"] = exp["shape"];
      t["got"] = got.is_object() && got.contains("data") ? got["data"] : ojson::array();
      t["expected"] = exp["rounded"];
      auto ulps = ojson::array();
      for (std::size_t i = 0; i < exp["hi"].size(); ++i) {
        const double g = i < t["got"].size() ? parse_hex(t["got"][i]) : NAN;
        const double e = ulp_error(
            g, parse_hex(exp["hi"][i]), parse_hex(exp["lo"][i]), parse_hex(exp["rounded"][i]),
            parse_dtype(exp["dtype"].get<std::string>()).value_or(DType::float64));
        if (std::isinf(e))
          ulps.push_back("inf");
        else
          ulps.push_back(e);
      }
      t["ulp"] = std::move(ulps);
      t["max_ulp"] = std::isinf(s.max_ulp) ? ojson("inf") : ojson(s.max_ulp);
      t["rms_ulp"] = std::isinf(s.rms_ulp) ? ojson("inf") : ojson(s.rms_ulp);
      if (!s.problem.empty()) t["problem"] = s.problem;
      if (what == "output")
        j["output"] = std::move(t);
      else
        j["grad"][what] = std::move(t);
    };
    one("output", rec.contains("output") ? rec["output"] : ojson(), line["expected"]["output"]);
    if (o.grad) {
      if (rec.contains("backward")) j["backward_status"] = rec["backward"].value("status", "");
      for (const auto& [name, exp] : line["expected"]["grad"].items())
        one(name, rec.contains("grad") && rec["grad"].contains(name) ? rec["grad"][name] : ojson(),
            exp);
    }
  } else if (j["status"] != "ok" && !(c.is_error() && j["status"] == "bad_arguments")) {
    code = 1;
  }
  if (o.json) {
    out << j.dump(2) << "\n";
    return code;
  }
  out << "impl " << impl_name << ": status " << j["status"].get<std::string>();
  if (j.contains("error")) out << "  (" << j["error"].value("message", "") << ")";
  out << "\n";
  if (c.is_error())
    out << "expected error: " << line["expected_error"]["class"].get<std::string>() << ": "
        << line["expected_error"]["message"].get<std::string>() << "\n";
  auto print = [&](const std::string& title, const ojson& t) {
    out << title << "  dtype " << t["dtype"].get<std::string>() << "  shape " << t["shape"].dump()
        << "  max " << t["max_ulp"].dump() << " ULP  rms " << t["rms_ulp"].dump() << " ULP\n";
    char buf[200];
    std::snprintf(buf, sizeof buf, "  %6s  %-24s  %-24s  %s\n", "index", "got", "exact (rounded)",
                  "ulp");
    out << buf;
    for (std::size_t i = 0; i < t["expected"].size() && i < 50; ++i) {
      const std::string g = i < t["got"].size() ? t["got"][i].get<std::string>() : "-";
      std::snprintf(buf, sizeof buf, "  %6zu  %-24s  %-24s  %s\n", i, g.c_str(),
                    t["expected"][i].get<std::string>().c_str(), t["ulp"][i].dump().c_str());
      out << buf;
    }
  };
  if (j.contains("output")) print("output", j["output"]);
  if (j.contains("grad"))
    for (const auto& [name, t] : j["grad"].items()) print("grad " + name, t);
  return code;
}

}  // namespace lossbench::conformance
